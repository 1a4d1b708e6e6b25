//! Operations: liveness, counts and gauges, retention, backups.

use async_trait::async_trait;

use super::archive;
use super::sql::rows::RowExt;
use super::sql::{fetch_one, query, Dialect, Push};
use super::{Backend, Result};
use crate::domain::Millis;

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Purged {
    /// Completed, missed and cancelled occurrences (with their attempts).
    pub occurrences_done: u64,
    /// Failed occurrences (dead letters) past `retention.failed`.
    pub occurrences_failed: u64,
    /// Finished or deleted events with nothing left.
    pub events: u64,
    /// Archived occurrences (with their attempts) older than `retention.archive_for`, deleted.
    pub archive_occurrences_expired: u64,
    /// Archived events older than `retention.archive_for` with no archived occurrence left.
    pub archive_events_expired: u64,
    /// Analytics rows (minute and hour cells, failing-target rows) older than
    /// `retention.analytics` (deleted by `AnalyticsStore::purge_analytics`).
    pub analytics: u64,
    /// Whole partitions of occurrences dropped (PostgreSQL; `OpsStore::drop_expired_partitions`);
    /// their occurrences are counted in `occurrences_done` and `occurrences_failed`.
    pub partitions: u64,
}

/// What `OpsStore::drop_expired_partitions` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionsDropped {
    /// Partitions dropped.
    pub partitions: u64,
    /// Completed, missed and cancelled occurrences they held (archived first when asked).
    pub done: u64,
    /// Failed occurrences they held.
    pub failed: u64,
}

/// Cut-offs of a retention pass: rows last changed before these times go.
#[derive(Debug, Clone, Copy)]
pub struct PurgeCutoffs {
    /// Completed, missed and cancelled occurrences last changed before this go.
    pub done_before: Millis,
    /// Failed occurrences last changed before this go.
    pub failed_before: Millis,
    /// Inactive and deleted events last changed before this go (if nothing of theirs is left).
    pub events_before: Millis,
    /// Rows deleted per statement, so that no transaction holds the writer for long.
    pub batch: i64,
    /// Copy what is deleted into the archive tables, in the deleting transaction.
    pub archive: bool,
    /// Archived rows archived before this go for good.
    pub archive_before: Millis,
}

/// Figures read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    /// Occurrences by status.
    pub counts: Counts,
    /// Due time of the oldest pending occurrence that is already due.
    pub oldest_overdue: Option<Millis>,
    /// The earliest instance of an active series not yet materialised.
    pub earliest_unexpanded: Option<Millis>,
    /// (pool, idle, in use)
    pub pools: Vec<(&'static str, u32, u32)>,
}

/// Occurrence counts by status, for `/status` (`scheduled` includes pull claims, `dispatched`).
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Counts {
    /// Waiting for their time or their next attempt.
    pub pending: i64,
    /// Claimed by a node (or a pull client) and not yet settled.
    pub scheduled: i64,
    /// Dead letters.
    pub failed: i64,
    /// Delivered.
    pub completed: i64,
    /// Skipped by the misfire policy or the catch-up window.
    pub missed: i64,
    /// Cancelled by a user, a pause, a re-plan or a delete.
    pub cancelled: i64,
}

