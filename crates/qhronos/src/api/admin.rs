//! `/admin`: operator actions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;
use crate::auth::Caller;
use crate::domain::now_ms;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new().route("/admin/backup", post(backup))
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
