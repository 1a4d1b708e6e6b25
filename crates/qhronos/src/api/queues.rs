//! The pull channel: clients that cannot take an inbound request claim due occurrences of
//! `pull` events over plain HTTP, then acknowledge or return each one.
//!
//! A claim is a row, not memory: the occurrence becomes `dispatched`, leased to its queue until
//! the visibility timeout; an unacknowledged claim goes back to the queue when that passes. The
//! retry policy and the dead-letter list are the event's, as for every other action.

use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{id, Params};
use super::occurrences::{visible, OccOut};
use super::AppState;
use crate::auth::Caller;
use crate::domain::action::check_name;
use crate::domain::duration::Dur;
use crate::domain::occurrence::OccStatus;
use crate::domain::{fmt_ms, now_ms};
use crate::error::ApiError;
use crate::store::{Claimed, Next, OccChange};
use qhronos_schema::limits::{CLAIM_MAX, VISIBILITY_MAX_MS};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/queues/{queue}/claim", post(claim))
        .route("/occurrences/{id}/ack", post(ack))
        .route("/occurrences/{id}/nack", post(nack))
}

const MAX_CLAIM: i64 = CLAIM_MAX as i64;

/// One claimed occurrence.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClaimedOut {
    pub occurrence_id: Uuid,
    pub event_id: Uuid,
    pub name: String,
    #[schema(format = DateTime)]
    pub scheduled_at: String,
    /// This claim's attempt number (1 for the first).
    pub attempt: u32,
    /// The event's metadata.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub tags: Vec<String>,
    /// Acknowledge before this time, or the occurrence returns to the queue.
    #[schema(format = DateTime)]
    pub visible_until: String,
    /// This claim's receipt: `ack` and `nack` must present it. Each claim of the occurrence has
    /// a new one, so a late answer to an expired claim cannot settle the next consumer's.
    pub receipt: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClaimOut {
    pub data: Vec<ClaimedOut>,
}

fn duration(p: &Params, k: &str) -> Result<Option<Duration>, ApiError> {
    p.get(k)
        .map(|s| {
            s.parse::<Dur>().map(|d| d.0).map_err(|_| {
                ApiError::BadRequest(format!(
                    "{k}: '{s}' is not a duration such as \"500ms\", \"30s\" or \"2m\""
                ))
            })
        })
        .transpose()
}

