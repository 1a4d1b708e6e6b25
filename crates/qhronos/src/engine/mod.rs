//! The engine: everything that turns stored events into deliveries, with the database as the
//! only source of truth (what is in memory is a cache of claims that a restart gives back).
//!
//! - [`expander`] moves each series' materialised window forward to `now + engine.look_ahead`,
//!   on one node at a time (the `expander` upkeep lease), using the pure functions of [`plan`].
//! - [`dispatcher`]: the claimer takes occurrences due within `engine.claim_horizon` under a
//!   lease (owner `node-<id>` plus a random `lease_token` per claim) and hands them to the
//!   [`timer`] thread, which fires each at its due time, never before it; the launcher turns a
//!   fired claim into a delivery task on a bounded pool.
//! - [`lease`] tracks the claims this node holds and renews those that have fired, so an
//!   attempt keeps its claim however long it runs; every renewal, release and outcome write is
//!   fenced by (owner, token), so a node whose claim was taken over writes nothing over the
//!   newer one.
//! - The writer (private) records outcomes in batches, one transaction per batch, retrying
//!   until they are stored.
//! - [`retention`] deletes finished rows past their configured age, archiving them first (started
//!   by `startup`, not by [`start`]).
//! - [`feeds`] refreshes the due calendar subscriptions, on one node at a time (the `feeds`
//!   upkeep lease; started by `startup`).
//! - [`backup`] takes scheduled online backups of the embedded store and rotates them (started
//!   by `startup` when `backup.every` is set).
//!
//! Delivery is at least once: a node that dies before its outcome is written loses its claims
//! when their leases expire, and another node delivers those occurrences again.

#![warn(missing_docs)]

pub mod backup;
pub mod dispatcher;
pub mod expander;
pub mod feeds;
pub mod lanes;
pub mod lease;
pub mod plan;
pub mod retention;
pub mod timer;
mod writer;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::config::Config;
use crate::delivery::Deliverer;
use crate::domain::event::Event;
use crate::domain::occurrence::{new_lease_token, Lease, NewOccurrence, OccStatus, Occurrence};
use crate::domain::{now_ms, Millis};
use crate::metrics::Metrics;
use crate::store::{Claimed, Store};
use dispatcher::Launcher;
use lease::Leases;
use timer::TimerHandle;

/// On a shared store a node holds at most this many claims per delivery slot
/// (`delivery.concurrency`): what it can start within a second or two.
const MAX_HELD_PER_SLOT: i64 = 4;

/// The lease of claims on a single-process store (see [`start`]).
const SINGLE_PROCESS_LEASE_MS: i64 = 3_600_000;

/// A message to the timer: drop held occurrences that the store cancelled or moved, so they
/// never fire from the stale copy. The claims dropped are handed back to the claimer, which
/// returns those still leased to this node to `pending` (the store's own change wins).
#[derive(Debug, Clone, Copy)]
pub enum Forget {
    /// All of the event's held occurrences (`after: None`), or with `after: Some(t)` only its
    /// first attempts (never attempted) scheduled later than `t` (ms since the epoch): the ones
    /// a re-plan replaced. Retries are kept either way.
    Event {
        /// The event whose occurrences are dropped.
        event_id: Uuid,
        /// See the variant: `None` drops everything of the event.
        after: Option<Millis>,
    },
    /// The one occurrence with this id, whatever its attempt.
    Occurrence(Uuid),
}

/// How the rest of the service talks to a running engine. Cheap to clone; every method returns
/// at once (none waits for the store or the timer thread); after shutdown they are harmless
/// (the timer thread is gone: nothing is held or fired).
#[derive(Clone)]
pub struct EngineHandle {
    dispatcher_wake: Arc<Notify>,
    expander_wake: Arc<Notify>,
    timer: TimerHandle,
    heartbeat: Arc<AtomicI64>,
    claim_horizon_ms: i64,
    /// `engine.look_ahead` (ms): how far ahead windows are materialised.
    look_ahead_ms: i64,
    lease_ms: i64,
    /// This node's id: its claims are leased to `Lease::owner_of(node)`.
    node: Uuid,
    /// The claims this node holds, renewed while held.
    leases: Arc<Leases>,
}

