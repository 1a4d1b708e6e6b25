//! The archive: what retention removes from the hot tables, kept for `retention.archive_for`.
//!
//! Rows get here only from `OpsStore::purge`, which copies them (`INSERT … SELECT`) in the same
//! transaction as the `DELETE`, so a row is always in exactly one place. An event's archived
//! form is a snapshot as responses show it: no hmac secret, `apicall` header values masked;
//! it is refreshed each time more of the event's rows are archived, and marked `removed_at`
//! once the event itself leaves the hot tables. Tags are kept in `archived_event_tags`, so
//! that filters and scopes work as on live rows.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::sql::rows::{to_json, RowExt, EVENT_COLS};
use super::sql::{fetch_one, names, query, Col, Dialect, Kind, Push};
use super::{Backend, Result};
use crate::domain::event::Event;
use crate::domain::occurrence::{Attempt, OccStatus};
use crate::domain::{fmt_ms, ms_rfc3339, Millis};

/// An archived occurrence, with its event's name and tags as last archived.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ArchivedOccurrence {
    /// The occurrence's id (as it was live).
    pub id: Uuid,
    /// Its event's id.
    pub event_id: Uuid,
    /// The event's name when the occurrence was archived.
    pub event_name: Option<String>,
    /// The event's tags when the occurrence was archived.
    pub tags: Vec<String>,
    /// When it was due.
    #[serde(with = "ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub scheduled_at: Millis,
    /// How it ended (`completed`, `failed`, `missed` or `cancelled`).
    pub status: OccStatus,
    /// Attempts made.
    pub attempt_count: u32,
    /// The last attempt's error, if any.
    pub last_error: Option<String>,
    /// `pause`, `delete` or `user` for a cancelled occurrence.
    pub cancelled_by: Option<String>,
    /// When it was planned.
    #[serde(with = "ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Millis,
    /// When it last changed.
    #[serde(with = "ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Millis,
    /// When it finished.
    #[serde(with = "ms_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<Millis>,
    /// When retention moved it here.
    #[serde(with = "ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub archived_at: Millis,
}

/// An archived event: its last snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ArchivedEvent {
    /// The event's id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its tags (they scope its archived occurrences).
    pub tags: Vec<String>,
    /// Its status when last archived (`inactive` or `deleted` once removed).
    pub status: String,
    /// The event as responses show it (no secret; `apicall` header values `***`).
    #[schema(value_type = Object)]
    pub snapshot: Value,
    /// When its rows were last archived.
    #[serde(with = "ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub archived_at: Millis,
    /// When retention removed the event itself; `null` while it is still live (only some of
    /// its occurrences were archived).
    #[serde(with = "ms_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub removed_at: Option<Millis>,
}

/// What the archive holds of one event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ArchiveSummary {
    /// Archived occurrences.
    pub occurrences: i64,
    /// Archived occurrences by status.
    pub by_status: BTreeMap<String, i64>,
    /// Archived attempts of those occurrences.
    pub attempts: i64,
    /// The earliest `scheduled_at` among them.
    #[serde(with = "ms_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub first_scheduled_at: Option<Millis>,
    /// The latest `scheduled_at` among them.
    #[serde(with = "ms_rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_scheduled_at: Option<Millis>,
}

/// Which archived occurrences to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct ArchiveFilter {
    /// Only this event's occurrences.
    pub event_id: Option<Uuid>,
    /// Occurrences of events with any of these tags; empty: any.
    pub tags: Vec<String>,
    /// `scheduled_at` at or after.
    pub from: Option<Millis>,
    /// `scheduled_at` at or before.
    pub to: Option<Millis>,
    /// Most occurrences returned.
    pub limit: i64,
    /// Strictly older than this `(scheduled_at, id)`: pages without gaps or repeats.
    pub before: Option<(Millis, Uuid)>,
}

