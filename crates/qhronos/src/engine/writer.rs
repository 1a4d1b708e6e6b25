//! Writes outcomes back in batches (group commit): one transaction per delivery would cap the
//! engine at the disk's fsync rate.
//!
//! A batch is whatever is queued when the writer gets to it, up to 2,000 outcomes: it never
//! waits for a batch to fill, so a lone outcome is written at once and a burst shares a
//! transaction. Each outcome applies only while the claim it names (owner, token) still holds
//! its row. A failed write is retried (50 ms, doubling to 500 ms) until it is stored: outcomes
//! are never dropped. After a write the claims it ended leave [`Leases`], a starved claimer is
//! woken, the claimer is told the earliest retry, and an event paused by a 410 Gone is dropped
//! from the timer. The queue in front of it is bounded (16,384): senders wait while it is full.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::lease::Leases;
use super::EngineHandle;
use crate::domain::{now_ms, Millis};
use crate::store::{Next, Outcome, Store};

const MAX_BATCH: usize = 2_000;

/// The outcome writer and its channels.
pub struct Writer {
    /// Where outcomes are recorded.
    pub store: Arc<dyn Store>,
    /// Outcomes from the delivery tasks and the claimer (misfires).
    pub rx: mpsc::Receiver<Outcome>,
    /// Shutdown asks for everything received so far to be written, and waits for the answer.
    pub flush: mpsc::Receiver<oneshot::Sender<()>>,
    /// Wakes the claimer and drops paused events from the timer.
    pub handle: EngineHandle,
    /// The node's claims: an outcome written ends its claim.
    pub leases: Arc<Leases>,
}

impl Writer {
    /// Writes until every sender of `rx` is gone. A flush request is answered once everything
    /// received before it is stored.
    pub async fn run(mut self) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut can_flush = true;
        loop {
            let mut flushed = None;
            tokio::select! {
                first = self.rx.recv() => match first {
                    Some(o) => batch.push(o),
                    None => return,
                },
                reply = self.flush.recv(), if can_flush => match reply {
                    Some(r) => flushed = Some(r),
                    None => can_flush = false,
                },
            }
            // Without a flush request, one batch; with one, until the channel is empty.
            loop {
                while batch.len() < MAX_BATCH {
                    match self.rx.try_recv() {
                        Ok(o) => batch.push(o),
                        Err(_) => break,
                    }
                }
                if batch.is_empty() {
                    break;
                }
                self.write(&batch).await;
                batch.clear();
                if flushed.is_none() {
                    break;
                }
            }
            if let Some(reply) = flushed {
                let _ = reply.send(());
            }
        }
    }

    /// Writes one batch, retrying until it is stored, then tells the engine what follows.
    async fn write(&self, batch: &[Outcome]) {
        // Never drop outcomes: a write that fails is tried again, soon (the claims stay this
        // node's while the renewer keeps their leases, and after a store failure the other
        // nodes leave expired leases alone for a lease period: the write must land within it).
        // If the process dies first, the leases expire and the occurrences are delivered again
        // (at least once).
        let owner = self.leases.owner.clone();
        let mut delay = Duration::from_millis(50);
        while let Err(e) = self.store.record_outcomes(&owner, batch, now_ms()).await {
            self.leases.store_failed(now_ms());
            tracing::error!(error = %e, outcomes = batch.len(), "recording outcomes failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
        self.leases.release(batch.iter().map(|o| match o {
            Outcome::Attempted {
                occurrence_id,
                token,
                ..
            }
            | Outcome::Missed {
                occurrence_id,
                token,
                ..
            } => (*occurrence_id, *token),
        }));
        if self.leases.take_starved() {
            self.handle.wake_claimer();
        }
        let mut earliest_retry: Option<Millis> = None;
        for o in batch {
            if let Outcome::Attempted {
                next,
                pause_event,
                event_id,
                ..
            } = o
            {
                if let Next::Retry(at) = next {
                    earliest_retry = Some(earliest_retry.map_or(*at, |e| e.min(*at)));
                }
                if pause_event.is_some() {
                    // The store cancelled what had not fired; drop it from the timer too.
                    self.handle.forget_event(*event_id, None);
                }
            }
        }
        if let Some(at) = earliest_retry {
            self.handle.due_at(at);
        }
    }
}
