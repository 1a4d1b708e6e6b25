//! The dispatcher: the claimer takes occurrences due within a short horizon under a lease and
//! hands them to the timer thread; the launcher turns each one the timer fires into a delivery
//! task; outcomes go to the batching writer.
//!
//! The claimer claims in batches of `engine.claim_batch`, at once again while batches come back
//! full, else every `engine.poll_interval` or when woken. On a shared store it holds no more
//! claims than the node can start soon (see [`crate::engine::start`]). It applies the misfire
//! policy to what it claims ([`split_misfires`]), and returns to `pending` what it finds of a
//! paused event or what the timer dropped.
//!
//! A fired occurrence waits in its target's lane (`host:port`; see [`super::lanes`]) for one of
//! the target's workers (`delivery.per_target_concurrency`), then every attempt for a global
//! slot (`delivery.concurrency`); it starts only
//! while its claim is still this node's with more than [`Leases::margin_ms`] of lease left;
//! otherwise it is left, unattempted, to the next claim once the lease expires. Every attempt
//! made ends in exactly one [`Outcome`] sent to the writer; the send waits (backpressure) while
//! the writer's queue is full.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use super::lanes::Lanes;
use super::lease::Leases;
use super::timer::TimerHandle;
use crate::config::{Config, RetryDefaults};
use crate::delivery::{Delivered, Deliverer};
use crate::domain::event::EventStatus;
use crate::domain::occurrence::new_lease_token;
use crate::domain::policy::{instant_after, MisfireKind, Retry};
use crate::domain::{now_ms, Millis};
use crate::metrics::Metrics;
use crate::store::{ClaimDue, Claimed, Next, Outcome, Store};

/// More permits than deliveries can ever be in flight; shutdown takes them all to wait for the
/// last delivery.
const IN_FLIGHT_PERMITS: u32 = 1 << 24;

/// A fired claim waiting in its lane, with the permit that counts it in flight.
type Fired = (Claimed, OwnedSemaphorePermit);

/// Turns fired claims into deliveries: each goes to its target's lane, worked by at most
/// `delivery.per_target_concurrency` tasks per target (every action without a URL shares one
/// lane of `delivery.concurrency` tasks).
#[derive(Clone)]
pub struct Launcher {
    /// The runtime the delivery tasks run on (the launcher is called from the timer thread).
    pub runtime: tokio::runtime::Handle,
    /// Makes the attempts.
    pub deliverer: Arc<Deliverer>,
    /// To the writer; one outcome per attempt.
    pub outcomes: mpsc::Sender<Outcome>,
    /// The service-wide retry policy, under each event's own overrides.
    pub retry: RetryDefaults,
    /// Fire lateness and attempt figures.
    pub metrics: Arc<Metrics>,
    /// All deliveries at once (`delivery.concurrency`): an attempt holds one slot from its
    /// start to its end.
    pub slots: Arc<Semaphore>,
    /// One permit per delivery task alive, so shutdown can wait for them.
    pub in_flight: Arc<Semaphore>,
    /// The claims of this node, renewed while held.
    pub leases: Arc<Leases>,
    /// Fired claims waiting for a worker of their target.
    pub lanes: Arc<Lanes<Fired>>,
    /// Workers per target (`delivery.per_target_concurrency`).
    pub per_target: usize,
    /// Workers of the lane of actions without a URL (`delivery.concurrency`).
    pub concurrency: usize,
}