/// Reading the archive (writing it is `OpsStore::purge`'s).
#[async_trait]
pub trait ArchiveStore: Send + Sync + 'static {
    /// Archived occurrences matching `f`, newest `scheduled_at` first (ties by id, descending).
    async fn list_archived(&self, f: &ArchiveFilter) -> Result<Vec<ArchivedOccurrence>>;
    /// The archived attempts of these occurrences, by occurrence id then attempt number.
    async fn archived_attempts(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, Attempt)>>;
    /// An archived event with a summary of its archived occurrences; `None` when the archive
    /// holds nothing of it.
    async fn get_archived_event(&self, id: Uuid)
        -> Result<Option<(ArchivedEvent, ArchiveSummary)>>;
}

const ARCHIVED_EVENT_COLS: [Col; 9] = [
    ("id", Kind::Text),
    ("name", Kind::Text),
    ("tags", Kind::Text),
    ("status", Kind::Text),
    ("snapshot", Kind::Text),
    ("created_at", Kind::Int),
    ("updated_at", Kind::Int),
    ("archived_at", Kind::Int),
    ("removed_at", Kind::Int),
];

/// The event as responses show it, without secrets.
fn snapshot(e: &Event) -> Value {
    json!({
        "id": e.id,
        "name": e.name,
        "description": e.description,
        "start_time": fmt_ms(e.start_time),
        "timezone": e.timezone,
        "schedule": e.schedule,
        "exdates": e.exdates.iter().map(|t| fmt_ms(*t)).collect::<Vec<_>>(),
        "rdates": e.rdates.iter().map(|t| fmt_ms(*t)).collect::<Vec<_>>(),
        "action": e.action.masked(),
        "tags": e.tags,
        "metadata": e.metadata,
        "retry": e.retry,
        "misfire": e.misfire,
        "status": e.status.as_str(),
        "paused_reason": e.paused_reason,
        "hmac_secret_set": e.hmac_secret.is_some(),
        "created_at": fmt_ms(e.created_at),
        "updated_at": fmt_ms(e.updated_at),
    })
}

/// Snapshots the events `ids` into the archive, inside the caller's transaction (`removed`:
/// the events themselves are about to be deleted). Ids that are not events are skipped.
pub(super) async fn archive_events<D: Dialect>(
    c: &mut D::Connection,
    ids: Vec<String>,
    now: Millis,
    removed: bool,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut q = query::<D>(format!("SELECT {EVENT_COLS} FROM events WHERE "));
    D::push_in(&mut q, "id", ids);
    let events = D::fetch(q, c)
        .await?
        .iter()
        .map(|r| r.event())
        .collect::<Result<Vec<_>>>()?;
    for chunk in events.chunks(D::max_rows(ARCHIVED_EVENT_COLS.len())) {
        let rows = chunk
            .iter()
            .map(|e| {
                vec![
                    e.id.into(),
                    e.name.clone().into(),
                    to_json(&e.tags).into(),
                    e.status.as_str().into(),
                    snapshot(e).to_string().into(),
                    e.created_at.into(),
                    e.updated_at.into(),
                    now.into(),
                    removed.then_some(now).into(),
                ]
            })
            .collect();
        let mut q = query::<D>(format!(
            "INSERT INTO archived_events ({})",
            names(&ARCHIVED_EVENT_COLS)
        ));
        D::push_insert_rows(&mut q, &ARCHIVED_EVENT_COLS, rows);
        q.push(
            " ON CONFLICT (id) DO UPDATE SET name = excluded.name, tags = excluded.tags, \
             status = excluded.status, snapshot = excluded.snapshot, updated_at = excluded.updated_at, \
             archived_at = excluded.archived_at, removed_at = excluded.removed_at",
        );
        D::exec(q, c).await?;
        let chunk_ids: Vec<String> = chunk.iter().map(|e| e.id.to_string()).collect();
        let mut q = query::<D>("DELETE FROM archived_event_tags WHERE ");
        D::push_in(&mut q, "event_id", chunk_ids);
        D::exec(q, c).await?;
        let mut tags: Vec<Vec<_>> = Vec::new();
        for e in chunk {
            let mut seen: Vec<&String> = Vec::new();
            for t in &e.tags {
                if !seen.contains(&t) {
                    seen.push(t);
                    tags.push(vec![t.clone().into(), e.id.into()]);
                }
            }
        }
        const TAG_COLS: [Col; 2] = [("tag", Kind::Text), ("event_id", Kind::Text)];
        for rows in tags.chunks(D::max_rows(TAG_COLS.len())) {
            let mut q = query::<D>("INSERT INTO archived_event_tags (tag, event_id)");
            D::push_insert_rows(&mut q, &TAG_COLS, rows.to_vec());
            D::exec(q, c).await?;
        }
    }
    Ok(())
}

