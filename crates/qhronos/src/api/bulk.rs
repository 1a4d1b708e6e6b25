//! Bulk operations: `POST /occurrences/retry` (re-drive every failed or missed occurrence that
//! matches) and `POST /events/pause|resume|delete` (every event that matches). Each works in
//! chunks — a page read, then short writes — so a request over 100k rows never holds the
//! writer for long, and each is one audit entry with its filter and counts.

use std::collections::HashMap;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::extract::Body;
use super::AppState;
use crate::auth::Caller;
use crate::domain::event::{Event, EventStatus};
use crate::domain::occurrence::OccStatus;
use crate::domain::{now_ms, parse_time, Millis};
use crate::error::ApiError;
use crate::store::{EventFilter, OccFilter};

/// Rows read per chunk.
const CHUNK: i64 = 500;
/// Most `ids` in one request.
const MAX_IDS: usize = 1000;
/// Most failures listed in an answer.
const MAX_FAILURES: usize = 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/occurrences/retry", post(retry_occurrences))
        .route("/events/pause", post(pause_events))
        .route("/events/resume", post(resume_events))
        .route("/events/delete", post(delete_events))
}

/// Which occurrences `POST /occurrences/retry` re-drives.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "failed", "from": "2026-12-01T00:00:00Z", "tags": ["billing"]}))]
pub struct RetryFilter {
    /// `failed` or `missed`
    pub status: String,
    /// Scheduled at or after this RFC 3339 time
    #[schema(format = DateTime)]
    pub from: Option<String>,
    /// Scheduled at or before this RFC 3339 time
    #[schema(format = DateTime)]
    pub to: Option<String>,
    /// Occurrences of events with any of these tags; a scoped token's default is its scope
    pub tags: Option<Vec<String>>,
    /// Occurrences of this event only
    pub event_id: Option<String>,
    /// Count only; change nothing
    #[serde(default)]
    pub dry_run: bool,
}

/// What `POST /occurrences/retry` did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetryOut {
    /// Occurrences that matched the filter when read.
    pub matched: u64,
    /// Re-driven (pending again, due now). Fewer than `matched` when an occurrence's event was
    /// deleted, when one changed between the read and the write, or on a dry run.
    pub retried: u64,
}

/// Which events `POST /events/pause|resume|delete` act on. At least one of `tags`, `status`,
/// `q` and `ids` is required (to act on every event, give a status).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tags": ["billing"], "status": "active"}))]
pub struct EventsFilter {
    /// Events with any of these tags; a scoped token's default is its scope
    pub tags: Option<Vec<String>>,
    /// `active`, `paused` or `inactive`
    pub status: Option<String>,
    /// A substring of the name or description (as `GET /events?q=`)
    pub q: Option<String>,
    /// These events only (at most 1000 ids)
    pub ids: Option<Vec<String>>,
    /// Count only; change nothing
    #[serde(default)]
    pub dry_run: bool,
}

/// What a bulk event operation did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventsOut {
    /// Events that matched the filter (inside the caller's scope).
    pub matched: u64,
    /// Events the operation changed: paused ones that were active, resumed ones that were
    /// paused, deleted ones; 0 on a dry run.
    pub changed: u64,
    /// Events that matched but could not be changed, with why (at most 20 listed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<BulkFailure>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkFailure {
    pub id: Uuid,
    pub error: String,
}

fn time(field: &str, v: Option<&str>) -> Result<Option<Millis>, ApiError> {
    v.map(|s| {
        parse_time(field, s)
            .map(|t| t.as_millisecond())
            .map_err(ApiError::BadRequest)
    })
    .transpose()
}

/// The filter as the audit log keeps it (never a secret: a filter holds none).
fn filter_summary(raw: &[u8]) -> Value {
    serde_json::from_slice(raw).unwrap_or(Value::Null)
}

/// One audit entry about the tags the request covered (none: unscoped admins read it).
async fn audit_bulk(st: &AppState, caller: &Caller, action: &str, tags: &[String], summary: Value) {
    if tags.is_empty() {
        st.audit(caller, action, None, summary).await;
    } else {
        st.audit_in(caller, action, None, tags, summary).await;
    }
}

