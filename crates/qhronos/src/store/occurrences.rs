//! Occurrences: materialising a plan, listing, single-occurrence changes, and the expander's
//! reads and writes.

use async_trait::async_trait;
use uuid::Uuid;

use super::analytics::{write_rollup, Rollup};
use super::events::push_tags;
use super::sql::rows::{RowExt, EVENT_COLS, OCC_COLS};
use super::sql::{fetch_one, query, Col, Dialect, Kind, Push};
use super::{Backend, Change, Result};
use crate::domain::event::Event;
use crate::domain::occurrence::{Attempt, NewOccurrence, OccStatus, Occurrence};
use crate::domain::Millis;

/// Filters for `GET /occurrences` and `GET /events/{id}/occurrences`; newest first.
#[derive(Debug, Clone, Default)]
pub struct OccFilter {
    /// Only occurrences of this event.
    pub event_id: Option<Uuid>,
    /// Only occurrences of events carrying any of these tags.
    pub tags: Vec<String>,
    /// Only occurrences in this status.
    pub status: Option<OccStatus>,
    /// Scheduled at or after this time.
    pub from: Option<Millis>,
    /// Scheduled at or before this time.
    pub to: Option<Millis>,
    /// Most occurrences returned.
    pub limit: i64,
    /// Strictly older than this `(scheduled_at, id)`: a cursor that pages without gaps or
    /// repeats, also through equal `scheduled_at` values.
    pub before: Option<(Millis, Uuid)>,
}

/// What `redrive` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redrive {
    /// Sent again: `pending`, due now.
    Done,
    /// No such occurrence.
    NotFound,
    /// Only failed or missed occurrences can be re-driven.
    WrongStatus(OccStatus),
}

/// What a change to one occurrence found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OccChange {
    /// Changed.
    Done,
    /// No such occurrence.
    NotFound,
    /// Only occurrences that have not been attempted yet can be cancelled or moved.
    WrongStatus(OccStatus),
    /// The event already has an occurrence at the new time (or, for a pull claim, the receipt
    /// presented is not the current claim's).
    Taken,
}

/// What the expander read with an event: the generation its plan is fenced by, and the rule's
/// count mark (`(instant, n)`: the rule has `n` instances up to and including that instant).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpandState {
    /// The plan generation: moves with every re-plan, pause and resume.
    pub gen: i64,
    /// The count mark (see the type's doc).
    pub mark: Option<(Millis, i64)>,
}

/// The expander's work for one event, written by [`OccurrenceStore::save_expansion`].
#[derive(Debug, Clone, Copy)]
pub struct Expansion<'a> {
    /// The generation read with the event; the write happens only if it is still current.
    pub gen: i64,
    /// Instants to materialise (existing ones are kept).
    pub occurrences: &'a [NewOccurrence],
    /// Instants skipped because they were older than the catch-up window, each written as a
    /// `missed` occurrence with its reason in `last_error` (existing rows are left alone).
    pub missed: &'a [(NewOccurrence, String)],
    /// The event's next instance not yet materialised (`None`: none left).
    pub next_fire_at: Option<Millis>,
    /// The new count mark.
    pub mark: Option<(Millis, i64)>,
}

