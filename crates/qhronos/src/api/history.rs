//! `/events/{id}/versions`: every change of an event, what it changed, and restoring an
//! earlier version.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::extract::{id, Params};
use super::AppState;
use crate::api::event_io::{EventIn, EventOut};
use crate::auth::Caller;
use crate::domain::fmt_ms;
use crate::domain::history::{as_input, diff};
use crate::error::ApiError;
use crate::store::EventVersion;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/events/{id}/versions", get(list_versions))
        .route("/events/{id}/versions/{n}", get(get_version))
        .route("/events/{id}/versions/{n}/restore", post(restore_version))
}

/// One change of an event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionOut {
    /// 1 for the create, then one more per change.
    pub version: i64,
    #[schema(format = DateTime)]
    pub at: String,
    /// `master`, `sub:<token subject>`, or `system` (the engine's 410 pause).
    pub actor: String,
    /// `create`, `update`, `restore`, `pause`, `resume`, `delete` or `pause_gone` (the
    /// receiver answered 410 Gone).
    pub change: String,
    /// The version a `restore` made current again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<i64>,
    /// `{field: [old, new]}` against the version before (for version 1, against `null`).
    /// Never a secret: `hmac_secret_set` says whether one is set, `apicall` header values are
    /// `***`.
    #[schema(value_type = Object)]
    pub diff: Map<String, Value>,
}

/// One version of an event, whole.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionDetail {
    pub version: i64,
    #[schema(format = DateTime)]
    pub at: String,
    pub actor: String,
    pub change: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<i64>,
    /// The event as this change left it: the fields of `GET /events/{id}` but `id`,
    /// `schedule_json`, `next_fire_at`, `created_at` and `updated_at`; never a secret.
    #[schema(value_type = Object)]
    pub event: Value,
}

/// The event id if the event exists, deleted or not, inside the caller's scope: else 404.
async fn visible_history(st: &AppState, caller: &Caller, raw: &str) -> Result<Uuid, ApiError> {
    let id = id("event", raw)?;
    match st.store.event_tags(id).await? {
        Some(tags) if caller.principal.can_see(&tags) => Ok(id),
        _ => Err(ApiError::NotFound(format!("event '{raw}' not found"))),
    }
}

fn version_number(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| ApiError::NotFound(format!("version '{raw}' not found")))
}

/// List the versions of an event
///
/// Oldest first, each with what it changed. Deleted events keep their history until retention
/// removes the event. `after` (a version number) and `limit` page through a long history.
#[utoipa::path(
    get,
    path = "/events/{id}/versions",
    tag = "events",
    params(
        ("id" = String, Path, description = "The event id (a UUID)"),
        ("after" = Option<i64>, Query, description = "Only versions after this one (the last `version` of the previous page)", minimum = 0),
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 50", minimum = 1, maximum = 1000),
    ),
    responses(
        (status = 200, description = "The versions, oldest first", body = Vec<VersionOut>),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn list_versions(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    p: Params,
) -> Result<Json<Vec<VersionOut>>, ApiError> {
    p.only(&["after", "limit"])?;
    let limit = p.limit()?;
    let after = match p.get("after") {
        None => 0,
        Some(s) => s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::BadRequest(format!("after: '{s}' is not a version number (0 or more)"))
        })?,
    };
    let id = visible_history(&st, &caller, &raw).await?;
    // The version before the page too, to diff the page's first one against.
    let base = after.saturating_sub(1);
    let mut rows = st.store.event_versions(id, base, limit + 1).await?;
    let mut prev: Option<EventVersion> = None;
    if after > 0 && rows.first().is_some_and(|v| v.version == after) {
        prev = Some(rows.remove(0));
    }
    rows.truncate(limit as usize);
    let mut out = Vec::with_capacity(rows.len());
    for v in rows {
        let d = diff(prev.as_ref().map(|p| &p.snapshot), &v.snapshot);
        out.push(VersionOut {
            version: v.version,
            at: fmt_ms(v.at),
            actor: v.actor.clone(),
            change: v.change.clone(),
            restored_from: v.restored_from,
            diff: d,
        });
        prev = Some(v);
    }
    Ok(Json(out))
}

/// Get one version of an event
#[utoipa::path(
    get,
    path = "/events/{id}/versions/{n}",
    tag = "events",
    params(
        ("id" = String, Path, description = "The event id (a UUID)"),
        ("n" = i64, Path, description = "The version number", minimum = 1),
    ),
    responses(
        (status = 200, description = "The version", body = VersionDetail),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn get_version(
    State(st): State<AppState>,
    caller: Caller,
    Path((raw, n)): Path<(String, String)>,
) -> Result<Json<VersionDetail>, ApiError> {
    let id = visible_history(&st, &caller, &raw).await?;
    let v = find_version(&st, id, &n).await?;
    Ok(Json(VersionDetail {
        version: v.version,
        at: fmt_ms(v.at),
        actor: v.actor,
        change: v.change,
        restored_from: v.restored_from,
        event: v.snapshot,
    }))
}

async fn find_version(st: &AppState, id: Uuid, raw: &str) -> Result<EventVersion, ApiError> {
    let n = version_number(raw)?;
    st.store
        .event_version(id, n)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("version {n} of event '{id}' not found")))
}

/// Restore a version of an event
///
/// Makes version `n` current again through the update path (`PUT /events/{id}` with the
/// version's fields): validated as an update, future occurrences re-planned when the timing
/// differs, and a new version (`change: "restore"`, `restored_from: n`) recorded. The secret is
/// not part of a version: the current one stays. An `apicall` header keeps its current value;
/// a header the event no longer has is a 409 (its value was never stored). A deleted event
/// cannot be restored (409).
#[utoipa::path(
    post,
    path = "/events/{id}/versions/{n}/restore",
    tag = "events",
    params(
        ("id" = String, Path, description = "The event id (a UUID)"),
        ("n" = i64, Path, description = "The version to make current", minimum = 1),
    ),
    responses(
        (status = 200, description = "The event, as restored", body = EventOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
        (status = 422, response = super::openapi::Unprocessable),
    ),
)]
pub(super) async fn restore_version(
    State(st): State<AppState>,
    caller: Caller,
    Path((raw, n)): Path<(String, String)>,
) -> Result<Json<EventOut>, ApiError> {
    let id = visible_history(&st, &caller, &raw).await?;
    let v = find_version(&st, id, &n).await?;
    let Some(current) = st.store.get_event(id).await? else {
        return Err(ApiError::Conflict(format!(
            "event '{id}' is deleted: its history can be read, not restored"
        )));
    };
    if v.change == crate::domain::history::change::DELETE {
        return Err(ApiError::Conflict(format!(
            "version {} is the event's deletion: restore a version before it",
            v.version
        )));
    }
    let patch = as_input(&v.snapshot).map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
    let merged = EventIn::from(&current).merge(patch.clone());
    if let Some(h) = masked_header(merged.action.as_ref()) {
        return Err(ApiError::Conflict(format!(
            "version {}: the value of apicall header '{h}' is not kept in history (the event no \
             longer has it): update the event with PUT /events/{id} and give the value",
            v.version
        )));
    }
    super::events::apply_update(&st, &caller, current, patch, Some(v.version)).await
}

/// A header of an `apicall` action whose value is still the mask after the merge: one the
/// current event does not have.
fn masked_header(action: Option<&Value>) -> Option<String> {
    action?
        .pointer("/params/headers")?
        .as_object()?
        .iter()
        .find(|(_, v)| v.as_str() == Some(crate::domain::action::MASKED))
        .map(|(k, _)| k.clone())
}
