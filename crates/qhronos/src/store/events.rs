//! Events: their rows, tags and lifecycle (create, update, pause, resume, delete).

use async_trait::async_trait;
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::history::{record_change, record_created, By};
use super::occurrences::{cancel_unfired, finish_if_done, upsert_occurrences};
use super::sql::rows::{to_json, RowExt, EVENT_COLS};
use super::sql::{fetch_one, query, Col, Dialect, Kind, Push, Val};
use super::{AuditEntry, Backend, Change, Result, StoreError};
use crate::domain::event::{Event, EventStatus};
use crate::domain::history::change;
use crate::domain::occurrence::NewOccurrence;
use crate::domain::Millis;

/// Filters for `GET /events`; newest first.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Events carrying any of these tags.
    pub tags: Vec<String>,
    /// Only events in this status.
    pub status: Option<EventStatus>,
    /// Most events returned.
    pub limit: i64,
    /// Events created before this one (ids sort by creation).
    pub before_id: Option<Uuid>,
}

/// What `create_event` did.
#[derive(Debug)]
pub enum Created {
    /// The event was inserted.
    New,
    /// The idempotency key was used before, by this event, for a request with this hash.
    Existing {
        /// The event created earlier with this key.
        event: Box<Event>,
        /// The hash of the request that created it (a different request with the same key is a conflict).
        request_hash: Option<String>,
    },
}

/// Events and their lifecycle. Every change that other nodes must act on is announced inside
/// its transaction (see `NodeStore::changes`), and every change stores a version of the event
/// in the same transaction, by `by` (see `HistoryStore`).
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Inserts an event and its first occurrences in one transaction. With an idempotency key
    /// already used, inserts nothing and returns the earlier event (a concurrent insert of the
    /// same key is waited for, so exactly one event is created per key).
    async fn create_event(
        &self,
        event: &Event,
        occurrences: &[NewOccurrence],
        idempotency: Option<(&str, &str)>,
        by: By<'_>,
    ) -> Result<Created>;
    /// [`EventStore::create_event`], with the audit line of the create written in the same
    /// transaction when the event is new (none for an idempotent repeat).
    async fn create_event_audited(
        &self,
        event: &Event,
        occurrences: &[NewOccurrence],
        idempotency: Option<(&str, &str)>,
        by: By<'_>,
        audit: &AuditEntry,
    ) -> Result<Created>;
    /// Inserts many new events and their first occurrences in one transaction: all or none.
    async fn create_events(&self, events: &[(Event, Vec<NewOccurrence>)], by: By<'_>)
        -> Result<()>;
    /// Deleted events are not found.
    async fn get_event(&self, id: Uuid) -> Result<Option<Event>>;
    /// Newest first, at most `f.limit`; deleted events are never listed.
    async fn list_events(&self, f: &EventFilter) -> Result<Vec<Event>>;
    /// [`list_events`](Self::list_events) among these ids only (`GET /events?ids=`).
    async fn list_events_among(&self, ids: &[Uuid], f: &EventFilter) -> Result<Vec<Event>>;
    /// Replaces an event; false when it is unknown or deleted. With `replan_after`, cancels its
    /// not-yet-attempted occurrences after that time (they are re-planned), materialises
    /// `occurrences`, resets the count mark and moves the plan generation (so that expander
    /// work read before is dropped); without, `next_fire_at` is left to the expander.
    async fn update_event(
        &self,
        event: &Event,
        replan_after: Option<Millis>,
        occurrences: &[NewOccurrence],
        by: By<'_>,
    ) -> Result<bool>;
    /// Pauses (cancelling what has not fired) or resumes (materialising `occurrences`, reviving
    /// instants the pause cancelled); moves the plan generation either way.
    async fn set_paused(
        &self,
        id: Uuid,
        paused: bool,
        next_fire_at: Option<Millis>,
        occurrences: &[NewOccurrence],
        now: Millis,
        by: By<'_>,
    ) -> Result<bool>;
    /// Marks the event deleted (freeing its idempotency key) and cancels what has not fired.
    /// False when unknown. Its versions stay readable.
    async fn delete_event(&self, id: Uuid, now: Millis, by: By<'_>) -> Result<bool>;
    /// The tags of an event, deleted or not (for scope checks on old occurrences).
    async fn event_tags(&self, id: Uuid) -> Result<Option<Vec<String>>>;
    /// For each of these events that has any: when its next delivery attempt is due (the
    /// earliest pending or scheduled occurrence, retries included) and how its latest finished
    /// occurrence (by scheduled time) ended. For lists: cost grows with the occurrences each
    /// event keeps (retention bounds them).
    async fn run_summaries(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, RunSummary)>>;
}

/// What an event's occurrences say about it now (see [`EventStore::run_summaries`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// When the next attempt is due (`None`: nothing materialised is waiting).
    pub next_attempt_at: Option<Millis>,
    /// The latest finished occurrence's status (`completed`, `failed` or `missed`), its
    /// scheduled time and when it finished.
    pub last: Option<(String, Millis, Millis)>,
}

