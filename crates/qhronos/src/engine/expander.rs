//! The expander: moves each active series' materialised window forward to `now + look_ahead`.
//!
//! It reads only events whose `next_fire_at` falls inside the window (an index range), so a tick
//! costs in proportion to the occurrences it creates, not to the number of events.
//!
//! Each write is fenced by the event's plan generation: an update, pause or resume that
//! re-planned the event after it was read makes the write a no-op, so a stale plan never revives
//! what the re-plan cancelled nor moves the watermark back. Instances older than the catch-up
//! window (after a downtime) are written as `missed`, never dropped silently. The rule work runs
//! on the blocking pool under a step budget, resuming the rule's count from the stored mark.
//!
//! One node expands at a time: the holder of the `expander` upkeep lease (at least two ticks
//! long, renewed every tick). Inserts are idempotent (unique `(event_id, scheduled_at)`), so a
//! pass repeated after a crash or a lease hand-over creates no duplicate. A rule that cannot be
//! evaluated (e.g. over its step budget) stops its series, with an error in the log, rather than
//! costing a walk on every tick.

use std::sync::Arc;

use tokio::sync::Notify;

use super::plan::{plan_from, skipped, Plan, Skipped};
use super::EngineHandle;
use crate::config::Config;
use crate::domain::duration::Dur;
use crate::domain::event::Event;
use crate::domain::occurrence::NewOccurrence;
use crate::domain::{now_ms, Millis};
use crate::metrics::Metrics;
use crate::store::{ExpandState, Expansion, Store};

const EVENTS_PER_QUERY: i64 = 500;

/// The expander loop and its dependencies.
pub struct Expander {
    /// Events and the occurrences written for them.
    pub store: Arc<dyn Store>,
    /// `engine.look_ahead`, `engine.expander_interval`, `engine.lease`, and the misfire and
    /// retry defaults (catch-up window, attempt limit of new occurrences).
    pub config: Config,
    /// [`crate::engine::EngineHandle::expand_now`] notifies this: a pass now.
    pub wake: Arc<Notify>,
    /// Told the earliest new occurrence, so the claimer takes it in time.
    pub handle: EngineHandle,
    /// Counts the instants recorded as `missed`.
    pub metrics: Arc<Metrics>,
}

/// The rule work for one event: what it skipped (older than the catch-up window) and what to
/// materialise from there to `until`.
fn work(
    e: &Event,
    st: ExpandState,
    from: Millis,
    floor: Millis,
    until: Millis,
    window: &str,
) -> Result<(Skipped, Plan), String> {
    let mut after = from - 1;
    let mut mark = st.mark;
    let mut skip = Skipped::default();
    if floor > after {
        skip = skipped(e, after, mark, floor, window)?;
        mark = skip.mark;
        after = floor;
    }
    let p = plan_from(e, Some(after), mark, until)?;
    Ok((skip, p))
}

impl Expander {
    /// Every `engine.expander_interval`, or at once when woken: takes or renews the expander
    /// lease and, while this node holds it, runs a [`Expander::tick`]. A failed tick or lease
    /// call is logged and tried again at the next one. Runs until aborted.
    pub async fn run(self) {
        let owner = format!("expander-{}", uuid::Uuid::now_v7());
        loop {
            // One node expands at a time; a holder that dies is replaced once its lease expires.
            // The lease outlasts two ticks: `engine.lease` (a few seconds, sized for claims) is
            // shorter than the tick, and a lease that lapsed between ticks would pass the
            // expander from node to node on every pass.
            let now = now_ms();
            let lease = self
                .config
                .engine
                .lease
                .as_millis()
                .max(2 * self.config.engine.expander_interval.as_millis());
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

    /// One pass: every active event whose next instance is within `now + engine.look_ahead`,
    /// 500 events per query, until a query returns fewer. Each event's write is one store call, fenced
    /// by its plan generation (a stale one writes nothing). Materialises at most
    /// [`super::plan::MAX_PER_PASS`] occurrences per event per query; the rest come with a later
    /// query or the next tick. `Err` on the first store error: what was written stays written, the
    /// rest waits for the next tick.
    pub async fn tick(&self) -> anyhow::Result<()> {
        loop {
            let now = now_ms();
            let until = now + self.config.engine.look_ahead.as_millis();
            let events = self.store.events_to_expand(until, EVENTS_PER_QUERY).await?;
            let n = events.len();
            let mut earliest = i64::MAX;
            for (e, st) in events {
                let Some(from) = e.next_fire_at else { continue };
                let window = e.misfire.resolve(&self.config.misfire).1;
                let floor = now - i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
                let ev = e.clone();
                let win = Dur(window).to_string();
                let res =
                    tokio::task::spawn_blocking(move || work(&ev, st, from, floor, until, &win))
                        .await
                        .map_err(|e| anyhow::anyhow!("expansion task failed: {e}"))?;
                let (skip, p) = match res {
                    Ok(x) => x,
                    Err(err) => {
                        // Stopping the series (rather than retrying every tick) keeps a rule
                        // that cannot be evaluated from costing a walk per tick.
                        tracing::error!(event_id = %e.id, error = %err, "cannot expand event; stopping its series");
                        let none = Plan {
                            instants: Vec::new(),
                            next: None,
                            mark: None,
                        };
                        (Skipped::default(), none)
                    }
                };
                let limit = e.retry.resolve(&self.config.retry).max_attempts;
                let occs: Vec<_> = p
                    .instants
                    .iter()
                    .map(|t| NewOccurrence::of(&e, *t, limit))
                    .collect();
                let missed: Vec<_> = skip
                    .rows
                    .into_iter()
                    .map(|(t, why)| (NewOccurrence::of(&e, t, limit), why))
                    .collect();
                let x = Expansion {
                    gen: st.gen,
                    occurrences: &occs,
                    missed: &missed,
                    next_fire_at: p.next,
                    mark: p.mark,
                };
                if self.store.save_expansion(e.id, &x, now).await? {
                    if let Some(first) = p.instants.first() {
                        earliest = earliest.min(*first);
                    }
                    if skip.count > 0 {
                        tracing::warn!(event_id = %e.id, skipped = skip.count, "instances older than the catch-up window recorded as missed");
                        self.metrics
                            .delivery_n("missed", e.action.kind(), skip.count);
                    }
                }
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
