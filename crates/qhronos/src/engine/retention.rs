//! Retention: deletes finished occurrences (with their attempts) and finished events once they
//! are older than the configured ages, in small batches so the engine's writes interleave.

use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::config::RetentionConfig;
use crate::domain::{fmt_ms, now_ms, Millis};
use crate::metrics::{Metrics, StatusLabel};
use crate::store::{PurgeCutoffs, Purged, Store};

/// What the last pass did, for `GET /status`.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionReport {
    pub ran_at: String,
    pub removed: Purged,
}

#[derive(Clone)]
pub struct Retention {
    pub store: Arc<dyn Store>,
    pub config: RetentionConfig,
    pub metrics: Arc<Metrics>,
    pub last: Arc<Mutex<Option<RetentionReport>>>,
}

impl Retention {
    /// One pass as of `now` (tests pass a later `now` instead of waiting days).
    pub async fn run_once(&self, now: Millis) -> anyhow::Result<Purged> {
        let c = &self.config;
        let cut = PurgeCutoffs {
            done_before: now - c.completed.as_millis(),
            failed_before: now - c.failed.as_millis(),
            events_before: now - c.events.as_millis(),
            batch: c.batch,
        };
        let removed = self.store.purge(now, &cut).await?;
        for (kind, n) in [
            ("done", removed.occurrences_done),
            ("failed", removed.occurrences_failed),
            ("events", removed.events),
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
    /// lease (`lease` long, renewed by each pass) runs them.
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