/// Running the store.
#[async_trait]
pub trait OpsStore: Send + Sync + 'static {
    /// Cheap liveness check: the database answers a query.
    async fn ping(&self) -> Result<()>;
    /// Occurrence counts by status (an exact count: see `gauge_cache` for what `/status` caches).
    async fn counts(&self) -> Result<Counts> {
        self.counts_in(&[]).await
    }
    /// The same counts over the occurrences of events with any of `tags` (all when empty):
    /// `GET /occurrences/counts`, for a scoped token that must not see the store-wide figures.
    async fn counts_in(&self, tags: &[String]) -> Result<Counts>;
    /// Counts, the oldest overdue and earliest unexpanded instants, and the pools' use.
    async fn gauges(&self, now: Millis) -> Result<Gauges>;
    /// One retention pass: deletes, in batches (each its own short transaction), finished
    /// occurrences and events older than the cut-offs. Never an event with a pending, scheduled
    /// or future occurrence, a dead letter (a failed occurrence, kept for `retention.failed`)
    /// or a next instance; never a pending, scheduled or dispatched occurrence. With
    /// `archive`, every deleted row (occurrences, their attempts, events) is first copied to
    /// the archive in the same transaction (see [`ArchiveStore`](super::ArchiveStore)); then
    /// archived rows archived before `archive_before` are deleted.
    async fn purge(&self, now: Millis, c: &PurgeCutoffs) -> Result<Purged>;
    /// Where occurrences are partitioned by time (PostgreSQL): creates the partitions that
    /// start before `now + ahead`, `step` ms each, out of the last, open-ended one. Returns the
    /// partitions created (0 elsewhere).
    async fn keep_partitions_ahead(&self, now: Millis, ahead: Millis, step: Millis) -> Result<u32>;
    /// Where occurrences are partitioned by time (PostgreSQL): drops, oldest first, whole
    /// partitions (with their attempts) that end at or before `older_than` and hold nothing the
    /// cut-offs keep (no pending, scheduled or dispatched row, no finished row younger than its
    /// cut-off), copying their rows to the archive first when `c.archive`. The row-by-row
    /// [`OpsStore::purge`] handles the rest.
    async fn drop_expired_partitions(
        &self,
        now: Millis,
        older_than: Millis,
        c: &PurgeCutoffs,
    ) -> Result<PartitionsDropped>;
    /// Writes a consistent copy of the database to `path` while the service runs, readable by
    /// its owner only (`Invalid` where the database has its own tools: PostgreSQL).
    async fn backup_to(&self, path: &std::path::Path) -> Result<()>;
}

#[async_trait]
impl<B: Backend> OpsStore for B {
    async fn ping(&self) -> Result<()> {
        let mut c = self.reads().acquire().await?;
        B::D::exec(query::<B::D>("SELECT 1"), &mut c).await?;
        Ok(())
    }

    async fn counts_in(&self, tags: &[String]) -> Result<Counts> {
        let mut q = query::<B::D>("SELECT status, count(*) AS n FROM occurrences WHERE 1 = 1");
        super::events::push_tags(&mut q, "event_id", tags);
        q.push(" GROUP BY status");
        let mut c = self.reads().acquire().await?;
        let mut out = Counts::default();
        for r in B::D::fetch(q, &mut c).await? {
            let n = r.int("n")?;
            match r.text("status")?.as_str() {
                "pending" => out.pending = n,
                "scheduled" | "dispatched" => out.scheduled += n,
                "failed" => out.failed = n,
                "completed" => out.completed = n,
                "missed" => out.missed = n,
                "cancelled" => out.cancelled = n,
                _ => {}
            }
        }
        Ok(out)
    }

    async fn gauges(&self, now: Millis) -> Result<Gauges> {
        type D<B> = <B as Backend>::D;
        let counts = self.counts().await?;
        let mut c = self.reads().acquire().await?;
        let mut q = query::<D<B>>(format!(
            "SELECT min(next_attempt_at) AS t FROM occurrences{} WHERE status = 'pending' AND next_attempt_at <= ",
            D::<B>::indexed_by("occurrences_due")
        ));
        q.val(now);
        let oldest_overdue = match fetch_one(q, &mut c).await? {
            Some(r) => r.opt_int("t")?,
            None => None,
        };
        let q = query::<D<B>>(format!(
            "SELECT min(next_fire_at) AS t FROM events{} WHERE status = 'active' AND next_fire_at IS NOT NULL",
            D::<B>::indexed_by("events_expand")
        ));
        let earliest_unexpanded = match fetch_one(q, &mut c).await? {
            Some(r) => r.opt_int("t")?,
            None => None,
        };
        Ok(Gauges {
            counts,
            oldest_overdue,
            earliest_unexpanded,
            pools: self.pools(),
        })
    }