impl Launcher {
    /// A launcher on the current Tokio runtime (panics outside one, as
    /// `tokio::runtime::Handle::current` does: call it from [`crate::engine::start`]).
    pub fn new(
        config: &Config,
        deliverer: Arc<Deliverer>,
        outcomes: mpsc::Sender<Outcome>,
        metrics: Arc<Metrics>,
        leases: Arc<Leases>,
    ) -> Launcher {
        Launcher {
            runtime: tokio::runtime::Handle::current(),
            deliverer,
            outcomes,
            retry: config.retry.clone(),
            metrics,
            slots: Arc::new(Semaphore::new(config.delivery.concurrency)),
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT_PERMITS as usize)),
            leases,
            lanes: Arc::new(Lanes::default()),
            per_target: config.delivery.per_target_concurrency,
            concurrency: config.delivery.concurrency,
        }
    }

    /// Delivery tasks alive: fired and not yet done handing their outcome to the writer
    /// (queued for a slot included).
    pub fn in_flight(&self) -> usize {
        IN_FLIGHT_PERMITS as usize - self.in_flight.available_permits()
    }

    /// Waits until every delivery task has handed its outcome to the writer, or `grace` passed;
    /// returns how many were still running. While it waits, and for good once every task is
    /// done, [`Launcher::launch`] starts nothing (the occurrence stays leased and is delivered
    /// after its lease expires); shutdown stops the timer before calling it anyway.
    pub async fn drain(&self, grace: Duration) -> usize {
        match tokio::time::timeout(grace, self.in_flight.acquire_many(IN_FLIGHT_PERMITS)).await {
            Ok(Ok(all)) => {
                all.forget();
                0
            }
            _ => self.in_flight(),
        }
    }

    /// Starts the delivery of one occurrence whose time has come. Called on the timer thread:
    /// it only queues or spawns, never blocks. Does nothing for a claim that [`Leases`] no
    /// longer holds under its token (taken over, released, or replaced by a newer claim), so a
    /// stale copy in the timer never fires; from here on the claim is renewed until its outcome
    /// is written.
    pub fn launch(&self, c: Claimed) {
        // From now on (queued behind a busy target, then in flight, then until its outcome is
        // written) the claim is renewed; not while it waited in the timer, which fires within
        // the claim horizon, shorter than the lease.
        if self.leases.start(c.occ.id, c.token).is_none() {
            tracing::debug!(occurrence_id = %c.occ.id, "the claim is no longer this node's; not firing it");
            return;
        }
        let Ok(alive) = self.in_flight.clone().try_acquire_owned() else {
            // Shutting down: the occurrence stays leased and is delivered after the restart.
            return;
        };
        let target = Deliverer::target_of(&c.event.action);
        let cap = if target.is_some() {
            self.per_target
        } else {
            self.concurrency
        };
        if let Some(first) = self.lanes.admit(&target, (c, alive), cap) {
            self.spawn_worker(target, first);
        }
    }

    /// A worker of `target`'s lane: delivers `first`, then whatever waits in the lane, and
    /// stops when it is empty. A delivery that panics is logged and recorded as a failed
    /// attempt (retried by the event's policy), and the worker goes on with the next one: a
    /// lane never loses its workers, and the claim is not left renewed without an outcome.
    fn spawn_worker(&self, target: Option<String>, first: Fired) {
        let me = self.clone();
        self.runtime.spawn(async move {
            let mut next = Some(first);
            while let Some((c, alive)) = next {
                let started = now_ms();
                if AssertUnwindSafe(me.deliver(&c)).catch_unwind().await.is_err() {
                    tracing::error!(occurrence_id = %c.occ.id, "a delivery panicked; recording it as a failed attempt");
                    let d = Delivered::failed(
                        c.occ.attempts + 1,
                        started,
                        "qhronosd failed while delivering (see its log)".into(),
                        false,
                    );
                    let retry = c.event.retry.resolve(&me.retry);
                    me.record(&c, d, &retry).await;
                }
                drop(alive);
                next = me.lanes.next(&target);
            }
        });
    }

    async fn deliver(&self, c: &Claimed) {
        let attempt = c.occ.attempts + 1;
        let due = c.occ.next_attempt_at.unwrap_or(c.occ.scheduled_at);
        // The lane capped the target already; now a global slot.
        let Ok(_slot) = self.slots.acquire().await else {
            return;
        };
        let retry = c.event.retry.resolve(&self.retry);
        // Never start an attempt on a claim that is no longer this node's (renewal found it
        // taken over, or the event changed), nor on one whose lease is about to run out
        // unrenewed (the store is away): past it, another node may take the occurrence. Leave
        // it: once the lease expires, the next claim (of any node) takes it over. A claim that
        // is renewed lives as long as the attempt, however long that is.
        let Some(until) = self.leases.until(c.occ.id, c.token) else {
            tracing::debug!(occurrence_id = %c.occ.id, "the claim is no longer this node's; not firing it");
            return;
        };
        if now_ms() + self.leases.margin_ms() >= until {
            tracing::warn!(occurrence_id = %c.occ.id, "the lease runs out unrenewed; leaving it to the next claim");
            self.leases.release([(c.occ.id, c.token)]);
            return;
        }
        let timeout_ms = i64::try_from(retry.timeout.as_millis()).unwrap_or(i64::MAX / 2);
        if attempt == 1 {
            let late_us = super::timer::now_us() - due * 1000;
            self.metrics.fire_late(late_us);
        }
        let d = self
            .deliverer
            .deliver(
                &c.event,
                &c.occ,
                attempt,
                Duration::from_millis(timeout_ms.unsigned_abs()),
            )
            .await;
        self.record(c, d, &retry).await;
    }

    /// Sends the outcome of attempt `d` at `c` to the writer, with what follows it by `retry`.
    async fn record(&self, c: &Claimed, d: Delivered, retry: &Retry) {
        let attempt = d.attempt.attempt;
        let next = next_step(&d, attempt, c.occ.attempt_limit, retry, now_ms());
        let outcome = match next {
            Next::Completed => "completed",
            Next::Retry(_) => "retry",
            Next::Failed => "failed",
        };
        let action = c.event.action.kind();
        self.metrics
            .attempted(action, d.attempt.duration_ms, outcome);
        tracing::debug!(occurrence_id = %c.occ.id, attempt, status = ?d.attempt.status_code, ?next, "attempt finished");
        let gone = d.gone;
        let o = Outcome::Attempted {
            occurrence_id: c.occ.id,
            event_id: c.event.id,
            scheduled_at: c.occ.scheduled_at,
            attempt: d.attempt,
            next,
            pause_event: (gone && c.event.schedule.is_some())
                .then(|| "the receiver answered 410 Gone".to_string()),
            token: c.token,
        };
        let _ = self.outcomes.send(o).await;
    }
}