/// Occurrences of events.
#[async_trait]
pub trait OccurrenceStore: Send + Sync + 'static {
    /// Inserts occurrences, skipping instants that exist (reviving ones cancelled by a pause or
    /// a re-plan). Returns how many rows were inserted or revived: inserting the same plan
    /// twice adds nothing.
    async fn insert_occurrences(&self, occurrences: &[NewOccurrence], now: Millis) -> Result<u64>;
    /// Newest first (by `scheduled_at`, then id), at most `f.limit`.
    async fn list_occurrences(&self, f: &OccFilter) -> Result<Vec<Occurrence>>;
    /// An occurrence with its attempts, oldest first.
    async fn get_occurrence(&self, id: Uuid) -> Result<Option<(Occurrence, Vec<Attempt>)>>;
    /// Sends a failed or missed occurrence again, now, with `extra_attempts` more attempts.
    async fn redrive(&self, id: Uuid, extra_attempts: u32, now: Millis) -> Result<Redrive>;
    /// Cancels one upcoming occurrence (pending or scheduled, not yet attempted).
    async fn cancel_occurrence(&self, id: Uuid, now: Millis) -> Result<OccChange>;
    /// Moves one upcoming occurrence to another time; the rest of the series is untouched.
    async fn move_occurrence(&self, id: Uuid, to: Millis, now: Millis) -> Result<OccChange>;
    /// Active events whose next instance is at or before `until`, soonest first, with the
    /// generation and count mark the expander hands back to `save_expansion`.
    async fn events_to_expand(
        &self,
        until: Millis,
        limit: i64,
    ) -> Result<Vec<(Event, ExpandState)>>;
    /// Materialises occurrences, records the skipped instants as `missed`, and moves the
    /// event's `next_fire_at` and count mark; marks a finished one-time event or series
    /// inactive once nothing is left to deliver. Writes nothing and returns false when the
    /// event is no longer active or was re-planned (its generation moved) since it was read:
    /// that work is stale.
    async fn save_expansion(&self, event_id: Uuid, x: &Expansion<'_>, now: Millis) -> Result<bool>;
}

const OCC_WRITE: [Col; 13] = [
    ("id", Kind::Text),
    ("event_id", Kind::Text),
    ("scheduled_at", Kind::Int),
    ("status", Kind::Text),
    ("attempts", Kind::Int),
    ("attempt_limit", Kind::Int),
    ("next_attempt_at", Kind::Int),
    ("lease_owner", Kind::Text),
    ("lease_expires_at", Kind::Int),
    ("lease_token", Kind::Int),
    ("created_at", Kind::Int),
    ("updated_at", Kind::Int),
    ("ends_at", Kind::Int),
];

/// Inserts occurrences; an instant that exists is kept, except that one cancelled by a pause
/// or a re-plan comes back to life. An occurrence planned with a lease (the timer's fast path)
/// is written already `scheduled` under it.
pub(super) async fn upsert_occurrences<D: Dialect>(
    c: &mut D::Connection,
    occs: &[NewOccurrence],
    now: Millis,
) -> Result<u64> {
    let mut n = 0;
    for chunk in occs.chunks(D::max_rows(OCC_WRITE.len())) {
        let rows = chunk
            .iter()
            .map(|o| {
                vec![
                    o.id.into(),
                    o.event_id.into(),
                    o.scheduled_at.into(),
                    if o.lease.is_some() {
                        "scheduled"
                    } else {
                        "pending"
                    }
                    .into(),
                    0i64.into(),
                    i64::from(o.attempt_limit).into(),
                    o.scheduled_at.into(),
                    o.lease.map(|l| l.owner()).into(),
                    o.lease.map(|l| l.until).into(),
                    o.lease.map(|l| l.token).into(),
                    now.into(),
                    now.into(),
                    o.ends_at.into(),
                ]
            })
            .collect();
        let mut q = query::<D>(format!(
            "INSERT INTO occurrences ({})",
            super::sql::names(&OCC_WRITE)
        ));
        D::push_insert_rows(&mut q, &OCC_WRITE, rows);
        q.push(
            " ON CONFLICT (event_id, scheduled_at) DO UPDATE SET status = 'pending', \
             cancelled_by = NULL, next_attempt_at = excluded.next_attempt_at, \
             updated_at = excluded.updated_at, ends_at = excluded.ends_at \
             WHERE occurrences.status = 'cancelled' AND occurrences.cancelled_by IN ('pause', 'replan')",
        );
        n += D::exec(q, c).await?;
    }
    Ok(n)
}

const MISSED_WRITE: [Col; 9] = [
    ("id", Kind::Text),
    ("event_id", Kind::Text),
    ("scheduled_at", Kind::Int),
    ("status", Kind::Text),
    ("attempts", Kind::Int),
    ("attempt_limit", Kind::Int),
    ("last_error", Kind::Text),
    ("created_at", Kind::Int),
    ("updated_at", Kind::Int),
];