/// Claim due occurrences of a queue
///
/// Hands out up to `max` due occurrences of the events whose action is
/// `{"type": "pull", "params": {"queue": …}}` (inside the token's scope), oldest first. Each is
/// `dispatched` until `visible_until`: acknowledge it with `POST /occurrences/{id}/ack`, return
/// it with `/nack`, or it returns to the queue by itself (counted as a failed attempt). With
/// `wait`, an empty queue holds the request open until something is due or `wait` passes
/// (long polling).
#[utoipa::path(
    post,
    path = "/queues/{queue}/claim",
    tag = "queues",
    params(
        ("queue" = String, Path, description = "The queue name (1 to 128 of A-Z a-z 0-9 . _ -)"),
        ("max" = Option<i64>, Query, description = "At most this many (1 to 100, default 1)"),
        ("wait" = Option<String>, Query, description = "Long poll: wait up to this long when nothing is due, e.g. \"30s\" (default 0); a longer wait than pull.max_wait waits pull.max_wait"),
        ("visibility" = Option<String>, Query, description = "How long the claim lasts, 1ms to 12h (default pull.visibility_timeout)"),
    ),
    responses(
        (status = 200, description = "What was claimed (possibly nothing)", body = ClaimOut),
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub(super) async fn claim(
    State(st): State<AppState>,
    caller: Caller,
    Path(queue): Path<String>,
    p: Params,
) -> Result<Json<ClaimOut>, ApiError> {
    p.only(&["max", "wait", "visibility"])?;
    let queue = check_name("queue", &queue).map_err(ApiError::BadRequest)?;
    let max = match p.get("max") {
        None => 1,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_CLAIM).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "max: '{s}' is not a whole number from 1 to {MAX_CLAIM}"
                ))
            })?,
    };
    let cfg = &st.config.pull;
    // A long poll may always answer early (with nothing), so a longer `wait` than the server
    // allows is not an error: it waits what the server allows.
    let wait = duration(&p, "wait")?
        .unwrap_or_default()
        .min(cfg.max_wait.0);
    let visibility = duration(&p, "visibility")?.unwrap_or(cfg.visibility_timeout.0);
    if visibility.is_zero() || visibility > Duration::from_millis(VISIBILITY_MAX_MS) {
        return Err(ApiError::BadRequest(
            "visibility: from 1ms to 12h".to_string(),
        ));
    }
    let Some(tags) = caller.principal.filter_tags(Vec::new()) else {
        return Ok(Json(ClaimOut { data: Vec::new() }));
    };
    let deadline = Instant::now() + wait;
    let visibility_ms = i64::try_from(visibility.as_millis()).unwrap_or(i64::MAX / 4);
    loop {
        let now = now_ms();
        let claimed = st
            .store
            .claim_queue(&queue, &tags, max, now + visibility_ms, now)
            .await?;
        if !claimed.is_empty() {
            return Ok(Json(ClaimOut {
                data: claimed
                    .iter()
                    .map(|(c, receipt)| out(&st, c, receipt, now + visibility_ms))
                    .collect(),
            }));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Json(ClaimOut { data: Vec::new() }));
        }
        tokio::time::sleep(left.min(cfg.poll_interval.0)).await;
    }
}

fn out(st: &AppState, c: &Claimed, receipt: &str, visible_until: i64) -> ClaimedOut {
    // Tag listeners see a pull occurrence when it is first handed out.
    if c.occ.attempts == 1 {
        st.hub.broadcast(&c.event, &c.occ);
    }
    ClaimedOut {
        occurrence_id: c.occ.id,
        event_id: c.event.id,
        name: c.event.name.clone(),
        scheduled_at: fmt_ms(c.occ.scheduled_at),
        attempt: c.occ.attempts,
        payload: c.event.metadata.clone(),
        tags: c.event.tags.clone(),
        visible_until: fmt_ms(visible_until),
        receipt: receipt.to_string(),
    }
}

/// The body of `POST /occurrences/{id}/ack`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckIn {
    /// Required: the `receipt` of the claim being acknowledged
    #[schema(schema_with = super::inputs::receipt, required = true)]
    pub receipt: Option<String>,
}

/// The body of `POST /occurrences/{id}/nack`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NackIn {
    /// Required: the `receipt` of the claim being returned
    #[schema(schema_with = super::inputs::receipt, required = true)]
    pub receipt: Option<String>,
    /// Try again after this long (e.g. "10s"); default: the event's retry policy
    #[schema(schema_with = super::inputs::retry_after)]
    pub retry_after: Option<Dur>,
    /// Recorded as the attempt's error
    pub error: Option<String>,
}

/// The receipt of an ack or nack body; a request without one is refused before anything else.
fn receipt(r: Option<String>) -> Result<String, ApiError> {
    r.filter(|r| !r.is_empty()).ok_or_else(|| {
        ApiError::BadRequest(
            "receipt: required: the `receipt` that POST /queues/{queue}/claim returned with this occurrence".into(),
        )
    })
}

/// Parses an optional JSON body (empty means every field absent).
fn body<T: Default + serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, ApiError> {
    if b.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(b)
        .map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))
}

