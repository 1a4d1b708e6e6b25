//! `/occurrences` and `/events/{id}/occurrences`: history, detail with attempts, re-drive.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::extract::{id, Body, Params};
use super::AppState;
use crate::auth::Caller;
use crate::domain::occurrence::{Attempt, CausedBy, OccStatus, Occurrence};
use crate::domain::schedule::ceil_ms;
use crate::domain::{fmt_ms, now_ms, parse_time_in};
use crate::error::ApiError;
use crate::store::{OccChange, OccFilter, Redrive};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/occurrences", get(list_occurrences))
        .route("/occurrences/counts", get(count_occurrences))
        .route(
            "/occurrences/{id}",
            get(get_occurrence)
                .delete(cancel_occurrence)
                .patch(move_occurrence),
        )
        .route("/occurrences/{id}/retry", post(retry_occurrence))
        .route("/events/{id}/occurrences", get(list_event_occurrences))
}

/// The response shape of an occurrence.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Occurrence)]
pub struct OccOut {
    pub id: Uuid,
    pub event_id: Uuid,
    #[schema(format = DateTime)]
    pub scheduled_at: String,
    pub status: OccStatus,
    /// Attempts made so far.
    pub attempt_count: u32,
    /// When the next attempt is due (`pending` only).
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    #[schema(format = DateTime)]
    pub completed_at: Option<String>,
    /// When the occurrence ends (`scheduled_at` + its event's duration); `null` without one.
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
    /// Every attempt, oldest first: only in `GET /occurrences/{id}` and the answers of the
    /// routes that change one occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<Attempt>>,
    /// The workflow and the occurrence that caused this one: only on a workflow's follow-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<CausedBy>,
    /// The follow-ups this occurrence caused (workflows), oldest first: only in
    /// `GET /occurrences/{id}` and the answers of the routes that change one occurrence, and
    /// only when there are some.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caused: Option<Vec<Uuid>>,
}

impl From<&Occurrence> for OccOut {
    fn from(o: &Occurrence) -> Self {
        OccOut {
            id: o.id,
            event_id: o.event_id,
            scheduled_at: fmt_ms(o.scheduled_at),
            status: o.status,
            attempt_count: o.attempts,
            next_attempt_at: o
                .next_attempt_at
                .filter(|_| o.status == OccStatus::Pending)
                .map(fmt_ms),
            last_error: o.last_error.clone(),
            created_at: fmt_ms(o.created_at),
            updated_at: fmt_ms(o.updated_at),
            completed_at: o.completed_at.map(fmt_ms),
            ends_at: o.ends_at.map(fmt_ms),
            attempts: None,
            caused_by: o.caused_by.clone(),
            caused: None,
        }
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("occurrence '{id}' not found"))
}

/// Cursors are `<scheduled_at ms>_<id>` of the last item of the previous page.
fn parse_cursor(c: &str) -> Result<(i64, Uuid), ApiError> {
    c.split_once('_')
        .and_then(|(t, id)| Some((t.parse().ok()?, Uuid::parse_str(id).ok()?)))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "cursor: '{c}' is not a cursor from a previous page"
            ))
        })
}

async fn list(
    st: &AppState,
    caller: &Caller,
    p: &Params,
    event_id: Option<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = p.limit()?;
    let status = p
        .get("status")
        .map(OccStatus::parse)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let (from, to) = (p.time("from")?, p.time("to")?);
    let before = p.get("cursor").map(parse_cursor).transpose()?;
    let Some(tags) = caller.principal.filter_tags(p.tags()) else {
        return Ok(Json(json!({ "data": [], "next_cursor": null })));
    };
    let f = OccFilter {
        event_id,
        tags,
        status,
        from,
        to,
        limit: limit + 1,
        before,
    };
    let mut occs = st.store.list_occurrences(&f).await?;
    let next = if occs.len() as i64 > limit {
        occs.truncate(limit as usize);
        occs.last().map(|o| format!("{}_{}", o.scheduled_at, o.id))
    } else {
        None
    };
    let data: Vec<OccOut> = occs.iter().map(OccOut::from).collect();
    Ok(Json(json!({ "data": data, "next_cursor": next })))
}