/// The columns an event is written with, in the order of [`event_values`].
const EVENT_WRITE: [Col; 28] = [
    ("id", Kind::Text),
    ("name", Kind::Text),
    ("description", Kind::Text),
    ("start_time", Kind::Int),
    ("timezone", Kind::Text),
    ("schedule", Kind::Text),
    ("exdates", Kind::Text),
    ("rdates", Kind::Text),
    ("action", Kind::Text),
    ("tags", Kind::Text),
    ("metadata", Kind::Text),
    ("hmac_secret", Kind::Text),
    ("previous_hmac_secret", Kind::Text),
    ("previous_secret_until", Kind::Int),
    ("retry", Kind::Text),
    ("misfire", Kind::Text),
    ("status", Kind::Text),
    ("next_fire_at", Kind::Int),
    ("paused_reason", Kind::Text),
    ("queue", Kind::Text),
    ("created_at", Kind::Int),
    ("updated_at", Kind::Int),
    ("idempotency_key", Kind::Text),
    ("request_hash", Kind::Text),
    ("duration_ms", Kind::Int),
    ("all_day", Kind::Text),
    ("calendar_id", Kind::Text),
    ("external_id", Kind::Text),
];

/// Columns an update leaves alone (`next_fire_at` is set apart: see `update_event`).
const KEPT_ON_UPDATE: [&str; 5] = [
    "id",
    "created_at",
    "idempotency_key",
    "request_hash",
    "next_fire_at",
];

/// An event's values for [`EVENT_WRITE`].
fn event_values(e: &Event, idem: Option<(&str, &str)>) -> Vec<Val> {
    vec![
        e.id.into(),
        e.name.clone().into(),
        e.description.clone().into(),
        e.start_time.into(),
        e.timezone.clone().into(),
        e.schedule.clone().into(),
        to_json(&e.exdates).into(),
        to_json(&e.rdates).into(),
        to_json(&e.action).into(),
        to_json(&e.tags).into(),
        to_json(&e.metadata).into(),
        e.hmac_secret.clone().into(),
        e.previous_secret.as_ref().and_then(|p| p.0.clone()).into(),
        e.previous_secret.as_ref().map(|p| p.1).into(),
        to_json(&e.retry).into(),
        to_json(&e.misfire).into(),
        e.status.as_str().into(),
        e.next_fire_at.into(),
        e.paused_reason.clone().into(),
        e.action.queue().into(),
        e.created_at.into(),
        e.updated_at.into(),
        idem.map(|(k, _)| k).into(),
        idem.map(|(_, h)| h).into(),
        e.duration.into(),
        e.all_day.as_ref().map(to_json).into(),
        e.calendar_id.map(|c| c.to_string()).into(),
        e.external_id.clone().into(),
    ]
}

