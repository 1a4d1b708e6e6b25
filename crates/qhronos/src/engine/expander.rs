//! The expander: moves each active series' materialised window forward to `now + look_ahead`.
//!
//! It reads only events whose `next_fire_at` falls inside the window (an index range), so a tick
//! costs in proportion to the occurrences it creates, not to the number of events.

use std::sync::Arc;

use tokio::sync::Notify;

use super::plan::plan;
use super::EngineHandle;
use crate::config::Config;
use crate::domain::now_ms;
use crate::domain::occurrence::NewOccurrence;
use crate::store::Store;

const EVENTS_PER_QUERY: i64 = 500;

pub struct Expander {
    pub store: Arc<dyn Store>,
    pub config: Config,
    pub wake: Arc<Notify>,
    pub handle: EngineHandle,
}

impl Expander {
    pub async fn run(self) {
        let owner = format!("expander-{}", uuid::Uuid::now_v7());
        loop {
            // One node expands at a time; a holder that dies is replaced once its lease expires.
            let now = now_ms();
            let lease = self.config.engine.lease.as_millis();
            match self
                .store
                .try_upkeep_lease("expander", &owner, now + lease, now)
                .await
            {
                Ok(true) => {
                    if let Err(e) = self.tick().await {
                        tracing::error!(error = %e, "expander tick failed");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "taking the expander lease failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.engine.expander_interval.0) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// One pass: every event due for expansion, in batches.
    pub async fn tick(&self) -> anyhow::Result<()> {
        loop {
            let now = now_ms();
            let until = now + self.config.engine.look_ahead.as_millis();
            let events = self.store.events_to_expand(until, EVENTS_PER_QUERY).await?;
            let n = events.len();
            let mut earliest = i64::MAX;
            for e in events {
                let Some(from) = e.next_fire_at else { continue };
                // Instances older than the catch-up window would only be marked missed: do not
                // materialise them after a long downtime.
                let window = e.misfire.resolve(&self.config.misfire).1;
                let floor = now - i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
                let after = (from - 1).max(floor);
                let (instants, next) = match plan(&e, Some(after), until) {
                    Ok(p) => (p.instants, p.next),
                    Err(err) => {
                        tracing::error!(event_id = %e.id, error = %err, "cannot expand event; stopping its series");
                        (Vec::new(), None)
                    }
                };
                let limit = e.retry.resolve(&self.config.retry).max_attempts;
                let occs: Vec<_> = instants
                    .iter()
                    .map(|t| NewOccurrence::new(e.id, *t, limit))
                    .collect();
                if let Some(first) = instants.first() {
                    earliest = earliest.min(*first);
                }
                self.store.save_expansion(e.id, &occs, next, now).await?;
            }
            if earliest != i64::MAX {
                self.handle.due_at(earliest);
            }
            if (n as i64) < EVENTS_PER_QUERY {
                return Ok(());
            }
        }
    }
}