    async fn purge(&self, now: Millis, c: &PurgeCutoffs) -> Result<Purged> {
        type D<B> = <B as Backend>::D;
        let mut out = Purged::default();
        // Each batch is its own short transaction (select, archive, delete), so the engine's
        // writes interleave and a row is always in exactly one place: hot or archived.
        for (done, statuses, before) in [
            (true, "'completed', 'missed', 'cancelled'", c.done_before),
            (false, "'failed'", c.failed_before),
        ] {
            loop {
                let mut q = query::<D<B>>(format!(
                    "SELECT id, event_id FROM occurrences WHERE status IN ({statuses}) AND updated_at < "
                ));
                q.val(before)
                    .push(" LIMIT ")
                    .val(c.batch)
                    .push(D::<B>::skip_locked("occurrences"));
                let mut tx = self.writes().begin().await?;
                let rows = D::<B>::fetch(q, &mut tx).await?;
                let mut ids = Vec::with_capacity(rows.len());
                let mut events: Vec<String> = Vec::new();
                for r in &rows {
                    ids.push(r.text("id")?);
                    let e = r.text("event_id")?;
                    if !events.contains(&e) {
                        events.push(e);
                    }
                }
                let n = ids.len() as u64;
                if n > 0 {
                    if c.archive {
                        archive::archive_events::<D<B>>(&mut tx, events, now, false).await?;
                        archive::archive_occurrences::<D<B>>(&mut tx, "id", ids.clone(), now)
                            .await?;
                    }
                    let mut q = query::<D<B>>("DELETE FROM occurrences WHERE ");
                    D::<B>::push_in(&mut q, "id", ids);
                    D::<B>::exec(q, &mut tx).await?;
                    tx.commit().await?;
                }
                if done {
                    out.occurrences_done += n;
                } else {
                    out.occurrences_failed += n;
                }
                if n < c.batch as u64 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        // An event stays while it has a dead letter: the failed pass above removed the expired
        // ones, so what is left is younger than `retention.failed` (which may outlast
        // `retention.events`) and must keep its event. Its remaining finished occurrences
        // (younger than `retention.completed`) go with it, into the archive too.
        loop {
            let mut q = query::<D<B>>(
                "SELECT e.id FROM events e WHERE e.status IN ('inactive', 'deleted') AND e.updated_at < ",
            );
            q.val(c.events_before)
                .push(
                    " AND e.next_fire_at IS NULL AND NOT EXISTS (SELECT 1 FROM occurrences o \
                     WHERE o.event_id = e.id AND (o.status IN ('pending', 'scheduled', 'dispatched', 'failed') \
                     OR o.scheduled_at > ",
                )
                .val(now)
                .push(")) LIMIT ")
                .val(c.batch)
                .push(D::<B>::skip_locked("e"));
            let mut tx = self.writes().begin().await?;
            let ids = D::<B>::fetch(q, &mut tx)
                .await?
                .iter()
                .map(|r| r.text("id"))
                .collect::<Result<Vec<_>>>()?;
            let n = ids.len() as u64;
            if n > 0 {
                if c.archive {
                    archive::archive_events::<D<B>>(&mut tx, ids.clone(), now, true).await?;
                    archive::archive_occurrences::<D<B>>(&mut tx, "event_id", ids.clone(), now)
                        .await?;
                }
                let mut q = query::<D<B>>("DELETE FROM events WHERE ");
                D::<B>::push_in(&mut q, "id", ids);
                D::<B>::exec(q, &mut tx).await?;
                tx.commit().await?;
            }
            out.events += n;
            if n < c.batch as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
        let (occs, events) = archive::expire(self, c.archive_before, c.batch).await?;
        out.archive_occurrences_expired = occs;
        out.archive_events_expired = events;
        Ok(out)
    }

    async fn backup_to(&self, path: &std::path::Path) -> Result<()> {
        Backend::backup_to(self, path).await
    }

    async fn keep_partitions_ahead(&self, now: Millis, ahead: Millis, step: Millis) -> Result<u32> {
        Backend::keep_partitions_ahead(self, now, ahead, step).await
    }

    async fn drop_expired_partitions(
        &self,
        now: Millis,
        older_than: Millis,
        c: &PurgeCutoffs,
    ) -> Result<PartitionsDropped> {
        Backend::drop_expired_partitions(self, now, older_than, c).await
    }
}