/// Skipped instants as `missed` occurrences with their reason; an instant that has a row keeps it.
/// Each row inserted is counted (due and missed) in `rollup`.
async fn insert_missed<D: Dialect>(
    c: &mut D::Connection,
    missed: &[(NewOccurrence, String)],
    now: Millis,
    rollup: &mut Rollup,
) -> Result<()> {
    for chunk in missed.chunks(D::max_rows(MISSED_WRITE.len())) {
        let rows = chunk
            .iter()
            .map(|(o, why)| {
                vec![
                    o.id.into(),
                    o.event_id.into(),
                    o.scheduled_at.into(),
                    "missed".into(),
                    0i64.into(),
                    i64::from(o.attempt_limit).into(),
                    why.clone().into(),
                    now.into(),
                    now.into(),
                ]
            })
            .collect();
        let mut q = query::<D>(format!(
            "INSERT INTO occurrences ({})",
            super::sql::names(&MISSED_WRITE)
        ));
        D::push_insert_rows(&mut q, &MISSED_WRITE, rows);
        q.push(" ON CONFLICT (event_id, scheduled_at) DO NOTHING RETURNING event_id, scheduled_at");
        for r in D::fetch(q, c).await? {
            rollup.missed(r.id("event_id")?, r.int("scheduled_at")?, true);
        }
    }
    Ok(())
}

/// Cancels an event's pending and scheduled occurrences (`by`: who, so that a resume or a
/// re-plan revives only its own); with `after`, only unattempted ones later than that.
pub(super) async fn cancel_unfired<D: Dialect>(
    c: &mut D::Connection,
    event_id: Uuid,
    by: &str,
    after: Option<Millis>,
    now: Millis,
) -> Result<u64> {
    let mut q = query::<D>("UPDATE occurrences SET status = 'cancelled', cancelled_by = ");
    q.val(by)
        .push(
            ", lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = NULL, updated_at = ",
        )
        .val(now)
        .push(" WHERE event_id = ")
        .val(event_id)
        .push(" AND status IN ('pending', 'scheduled')");
    if let Some(after) = after {
        q.push(" AND attempts = 0 AND scheduled_at > ").val(after);
    }
    D::exec(q, c).await
}

/// Finished one-time events and series become `inactive` once nothing is left to deliver.
pub(super) async fn finish_if_done<D: Dialect>(
    c: &mut D::Connection,
    event_ids: &[String],
    now: Millis,
) -> Result<()> {
    for chunk in event_ids.chunks(D::max_rows(1)) {
        let mut q = query::<D>("UPDATE events SET status = 'inactive', updated_at = ");
        q.val(now)
            .push(" WHERE status = 'active' AND next_fire_at IS NULL AND ");
        D::push_in(&mut q, "id", chunk.to_vec());
        q.push(
            " AND NOT EXISTS (SELECT 1 FROM occurrences o WHERE o.event_id = events.id \
             AND o.status IN ('pending', 'scheduled', 'dispatched'))",
        );
        D::exec(q, c).await?;
    }
    Ok(())
}

/// `Some` when the occurrence is unknown or no longer upcoming. Locks the row where rows lock.
async fn upcoming_check<D: Dialect>(c: &mut D::Connection, id: Uuid) -> Result<Option<OccChange>> {
    let mut q = query::<D>("SELECT status, attempts FROM occurrences WHERE id = ");
    q.val(id).push(D::FOR_UPDATE);
    let Some(row) = fetch_one(q, c).await? else {
        return Ok(Some(OccChange::NotFound));
    };
    let status = row.occ_status("status")?;
    if !matches!(status, OccStatus::Pending | OccStatus::Scheduled) || row.int("attempts")? > 0 {
        return Ok(Some(OccChange::WrongStatus(status)));
    }
    Ok(None)
}

