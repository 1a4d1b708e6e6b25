//! `/archive`: what retention moved out of the hot tables (`retention.archive`), read like the
//! live routes (scoped by tags) and exported as gzipped JSON Lines.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use flate2::write::GzEncoder;
use flate2::Compression;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::extract::{id, Params};
use super::AppState;
use crate::auth::Caller;
use crate::domain::occurrence::Attempt;
use crate::domain::Millis;
use crate::error::ApiError;
use crate::store::{ArchiveFilter, ArchiveSummary, ArchivedEvent, ArchivedOccurrence, Store};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/archive/occurrences", get(list_archived_occurrences))
        .route("/archive/events/{id}", get(get_archived_event))
        .route("/archive/export", get(export_archive))
}

/// A page of archived occurrences, newest first. Pass `next_before` back as `before` for the
/// next page; `null` on the last page.
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ArchivePage {
    pub data: Vec<ArchivedOccurrence>,
    pub next_before: Option<String>,
}

/// An archived event and what the archive holds of it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ArchivedEventOut {
    pub event: ArchivedEvent,
    pub summary: ArchiveSummary,
}

/// Cursors are `<scheduled_at ms>_<id>` of the last item of the previous page.
fn parse_before(c: &str) -> Result<(Millis, Uuid), ApiError> {
    c.split_once('_')
        .and_then(|(t, id)| Some((t.parse().ok()?, Uuid::parse_str(id).ok()?)))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "before: '{c}' is not a cursor from a previous page (its next_before)"
            ))
        })
}

fn event_id(p: &Params) -> Result<Option<Uuid>, ApiError> {
    p.get("event_id")
        .map(|s| {
            Uuid::parse_str(s)
                .map_err(|_| ApiError::BadRequest(format!("event_id: '{s}' is not a UUID")))
        })
        .transpose()
}

/// The filter of a request, narrowed to the caller's scope; `None`: nothing can match.
fn filter(caller: &Caller, p: &Params, limit: i64) -> Result<Option<ArchiveFilter>, ApiError> {
    let (from, to) = (p.time("from")?, p.time("to")?);
    let event_id = event_id(p)?;
    let before = p.get("before").map(parse_before).transpose()?;
    Ok(caller
        .principal
        .filter_tags(p.tags())
        .map(|tags| ArchiveFilter {
            event_id,
            tags,
            from,
            to,
            limit,
            before,
        }))
}

