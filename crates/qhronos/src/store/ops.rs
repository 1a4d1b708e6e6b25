//! Operations: liveness, counts and gauges, retention, backups.

use async_trait::async_trait;

use super::sql::rows::RowExt;
use super::sql::{fetch_one, query, Dialect, Push};
use super::{Backend, Result};
use crate::domain::Millis;

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Purged {
    /// Completed, missed and cancelled occurrences (with their attempts).
    pub occurrences_done: u64,
    pub occurrences_failed: u64,
    pub events: u64,
    /// Analytics rows (minute and hour cells, failing-target rows) older than
    /// `retention.analytics` (deleted by `AnalyticsStore::purge_analytics`).
    pub analytics: u64,
}

/// Cut-offs of a retention pass: rows last changed before these times go.
#[derive(Debug, Clone, Copy)]
pub struct PurgeCutoffs {
    pub done_before: Millis,
    pub failed_before: Millis,
    pub events_before: Millis,
    /// Rows deleted per statement, so that no transaction holds the writer for long.
    pub batch: i64,
}

/// Figures read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub counts: Counts,
    /// Due time of the oldest pending occurrence that is already due.
    pub oldest_overdue: Option<Millis>,
    /// The earliest instance of an active series not yet materialised.
    pub earliest_unexpanded: Option<Millis>,
    /// (pool, idle, in use)
    pub pools: Vec<(&'static str, u32, u32)>,
}

/// Occurrence counts by status, for `/status` (`scheduled` includes pull claims, `dispatched`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counts {
    pub pending: i64,
    pub scheduled: i64,
    pub failed: i64,
    pub completed: i64,
    pub missed: i64,
    pub cancelled: i64,
}

/// Running the store.
#[async_trait]
pub trait OpsStore: Send + Sync + 'static {
    /// Cheap liveness check: the database answers a query.
    async fn ping(&self) -> Result<()>;
    async fn counts(&self) -> Result<Counts>;
    async fn gauges(&self, now: Millis) -> Result<Gauges>;
    /// One retention pass: deletes, in batches (each its own short transaction), finished
    /// occurrences and events older than the cut-offs. Never an event with a pending, scheduled
    /// or future occurrence, a dead letter (a failed occurrence, kept for `retention.failed`)
    /// or a next instance; never a pending, scheduled or dispatched occurrence.
    async fn purge(&self, now: Millis, c: &PurgeCutoffs) -> Result<Purged>;
    /// Writes a consistent copy of the database to `path` while the service runs, readable by
    /// its owner only (`Invalid` where the database has its own tools: PostgreSQL).
    async fn backup_to(&self, path: &std::path::Path) -> Result<()>;
}

/// Deletes up to `batch` occurrences in `statuses` last changed before `before`.
fn delete_occurrences<D: Dialect>(
    statuses: &str,
    before: Millis,
    batch: i64,
) -> sqlx::QueryBuilder<D> {
    let mut q = query::<D>(format!(
        "DELETE FROM occurrences WHERE id IN (SELECT id FROM occurrences WHERE status IN ({statuses}) \
         AND updated_at < "
    ));
    q.val(before).push(" LIMIT ").val(batch).push(")");
    q
}

#[async_trait]
impl<B: Backend> OpsStore for B {
    async fn ping(&self) -> Result<()> {
        let mut c = self.reads().acquire().await?;
        B::D::exec(query::<B::D>("SELECT 1"), &mut c).await?;
        Ok(())
    }

    async fn counts(&self) -> Result<Counts> {
        let q = query::<B::D>("SELECT status, count(*) AS n FROM occurrences GROUP BY status");
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
        // Each statement is its own short transaction: the engine's writes interleave.
        for (done, statuses, before) in [
            (true, "'completed', 'missed', 'cancelled'", c.done_before),
            (false, "'failed'", c.failed_before),
        ] {
            loop {
                let q = delete_occurrences::<D<B>>(statuses, before, c.batch);
                let n = {
                    let mut w = self.writes().acquire().await?;
                    D::<B>::exec(q, &mut w).await?
                };
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
        // `retention.events`) and must keep its event.
        loop {
            let mut q = query::<D<B>>(
                "DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.status IN ('inactive', 'deleted') \
                 AND e.updated_at < ",
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
                .push(")");
            let n = {
                let mut w = self.writes().acquire().await?;
                D::<B>::exec(q, &mut w).await?
            };
            out.events += n;
            if n < c.batch as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(out)
    }

    async fn backup_to(&self, path: &std::path::Path) -> Result<()> {
        Backend::backup_to(self, path).await
    }
}