/// Re-drive failed or missed occurrences in bulk
///
/// Every occurrence with the given status (and inside `from`/`to`, `tags`, `event_id`) is
/// sent again now with its event's attempts, as `POST /occurrences/{id}/retry` does one — the
/// "recover everything since the outage" action. Works in chunks of 500; one audit entry.
#[utoipa::path(
    post,
    path = "/occurrences/retry",
    tag = "occurrences",
    request_body = RetryFilter,
    responses(
        (status = 200, description = "What matched and what was re-driven", body = RetryOut),
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub(super) async fn retry_occurrences(
    State(st): State<AppState>,
    caller: Caller,
    Body(f, raw): Body<RetryFilter>,
) -> Result<Json<RetryOut>, ApiError> {
    let status = match f.status.as_str() {
        "failed" => OccStatus::Failed,
        "missed" => OccStatus::Missed,
        s => {
            return Err(ApiError::BadRequest(format!(
                "status: '{s}' cannot be retried: expected failed or missed"
            )))
        }
    };
    let from = time("from", f.from.as_deref())?;
    let to = time("to", f.to.as_deref())?;
    let event_id = f
        .event_id
        .as_deref()
        .map(|s| {
            Uuid::parse_str(s)
                .map_err(|_| ApiError::BadRequest(format!("event_id: '{s}' is not an event id")))
        })
        .transpose()?;
    let mut out = RetryOut {
        matched: 0,
        retried: 0,
    };
    let Some(tags) = caller
        .principal
        .filter_tags(f.tags.clone().unwrap_or_default())
    else {
        return Ok(Json(out));
    };
    // Each event's attempts for a re-drive, read once; `None`: the event was deleted.
    let mut extra: HashMap<Uuid, Option<u32>> = HashMap::new();
    let mut before = None;
    loop {
        let page = st
            .store
            .list_occurrences(&OccFilter {
                event_id,
                tags: tags.clone(),
                status: Some(status),
                from,
                to,
                limit: CHUNK,
                before,
            })
            .await?;
        let Some(last) = page.last() else { break };
        before = Some((last.scheduled_at, last.id));
        out.matched += page.len() as u64;
        if !f.dry_run {
            let mut batch = Vec::with_capacity(page.len());
            for o in &page {
                let x = match extra.get(&o.event_id) {
                    Some(x) => *x,
                    None => {
                        let x = st
                            .store
                            .get_event(o.event_id)
                            .await?
                            .map(|e| e.retry.resolve(&st.config.retry).max_attempts);
                        extra.insert(o.event_id, x);
                        x
                    }
                };
                if let Some(x) = x {
                    batch.push((o.id, x));
                }
            }
            out.retried += st.store.redrive_many(&batch, now_ms()).await?;
        }
        if (page.len() as i64) < CHUNK {
            break;
        }
        tokio::task::yield_now().await;
    }
    if out.retried > 0 {
        st.engine.due_at(now_ms());
    }
    if !f.dry_run {
        let summary =
            json!({"filter": filter_summary(&raw), "matched": out.matched, "retried": out.retried});
        audit_bulk(&st, &caller, "occurrence.retry_bulk", &tags, summary).await;
    }
    Ok(Json(out))
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Pause,
    Resume,
    Delete,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Pause => "pause",
            Op::Resume => "resume",
            Op::Delete => "delete",
        }
    }
}

/// True when `e` matches the filter's status, tags (any) and text.
fn matches(e: &Event, status: Option<EventStatus>, tags: &[String]) -> bool {
    status.is_none_or(|s| e.status == s)
        && (tags.is_empty() || e.tags.iter().any(|t| tags.contains(t)))
}

/// Every live event the search `text` finds within `tags` and `status` (ids, in rank order),
/// at most `MAX_SEARCHED`.
async fn search_ids(
    st: &AppState,
    text: &str,
    tags: &[String],
    status: Option<EventStatus>,
) -> Result<std::collections::BTreeSet<Uuid>, ApiError> {
    const MAX_SEARCHED: usize = 100_000;
    let f = EventFilter {
        tags: tags.to_vec(),
        status,
        limit: CHUNK,
        before_id: None,
    };
    let mut out = std::collections::BTreeSet::new();
    let mut after = None;
    loop {
        let page = st.store.search_events(text, &f, after).await?;
        let n = page.len();
        after = page.last().map(|x| x.cursor);
        out.extend(page.into_iter().map(|x| x.event.id));
        if (n as i64) < CHUNK || out.len() >= MAX_SEARCHED {
            return Ok(out);
        }
    }
}

/// Applies `op` to one matched event: `Ok(true)` when it changed it.
async fn apply(st: &AppState, caller: &Caller, op: Op, e: &Event) -> Result<bool, ApiError> {
    match op {
        Op::Pause if e.status == EventStatus::Active => {
            super::event_actions::pause_one(st, caller, e).await
        }
        Op::Resume if e.status == EventStatus::Paused => {
            super::event_actions::resume_one(st, caller, e.clone()).await
        }
        Op::Delete => super::event_actions::delete_one(st, caller, e).await,
        _ => Ok(false),
    }
}

