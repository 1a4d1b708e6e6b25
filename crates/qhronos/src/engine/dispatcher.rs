//! The dispatcher: claims occurrences due within a short horizon under a lease, holds them in a
//! min-heap and fires each at its due time; outcomes go to the batching writer.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify, Semaphore};
use uuid::Uuid;

use super::Forget;
use crate::config::Config;
use crate::delivery::{Delivered, Deliverer};
use crate::domain::policy::{MisfireKind, Retry};
use crate::domain::{now_ms, Millis};
use crate::metrics::Metrics;
use crate::store::{Claimed, Next, Outcome, Store};

/// Time kept between the end of an attempt (at most the delivery timeout) and the end of its
/// lease, for the outcome to reach the store.
pub const LEASE_MARGIN_MS: i64 = 1_000;

pub struct Dispatcher {
    store: Arc<dyn Store>,
    config: Config,
    deliverer: Arc<Deliverer>,
    wake: Arc<Notify>,
    forget: mpsc::UnboundedReceiver<Forget>,
    outcomes: mpsc::Sender<Outcome>,
    heartbeat: Arc<AtomicI64>,
    metrics: Arc<Metrics>,
    slots: Arc<Semaphore>,
    owner: String,
    heap: BinaryHeap<Reverse<(Millis, u64)>>,
    held: HashMap<u64, Claimed>,
    seq: u64,
    /// Held occurrences dropped by `forget` but still leased to this node: released at once,
    /// so that another node (or this one) claims them again without waiting out the lease.
    dropped: Vec<Uuid>,
}

