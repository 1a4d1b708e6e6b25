//! The engine: the expander turns series into occurrences, the dispatcher claims due ones into
//! an in-memory timer and fires them, and the writer records outcomes in batches.

pub mod dispatcher;
pub mod expander;
pub mod plan;
pub mod retention;
mod writer;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::config::Config;
use crate::delivery::Deliverer;
use crate::domain::{now_ms, Millis};
use crate::metrics::Metrics;
use crate::store::Store;

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
    forget: mpsc::UnboundedSender<Forget>,
    heartbeat: Arc<AtomicI64>,
    claim_horizon_ms: i64,
}

impl EngineHandle {
    /// Occurrences were added or became due; wakes the dispatcher when the earliest is near.
    pub fn due_at(&self, earliest: Millis) {
        if earliest <= now_ms() + self.claim_horizon_ms {
            self.dispatcher_wake.notify_one();
        }
    }

    /// An event's window changed; the expander looks again now.
    pub fn expand_now(&self) {
        self.expander_wake.notify_one();
    }

    /// Drops the event's occurrences from the dispatcher's timer after the store cancelled them:
    /// all of them (paused, deleted), or with `after` the first attempts due later (re-planned).
    pub fn forget_event(&self, event_id: Uuid, after: Option<Millis>) {
        let _ = self.forget.send(Forget::Event { event_id, after });
    }

    /// Drops one occurrence from the dispatcher's timer (cancelled or moved).
    pub fn forget_occurrence(&self, id: Uuid) {
        let _ = self.forget.send(Forget::Occurrence(id));
    }

    /// When the dispatcher last went round its loop (ms since the epoch; 0: never).
    pub fn heartbeat(&self) -> Millis {
        self.heartbeat.load(Ordering::Relaxed)
    }
}

pub struct Engine {
    pub handle: EngineHandle,
    pub tasks: Vec<JoinHandle<()>>,
}

/// Starts the expander, the dispatcher and the outcome writer.
pub fn start(
    store: Arc<dyn Store>,
    config: &Config,
    deliverer: Arc<Deliverer>,
    metrics: Arc<Metrics>,
) -> Engine {
    let dispatcher_wake = Arc::new(Notify::new());
    let expander_wake = Arc::new(Notify::new());
    let heartbeat = Arc::new(AtomicI64::new(0));
    let (forget_tx, forget_rx) = mpsc::unbounded_channel();
    let (out_tx, out_rx) = mpsc::channel(16_384);
    let handle = EngineHandle {
        dispatcher_wake: dispatcher_wake.clone(),
        expander_wake: expander_wake.clone(),
        forget: forget_tx,
        heartbeat: heartbeat.clone(),
        claim_horizon_ms: config.engine.claim_horizon.as_millis(),
    };
    let writer = writer::Writer {
        store: store.clone(),
        rx: out_rx,
        handle: handle.clone(),
    };
    let expander = expander::Expander {
        store: store.clone(),
        config: config.clone(),
        wake: expander_wake,
        handle: handle.clone(),
    };
    let dispatcher = dispatcher::Dispatcher::new(
        store,
        config.clone(),
        deliverer,
        dispatcher_wake,
        forget_rx,
        out_tx,
        heartbeat,
        metrics,
    );
    Engine {
        handle,
        tasks: vec![
            tokio::spawn(writer.run()),
            tokio::spawn(expander.run()),
            tokio::spawn(dispatcher.run()),
        ],
    }
}