/// Claims due occurrences into the timer.
pub struct Claimer {
    /// Where the claims are taken.
    pub store: Arc<dyn Store>,
    /// `engine.*` (batch, horizon, poll interval, misfire threshold) and the misfire defaults.
    pub config: Config,
    /// Where the claims go to wait for their due time.
    pub timer: TimerHandle,
    /// [`crate::engine::EngineHandle::due_at`] and `wake_claimer` notify this: a pass now.
    pub wake: Arc<Notify>,
    /// To the writer: the `missed` outcomes of the misfire policy.
    pub outcomes: mpsc::Sender<Outcome>,
    /// Set to the time (ms) each pass starts; read by [`crate::engine::EngineHandle::heartbeat`].
    pub heartbeat: Arc<AtomicI64>,
    /// Claim and misfire figures.
    pub metrics: Arc<Metrics>,
    /// This node's `lease_owner` (`node-<uuid>`), the same as [`Leases::owner`].
    pub owner: String,
    /// Occurrences the timer dropped (their event changed, possibly through another node)
    /// while still leased to this node.
    pub dropped: mpsc::UnboundedReceiver<Vec<(Uuid, i64)>>,
    /// The node's claims: every claim taken is registered here before it reaches the timer.
    pub leases: Arc<Leases>,
    /// Most claims held at once (`None`: no cap, for a single-process store).
    pub max_held: Option<i64>,
}