async fn bulk_events(
    st: AppState,
    caller: Caller,
    f: EventsFilter,
    raw: &[u8],
    op: Op,
) -> Result<Json<EventsOut>, ApiError> {
    if f.tags.as_ref().is_none_or(Vec::is_empty)
        && f.status.is_none()
        && f.q.as_deref().is_none_or(str::is_empty)
        && f.ids.as_ref().is_none_or(Vec::is_empty)
    {
        return Err(ApiError::BadRequest(
            "give at least one of tags, status, q and ids (to act on every event, give a status)"
                .into(),
        ));
    }
    let status = f
        .status
        .as_deref()
        .map(EventStatus::parse)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let ids = match &f.ids {
        None => None,
        Some(ids) if ids.len() > MAX_IDS => {
            return Err(ApiError::BadRequest(format!(
                "ids: at most {MAX_IDS} ({} given)",
                ids.len()
            )))
        }
        Some(ids) => Some(
            ids.iter()
                .map(|s| {
                    Uuid::parse_str(s)
                        .map_err(|_| ApiError::BadRequest(format!("ids: '{s}' is not an event id")))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let q = f.q.as_deref().filter(|q| !q.is_empty());
    let mut out = EventsOut {
        matched: 0,
        changed: 0,
        failed: Vec::new(),
    };
    let Some(tags) = caller
        .principal
        .filter_tags(f.tags.clone().unwrap_or_default())
    else {
        return Ok(Json(out));
    };
    // `q` is the full-text search of `GET /events`: the matches are collected first (ids only),
    // so that changing them cannot move the ranking under the paging.
    let ids = match q {
        Some(text) => {
            let found = search_ids(&st, text, &tags, status).await?;
            Some(match ids {
                Some(given) => given.into_iter().filter(|id| found.contains(id)).collect(),
                None => found.into_iter().collect(),
            })
        }
        None => ids,
    };
    let mut outcome = Ok(());
    let mut before_id = None;
    'pages: loop {
        let page: Vec<Event> = match &ids {
            Some(ids) => {
                let mut page = Vec::new();
                for id in ids {
                    if let Some(e) = st.store.get_event(*id).await? {
                        if caller.principal.can_see(&e.tags) && matches(&e, status, &tags) {
                            page.push(e);
                        }
                    }
                }
                page
            }
            None => {
                st.store
                    .list_events(&EventFilter {
                        tags: tags.clone(),
                        status,
                        limit: CHUNK,
                        before_id,
                    })
                    .await?
            }
        };
        before_id = page.last().map(|e| e.id);
        out.matched += page.len() as u64;
        if !f.dry_run {
            for e in &page {
                match apply(&st, &caller, op, e).await {
                    Ok(true) => out.changed += 1,
                    Ok(false) => {}
                    // A fault of ours: stop, but audit what was done.
                    Err(err @ ApiError::Internal(_)) => {
                        outcome = Err(err);
                        break 'pages;
                    }
                    Err(err) => {
                        if out.failed.len() < MAX_FAILURES {
                            out.failed.push(BulkFailure {
                                id: e.id,
                                error: err.to_string(),
                            });
                        }
                    }
                }
            }
        }
        if ids.is_some() || (page.len() as i64) < CHUNK {
            break;
        }
        tokio::task::yield_now().await;
    }
    if !f.dry_run {
        let summary =
            json!({"filter": filter_summary(raw), "matched": out.matched, "changed": out.changed});
        let action = format!("event.{}_bulk", op.name());
        audit_bulk(&st, &caller, &action, &tags, summary).await;
    }
    outcome.map(|()| Json(out))
}

/// Pause events in bulk
///
/// Every matching active event is paused as `POST /events/{id}/pause` pauses one (each keeps a
/// version). Works in chunks of 500; one audit entry.
#[utoipa::path(
    post,
    path = "/events/pause",
    tag = "events",
    request_body = EventsFilter,
    responses(
        (status = 200, description = "What matched and what changed", body = EventsOut),
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub(super) async fn pause_events(
    State(st): State<AppState>,
    caller: Caller,
    Body(f, raw): Body<EventsFilter>,
) -> Result<Json<EventsOut>, ApiError> {
    bulk_events(st, caller, f, &raw, Op::Pause).await
}

/// Resume events in bulk
///
/// Every matching paused event is resumed as `POST /events/{id}/resume` resumes one: planned
/// from now, what the pause held continuing. Works in chunks of 500; one audit entry.
#[utoipa::path(
    post,
    path = "/events/resume",
    tag = "events",
    request_body = EventsFilter,
    responses(
        (status = 200, description = "What matched and what changed", body = EventsOut),
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub(super) async fn resume_events(
    State(st): State<AppState>,
    caller: Caller,
    Body(f, raw): Body<EventsFilter>,
) -> Result<Json<EventsOut>, ApiError> {
    bulk_events(st, caller, f, &raw, Op::Resume).await
}

/// Delete events in bulk
///
/// Every matching event is deleted as `DELETE /events/{id}` deletes one (its history stays
/// readable). Works in chunks of 500; one audit entry. Try `dry_run` first.
#[utoipa::path(
    post,
    path = "/events/delete",
    tag = "events",
    request_body = EventsFilter,
    responses(
        (status = 200, description = "What matched and what changed", body = EventsOut),
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub(super) async fn delete_events(
    State(st): State<AppState>,
    caller: Caller,
    Body(f, raw): Body<EventsFilter>,
) -> Result<Json<EventsOut>, ApiError> {
    bulk_events(st, caller, f, &raw, Op::Delete).await
}