/// Copies the occurrences whose `col` (`id` or `event_id`) is in `ids`, and their attempts,
/// into the archive, inside the caller's transaction (which then deletes them).
pub(super) async fn archive_occurrences<D: Dialect>(
    c: &mut D::Connection,
    col: &str,
    ids: Vec<String>,
    now: Millis,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut q = query::<D>(
        "INSERT INTO archived_attempts (occurrence_id, attempt, started_at, duration_ms, status_code, error, response) \
         SELECT occurrence_id, attempt, started_at, duration_ms, status_code, error, response FROM attempts \
         WHERE occurrence_id IN (SELECT id FROM occurrences WHERE ",
    );
    D::push_in(&mut q, col, ids.clone());
    q.push(")");
    // Attempts reference archived occurrences: those go first.
    let mut occ = query::<D>(
        "INSERT INTO archived_occurrences (id, event_id, scheduled_at, status, attempts, last_error, \
         cancelled_by, created_at, updated_at, completed_at, archived_at) \
         SELECT id, event_id, scheduled_at, status, attempts, last_error, cancelled_by, created_at, \
         updated_at, completed_at, ",
    );
    occ.val(now).push(" FROM occurrences WHERE ");
    D::push_in(&mut occ, col, ids);
    D::exec(occ, c).await?;
    D::exec(q, c).await?;
    Ok(())
}

