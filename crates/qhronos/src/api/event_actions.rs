//! `/events/{id}` actions: delete, pause, resume, trigger now; and the one-event steps
//! (`delete_one`, `pause_one`, `resume_one`) the bulk routes share.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::conflicts::calendars_of;
use super::event_io::EventOut;
use super::events::{earliest, not_found, plan_event};
use super::AppState;
use crate::auth::Caller;
use crate::domain::event::{Event, EventStatus};
use crate::domain::now_ms;
use crate::domain::occurrence::NewOccurrence;
use crate::engine::plan::start_after;
use crate::error::ApiError;
use crate::store::By;

/// Delete an event
///
/// Occurrences not yet fired become `cancelled` and stay visible under `/occurrences`.
#[utoipa::path(
    delete,
    path = "/events/{id}",
    tag = "events",
    params(("id" = String, Path, description = "The event id (a UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn delete_event(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let e = st.visible_event(&caller, &raw).await?;
    if !delete_one(&st, &caller, &e).await? {
        return Err(not_found(&raw));
    }
    st.audit_in(
        &caller,
        "event.delete",
        Some(e.id.to_string()),
        &e.tags,
        json!({ "name": e.name }),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Pause an event
///
/// Stops firing: occurrences due later become `cancelled`; those already due or waiting for a
/// retry are held (`pending`, not delivered while paused) and continue on resume.
#[utoipa::path(
    post,
    path = "/events/{id}/pause",
    tag = "events",
    params(("id" = String, Path, description = "The event id (a UUID)")),
    responses(
        (status = 200, description = "The paused event", body = EventOut),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    ),
)]
pub(super) async fn pause_event(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<EventOut>, ApiError> {
    let e = st.visible_event(&caller, &raw).await?;
    if e.status == EventStatus::Inactive {
        return Err(ApiError::Conflict(
            "event is inactive (it has finished): there is nothing to pause".into(),
        ));
    }
    pause_one(&st, &caller, &e).await?;
    st.audit_in(
        &caller,
        "event.pause",
        Some(e.id.to_string()),
        &e.tags,
        json!({}),
    )
    .await;
    let e = st
        .store
        .get_event(e.id)
        .await?
        .ok_or_else(|| not_found(&raw))?;
    Ok(Json(EventOut::from(&e)))
}

/// Resume a paused event
///
/// A series continues with its next instance after now; a one-time event whose time passed
/// while paused fires late, subject to its misfire policy.
#[utoipa::path(
    post,
    path = "/events/{id}/resume",
    tag = "events",
    params(("id" = String, Path, description = "The event id (a UUID)")),
    responses(
        (status = 200, description = "The event", body = EventOut),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    ),
)]
pub(super) async fn resume_event(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<EventOut>, ApiError> {
    let e = st.visible_event(&caller, &raw).await?;
    let id = e.id;
    if e.status == EventStatus::Paused {
        resume_one(&st, &caller, e.clone()).await?;
        st.audit_in(
            &caller,
            "event.resume",
            Some(id.to_string()),
            &e.tags,
            json!({}),
        )
        .await;
    } else if e.status == EventStatus::Inactive {
        return Err(ApiError::Conflict(
            "event is inactive (it has finished): there is nothing to resume; use /trigger to fire it once more".into(),
        ));
    }
    let e = st
        .store
        .get_event(id)
        .await?
        .ok_or_else(|| not_found(&raw))?;
    Ok(Json(EventOut::from(&e)))
}

/// Trigger an event now
///
/// Fires one extra occurrence now, whatever the event's schedule or status.
#[utoipa::path(
    post,
    path = "/events/{id}/trigger",
    tag = "events",
    params(("id" = String, Path, description = "The event id (a UUID)")),
    responses(
        (status = 201, description = "The new occurrence", body = super::occurrences::OccOut),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn trigger_event(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let e = st.visible_event(&caller, &raw).await?;
    let id = e.id;
    let limit = e.retry.resolve(&st.config.retry).max_attempts;
    let mut now = now_ms();
    // Two triggers in the same millisecond are two occurrences.
    let occ = loop {
        let o = NewOccurrence::of(&e, now, limit);
        if st.store.insert_occurrences(&[o], now).await? > 0 {
            break o;
        }
        now += 1;
    };
    st.engine.due_at(occ.scheduled_at);
    st.audit_in(
        &caller,
        "event.trigger",
        Some(id.to_string()),
        &e.tags,
        json!({ "occurrence_id": occ.id }),
    )
    .await;
    let (o, _) = st
        .store
        .get_occurrence(occ.id)
        .await?
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("triggered occurrence vanished")))?;
    Ok((
        StatusCode::CREATED,
        Json(super::occurrences::OccOut::from(&o)),
    )
        .into_response())
}

/// Deletes a visible event and tells the engine; false when it was gone already. Not audited
/// (the caller audits: one entry per request).
pub(super) async fn delete_one(
    st: &AppState,
    caller: &Caller,
    e: &Event,
) -> Result<bool, ApiError> {
    let actor = caller.principal.identity();
    if !st
        .store
        .delete_event(e.id, now_ms(), By::actor(&actor))
        .await?
    {
        return Ok(false);
    }
    super::conflicts::after_write(st, &calendars_of([e]), &[e.id], &[]).await;
    st.engine.forget_event(e.id, None);
    Ok(true)
}

/// Pauses a visible event (not inactive) and tells the engine. Not audited.
pub(super) async fn pause_one(st: &AppState, caller: &Caller, e: &Event) -> Result<bool, ApiError> {
    let actor = caller.principal.identity();
    let done = st
        .store
        .set_paused(e.id, true, None, &[], now_ms(), By::actor(&actor))
        .await?;
    st.engine.forget_event(e.id, None);
    Ok(done)
}

/// Resumes a visible paused event: plans it from now as a new active event would be, and
/// wakes the engine for what the pause held. Not audited.
pub(super) async fn resume_one(
    st: &AppState,
    caller: &Caller,
    mut e: Event,
) -> Result<bool, ApiError> {
    let now = now_ms();
    e.status = EventStatus::Active;
    let after = start_after(&e, now);
    let occs = plan_event(st, &mut e, after, now).await?;
    let actor = caller.principal.identity();
    let done = st
        .store
        .set_paused(e.id, false, e.next_fire_at, &occs, now, By::actor(&actor))
        .await?;
    if let Some(t) = earliest(&occs) {
        st.engine.due_at(t);
    }
    // What the pause held (retries, instants already due) continues now.
    st.engine.due_at(now);
    st.engine.expand_now();
    Ok(done)
}