impl Claimer {
    /// Claims until aborted (shutdown aborts it). A failed pass is logged and retried after
    /// `poll_interval` times the number of failures in a row (at most ten times); after a store
    /// failure no expired lease is taken over for one lease (see [`Leases::expired_before`]).
    pub async fn run(mut self) {
        tracing::info!(owner = %self.owner, "dispatcher started");
        let poll = self.config.engine.poll_interval.as_millis();
        let mut failures = 0u32;
        loop {
            let now = now_ms();
            self.heartbeat.store(now, Ordering::Relaxed);
            let wait = match self.claim(now).await {
                Ok(true) => 0,
                Ok(false) => {
                    failures = 0;
                    poll
                }
                Err(e) => {
                    failures += 1;
                    tracing::error!(error = %e, "claiming occurrences failed");
                    poll * i64::from(failures.min(10))
                }
            };
            if wait == 0 {
                tokio::task::yield_now().await;
                continue;
            }
            let wait = Duration::from_millis(u64::try_from(wait).unwrap_or(0));
            let wake = self.wake.clone();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = wake.notified() => {}
                Some(ids) = self.dropped.recv() => self.release_dropped(ids).await,
            }
        }
    }

    /// Returns dropped occurrences still leased to this node to `pending` at once, so that they
    /// are claimed again as they are now (those the store cancelled or moved are not leased
    /// any more and stay as they are), rather than after the lease expires.
    async fn release_dropped(&mut self, mut ids: Vec<(Uuid, i64)>) {
        while let Ok(more) = self.dropped.try_recv() {
            ids.extend(more);
        }
        let now = now_ms();
        if let Err(e) = self.store.release_claims(&self.owner, &ids, now).await {
            self.leases.store_failed(now);
            tracing::warn!(error = %e, "releasing dropped claims failed; their leases expire instead");
        }
        // Either way they are no longer held here: no renewal keeps them.
        self.leases.release(ids);
    }

    /// Claims a batch; returns true when the batch was full (more may be waiting).
    async fn claim(&self, now: Millis) -> anyhow::Result<bool> {
        let e = &self.config.engine;
        // A node holds no more claims than it can start soon (on a shared store): a backlog it
        // cannot deliver within its lease stays in the store for the other nodes, instead of
        // being renewed (or, when renewal cannot keep up, taken over mid-attempt).
        let batch = match self.max_held {
            Some(max) => {
                let room = max - self.leases.len() as i64;
                if room <= 0 {
                    self.leases.set_starved();
                    return Ok(false);
                }
                e.claim_batch.min(room)
            }
            None => e.claim_batch,
        };
        let spec = ClaimDue {
            owner: &self.owner,
            token: new_lease_token(),
            due_before: now.saturating_add(e.claim_horizon.as_millis()),
            lease_until: now.saturating_add(self.leases.lease_ms),
            expired_before: self.leases.expired_before(now),
            limit: batch,
            now,
        };
        let claimed = match self.store.claim_due(&spec).await {
            Ok(c) => c,
            Err(err) => {
                self.leases.store_failed(now);
                return Err(err.into());
            }
        };
        self.leases
            .hold(claimed.iter().map(|c| (c.occ.id, c.token, c.lease_until)));
        let full = claimed.len() as i64 >= batch;
        if !claimed.is_empty() {
            self.metrics.claimed(claimed.len());
        }
        // An expired lease of a paused event's occurrence (its node died before handing it
        // back): held by the pause, so back to `pending` rather than into the timer.
        let (claimed, paused): (Vec<Claimed>, Vec<Claimed>) = claimed
            .into_iter()
            .partition(|c| c.event.status != EventStatus::Paused);
        if !paused.is_empty() {
            let ids: Vec<(Uuid, i64)> = paused.iter().map(|c| (c.occ.id, c.token)).collect();
            let released = self.store.release_claims(&self.owner, &ids, now).await;
            self.leases.release(ids);
            released?;
        }
        let (hold, missed) = split_misfires(claimed, now, &self.config);
        for c in missed {
            self.metrics.delivery("missed", c.event.action.kind());
            let o = Outcome::Missed {
                occurrence_id: c.occ.id,
                event_id: c.event.id,
                scheduled_at: c.occ.scheduled_at,
                token: c.token,
            };
            if self.outcomes.send(o).await.is_err() {
                anyhow::bail!("outcome writer stopped");
            }
        }
        self.timer.hold(hold);
        Ok(full)
    }
}

/// Applies the misfire policy to a claimed batch as of `now` (ms): returns (what to fire, what
/// was missed), each in the batch's order. Only first attempts later than
/// `engine.misfire_threshold` are subject to it (retries always fire); one older than the
/// event's catch-up window is missed whatever the policy; `skip` misses every late one,
/// `fire_all` fires them all, `fire_once` fires only the newest late occurrence of each event
/// in this batch. Pure: nothing is written.
pub fn split_misfires(
    claimed: Vec<Claimed>,
    now: Millis,
    config: &Config,
) -> (Vec<Claimed>, Vec<Claimed>) {
    let threshold = config.engine.misfire_threshold.as_millis();
    let is_late = |c: &Claimed| c.occ.attempts == 0 && now - c.occ.scheduled_at > threshold;
    let mut newest_late: HashMap<Uuid, Millis> = HashMap::new();
    for c in claimed.iter().filter(|c| is_late(c)) {
        let t = newest_late.entry(c.event.id).or_insert(c.occ.scheduled_at);
        *t = (*t).max(c.occ.scheduled_at);
    }
    claimed.into_iter().partition(|c| {
        if !is_late(c) {
            return true;
        }
        let (kind, window) = c.event.misfire.resolve(&config.misfire);
        let too_old =
            now - c.occ.scheduled_at > i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let missed = too_old
            || match kind {
                MisfireKind::Skip => true,
                MisfireKind::FireAll => false,
                MisfireKind::FireOnce => newest_late.get(&c.event.id) != Some(&c.occ.scheduled_at),
            };
        !missed
    })
}

/// What follows attempt number `attempt` (1-based) of `limit`, finished at `now` (ms): done on
/// success; the dead-letter list (`failed`) on a permanent failure (410 Gone, a refused target,
/// a body that cannot render) or after the last attempt; else a retry at `now` plus the
/// receiver's `Retry-After` (capped by `retry.max_delay`) or the backoff delay with its
/// jitter, never before `now`. Pure apart from the jitter.
pub fn next_step(d: &Delivered, attempt: u32, limit: u32, retry: &Retry, now: Millis) -> Next {
    if d.success {
        Next::Completed
    } else if d.permanent || attempt >= limit {
        Next::Failed
    } else {
        let delay = retry.next_delay(attempt, d.retry_after);
        Next::Retry(instant_after(now, delay))
    }
}
