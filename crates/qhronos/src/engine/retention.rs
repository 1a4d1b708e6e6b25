//! Retention: deletes finished occurrences (with their attempts) and finished events once they
//! are older than the configured ages, in small batches so the engine's writes interleave.
//!
//! Ages count from a row's last change: `retention.completed` for completed, missed and
//! cancelled occurrences, `retention.failed` for dead letters, `retention.events` for inactive
//! or deleted events (never one that still has a pending, scheduled, dispatched, failed or
//! future occurrence: an event stays as long as its dead letters do), `retention.analytics` for
//! analytics rollups (from their bucket's start; 400 days by default, longer than the rest). With
//! `retention.archive` (the default) every removed row is copied into the archive tables in the
//! same transaction, and archived rows older than `retention.archive_for` are then deleted. One
//! node runs the passes at a time (the `retention` upkeep lease); the
//! first pass comes one `retention.interval` after start.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::config::{PartitioningConfig, RetentionConfig};
use crate::domain::{fmt_ms, now_ms, Millis};
use crate::metrics::{Metrics, StatusLabel};
use crate::store::{PurgeCutoffs, Purged, Store};

/// What the last pass did, for `GET /status`.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionReport {
    /// When the pass ran (RFC 3339, UTC): the `now` its cut-offs were computed from.
    pub ran_at: String,
    /// What it deleted.
    pub removed: Purged,
}

/// The retention job; clones share [`Retention::last`].
#[derive(Clone)]
pub struct Retention {
    /// Where the rows are deleted.
    pub store: Arc<dyn Store>,
    /// Ages, batch size and interval (`retention.*`).
    pub config: RetentionConfig,
    /// The time partitions kept ahead (`partitioning.*`; PostgreSQL only).
    pub partitioning: PartitioningConfig,
    /// Counts the rows removed, by kind.
    pub metrics: Arc<Metrics>,
    /// The last successful pass on this node (`None`: none yet; a node not holding the lease
    /// keeps `None`).
    pub last: Arc<Mutex<Option<RetentionReport>>>,
}

/// The cut-offs of the row-by-row pass. With `partitioning.drop_whole` on a partitioned store,
/// finished occurrences wait for their partition to be dropped whole: the row pass takes only
/// those older than the longest retention plus one partition's span (the stragglers of a
/// partition kept by a younger row), so a week of rows leaves as one `DROP`, not as millions of
/// deletes. Otherwise the cut-offs as configured.
fn row_cutoffs(
    cut: &PurgeCutoffs,
    now: Millis,
    c: &RetentionConfig,
    p: &PartitioningConfig,
    whole: bool,
) -> PurgeCutoffs {
    if !whole {
        return *cut;
    }
    let longest = now - c.completed.as_millis().max(c.failed.as_millis()) - p.interval.millis();
    PurgeCutoffs {
        done_before: cut.done_before.min(longest),
        failed_before: cut.failed_before.min(longest),
        ..*cut
    }
}

impl Retention {
    /// One pass as of `now` (ms; tests pass a later `now` instead of waiting days), whether or
    /// not this node holds the lease. Deletes in statements of `retention.batch` rows; on `Err`
    /// the batches already deleted stay deleted and [`Retention::last`] is not updated.
    pub async fn run_once(&self, now: Millis) -> anyhow::Result<Purged> {
        let c = &self.config;
        let cut = PurgeCutoffs {
            done_before: now - c.completed.as_millis(),
            failed_before: now - c.failed.as_millis(),
            events_before: now - c.events.as_millis(),
            batch: c.batch,
            archive: c.archive,
            archive_before: now - c.archive_for.as_millis(),
        };
        // Partitions first: the weeks ahead exist before the expander needs them, and a
        // partition that is dropped whole is not deleted row by row.
        let p = &self.partitioning;
        let made = self
            .store
            .keep_partitions_ahead(now, p.ahead.as_millis(), p.interval.millis())
            .await?;
        if made > 0 {
            tracing::info!(partitions = made, "occurrence partitions created ahead");
        }
        let dropped = self
            .store
            .drop_expired_partitions(now, cut.done_before.max(cut.failed_before), &cut)
            .await?;
        let row_cut = row_cutoffs(
            &cut,
            now,
            c,
            p,
            p.drop_whole && self.store.kind() == "postgres",
        );
        let mut removed = self.store.purge(now, &row_cut).await?;
        removed.partitions = dropped.partitions;
        removed.occurrences_done += dropped.done;
        removed.occurrences_failed += dropped.failed;
        removed.analytics = self
            .store
            .purge_analytics(now - c.analytics.as_millis(), c.batch)
            .await?;
        for (kind, n) in [
            ("done", removed.occurrences_done),
            ("failed", removed.occurrences_failed),
            ("events", removed.events),
            ("archive_occurrences", removed.archive_occurrences_expired),
            ("archive_events", removed.archive_events_expired),
            ("analytics", removed.analytics),
        ] {
            self.metrics
                .retention_removed
                .get_or_create(&StatusLabel { status: kind })
                .inc_by(n);
        }
        if let Ok(mut last) = self.last.lock() {
            *last = Some(RetentionReport {
                ran_at: fmt_ms(now),
                removed,
            });
        }
        if removed != Purged::default() {
            tracing::info!(?removed, "retention pass");
        }
        Ok(removed)
    }

    /// Passes every `interval`, on one node at a time: the node holding the `retention` upkeep
    /// lease (`lease` long but at least two intervals, renewed by each pass) runs them. A failed
    /// pass is logged and the next interval tries again. Runs until aborted.
    pub async fn run(self, lease: crate::domain::duration::Dur) {
        let owner = format!("retention-{}", uuid::Uuid::now_v7());
        loop {
            tokio::time::sleep(self.config.interval.0).await;
            let now = now_ms();
            let until = now + lease.as_millis().max(2 * self.config.interval.as_millis());
            match self
                .store
                .try_upkeep_lease("retention", &owner, until, now)
                .await
            {
                Ok(true) => {
                    if let Err(e) = self.run_once(now).await {
                        tracing::error!(error = %e, "retention pass failed");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "taking the retention lease failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PartitionInterval;

    const DAY: Millis = 86_400_000;

    #[test]
    fn with_drop_whole_rows_wait_for_their_partition() {
        let c = RetentionConfig::default();
        let now = 1_000 * DAY;
        let cut = PurgeCutoffs {
            done_before: now - 7 * DAY,
            failed_before: now - 30 * DAY,
            events_before: now - 30 * DAY,
            batch: 500,
            archive: true,
            archive_before: now - 400 * DAY,
        };
        let mut p = PartitioningConfig {
            drop_whole: true,
            ..PartitioningConfig::default()
        };
        let rows = row_cutoffs(&cut, now, &c, &p, true);
        // 30 days (the longest) + a week.
        assert_eq!(rows.done_before, now - 37 * DAY);
        assert_eq!(rows.failed_before, now - 37 * DAY);
        assert_eq!(rows.events_before, cut.events_before);
        p.interval = PartitionInterval::Day;
        assert_eq!(
            row_cutoffs(&cut, now, &c, &p, true).done_before,
            now - 31 * DAY
        );
        // Unpartitioned (SQLite), or the setting off: as configured.
        assert_eq!(
            row_cutoffs(&cut, now, &c, &p, false).done_before,
            cut.done_before
        );
    }
}