/// List archived occurrences
///
/// Occurrences retention moved to the archive, newest `scheduled_at` first, that the token may
/// see (a scoped token: those of events with its tags, as archived).
#[utoipa::path(
    get,
    path = "/archive/occurrences",
    tag = "archive",
    params(
        ("from" = Option<String>, Query, description = "Scheduled at or after this RFC 3339 time"),
        ("to" = Option<String>, Query, description = "Scheduled at or before this RFC 3339 time"),
        ("event_id" = Option<String>, Query, description = "Only this event's occurrences"),
        ("tags" = Option<String>, Query, description = "Comma-separated tags: occurrences of events with any of them"),
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 50", minimum = 1, maximum = 1000),
        ("before" = Option<String>, Query, description = "`next_before` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of archived occurrences", body = ArchivePage),
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub(super) async fn list_archived_occurrences(
    State(st): State<AppState>,
    caller: Caller,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    p.only(&["from", "to", "event_id", "tags", "limit", "before"])?;
    let limit = p.limit()?;
    let Some(f) = filter(&caller, &p, limit + 1)? else {
        return Ok(Json(json!({ "data": [], "next_before": null })));
    };
    let mut occs = st.store.list_archived(&f).await?;
    let next = if occs.len() as i64 > limit {
        occs.truncate(limit as usize);
        occs.last().map(|o| format!("{}_{}", o.scheduled_at, o.id))
    } else {
        None
    };
    Ok(Json(json!({ "data": occs, "next_before": next })))
}

/// Get an archived event
///
/// The event's last archived snapshot (no secret; `apicall` header values `***`) with a
/// summary of its archived occurrences and attempts. 404 when the archive holds nothing of it
/// or the token's scope does not cover its tags.
#[utoipa::path(
    get,
    path = "/archive/events/{id}",
    tag = "archive",
    params(("id" = String, Path, description = "The event id (a UUID)")),
    responses(
        (status = 200, description = "The archived event", body = ArchivedEventOut),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn get_archived_event(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<ArchivedEventOut>, ApiError> {
    let nf = || ApiError::NotFound(format!("archived event '{raw}' not found"));
    let id = id("archived event", &raw)?;
    match st.store.get_archived_event(id).await? {
        Some((event, summary)) if caller.principal.can_see(&event.tags) => {
            Ok(Json(ArchivedEventOut { event, summary }))
        }
        _ => Err(nf()),
    }
}

/// Export the archive
///
/// Every archived occurrence matching the filter (newest first), one JSON object a line with
/// its `attempts`, gzipped (`application/gzip`, `qhronos-archive.jsonl.gz`). Streamed: the
/// server reads the store a page (`retention.batch` rows) at a time. No secret is in the archive. Admin role; a scoped
/// admin token exports its tags only. A failure midway ends the stream early, leaving a
/// truncated gzip file that fails to decompress. Audited as `archive.export`.
#[utoipa::path(
    get,
    path = "/archive/export",
    tag = "archive",
    params(
        ("from" = Option<String>, Query, description = "Scheduled at or after this RFC 3339 time"),
        ("to" = Option<String>, Query, description = "Scheduled at or before this RFC 3339 time"),
        ("event_id" = Option<String>, Query, description = "Only this event's occurrences"),
        ("tags" = Option<String>, Query, description = "Comma-separated tags: occurrences of events with any of them"),
    ),
    responses(
        (status = 200, description = "Gzipped JSON Lines, one archived occurrence a line", content_type = "application/gzip", body = Vec<u8>),
        (status = 400, response = super::openapi::BadRequest),
        (status = 403, response = super::openapi::Forbidden),
    ),
)]
pub(super) async fn export_archive(
    State(st): State<AppState>,
    caller: Caller,
    p: Params,
) -> Result<Response, ApiError> {
    p.only(&["from", "to", "event_id", "tags"])?;
    // Pages as large as retention's batches, which bound its statements the same way.
    let f = filter(&caller, &p, st.config.retention.batch.clamp(1, 1000))?;
    let summary = json!({
        "from": p.get("from"),
        "to": p.get("to"),
        "event_id": p.get("event_id"),
        "tags": p.get("tags"),
    });
    match caller.principal.scope() {
        Some(scope) => {
            st.audit_in(&caller, "archive.export", None, scope, summary)
                .await
        }
        None => st.audit(&caller, "archive.export", None, summary).await,
    }
    let stream = futures::stream::unfold(
        Export {
            store: st.store.clone(),
            filter: f,
            enc: Some(GzEncoder::new(Vec::new(), Compression::default())),
        },
        |mut x| async move {
            match x.next().await {
                Ok(Some(bytes)) => Some((Ok(bytes), x)),
                Ok(None) => None,
                Err(e) => {
                    tracing::error!(error = %e, "archive export failed");
                    // Ends the body with an error: the client sees a truncated file.
                    x.filter = None;
                    x.enc = None;
                    Some((Err(e), x))
                }
            }
        },
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"qhronos-archive.jsonl.gz\"",
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// An export in progress: the next page's filter (`None` once the last page was read) and the
/// compressor (`None` once finished).
struct Export {
    store: Arc<dyn Store>,
    filter: Option<ArchiveFilter>,
    enc: Option<GzEncoder<Vec<u8>>>,
}

impl Export {
    /// The next compressed bytes; `None` at the end.
    async fn next(&mut self) -> anyhow::Result<Option<Bytes>> {
        loop {
            let Some(enc) = self.enc.as_mut() else {
                return Ok(None);
            };
            let Some(f) = self.filter.as_mut() else {
                // The last page was written: the gzip trailer ends the body.
                let Some(enc) = self.enc.take() else {
                    return Ok(None);
                };
                return Ok(Some(Bytes::from(enc.finish()?)));
            };
            let page = self.store.list_archived(f).await?;
            let ids: Vec<Uuid> = page.iter().map(|o| o.id).collect();
            let mut attempts: HashMap<Uuid, Vec<Attempt>> = HashMap::new();
            for (id, a) in self.store.archived_attempts(&ids).await? {
                attempts.entry(id).or_default().push(a);
            }
            for o in &page {
                let mut line = serde_json::to_value(o)?;
                line["attempts"] =
                    serde_json::to_value(attempts.remove(&o.id).unwrap_or_default())?;
                serde_json::to_writer(&mut *enc, &line)?;
                enc.write_all(b"\n")?;
            }
            match page.last() {
                Some(l) if page.len() as i64 == f.limit => f.before = Some((l.scheduled_at, l.id)),
                _ => self.filter = None,
            }
            let out = std::mem::take(enc.get_mut());
            if !out.is_empty() {
                return Ok(Some(Bytes::from(out)));
            }
        }
    }
}