#[async_trait]
impl<B: Backend> OccurrenceStore for B {
    async fn insert_occurrences(&self, occs: &[NewOccurrence], now: Millis) -> Result<u64> {
        let mut tx = self.writes().begin().await?;
        let n = upsert_occurrences::<B::D>(&mut tx, occs, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn list_occurrences(&self, f: &OccFilter) -> Result<Vec<Occurrence>> {
        let mut q = query::<B::D>(format!("SELECT {OCC_COLS} FROM occurrences WHERE 1 = 1"));
        if let Some(id) = f.event_id {
            q.push(" AND event_id = ").val(id);
        }
        if let Some(s) = f.status {
            q.push(" AND status = ").val(s.as_str());
        }
        if let Some(from) = f.from {
            q.push(" AND scheduled_at >= ").val(from);
        }
        if let Some(to) = f.to {
            q.push(" AND scheduled_at <= ").val(to);
        }
        if let Some((at, id)) = f.before {
            q.push(" AND (scheduled_at < ")
                .val(at)
                .push(" OR (scheduled_at = ")
                .val(at)
                .push(" AND id < ")
                .val(id)
                .push("))");
        }
        push_tags(&mut q, "event_id", &f.tags);
        q.push(" ORDER BY scheduled_at DESC, id DESC LIMIT ")
            .val(f.limit);
        let mut c = self.reads().acquire().await?;
        B::D::fetch(q, &mut c)
            .await?
            .iter()
            .map(|r| r.occurrence())
            .collect()
    }

    async fn get_occurrence(&self, id: Uuid) -> Result<Option<(Occurrence, Vec<Attempt>)>> {
        let mut c = self.reads().acquire().await?;
        let mut q = query::<B::D>(format!("SELECT {OCC_COLS} FROM occurrences WHERE id = "));
        q.val(id);
        let Some(row) = fetch_one(q, &mut c).await? else {
            return Ok(None);
        };
        let mut q = query::<B::D>("SELECT * FROM attempts WHERE occurrence_id = ");
        q.val(id).push(" ORDER BY attempt");
        let attempts = B::D::fetch(q, &mut c)
            .await?
            .iter()
            .map(|r| r.attempt())
            .collect::<Result<Vec<_>>>()?;
        Ok(Some((row.occurrence()?, attempts)))
    }

    async fn redrive(&self, id: Uuid, extra: u32, now: Millis) -> Result<Redrive> {
        let mut tx = self.writes().begin().await?;
        let mut q = query::<B::D>("SELECT status FROM occurrences WHERE id = ");
        q.val(id).push(B::D::FOR_UPDATE);
        let Some(row) = fetch_one(q, &mut tx).await? else {
            tx.rollback().await?;
            return Ok(Redrive::NotFound);
        };
        let status = row.occ_status("status")?;
        if !matches!(status, OccStatus::Failed | OccStatus::Missed) {
            tx.rollback().await?;
            return Ok(Redrive::WrongStatus(status));
        }
        let mut q = query::<B::D>("UPDATE occurrences SET status = 'pending', next_attempt_at = ");
        q.val(now)
            .push(", attempt_limit = attempts + ")
            .val(i64::from(extra))
            .push(", completed_at = NULL, updated_at = ")
            .val(now)
            .push(" WHERE id = ")
            .val(id);
        B::D::exec(q, &mut tx).await?;
        tx.commit().await?;
        Ok(Redrive::Done)
    }

    async fn cancel_occurrence(&self, id: Uuid, now: Millis) -> Result<OccChange> {
        let mut tx = self.writes().begin().await?;
        if let Some(c) = upcoming_check::<B::D>(&mut tx, id).await? {
            tx.rollback().await?;
            return Ok(c);
        }
        let mut q = query::<B::D>(
            "UPDATE occurrences SET status = 'cancelled', cancelled_by = 'user', lease_owner = NULL, \
             lease_expires_at = NULL, next_attempt_at = NULL, updated_at = ",
        );
        q.val(now).push(" WHERE id = ").val(id);
        B::D::exec(q, &mut tx).await?;
        B::announce(&mut tx, &Change::Occurrence(id)).await?;
        tx.commit().await?;
        Ok(OccChange::Done)
    }

    async fn move_occurrence(&self, id: Uuid, to: Millis, now: Millis) -> Result<OccChange> {
        let mut tx = self.writes().begin().await?;
        if let Some(c) = upcoming_check::<B::D>(&mut tx, id).await? {
            tx.rollback().await?;
            return Ok(c);
        }
        let mut q = query::<B::D>(
            "SELECT o.id FROM occurrences o JOIN occurrences me ON me.event_id = o.event_id WHERE me.id = ",
        );
        q.val(id)
            .push(" AND o.scheduled_at = ")
            .val(to)
            .push(" AND o.id != me.id");
        if fetch_one(q, &mut tx).await?.is_some() {
            tx.rollback().await?;
            return Ok(OccChange::Taken);
        }
        let mut q = query::<B::D>("UPDATE occurrences SET status = 'pending', scheduled_at = ");
        // The end moves with the start (the right-hand sides read the row before the update).
        q.val(to)
            .push(", moved_from = COALESCE(moved_from, scheduled_at), ends_at = ends_at + (")
            .val(to)
            .push(" - scheduled_at), next_attempt_at = ")
            .val(to)
            .push(", lease_owner = NULL, lease_expires_at = NULL, updated_at = ")
            .val(now)
            .push(" WHERE id = ")
            .val(id);
        match B::D::exec(q, &mut tx).await {
            Ok(_) => {}
            // A concurrent move to the same instant committed first.
            Err(super::StoreError::Db(sqlx::Error::Database(d))) if d.is_unique_violation() => {
                return Ok(OccChange::Taken)
            }
            Err(e) => return Err(e),
        }
        B::announce(&mut tx, &Change::Occurrence(id)).await?;
        tx.commit().await?;
        Ok(OccChange::Done)
    }

    async fn events_to_expand(
        &self,
        until: Millis,
        limit: i64,
    ) -> Result<Vec<(Event, ExpandState)>> {
        let mut q = query::<B::D>(format!(
            "SELECT {EVENT_COLS}, plan_gen, mark_at, mark_index FROM events{} \
             WHERE status = 'active' AND next_fire_at IS NOT NULL AND next_fire_at <= ",
            B::D::indexed_by("events_expand")
        ));
        q.val(until)
            .push(" ORDER BY next_fire_at LIMIT ")
            .val(limit);
        let mut c = self.reads().acquire().await?;
        B::D::fetch(q, &mut c)
            .await?
            .iter()
            .map(|r| {
                let st = ExpandState {
                    gen: r.int("plan_gen")?,
                    mark: r.opt_int("mark_at")?.zip(r.opt_int("mark_index")?),
                };
                Ok((r.event()?, st))
            })
            .collect()
    }

    async fn save_expansion(&self, event_id: Uuid, x: &Expansion<'_>, now: Millis) -> Result<bool> {
        let mut q = query::<B::D>("UPDATE events SET next_fire_at = ");
        q.val(x.next_fire_at)
            .push(", mark_at = ")
            .val(x.mark.map(|m| m.0))
            .push(", mark_index = ")
            .val(x.mark.map(|m| m.1))
            .push(" WHERE id = ")
            .val(event_id)
            .push(" AND status = 'active' AND plan_gen = ")
            .val(x.gen);
        let mut tx = self.writes().begin().await?;
        let n = B::D::exec(q, &mut tx).await?;
        // Paused, deleted or re-planned meanwhile: this work is stale, write nothing.
        if n > 0 {
            let mut rollup = Rollup::default();
            insert_missed::<B::D>(&mut tx, x.missed, now, &mut rollup).await?;
            write_rollup::<B::D>(&mut tx, rollup).await?;
            upsert_occurrences::<B::D>(&mut tx, x.occurrences, now).await?;
            finish_if_done::<B::D>(&mut tx, &[event_id.to_string()], now).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }
}
