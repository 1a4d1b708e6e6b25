//! The engine: the expander turns series into occurrences, the dispatcher claims due ones into
//! an in-memory timer and fires them, and the writer records outcomes in batches.

pub mod dispatcher;
pub mod expander;
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

/// A message to the dispatcher: drop what the store cancelled or moved.
#[derive(Debug, Clone, Copy)]
pub enum Forget {
    /// All of the event's held occurrences, or with `after` its first attempts due later.
    Event {
        event_id: Uuid,
        after: Option<Millis>,
    },
    Occurrence(Uuid),
}

/// How the rest of the service talks to a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    dispatcher_wake: Arc<Notify>,
    expander_wake: Arc<Notify>,
    timer: TimerHandle,
    heartbeat: Arc<AtomicI64>,
    claim_horizon_ms: i64,
    lease_ms: i64,
    /// This node's id: its claims are leased to `Lease::owner_of(node)`.
    node: Uuid,
    /// The claims this node holds, renewed while held.
    leases: Arc<Leases>,
}

impl EngineHandle {
    /// Occurrences were added or became due; wakes the dispatcher when the earliest is near.
    pub fn due_at(&self, earliest: Millis) {
        if earliest <= now_ms() + self.claim_horizon_ms {
            self.dispatcher_wake.notify_one();
        }
    }

    /// The claimer looks again now (it may have room for more claims).
    pub fn wake_claimer(&self) {
        self.dispatcher_wake.notify_one();
    }

    /// An event's window changed; the expander looks again now.
    pub fn expand_now(&self) {
        self.expander_wake.notify_one();
    }

    /// Drops the event's occurrences from the dispatcher's timer after the store cancelled them:
    /// all of them (paused, deleted), or with `after` the first attempts due later (re-planned).
    pub fn forget_event(&self, event_id: Uuid, after: Option<Millis>) {
        self.timer.forget(Forget::Event { event_id, after });
    }

    /// Drops one occurrence from the dispatcher's timer (cancelled or moved).
    pub fn forget_occurrence(&self, id: Uuid) {
        self.timer.forget(Forget::Occurrence(id));
    }

    /// When the dispatcher last went round its loop (ms since the epoch; 0: never).
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

    /// Hands the leased occurrences of a just-committed new event to the timer.
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

pub struct Engine {
    pub handle: EngineHandle,
    /// Tasks that stop at once on shutdown (claimer, expander, upkeep).
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
    /// Held in the timer, not yet fired: returned to `pending` for the next start.
    pub released: u64,
    /// Deliveries still running at the deadline: they are delivered again after the restart.
    pub unfinished: usize,
}

impl Engine {
    /// Graceful stop: claims no more, hands back what the timer held, lets deliveries in flight
    /// finish up to `grace`, writes their outcomes, and returns the rest to `pending`.
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

/// Starts the expander, the claimer, the timer thread and the outcome writer.
pub fn start(
    store: Arc<dyn Store>,
    config: &Config,
    deliverer: Arc<Deliverer>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Engine> {
    let dispatcher_wake = Arc::new(Notify::new());
    let expander_wake = Arc::new(Notify::new());
    let heartbeat = Arc::new(AtomicI64::new(0));
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