fn insert_events_sql<D: Dialect>() -> QueryBuilder<D> {
    query(format!(
        "INSERT INTO events ({})",
        super::sql::names(&EVENT_WRITE)
    ))
}

/// Moves the `events_gen` of the calendars that `event` belongs to before this write (read
/// from the row: call it before changing it) and of `also`: their conflict indexes are stale.
pub(super) async fn touch_calendars<D: Dialect>(
    c: &mut D::Connection,
    event: Option<Uuid>,
    also: &[Uuid],
) -> Result<()> {
    if event.is_none() && also.is_empty() {
        return Ok(());
    }
    let mut q = query::<D>("UPDATE calendars SET events_gen = events_gen + 1 WHERE id IN (");
    let mut sep = "";
    if let Some(id) = event {
        q.push("SELECT calendar_id FROM events WHERE id = ").val(id);
        sep = " UNION ";
    }
    for id in also {
        q.push(sep).push("SELECT ").val(*id);
        sep = " UNION ";
    }
    q.push(")");
    D::exec(q, c).await?;
    Ok(())
}

/// The distinct calendars of `events`.
fn calendars_of<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = events.into_iter().filter_map(|e| e.calendar_id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Inserts one event (tags and first occurrences too), unless its idempotency key was used:
/// then nothing is written and the earlier event is returned.
pub(super) async fn insert_event<D: Dialect>(
    c: &mut D::Connection,
    e: &Event,
    occs: &[NewOccurrence],
    idem: Option<(&str, &str)>,
    actor: &str,
) -> Result<Created> {
    let mut q = insert_events_sql::<D>();
    D::push_insert_rows(&mut q, &EVENT_WRITE, vec![event_values(e, idem)]);
    // With a key already used this inserts nothing (on PostgreSQL after waiting for a
    // concurrent insert of the same key to commit or roll back).
    q.push(" ON CONFLICT (idempotency_key) DO NOTHING");
    if D::exec(q, c).await? == 0 {
        let key = idem.map(|(k, _)| k).unwrap_or_default();
        let mut q = query::<D>(format!(
            "SELECT {EVENT_COLS}, request_hash FROM events WHERE idempotency_key = "
        ));
        q.val(key);
        let row = fetch_one(q, c)
            .await?
            .ok_or_else(|| StoreError::Internal("idempotency key vanished".into()))?;
        return Ok(Created::Existing {
            event: Box::new(row.event()?),
            request_hash: row.opt_text("request_hash")?,
        });
    }
    insert_tags::<D>(c, &[e]).await?;
    upsert_occurrences::<D>(c, occs, e.created_at).await?;
    record_created::<D>(c, &[(e, actor)]).await?;
    touch_calendars::<D>(c, None, &calendars_of([e])).await?;
    Ok(Created::New)
}

/// Inserts new events (no idempotency key), their tags, first occurrences and first versions
/// (`(event, occurrences, actor)`), a few statements for any number of events.
pub(super) async fn insert_events<D: Dialect>(
    c: &mut D::Connection,
    events: &[(&Event, &[NewOccurrence], &str)],
) -> Result<()> {
    for chunk in events.chunks(D::max_rows(EVENT_WRITE.len())) {
        let mut q = insert_events_sql::<D>();
        let rows = chunk
            .iter()
            .map(|(e, _, _)| event_values(e, None))
            .collect();
        D::push_insert_rows(&mut q, &EVENT_WRITE, rows);
        D::exec(q, c).await?;
    }
    let evs: Vec<&Event> = events.iter().map(|(e, _, _)| *e).collect();
    insert_tags::<D>(c, &evs).await?;
    touch_calendars::<D>(c, None, &calendars_of(evs.iter().copied())).await?;
    let occs: Vec<NewOccurrence> = events
        .iter()
        .flat_map(|(_, o, _)| o.iter().copied())
        .collect();
    let now = events.first().map_or(0, |(e, _, _)| e.created_at);
    upsert_occurrences::<D>(c, &occs, now).await?;
    let versions: Vec<(&Event, &str)> = events.iter().map(|(e, _, a)| (*e, *a)).collect();
    record_created::<D>(c, &versions).await?;
    Ok(())
}

const TAG_COLS: [Col; 2] = [("tag", Kind::Text), ("event_id", Kind::Text)];

async fn insert_tags<D: Dialect>(c: &mut D::Connection, events: &[&Event]) -> Result<()> {
    let rows: Vec<Vec<Val>> = events
        .iter()
        .flat_map(|e| e.tags.iter().map(|t| vec![t.as_str().into(), e.id.into()]))
        .collect();
    for chunk in rows.chunks(D::max_rows(TAG_COLS.len())) {
        let mut q = query::<D>("INSERT INTO event_tags (tag, event_id)");
        D::push_insert_rows(&mut q, &TAG_COLS, chunk.to_vec());
        q.push(" ON CONFLICT DO NOTHING");
        D::exec(q, c).await?;
    }
    Ok(())
}

async fn delete_tags<D: Dialect>(c: &mut D::Connection, id: Uuid) -> Result<()> {
    let mut q = query::<D>("DELETE FROM event_tags WHERE event_id = ");
    q.val(id);
    D::exec(q, c).await?;
    Ok(())
}

/// ` AND <col> IN` the events carrying any of `tags` (nothing when `tags` is empty).
pub(super) fn push_tags<D: Dialect>(q: &mut QueryBuilder<D>, col: &str, tags: &[String]) {
    if tags.is_empty() {
        return;
    }
    q.push(format!(
        " AND {col} IN (SELECT event_id FROM event_tags WHERE "
    ));
    D::push_in(q, "tag", tags.to_vec());
    q.push(")");
}

/// `list_events`, among `ids` when given.
async fn list_in<B: Backend>(b: &B, f: &EventFilter, ids: Option<&[Uuid]>) -> Result<Vec<Event>> {
    let mut q = query::<B::D>(format!(
        "SELECT {EVENT_COLS} FROM events WHERE status != 'deleted'"
    ));
    if let Some(ids) = ids {
        q.push(" AND ");
        B::D::push_in(&mut q, "id", ids.iter().map(Uuid::to_string).collect());
    }
    if let Some(s) = f.status {
        q.push(" AND status = ").val(s.as_str());
    }
    if let Some(before) = f.before_id {
        q.push(" AND id < ").val(before);
    }
    push_tags(&mut q, "id", &f.tags);
    q.push(" ORDER BY id DESC LIMIT ").val(f.limit);
    let mut c = b.reads().acquire().await?;
    B::D::fetch(q, &mut c)
        .await?
        .iter()
        .map(|r| r.event())
        .collect()
}

/// ` WHERE id = <id> AND status != 'deleted'`.
fn push_live(q: &mut QueryBuilder<impl Dialect>, id: Uuid) {
    q.push(" WHERE id = ")
        .val(id)
        .push(" AND status != 'deleted'");
}

/// `EventStore::update_event` inside the caller's transaction (the calendar import applies many
/// in one); false when the event is unknown or deleted.
pub(super) async fn update_in<B: Backend>(
    c: &mut <B::D as sqlx::Database>::Connection,
    e: &Event,
    replan_after: Option<Millis>,
    occs: &[NewOccurrence],
    by: By<'_>,
) -> Result<bool> {
    let replan = replan_after.is_some();
    // Before the update: the calendar it leaves, if it moves, is read from the row.
    touch_calendars::<B::D>(c, Some(e.id), &calendars_of([e])).await?;
    let mut q = query::<B::D>("UPDATE events SET ");
    for ((col, _), v) in EVENT_WRITE.iter().zip(event_values(e, None)) {
        if !KEPT_ON_UPDATE.contains(col) {
            q.push(format!("{col} = ")).val(v).push(", ");
        }
    }
    // Without a re-plan the expander owns next_fire_at and the count mark: writing back
    // what was read before would undo what it saved meanwhile.
    if replan {
        q.push("next_fire_at = ")
            .val(e.next_fire_at)
            .push(", plan_gen = plan_gen + 1, mark_at = NULL, mark_index = NULL");
    } else {
        q.push("plan_gen = plan_gen");
    }
    push_live(&mut q, e.id);
    if B::D::exec(q, c).await? == 0 {
        return Ok(false);
    }
    delete_tags::<B::D>(c, e.id).await?;
    insert_tags::<B::D>(c, &[e]).await?;
    if let Some(after) = replan_after {
        cancel_unfired::<B::D>(c, e.id, "replan", Some(after), e.updated_at).await?;
        upsert_occurrences::<B::D>(c, occs, e.updated_at).await?;
    }
    finish_if_done::<B::D>(c, &[e.id.to_string()], e.updated_at).await?;
    record_change::<B::D>(c, e.id, by, change::UPDATE, e.updated_at).await?;
    B::announce(c, &Change::Event(e.id)).await?;
    Ok(true)
}

/// `EventStore::delete_event` inside the caller's transaction; false when unknown.
pub(super) async fn delete_in<B: Backend>(
    c: &mut <B::D as sqlx::Database>::Connection,
    id: Uuid,
    now: Millis,
    by: By<'_>,
) -> Result<bool> {
    touch_calendars::<B::D>(c, Some(id), &[]).await?;
    let mut q = query::<B::D>(
        "UPDATE events SET status = 'deleted', next_fire_at = NULL, idempotency_key = NULL, updated_at = ",
    );
    q.val(now);
    push_live(&mut q, id);
    if B::D::exec(q, c).await? == 0 {
        return Ok(false);
    }
    delete_tags::<B::D>(c, id).await?;
    cancel_unfired::<B::D>(c, id, "delete", None, now).await?;
    record_change::<B::D>(c, id, by, change::DELETE, now).await?;
    B::announce(c, &Change::Event(id)).await?;
    Ok(true)
}

#[async_trait]
impl<B: Backend> EventStore for B {
    async fn create_event(
        &self,
        e: &Event,
        occs: &[NewOccurrence],
        idem: Option<(&str, &str)>,
        by: By<'_>,
    ) -> Result<Created> {
        Backend::create_event(self, e, occs, idem, by.actor, None).await
    }

    async fn create_event_audited(
        &self,
        e: &Event,
        occs: &[NewOccurrence],
        idem: Option<(&str, &str)>,
        by: By<'_>,
        audit: &AuditEntry,
    ) -> Result<Created> {
        Backend::create_event(self, e, occs, idem, by.actor, Some(audit)).await
    }

    async fn create_events(
        &self,
        events: &[(Event, Vec<NewOccurrence>)],
        by: By<'_>,
    ) -> Result<()> {
        let mut tx = self.writes().begin().await?;
        let refs: Vec<(&Event, &[NewOccurrence], &str)> = events
            .iter()
            .map(|(e, o)| (e, o.as_slice(), by.actor))
            .collect();
        insert_events::<B::D>(&mut tx, &refs).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_event(&self, id: Uuid) -> Result<Option<Event>> {
        let mut q = query::<B::D>(format!("SELECT {EVENT_COLS} FROM events"));
        push_live(&mut q, id);
        let mut c = self.reads().acquire().await?;
        fetch_one(q, &mut c).await?.map(|r| r.event()).transpose()
    }

    async fn list_events(&self, f: &EventFilter) -> Result<Vec<Event>> {
        list_in::<B>(self, f, None).await
    }

    async fn list_events_among(&self, ids: &[Uuid], f: &EventFilter) -> Result<Vec<Event>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        list_in::<B>(self, f, Some(ids)).await
    }

    async fn update_event(
        &self,
        e: &Event,
        replan_after: Option<Millis>,
        occs: &[NewOccurrence],
        by: By<'_>,
    ) -> Result<bool> {
        let mut tx = self.writes().begin().await?;
        if !update_in::<B>(&mut tx, e, replan_after, occs, by).await? {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn set_paused(
        &self,
        id: Uuid,
        paused: bool,
        next_fire_at: Option<Millis>,
        occs: &[NewOccurrence],
        now: Millis,
        by: By<'_>,
    ) -> Result<bool> {
        let mut q = query::<B::D>("UPDATE events SET status = ");
        q.val(if paused { "paused" } else { "active" });
        if !paused {
            q.push(", next_fire_at = ").val(next_fire_at);
        }
        q.push(", paused_reason = NULL, plan_gen = plan_gen + 1, updated_at = ")
            .val(now);
        push_live(&mut q, id);
        let mut tx = self.writes().begin().await?;
        if B::D::exec(q, &mut tx).await? == 0 {
            return Ok(false);
        }
        if paused {
            cancel_unfired::<B::D>(&mut tx, id, "pause", Some(now), now).await?;
        } else {
            upsert_occurrences::<B::D>(&mut tx, occs, now).await?;
            finish_if_done::<B::D>(&mut tx, &[id.to_string()], now).await?;
        }
        let kind = if paused {
            change::PAUSE
        } else {
            change::RESUME
        };
        record_change::<B::D>(&mut tx, id, by, kind, now).await?;
        B::announce(&mut tx, &Change::Event(id)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_event(&self, id: Uuid, now: Millis, by: By<'_>) -> Result<bool> {
        let mut tx = self.writes().begin().await?;
        if !delete_in::<B>(&mut tx, id, now, by).await? {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn run_summaries(&self, ids: &[Uuid]) -> Result<Vec<(Uuid, RunSummary)>> {
        let mut out = Vec::with_capacity(ids.len());
        let mut c = self.reads().acquire().await?;
        for chunk in ids.chunks(1000) {
            // Correlated subqueries over the (event_id, scheduled_at) index: the latest
            // finished occurrence is found scanning back from the newest.
            let last = |col: &str| {
                format!(
                    "(SELECT o.{col} FROM occurrences o WHERE o.event_id = e.id \
                     AND o.status IN ('completed', 'failed', 'missed') ORDER BY o.scheduled_at DESC LIMIT 1)"
                )
            };
            let mut q = query::<B::D>(format!(
                "SELECT e.id, (SELECT min(o.next_attempt_at) FROM occurrences o WHERE o.event_id = e.id \
                 AND o.status IN ('pending', 'scheduled')) AS next_at, {} AS last_status, {} AS last_at, \
                 {} AS last_done FROM events e WHERE ",
                last("status"),
                last("scheduled_at"),
                last("updated_at")
            ));
            let ids: Vec<String> = chunk.iter().map(Uuid::to_string).collect();
            B::D::push_in(&mut q, "e.id", ids);
            for r in B::D::fetch(q, &mut c).await? {
                let last = match (
                    r.opt_text("last_status")?,
                    r.opt_int("last_at")?,
                    r.opt_int("last_done")?,
                ) {
                    (Some(s), Some(at), Some(done)) => Some((s, at, done)),
                    _ => None,
                };
                let summary = RunSummary {
                    next_attempt_at: r.opt_int("next_at")?,
                    last,
                };
                out.push((r.id("id")?, summary));
            }
        }
        Ok(out)
    }

    async fn event_tags(&self, id: Uuid) -> Result<Option<Vec<String>>> {
        let mut q = query::<B::D>("SELECT tags FROM events WHERE id = ");
        q.val(id);
        let mut c = self.reads().acquire().await?;
        fetch_one(q, &mut c)
            .await?
            .map(|r| r.json("tags"))
            .transpose()
    }
}
