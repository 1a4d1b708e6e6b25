//! Per-event signing secrets. An event saved without `hmac_secret` gets its own generated
//! secret, shown once; no new event is signed with the server-wide default secret, whose
//! signatures every receiver of older events trusts (one tenant choosing a body and a target
//! must not obtain a signature under a key another tenant's receiver accepts).
//! `GET /events/{id}/secret` gives it again to a write token within the event's scope.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::AppState;
use crate::auth::Caller;
use crate::delivery::signing::generate_secret;
use crate::domain::event::Event;
use crate::domain::Millis;
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new().route("/events/{id}/secret", get(get_secret))
}

/// Gives a new event without a secret its own; the generated secret, to show once.
pub(super) fn ensure_own(e: &mut Event) -> Option<String> {
    if e.hmac_secret.is_some() {
        return None;
    }
    let s = generate_secret();
    e.hmac_secret = Some(s.clone());
    Some(s)
}

/// The secret side of an update from `old` to `new`: `cleared` (`"hmac_secret": null`) or a
/// new target for an event still signed with the server default generates a secret (returned
/// to show once). A changed secret keeps the previous one signing for the grace period —
/// except the server default towards a new target, which never trusted it.
pub(super) fn on_update(
    old: &Event,
    new: &mut Event,
    cleared: bool,
    now: Millis,
    grace_ms: Millis,
) -> Option<String> {
    let retargeted = old.action.kind() != new.action.kind() || old.action.url() != new.action.url();
    let generated = if new.hmac_secret.is_none() && (cleared || retargeted) {
        ensure_own(new)
    } else {
        None
    };
    new.previous_secret = if new.hmac_secret != old.hmac_secret {
        Some((old.hmac_secret.clone(), now.saturating_add(grace_ms)))
    } else {
        old.previous_secret.clone()
    };
    if retargeted && matches!(new.previous_secret, Some((None, _))) {
        new.previous_secret = None;
    }
    generated
}

/// `GET /events/{id}/secret`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecretOut {
    pub event_id: uuid::Uuid,
    /// The event's signing secret; `null` for an event created before per-event secrets, which
    /// is still signed with the server's default secret (never shown).
    pub hmac_secret: Option<String>,
    /// True when the event is signed with the server's default secret: give it its own with
    /// `PUT /events/{id}` and `"hmac_secret": null` (generated) or a value of yours.
    pub server_default: bool,
}

/// Read an event's signing secret
///
/// Only for a write token within the event's scope (the secret lets its holder sign requests
/// that the event's receiver accepts).
#[utoipa::path(
    get,
    path = "/events/{id}/secret",
    tag = "events",
    params(("id" = String, Path, description = "The event id (a UUID)")),
    responses(
        (status = 200, description = "The secret", body = SecretOut),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn get_secret(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<SecretOut>, ApiError> {
    let e = st.visible_event(&caller, &raw).await?;
    Ok(Json(SecretOut {
        event_id: e.id,
        server_default: e.hmac_secret.is_none(),
        hmac_secret: e.hmac_secret,
    }))
}
