//! Writes outcomes back in batches (group commit): one transaction per delivery would cap the
//! engine at the disk's fsync rate.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::EngineHandle;
use crate::domain::now_ms;
use crate::store::{Next, Outcome, Store};

const MAX_BATCH: usize = 2_000;

pub struct Writer {
    pub store: Arc<dyn Store>,
    pub rx: mpsc::Receiver<Outcome>,
    pub handle: EngineHandle,
}

impl Writer {
    pub async fn run(mut self) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = self.rx.recv().await {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(o) => batch.push(o),
                    Err(_) => break,
                }
            }
            // Never drop outcomes: a write that fails is tried again. If the process dies first,
            // the leases expire and the occurrences are delivered again (at least once).
            let mut delay = Duration::from_millis(100);
            while let Err(e) = self.store.record_outcomes(&batch, now_ms()).await {
                tracing::error!(error = %e, outcomes = batch.len(), "recording outcomes failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            let earliest_retry = batch
                .iter()
                .filter_map(|o| match o {
                    Outcome::Attempted {
                        next: Next::Retry(at),
                        ..
                    } => Some(*at),
                    _ => None,
                })
                .min();
            if let Some(at) = earliest_retry {
                self.handle.due_at(at);
            }
            batch.clear();
        }
    }
}