impl EngineHandle {
    /// Occurrences were added or became due, the earliest at `earliest` (ms since the epoch):
    /// wakes the claimer when that is within the claim horizon, so it is claimed now rather than
    /// at the next poll. Later ones are left to the poll (`engine.poll_interval`).
    pub fn due_at(&self, earliest: Millis) {
        if earliest <= now_ms() + self.claim_horizon_ms {
            self.dispatcher_wake.notify_one();
        }
    }

    /// Wakes the claimer for a pass now, whatever is due (it may have room for more claims).
    /// Wakes coalesce: several calls before the claimer runs make one pass.
    pub fn wake_claimer(&self) {
        self.dispatcher_wake.notify_one();
    }

    /// An event's window changed: wakes the expander for a pass now instead of at its next
    /// tick. Only the node holding the expander lease expands; on another node this wakes a
    /// loop that finds the lease taken and waits.
    pub fn expand_now(&self) {
        self.expander_wake.notify_one();
    }

    /// An event was just planned, its window materialised up to `next` (its `next_fire_at`):
    /// wakes the expander for a pass now only when `next` is already within the look-ahead
    /// (the plan stopped at its per-pass cap). A later `next` is the expander's work once the
    /// window reaches it; a pass now would find nothing to do for this event (so a stream of
    /// creates no longer runs an expander pass each).
    pub fn expand_if_behind(&self, next: Option<Millis>) {
        if next.is_some_and(|t| t <= now_ms().saturating_add(self.look_ahead_ms)) {
            self.expander_wake.notify_one();
        }
    }

    /// Drops the event's occurrences from the dispatcher's timer after the store cancelled them:
    /// all of them (paused, deleted), or with `after` the first attempts due later (re-planned).
    /// Call it after the store change commits. An occurrence the timer fired already is past
    /// recall: it may still be delivered, but its outcome no longer changes the occurrence
    /// (outcome writes are fenced by the claim, which the store change ended).
    pub fn forget_event(&self, event_id: Uuid, after: Option<Millis>) {
        self.timer.forget(Forget::Event { event_id, after });
    }

    /// Drops one occurrence from the dispatcher's timer (cancelled or moved), on the same terms
    /// as [`EngineHandle::forget_event`].
    pub fn forget_occurrence(&self, id: Uuid) {
        self.timer.forget(Forget::Occurrence(id));
    }

    /// When the claimer last started a pass (ms since the epoch; the engine's start before its
    /// first pass, so a `/health` asked right after start-up is not a stall). It passes at least
    /// every `engine.poll_interval` while healthy, up to ten times that while the store fails:
    /// `/health` reads a stale heartbeat as a stuck dispatcher.
    pub fn heartbeat(&self) -> Millis {
        self.heartbeat.load(Ordering::Relaxed)
    }

    /// Marks the occurrences of a new event that fall within the claim horizon as claimed by
    /// this node, so that the store inserts them leased ([`NewOccurrence::lease`]) and
    /// [`EngineHandle::hold`] can put them straight into the timer: no claim round trip between
    /// the create and the fire.
    /// Occurrences of pull events are never handed over: clients claim them.
    pub fn lease_near(&self, event: &Event, occs: &mut [NewOccurrence], now: Millis) {
        if event.action.queue().is_some() {
            return;
        }
        let token = new_lease_token();
        for o in occs.iter_mut() {
            if o.scheduled_at <= now.saturating_add(self.claim_horizon_ms) {
                o.lease = Some(Lease {
                    node: self.node,
                    until: now.saturating_add(self.lease_ms),
                    token,
                });
            }
        }
    }