async fn settle(
    st: &AppState,
    caller: &Caller,
    raw: &str,
    presented: Option<String>,
    error: Option<String>,
    next: impl FnOnce(&OccOut) -> Result<Next, ApiError>,
) -> Result<Json<OccOut>, ApiError> {
    // Out of scope is a 404 like an unknown id, before anything about the body.
    let occ = visible(st, caller, raw).await?;
    let receipt = receipt(presented)?;
    if occ.status != OccStatus::Dispatched {
        return Err(ApiError::Conflict(format!(
            "occurrence '{raw}' is {}, not claimed: only a claimed occurrence can be acknowledged or returned",
            occ.status.as_str()
        )));
    }
    let next = next(&occ)?;
    match st
        .store
        .settle_claim(occ.id, &receipt, error.as_deref(), next, now_ms())
        .await?
    {
        OccChange::Done => {}
        OccChange::NotFound => {
            return Err(ApiError::NotFound(format!("occurrence '{raw}' not found")))
        }
        OccChange::WrongStatus(s) => {
            return Err(ApiError::Conflict(format!(
                "occurrence '{raw}' is {}, not claimed (its claim expired or was settled)",
                s.as_str()
            )))
        }
        OccChange::Taken => {
            return Err(ApiError::Conflict(format!(
                "receipt: not the receipt of occurrence '{raw}'s current claim (a receipt of an earlier claim that expired, or of another consumer's)"
            )))
        }
    }
    if let Next::Retry(at) = next {
        st.engine.due_at(at);
    }
    Ok(Json(visible(st, caller, raw).await?))
}

/// Acknowledge a claimed occurrence
///
/// The occurrence is `completed`; the claim is recorded as a successful attempt. The body
/// carries the claim's `receipt`; another receipt (of an expired claim, or another
/// consumer's) is a 409.
#[utoipa::path(
    post,
    path = "/occurrences/{id}/ack",
    tag = "queues",
    params(("id" = String, Path, description = "The occurrence id (a UUID)")),
    request_body = AckIn,
    responses(
        (status = 200, description = "The occurrence, completed", body = OccOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    ),
)]
pub(super) async fn ack(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    b: axum::body::Bytes,
) -> Result<Json<OccOut>, ApiError> {
    id("occurrence", &raw)?;
    let input: AckIn = body(&b)?;
    settle(&st, &caller, &raw, input.receipt, None, |_| {
        Ok(Next::Completed)
    })
    .await
}

/// Return a claimed occurrence
///
/// Counts as a failed attempt: the occurrence goes back to its queue after `retry_after` (or
/// the event's retry delay), or to `failed` when it has used its last attempt. The body
/// carries the claim's `receipt`, as for `ack`.
#[utoipa::path(
    post,
    path = "/occurrences/{id}/nack",
    tag = "queues",
    params(("id" = String, Path, description = "The occurrence id (a UUID)")),
    request_body = NackIn,
    responses(
        (status = 200, description = "The occurrence, pending again or failed", body = OccOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    ),
)]
pub(super) async fn nack(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    b: axum::body::Bytes,
) -> Result<Json<OccOut>, ApiError> {
    id("occurrence", &raw)?;
    let input: NackIn = body(&b)?;
    let error = input
        .error
        .map(|e| e.chars().take(1024).collect::<String>())
        .unwrap_or_else(|| "returned by the client (nack)".into());
    let occ_id = id("occurrence", &raw)?;
    // The event's retry policy (the event may have been deleted since: then the defaults).
    let found = st.store.get_occurrence(occ_id).await?.map(|(o, _)| o);
    let limit = found.as_ref().map_or(0, |o| o.attempt_limit);
    let retry = match found {
        Some(o) => st.store.get_event(o.event_id).await?.map(|e| e.retry),
        None => None,
    }
    .unwrap_or_default()
    .resolve(&st.config.retry);
    let now = now_ms();
    settle(&st, &caller, &raw, input.receipt, Some(error), move |o| {
        if o.attempt_count >= limit {
            return Ok(Next::Failed);
        }
        let delay = match input.retry_after {
            Some(d) => d.0,
            None => retry.delay_after(o.attempt_count),
        };
        Ok(Next::Retry(crate::domain::policy::instant_after(
            now, delay,
        )))
    })
    .await
}