/// Count occurrences by status
///
/// How many occurrences the token may see are in each status (`scheduled` includes
/// `dispatched`): the figures of `GET /status` within a scope. An exact count on each call (a
/// grouped read of the occurrences of the tags' events), not cached.
#[utoipa::path(
    get,
    path = "/occurrences/counts",
    tag = "occurrences",
    params(("tags" = Option<String>, Query, description = "Comma-separated tags: occurrences of events with any of them; a scoped token's default is its scope")),
    responses(
        (status = 200, description = "Counts by status", body = crate::store::Counts),
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub(super) async fn count_occurrences(
    State(st): State<AppState>,
    caller: Caller,
    p: Params,
) -> Result<Json<crate::store::Counts>, ApiError> {
    p.only(&["tags"])?;
    match caller.principal.filter_tags(p.tags()) {
        None => Ok(Json(crate::store::Counts::default())),
        Some(tags) => Ok(Json(st.store.counts_in(&tags).await?)),
    }
}

/// List occurrences
///
/// All occurrences the token may see, newest first.
#[utoipa::path(
    get,
    path = "/occurrences",
    tag = "occurrences",
    params(
        ("tags" = Option<String>, Query, description = "Comma-separated tags: occurrences of events with any of them"),
        ("status" = Option<String>, Query, description = "pending, scheduled, dispatched, completed, failed, missed or cancelled"),
        ("from" = Option<String>, Query, description = "Scheduled at or after this RFC 3339 time"),
        ("to" = Option<String>, Query, description = "Scheduled before this RFC 3339 time"),
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 50", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of occurrences", body = super::openapi::OccurrencePage),
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub(super) async fn list_occurrences(
    State(st): State<AppState>,
    caller: Caller,
    p: Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    p.only(&["tags", "status", "from", "to", "limit", "cursor"])?;
    list(&st, &caller, &p, None).await
}

/// List an event's occurrences
///
/// Newest first.
#[utoipa::path(
    get,
    path = "/events/{id}/occurrences",
    tag = "occurrences",
    params(
        ("id" = String, Path, description = "The event id (a UUID)"),
        ("status" = Option<String>, Query, description = "pending, scheduled, dispatched, completed, failed, missed or cancelled"),
        ("from" = Option<String>, Query, description = "Scheduled at or after this RFC 3339 time"),
        ("to" = Option<String>, Query, description = "Scheduled before this RFC 3339 time"),
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 50", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of occurrences", body = super::openapi::OccurrencePage),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn list_event_occurrences(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    p: Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    p.only(&["status", "from", "to", "limit", "cursor"])?;
    let e = st.visible_event(&caller, &raw).await?;
    list(&st, &caller, &p, Some(e.id)).await
}

/// The occurrence with its attempts if the caller's scope covers its event (deleted or not);
/// otherwise 404.
pub(super) async fn visible(st: &AppState, caller: &Caller, raw: &str) -> Result<OccOut, ApiError> {
    let (o, attempts) = st
        .store
        .get_occurrence(id("occurrence", raw)?)
        .await?
        .ok_or_else(|| not_found(raw))?;
    if caller.principal.scope().is_some() {
        let tags = st.store.event_tags(o.event_id).await?.unwrap_or_default();
        if !caller.principal.can_see(&tags) {
            return Err(not_found(raw));
        }
    }
    let mut out = OccOut::from(&o);
    out.attempts = Some(attempts);
    let caused = st.store.caused(o.id).await?;
    out.caused = (!caused.is_empty()).then_some(caused);
    Ok(out)
}

/// Get an occurrence with its attempts
#[utoipa::path(
    get,
    path = "/occurrences/{id}",
    tag = "occurrences",
    params(("id" = String, Path, description = "The occurrence id (a UUID)")),
    responses(
        (status = 200, description = "The occurrence with `attempts`", body = OccOut),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn get_occurrence(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<OccOut>, ApiError> {
    Ok(Json(visible(&st, &caller, &raw).await?))
}

/// Re-drive a failed or missed occurrence
///
/// The occurrence is pending again now, with a fresh set of attempts.
#[utoipa::path(
    post,
    path = "/occurrences/{id}/retry",
    tag = "occurrences",
    params(("id" = String, Path, description = "The occurrence id (a UUID)")),
    responses(
        (status = 200, description = "The occurrence, pending again", body = OccOut),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    ),
)]
pub(super) async fn retry_occurrence(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<OccOut>, ApiError> {
    let o = visible(&st, &caller, &raw).await?;
    let Some(event) = st.store.get_event(o.event_id).await? else {
        return Err(ApiError::Conflict(
            "the occurrence's event was deleted; it cannot be re-driven".into(),
        ));
    };
    let extra = event.retry.resolve(&st.config.retry).max_attempts;
    let now = now_ms();
    match st.store.redrive(o.id, extra, now).await? {
        Redrive::Done => {}
        Redrive::NotFound => return Err(not_found(&raw)),
        Redrive::WrongStatus(s) => {
            return Err(ApiError::Conflict(format!(
                "occurrence is {}: only failed or missed occurrences can be retried",
                s.as_str()
            )))
        }
    }
    st.engine.due_at(now);
    st.audit_in(
        &caller,
        "occurrence.retry",
        Some(o.id.to_string()),
        &event.tags,
        json!({ "event_id": o.event_id }),
    )
    .await;
    Ok(Json(visible(&st, &caller, &raw).await?))
}

fn change_result(c: OccChange, raw: &str, verb: &str) -> Result<(), ApiError> {
    match c {
        OccChange::Done => Ok(()),
        OccChange::NotFound => Err(not_found(raw)),
        OccChange::WrongStatus(s) => Err(ApiError::Conflict(format!(
            "occurrence is {} and has been attempted or finished: only upcoming occurrences can be {verb}",
            s.as_str()
        ))),
        OccChange::Taken => Err(ApiError::Conflict("the event already has an occurrence at that time".into())),
    }
}

/// Cancel one upcoming occurrence
///
/// Only an occurrence not yet attempted; the rest of the series is untouched.
#[utoipa::path(
    delete,
    path = "/occurrences/{id}",
    tag = "occurrences",
    params(("id" = String, Path, description = "The occurrence id (a UUID)")),
    responses(
        (status = 200, description = "The cancelled occurrence", body = OccOut),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    ),
)]
pub(super) async fn cancel_occurrence(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<OccOut>, ApiError> {
    let o = visible(&st, &caller, &raw).await?;
    change_result(
        st.store.cancel_occurrence(o.id, now_ms()).await?,
        &raw,
        "cancelled",
    )?;
    st.engine.forget_occurrence(o.id);
    let tags = st.store.event_tags(o.event_id).await?.unwrap_or_default();
    st.audit_in(
        &caller,
        "occurrence.cancel",
        Some(o.id.to_string()),
        &tags,
        json!({ "event_id": o.event_id }),
    )
    .await;
    Ok(Json(visible(&st, &caller, &raw).await?))
}

/// The body of `PATCH /occurrences/{id}`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MoveIn {
    /// The new time: RFC 3339 with an offset, or a local date-time without one
    /// (`"2026-03-29T10:00:00"`), read in the event's time zone (gap forward, fold first).
    scheduled_at: String,
}

