//! `/occurrences` and `/events/{id}/occurrences`: history, detail with attempts, re-drive.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::extract::{id, Body, Params};
use super::AppState;
use crate::domain::occurrence::{Attempt, OccStatus, Occurrence};
use crate::domain::schedule::ceil_ms;
use crate::domain::{fmt_ms, now_ms, parse_time};
use crate::error::ApiError;
use crate::store::{OccChange, OccFilter, Redrive};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/occurrences", get(list_occurrences))
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
#[derive(Debug, Serialize)]
pub struct OccOut {
    pub id: Uuid,
    pub event_id: Uuid,
    pub scheduled_at: String,
    pub status: OccStatus,
    pub attempt_count: u32,
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<Attempt>>,
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
            attempts: None,
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
    p: &Params,
    event_id: Option<Uuid>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = p.limit()?;
    let f = OccFilter {
        event_id,
        tags: p.tags(),
        status: p
            .get("status")
            .map(OccStatus::parse)
            .transpose()
            .map_err(ApiError::BadRequest)?,
        from: p.time("from")?,
        to: p.time("to")?,
        limit: limit + 1,
        before: p.get("cursor").map(parse_cursor).transpose()?,
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

async fn list_occurrences(
    State(st): State<AppState>,
    p: Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    p.only(&["tags", "status", "from", "to", "limit", "cursor"])?;
    list(&st, &p, None).await
}

async fn list_event_occurrences(
    State(st): State<AppState>,
    Path(raw): Path<String>,
    p: Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    p.only(&["status", "from", "to", "limit", "cursor"])?;
    let event_id = id("event", &raw)?;
    if st.store.get_event(event_id).await?.is_none() {
        return Err(ApiError::NotFound(format!("event '{raw}' not found")));
    }
    list(&st, &p, Some(event_id)).await
}

async fn get_occurrence(
    State(st): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<OccOut>, ApiError> {
    let (o, attempts) = st
        .store
        .get_occurrence(id("occurrence", &raw)?)
        .await?
        .ok_or_else(|| not_found(&raw))?;
    let mut out = OccOut::from(&o);
    out.attempts = Some(attempts);
    Ok(Json(out))
}

/// Re-drives a `failed` or `missed` occurrence: pending now, with a fresh set of attempts.
async fn retry_occurrence(
    State(st): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<OccOut>, ApiError> {
    let oid = id("occurrence", &raw)?;
    let (o, _) = st
        .store
        .get_occurrence(oid)
        .await?
        .ok_or_else(|| not_found(&raw))?;
    let Some(event) = st.store.get_event(o.event_id).await? else {
        return Err(ApiError::Conflict(
            "the occurrence's event was deleted; it cannot be re-driven".into(),
        ));
    };
    let extra = event.retry.resolve(&st.config.retry).max_attempts;
    let now = now_ms();
    match st.store.redrive(oid, extra, now).await? {
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
    let (o, attempts) = st
        .store
        .get_occurrence(oid)
        .await?
        .ok_or_else(|| not_found(&raw))?;
    let mut out = OccOut::from(&o);
    out.attempts = Some(attempts);
    Ok(Json(out))
}

fn change_result(c: OccChange, raw: &str, verb: &str) -> Result<(), ApiError> {
    match c {
        OccChange::Done => Ok(()),
        OccChange::NotFound => Err(not_found(raw)),
        OccChange::WrongStatus(s) => Err(ApiError::Conflict(format!(
            "occurrence is {} and has been attempted or finished: only upcoming occurrences can be {verb}",
            s.as_str()
        ))),
        OccChange::Taken => Err(ApiError::Conflict(
            "the event already has an occurrence at that time".into(),
        )),
    }
}

/// Cancels one upcoming occurrence; the rest of the series is untouched.
async fn cancel_occurrence(
    State(st): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<OccOut>, ApiError> {
    let oid = id("occurrence", &raw)?;
    change_result(
        st.store.cancel_occurrence(oid, now_ms()).await?,
        &raw,
        "cancelled",
    )?;
    st.engine.forget_occurrence(oid);
    let (o, _) = st
        .store
        .get_occurrence(oid)
        .await?
        .ok_or_else(|| not_found(&raw))?;
    Ok(Json(OccOut::from(&o)))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveIn {
    scheduled_at: String,
}

/// Moves one upcoming occurrence to another time (`{"scheduled_at": "…"}`).
async fn move_occurrence(
    State(st): State<AppState>,
    Path(raw): Path<String>,
    Body(m, _): Body<MoveIn>,
) -> Result<Json<OccOut>, ApiError> {
    let oid = id("occurrence", &raw)?;
    let to = ceil_ms(parse_time("scheduled_at", &m.scheduled_at).map_err(ApiError::BadRequest)?);
    change_result(
        st.store.move_occurrence(oid, to, now_ms()).await?,
        &raw,
        "moved",
    )?;
    st.engine.forget_occurrence(oid);
    st.engine.due_at(to);
    let (o, _) = st
        .store
        .get_occurrence(oid)
        .await?
        .ok_or_else(|| not_found(&raw))?;
    Ok(Json(OccOut::from(&o)))
}