    /// Hands the leased occurrences of a just-committed new event to the timer (those that
    /// [`EngineHandle::lease_near`] marked; the others are left to the claimer). Call it only
    /// once the insert has committed: it registers the claims as this node's and they fire
    /// from memory, with the same fencing as claims the claimer took.
    pub fn hold(&self, event: &Event, occs: &[NewOccurrence], now: Millis) {
        let event = Arc::new(event.clone());
        let held = occs
            .iter()
            .filter_map(|o| o.lease.map(|l| (o, l)))
            .map(|(o, lease)| Claimed {
                occ: Occurrence {
                    id: o.id,
                    event_id: o.event_id,
                    scheduled_at: o.scheduled_at,
                    status: OccStatus::Scheduled,
                    attempts: 0,
                    attempt_limit: o.attempt_limit,
                    next_attempt_at: Some(o.scheduled_at),
                    last_error: None,
                    created_at: now,
                    updated_at: now,
                    completed_at: None,
                    ends_at: o.ends_at,
                    caused_by: None,
                    cause: None,
                },
                event: event.clone(),
                lease_until: lease.until,
                token: lease.token,
            })
            .collect::<Vec<_>>();
        self.leases
            .hold(held.iter().map(|c| (c.occ.id, c.token, c.lease_until)));
        self.timer.hold(held);
    }
}