impl Dispatcher {
    /// Wiring only: each argument is one of the engine's shared parts.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        config: Config,
        deliverer: Arc<Deliverer>,
        wake: Arc<Notify>,
        forget: mpsc::UnboundedReceiver<Forget>,
        outcomes: mpsc::Sender<Outcome>,
        heartbeat: Arc<AtomicI64>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let slots = Arc::new(Semaphore::new(config.delivery.concurrency));
        Dispatcher {
            store,
            config,
            deliverer,
            wake,
            forget,
            outcomes,
            heartbeat,
            metrics,
            slots,
            owner: format!("node-{}", Uuid::now_v7()),
            heap: BinaryHeap::new(),
            held: HashMap::new(),
            seq: 0,
            dropped: Vec::new(),
        }
    }

    pub async fn run(mut self) {
        tracing::info!(owner = %self.owner, "dispatcher started");
        let poll = self.config.engine.poll_interval.as_millis();
        let mut next_claim = 0;
        let mut failures = 0u32;
        loop {
            let now = now_ms();
            self.heartbeat.store(now, Ordering::Relaxed);
            self.drop_forgotten();
            if self.release_dropped(now).await {
                next_claim = now;
            }
            if now >= next_claim {
                match self.claim(now).await {
                    Ok(full) => {
                        failures = 0;
                        next_claim = if full { now } else { now + poll };
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::error!(error = %e, "claiming occurrences failed");
                        next_claim = now + (poll * i64::from(failures.min(10)));
                    }
                }
            }
            self.fire_due();
            let wake_at = self
                .heap
                .peek()
                .map_or(next_claim, |Reverse((t, _))| (*t).min(next_claim));
            let wait = Duration::from_millis(u64::try_from(wake_at - now_ms()).unwrap_or(0));
            if wait.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            let wake = self.wake.clone();
            let woke = tokio::select! {
                _ = tokio::time::sleep(wait) => None,
                _ = wake.notified() => Some(None),
                f = self.forget.recv() => Some(f),
            };
            match woke {
                Some(None) => next_claim = 0,
                Some(Some(f)) => self.forget_one(f),
                None => {}
            }
        }
    }

    /// Drops held occurrences that the store has just cancelled or moved.
    fn forget_one(&mut self, f: Forget) {
        match f {
            Forget::Event { event_id, after } => self.held.retain(|_, c| {
                let keep = c.event.id != event_id
                    || after.is_some_and(|after| c.occ.attempts > 0 || c.occ.scheduled_at <= after);
                if !keep {
                    self.dropped.push(c.occ.id);
                }
                keep
            }),
            Forget::Occurrence(id) => self.held.retain(|_, c| {
                let keep = c.occ.id != id;
                if !keep {
                    self.dropped.push(c.occ.id);
                }
                keep
            }),
        }
    }

    /// Returns dropped occurrences that are still leased to this node to `pending` (those the
    /// store cancelled or moved are not leased any more and stay as they are). True when some
    /// were released: they are due again.
    async fn release_dropped(&mut self, now: Millis) -> bool {
        if self.dropped.is_empty() {
            return false;
        }
        let ids = std::mem::take(&mut self.dropped);
        match self.store.release_claims(&self.owner, &ids, now).await {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::warn!(error = %e, "releasing dropped claims failed; their leases expire instead");
                false
            }
        }
    }

    fn drop_forgotten(&mut self) {
        while let Ok(f) = self.forget.try_recv() {
            self.forget_one(f);
        }
    }

    /// Claims a batch; returns true when the batch was full (more may be waiting).
    async fn claim(&mut self, now: Millis) -> anyhow::Result<bool> {
        let e = &self.config.engine;
        let batch = e.claim_batch;
        let claimed = self
            .store
            .claim_due(
                &self.owner,
                now + e.claim_horizon.as_millis(),
                now + e.lease.as_millis(),
                batch,
                now,
            )
            .await?;
        let full = claimed.len() as i64 >= batch;
        if !claimed.is_empty() {
            self.metrics.claimed(claimed.len());
        }
        let threshold = self.config.engine.misfire_threshold.as_millis();
        // fire_once: among late first attempts of one event, only the newest fires.
        let mut newest_late: HashMap<Uuid, Millis> = HashMap::new();
        for c in &claimed {
            if c.occ.attempts == 0 && now - c.occ.scheduled_at > threshold {
                let t = newest_late.entry(c.event.id).or_insert(c.occ.scheduled_at);
                *t = (*t).max(c.occ.scheduled_at);
            }
        }
        for c in claimed {
            let late = c.occ.attempts == 0 && now - c.occ.scheduled_at > threshold;
            if late {
                let (kind, window) = c.event.misfire.resolve(&self.config.misfire);
                let too_old = now - c.occ.scheduled_at
                    > i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
                let missed = too_old
                    || match kind {
                        MisfireKind::Skip => true,
                        MisfireKind::FireAll => false,
                        MisfireKind::FireOnce => {
                            newest_late.get(&c.event.id) != Some(&c.occ.scheduled_at)
                        }
                    };
                if missed {
                    self.metrics.delivery("missed", c.event.action.kind());
                    let o = Outcome::Missed {
                        occurrence_id: c.occ.id,
                        event_id: c.event.id,
                    };
                    if self.outcomes.send(o).await.is_err() {
                        anyhow::bail!("outcome writer stopped");
                    }
                    continue;
                }
            }
            let due = c.occ.next_attempt_at.unwrap_or(c.occ.scheduled_at);
            self.seq += 1;
            self.heap.push(Reverse((due, self.seq)));
            self.held.insert(self.seq, c);
        }
        Ok(full)
    }

    /// Fires everything whose time has come. Never early: an entry fires only when its due
    /// time is at or before now.
    fn fire_due(&mut self) {
        let now = now_ms();
        while let Some(Reverse((due, seq))) = self.heap.peek().copied() {
            if due > now {
                break;
            }
            self.heap.pop();
            let Some(c) = self.held.remove(&seq) else {
                continue;
            };
            self.spawn_delivery(c);
        }
    }

    fn spawn_delivery(&self, c: Claimed) {
        let slots = self.slots.clone();
        let deliverer = self.deliverer.clone();
        let outcomes = self.outcomes.clone();
        let retry = c.event.retry.resolve(&self.config.retry);
        let metrics = self.metrics.clone();
        let lease_ms = self.config.engine.lease.as_millis();
        tokio::spawn(async move {
            let Ok(_slot) = slots.acquire_owned().await else {
                return;
            };
            let _target = deliverer.target_permit(&c.event.action).await;
            // Never start an attempt that could outlive the lease: past it, another node may
            // have taken the occurrence (exactly once while nodes are healthy, even when a
            // backlog makes this one slow). Leave it: once the lease expires, the next claim
            // (of any node) takes it over.
            // (An event whose own timeout is longer than half the lease gets half the lease.)
            let timeout_ms = i64::try_from(retry.timeout.as_millis())
                .unwrap_or(i64::MAX / 2)
                .min(lease_ms / 2);
            if now_ms() + timeout_ms + LEASE_MARGIN_MS >= c.lease_until {
                tracing::warn!(occurrence_id = %c.occ.id, "the lease ends before this attempt could; leaving it to the next claim");
                return;
            }
            let attempt = c.occ.attempts + 1;
            let action = c.event.action.kind();
            if attempt == 1 {
                let due = c.occ.next_attempt_at.unwrap_or(c.occ.scheduled_at);
                let late_us = jiff::Timestamp::now().as_microsecond() - due * 1000;
                metrics.fire_late(late_us);
            }
            let d = deliverer
                .deliver(&c.event, &c.occ, attempt, retry.timeout)
                .await;
            let next = next_step(&d, attempt, c.occ.attempt_limit, &retry, now_ms());
            let outcome = match next {
                Next::Completed => "completed",
                Next::Retry(_) => "retry",
                Next::Failed => "failed",
            };
            metrics.attempted(action, d.attempt.duration_ms, outcome);
            tracing::debug!(occurrence_id = %c.occ.id, attempt, status = ?d.attempt.status_code, ?next, "attempt finished");
            let o = Outcome::Attempted {
                occurrence_id: c.occ.id,
                event_id: c.event.id,
                attempt: d.attempt,
                next,
            };
            let _ = outcomes.send(o).await;
        });
    }
}

/// What follows an attempt: done, a retry at a time, or the dead-letter list.
pub fn next_step(d: &Delivered, attempt: u32, limit: u32, retry: &Retry, now: Millis) -> Next {
    if d.success {
        Next::Completed
    } else if d.permanent || attempt >= limit {
        Next::Failed
    } else {
        let delay = match d.retry_after {
            Some(ra) => ra.min(retry.max_delay),
            None => retry.delay_after(attempt),
        };
        Next::Retry(now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2))
    }
}
