//! `/admin`: operator actions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;
use crate::auth::Caller;
use crate::domain::now_ms;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/backup", post(backup))
        .route("/admin/backups", get(list_backups))
        .route("/admin/config", get(config_summary))
}

/// Configuration summary
///
/// Version, store, uptime and the configuration in force (defaults, file, environment and
/// flags merged) as `qhronosd config check` prints it: every secret that is set
/// (`master_token`, `auth.jwt_secret`, `smtp.password`, a password in `database_url`) reads
/// `***`. Only the master token or an admin token without a scope.
#[utoipa::path(
    get,
    path = "/admin/config",
    tag = "system",
    responses(
        (status = 200, description = "The summary", body = super::openapi::ConfigSummary),
        (status = 403, response = super::openapi::Forbidden),
    ),
)]
pub(super) async fn config_summary(
    State(st): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    if caller.principal.scope().is_some() {
        return Err(ApiError::Forbidden(
            "the configuration concerns every tenant: only the master token or an admin token without a scope may read it".into(),
        ));
    }
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "store": st.store_kind,
        "started_at": crate::domain::fmt_ms(st.started_at),
        "uptime_seconds": st.started.elapsed().as_secs(),
        "config": crate::config::masked(&st.config),
    })))
}

/// Backup
///
/// Writes a consistent copy of the embedded database into `<data_dir>/backups/` while the
/// service runs, and answers with its path. Restore it with `qhronosd restore --from FILE`
/// while qhronosd is stopped. The file is readable by its owner only (0600): it holds the JWT
/// signing key, token hashes and webhook secrets. An admin token with a scope gets 403.
#[utoipa::path(
    post,
    path = "/admin/backup",
    tag = "system",
    responses(
        (status = 201, description = "The backup was written", body = super::openapi::BackupOut),
        (status = 403, response = super::openapi::Forbidden),
        (status = 409, response = super::openapi::Conflict),
    ),
)]
pub(super) async fn backup(
    State(st): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if caller.principal.scope().is_some() {
        return Err(ApiError::Forbidden(
            "a backup holds every tenant's events, the token hashes and the JWT signing key: only the master token or an admin token without a scope may take one".into(),
        ));
    }
    let dir = st.config.data_dir.join("backups");
    crate::store::private_file::create_dir(&dir)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot create {}: {e}", dir.display())))?;
    let name = format!(
        "qhronos-{}.db",
        jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S%.3fZ")
    );
    let path = dir.join(name);
    let started = now_ms();
    st.store.backup_to(&path).await.map_err(|e| match e {
        crate::store::StoreError::Invalid(m) => ApiError::Conflict(m),
        e => ApiError::Internal(e.into()),
    })?;
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let shown = std::path::absolute(&path)
        .unwrap_or(path)
        .display()
        .to_string();
    st.audit(
        &caller,
        "admin.backup",
        Some(shown.clone()),
        json!({ "bytes": bytes }),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "path": shown, "bytes": bytes, "took_ms": now_ms() - started })),
    ))
}

/// The backups in the backup folder.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct BackupList {
    /// The folder (`backup.dir`, or `<data_dir>/backups`), absolute.
    pub dir: String,
    /// Newest first.
    pub data: Vec<crate::engine::backup::BackupInfo>,
}

/// List backups
///
/// The backups in the backup folder (`backup.dir`, default `<data_dir>/backups`), newest first:
/// scheduled ones (`backup.every`, rotated by `backup.keep`) with the `PRAGMA integrity_check`
/// result recorded after each was written, and those of `POST /admin/backup` (not checked:
/// `integrity` is `null`). Only the master token or an admin token without a scope.
#[utoipa::path(
    get,
    path = "/admin/backups",
    tag = "system",
    responses(
        (status = 200, description = "The backups, newest first", body = BackupList),
        (status = 403, response = super::openapi::Forbidden),
    ),
)]
pub(super) async fn list_backups(
    State(st): State<AppState>,
    caller: Caller,
) -> Result<Json<BackupList>, ApiError> {
    if caller.principal.scope().is_some() {
        return Err(ApiError::Forbidden(
            "backups hold every tenant's events: only the master token or an admin token without a scope may list them".into(),
        ));
    }
    let dir = st.config.backup.dir_in(&st.config.data_dir);
    let data = crate::engine::backup::list(&dir)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("cannot read {}: {e}", dir.display())))?;
    let dir = std::path::absolute(&dir)
        .unwrap_or(dir)
        .display()
        .to_string();
    Ok(Json(BackupList { dir, data }))
}