/// Move one upcoming occurrence
///
/// Moves an occurrence not yet attempted to another time.
#[utoipa::path(
    patch,
    path = "/occurrences/{id}",
    tag = "occurrences",
    params(("id" = String, Path, description = "The occurrence id (a UUID)")),
    request_body = MoveIn,
    responses(
        (status = 200, description = "The moved occurrence", body = OccOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    ),
)]
pub(super) async fn move_occurrence(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(m, _): Body<MoveIn>,
) -> Result<Json<OccOut>, ApiError> {
    let o = visible(&st, &caller, &raw).await?;
    let zone = st.store.get_event(o.event_id).await?.map(|e| e.timezone);
    let to = ceil_ms(
        parse_time_in("scheduled_at", &m.scheduled_at, zone.as_deref())
            .map_err(ApiError::BadRequest)?,
    );
    change_result(
        st.store.move_occurrence(o.id, to, now_ms()).await?,
        &raw,
        "moved",
    )?;
    st.engine.forget_occurrence(o.id);
    st.engine.due_at(to);
    let tags = st.store.event_tags(o.event_id).await?.unwrap_or_default();
    st.audit_in(
        &caller,
        "occurrence.move",
        Some(o.id.to_string()),
        &tags,
        json!({ "event_id": o.event_id, "from": o.scheduled_at, "to": fmt_ms(to) }),
    )
    .await;
    Ok(Json(visible(&st, &caller, &raw).await?))
}