/// A running engine: its handle and the tasks that [`Engine::shutdown`] stops.
pub struct Engine {
    /// The handle the API uses; clones stay valid (and inert) after shutdown.
    pub handle: EngineHandle,
    /// Tasks that stop at once on shutdown (claimer, expander, upkeep): they are aborted, so
    /// they must keep nothing that only memory holds. `startup` adds its upkeep loops here.
    pub tasks: Vec<JoinHandle<()>>,
    /// Renews the leases of what is held; stops last, once the deliveries in flight are done.
    renewer: JoinHandle<()>,
    store: Arc<dyn Store>,
    launcher: Launcher,
    writer_flush: mpsc::Sender<oneshot::Sender<()>>,
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stopped {
    /// Claims the timer held and had not fired that the store returned to `pending` (still
    /// this node's at the time): any node claims them again at once.
    pub released: u64,
    /// Deliveries still running at the deadline: their claims stay leased, and they are
    /// delivered again once the leases expire (on any node), or at the next start on the
    /// embedded store, which releases every lease it finds.
    pub unfinished: usize,
}

impl Engine {
    /// Graceful stop: claims no more, hands back what the timer held, lets deliveries in flight
    /// finish up to `grace`, writes their outcomes, and returns the rest to `pending`.
    ///
    /// Order: abort [`Engine::tasks`]; stop the timer (nothing fires after it); wait up to
    /// `grace` for the deliveries in flight; flush the writer (every outcome handed to it is
    /// stored before this goes on); stop renewing; release the unfired claims. A delivery still
    /// running at the deadline keeps its claim: its lease expires and it is delivered again
    /// (at least once). `Err` only when releasing the unfired claims failed: they then come
    /// back when their leases expire.
    pub async fn shutdown(self, grace: Duration) -> anyhow::Result<Stopped> {
        for t in &self.tasks {
            t.abort();
        }
        let unfired = self.handle.timer.stop().await;
        let claims: Vec<(Uuid, i64)> = unfired.iter().map(|c| (c.occ.id, c.token)).collect();
        let unfinished = self.launcher.drain(grace).await;
        let (tx, rx) = oneshot::channel();
        if self.writer_flush.send(tx).await.is_ok() {
            let _ = rx.await;
        }
        self.renewer.abort();
        let owner = Lease::owner_of(self.handle.node);
        let released = self.store.release_claims(&owner, &claims, now_ms()).await?;
        self.handle.leases.release(claims);
        Ok(Stopped {
            released,
            unfinished,
        })
    }
}

/// Starts the expander, the claimer, the timer thread, the lease renewer and the outcome
/// writer, under a fresh node id (a restart is a new node: it takes over nothing of the old
/// one's but what `Store::release_leases` returned to `pending` or whose leases expired).
/// Must run inside a Tokio runtime. `Err` only when the timer thread cannot be spawned.
///
/// The claims' lease is `engine.lease`, or at least an hour on a single-process store (no
/// other node can take a claim over there, and a restart releases them all). On a shared store
/// the node holds at most `delivery.concurrency × 4` claims (at least `engine.claim_batch`),
/// leaving a backlog it cannot start soon to the other nodes.
pub fn start(
    store: Arc<dyn Store>,
    config: &Config,
    deliverer: Arc<Deliverer>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Engine> {
    let dispatcher_wake = Arc::new(Notify::new());
    let expander_wake = Arc::new(Notify::new());
    // Started now, not at 0: the first pass may come after the server is listening.
    let heartbeat = Arc::new(AtomicI64::new(now_ms()));
    let (out_tx, out_rx) = mpsc::channel(16_384);
    let (flush_tx, flush_rx) = mpsc::channel(4);
    let node = Uuid::now_v7();
    // The embedded store is one process: no other node can take a claim over, and a restart
    // releases them all. Its claims last as long as the process needs them (an hour, renewed
    // past that), so its single writer spends nothing renewing a backlog.
    let lease_ms = if store.single_process() {
        config.engine.lease.as_millis().max(SINGLE_PROCESS_LEASE_MS)
    } else {
        config.engine.lease.as_millis()
    };
    let leases = Arc::new(Leases::new(Lease::owner_of(node), lease_ms));
    let launcher = dispatcher::Launcher::new(
        config,
        deliverer,
        out_tx.clone(),
        metrics.clone(),
        leases.clone(),
    );
    let fire = launcher.clone();
    let (dropped_tx, dropped_rx) = mpsc::unbounded_channel();
    let timer = timer::start(
        move |c| fire.launch(c),
        move |ids| {
            let _ = dropped_tx.send(ids);
        },
    )?;
    let handle = EngineHandle {
        dispatcher_wake: dispatcher_wake.clone(),
        expander_wake: expander_wake.clone(),
        timer: timer.clone(),
        heartbeat: heartbeat.clone(),
        claim_horizon_ms: config.engine.claim_horizon.as_millis(),
        look_ahead_ms: config.engine.look_ahead.as_millis(),
        lease_ms,
        node,
        leases: leases.clone(),
    };
    let writer = writer::Writer {
        store: store.clone(),
        rx: out_rx,
        flush: flush_rx,
        handle: handle.clone(),
        leases: leases.clone(),
    };
    let expander = expander::Expander {
        store: store.clone(),
        config: config.clone(),
        wake: expander_wake,
        handle: handle.clone(),
        metrics: metrics.clone(),
    };
    let claimer = dispatcher::Claimer {
        store: store.clone(),
        config: config.clone(),
        timer,
        wake: dispatcher_wake,
        outcomes: out_tx,
        heartbeat,
        metrics,
        owner: Lease::owner_of(node),
        dropped: dropped_rx,
        leases: leases.clone(),
        max_held: (!store.single_process()).then(|| {
            let concurrency = i64::try_from(config.delivery.concurrency).unwrap_or(i64::MAX);
            concurrency
                .saturating_mul(MAX_HELD_PER_SLOT)
                .max(config.engine.claim_batch)
        }),
    };
    let renewer = lease::Renewer {
        store: store.clone(),
        leases,
    };
    // The writer is not in `tasks`: shutdown flushes it rather than stopping it.
    tokio::spawn(writer.run());
    Ok(Engine {
        handle,
        tasks: vec![tokio::spawn(expander.run()), tokio::spawn(claimer.run())],
        renewer: tokio::spawn(renewer.run()),
        store,
        launcher,
        writer_flush: flush_tx,
    })
}