/// Deletes archived rows archived before `before`, at most `batch` a statement: occurrences
/// (with their attempts), then events none of whose occurrences are left. (occurrences, events)
pub(super) async fn expire<B: Backend>(b: &B, before: Millis, batch: i64) -> Result<(u64, u64)> {
    type D<B> = <B as Backend>::D;
    let mut out = (0, 0);
    for events in [false, true] {
        loop {
            let mut q = if events {
                query::<D<B>>(
                    "DELETE FROM archived_events WHERE id IN (SELECT a.id FROM archived_events a \
                     WHERE a.archived_at < ",
                )
            } else {
                query::<D<B>>(
                    "DELETE FROM archived_occurrences WHERE id IN (SELECT id FROM archived_occurrences \
                     WHERE archived_at < ",
                )
            };
            q.val(before);
            if events {
                q.push(
                    " AND NOT EXISTS (SELECT 1 FROM archived_occurrences o WHERE o.event_id = a.id)",
                );
            }
            q.push(" LIMIT ").val(batch).push(")");
            let n = {
                let mut w = b.writes().acquire().await?;
                D::<B>::exec(q, &mut w).await?
            };
            if events {
                out.1 += n;
            } else {
                out.0 += n;
            }
            if n < batch as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
    }
    Ok(out)
}

const ARCHIVED_OCC_SELECT: &str = "SELECT o.id, o.event_id, o.scheduled_at, o.status, o.attempts, \
     o.last_error, o.cancelled_by, o.created_at, o.updated_at, o.completed_at, o.archived_at, \
     e.name AS event_name, e.tags AS event_tags \
     FROM archived_occurrences o LEFT JOIN archived_events e ON e.id = o.event_id WHERE 1 = 1";

fn archived_occurrence(r: &impl RowExt) -> Result<ArchivedOccurrence> {
    let tags = match r.opt_text("event_tags")? {
        Some(t) => serde_json::from_str(&t).map_err(|e| super::sql::rows::corrupt("tags", e))?,
        None => Vec::new(),
    };
    Ok(ArchivedOccurrence {
        id: r.id("id")?,
        event_id: r.id("event_id")?,
        event_name: r.opt_text("event_name")?,
        tags,
        scheduled_at: r.int("scheduled_at")?,
        status: r.occ_status("status")?,
        attempt_count: u32::try_from(r.int("attempts")?).unwrap_or(0),
        last_error: r.opt_text("last_error")?,
        cancelled_by: r.opt_text("cancelled_by")?,
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
        completed_at: r.opt_int("completed_at")?,
        archived_at: r.int("archived_at")?,
    })
}

#[async_trait]
impl<B: Backend> ArchiveStore for B {
    async fn list_archived(&self, f: &ArchiveFilter) -> Result<Vec<ArchivedOccurrence>> {
        let mut q = query::<B::D>(ARCHIVED_OCC_SELECT);
        if let Some(id) = f.event_id {
            q.push(" AND o.event_id = ").val(id);
        }
        if let Some(from) = f.from {
            q.push(" AND o.scheduled_at >= ").val(from);
        }
        if let Some(to) = f.to {
            q.push(" AND o.scheduled_at <= ").val(to);
        }
        if let Some((at, id)) = f.before {
            q.push(" AND (o.scheduled_at < ")
                .val(at)
                .push(" OR (o.scheduled_at = ")
                .val(at)
                .push(" AND o.id < ")
                .val(id)
                .push("))");
        }
        if !f.tags.is_empty() {
            q.push(" AND o.event_id IN (SELECT event_id FROM archived_event_tags WHERE ");
            B::D::push_in(&mut q, "tag", f.tags.clone());
            q.push(")");
        }
        q.push(" ORDER BY o.scheduled_at DESC, o.id DESC LIMIT ")
            .val(f.limit);
        let mut c = self.reads().acquire().await?;
        B::D::fetch(q, &mut c)
            .await?
            .iter()
            .map(archived_occurrence)
            .collect()
    }

    async fn archived_attempts(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, Attempt)>> {
        let mut out = Vec::new();
        let mut c = self.reads().acquire().await?;
        for chunk in ids.chunks(B::D::max_rows(1)) {
            let mut q = query::<B::D>("SELECT * FROM archived_attempts WHERE ");
            B::D::push_in(
                &mut q,
                "occurrence_id",
                chunk.iter().map(Uuid::to_string).collect(),
            );
            q.push(" ORDER BY occurrence_id, attempt");
            for r in B::D::fetch(q, &mut c).await? {
                out.push((r.id("occurrence_id")?, r.attempt()?));
            }
        }
        Ok(out)
    }

    async fn get_archived_event(
        &self,
        id: Uuid,
    ) -> Result<Option<(ArchivedEvent, ArchiveSummary)>> {
        let mut c = self.reads().acquire().await?;
        let mut q = query::<B::D>(
            "SELECT id, name, tags, status, snapshot, archived_at, removed_at FROM archived_events WHERE id = ",
        );
        q.val(id);
        let Some(r) = fetch_one(q, &mut c).await? else {
            return Ok(None);
        };
        let event = ArchivedEvent {
            id: r.id("id")?,
            name: r.text("name")?,
            tags: r.json("tags")?,
            status: r.text("status")?,
            snapshot: r.json("snapshot")?,
            archived_at: r.int("archived_at")?,
            removed_at: r.opt_int("removed_at")?,
        };
        let mut q = query::<B::D>(
            "SELECT status, count(*) AS n, min(scheduled_at) AS first_at, max(scheduled_at) AS last_at \
             FROM archived_occurrences WHERE event_id = ",
        );
        q.val(id).push(" GROUP BY status");
        let mut s = ArchiveSummary::default();
        for r in B::D::fetch(q, &mut c).await? {
            let n = r.int("n")?;
            s.occurrences += n;
            s.by_status.insert(r.text("status")?, n);
            let (first, last) = (r.opt_int("first_at")?, r.opt_int("last_at")?);
            s.first_scheduled_at = match (s.first_scheduled_at, first) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            s.last_scheduled_at = match (s.last_scheduled_at, last) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        let mut q = query::<B::D>(
            "SELECT count(*) AS n FROM archived_attempts WHERE occurrence_id IN \
             (SELECT id FROM archived_occurrences WHERE event_id = ",
        );
        q.val(id).push(")");
        if let Some(r) = fetch_one(q, &mut c).await? {
            s.attempts = r.int("n")?;
        }
        Ok(Some((event, s)))
    }
}
