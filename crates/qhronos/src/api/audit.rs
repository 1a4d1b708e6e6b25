//! `GET /audit`: the audit log, newest first.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::extract::Params;
use super::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::store::AuditFilter;

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(list_audit))
}

/// The tags of several things an entry concerns, each once.
pub(super) fn union<'a>(lists: impl IntoIterator<Item = &'a Vec<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in lists.into_iter().flatten() {
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    out
}

/// Read the audit log
///
/// Newest first. An admin token with a scope reads only the entries about events whose tags
/// all lie in its scope, and about tokens whose scope does.
#[utoipa::path(
    get,
    path = "/audit",
    tag = "audit",
    params(
        ("actor" = Option<String>, Query, description = "`master` or `token:<jti> (<sub>)`"),
        ("action" = Option<String>, Query, description = "e.g. `event.create`"),
        ("target" = Option<String>, Query, description = "The id of what was changed"),
        ("from" = Option<String>, Query, description = "At or after this RFC 3339 time"),
        ("to" = Option<String>, Query, description = "Before this RFC 3339 time"),
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 50", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of audit entries", body = super::openapi::AuditPage),
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub(super) async fn list_audit(
    State(st): State<AppState>,
    caller: Caller,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    p.only(&["actor", "action", "target", "from", "to", "limit", "cursor"])?;
    let limit = p.limit()?;
    let before_id = p
        .get("cursor")
        .map(|c| {
            c.parse::<i64>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "cursor: '{c}' is not a cursor from a previous page"
                ))
            })
        })
        .transpose()?;
    let f = AuditFilter {
        actor: p.get("actor").map(String::from),
        action: p.get("action").map(String::from),
        target: p.get("target").map(String::from),
        from: p.time("from")?,
        to: p.time("to")?,
        limit: limit + 1,
        before_id,
        within: caller.principal.scope().map(<[String]>::to_vec),
    };
    let mut list = st.store.list_audit(&f).await?;
    let next = if list.len() as i64 > limit {
        list.truncate(limit as usize);
        list.last().map(|e| e.id.to_string())
    } else {
        None
    };
    Ok(Json(json!({ "data": list, "next_cursor": next })))
}
