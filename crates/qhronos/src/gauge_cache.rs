//! The figures `/status` and `/metrics` read from the store (occurrence counts by status, the
//! oldest overdue occurrence, the expander's lag), read at most once a second and shared.
//!
//! Counting by status reads every occurrence row: at 10 million rows that is a scan of about
//! 0.6 s (2 s in a debug build) per request, and both routes are open to anonymous callers. So
//! a request is served from the cached copy: when the copy is older than a second, the request
//! that notices starts one read in the background (one at a time) and still answers with the
//! copy at once. Only the very first request waits for a read. A request therefore costs O(1)
//! whatever the table holds, and the figures are at most a second plus one read old.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::store::{Gauges, Result};

/// How old the cached figures may be before a request starts a new read.
pub const MAX_AGE: Duration = Duration::from_secs(1);

type Slot = Arc<Mutex<Option<(Instant, Arc<Gauges>)>>>;

pub struct GaugeCache {
    max_age: Duration,
    /// When the figures were read (the start of the read), and the figures.
    last: Slot,
    /// Held by the one read in flight.
    refresh: Arc<tokio::sync::Mutex<()>>,
}

impl Default for GaugeCache {
    fn default() -> Self {
        GaugeCache::new(MAX_AGE)
    }
}

fn load(slot: &Slot) -> Option<(Instant, Arc<Gauges>)> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

impl GaugeCache {
    pub fn new(max_age: Duration) -> GaugeCache {
        GaugeCache {
            max_age,
            last: Arc::new(Mutex::new(None)),
            refresh: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn fresh(&self) -> Option<Arc<Gauges>> {
        load(&self.last)
            .filter(|(at, _)| at.elapsed() <= self.max_age)
            .map(|(_, g)| g)
    }

    /// The cached figures; when they are stale, `read` runs (one at a time) in the background.
    /// Only when nothing was ever read does the caller wait for it.
    pub async fn get<F, Fut>(&self, read: F) -> Result<Arc<Gauges>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Gauges>> + Send + 'static,
    {
        if let Some(g) = self.fresh() {
            return Ok(g);
        }
        let guard = match self.refresh.clone().try_lock_owned() {
            Ok(guard) => guard,
            Err(_) => match load(&self.last) {
                // A read is in flight: the previous figures meanwhile.
                Some((_, g)) => return Ok(g),
                // The first read is in flight: wait for it.
                None => self.refresh.clone().lock_owned().await,
            },
        };
        if let Some(g) = self.fresh() {
            return Ok(g);
        }
        let fut = read();
        let slot = self.last.clone();
        let task = async move {
            let started = Instant::now();
            let read = fut.await.map(Arc::new);
            if let Ok(g) = &read {
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some((started, g.clone()));
            }
            drop(guard);
            read
        };
        match load(&self.last) {
            Some((_, stale)) => {
                tokio::spawn(async move {
                    if let Err(e) = task.await {
                        tracing::warn!(error = %e, "reading the store's figures for /status failed");
                    }
                });
                Ok(stale)
            }
            None => task.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn reader(
        reads: &Arc<AtomicUsize>,
        took: Duration,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<Gauges>> + Send>> {
        let reads = reads.clone();
        move || {
            Box::pin(async move {
                let n = reads.fetch_add(1, Ordering::SeqCst) as i64 + 1;
                tokio::time::sleep(took).await;
                let mut g = Gauges::default();
                g.counts.pending = n;
                Ok(g)
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn many_requests_at_once_share_one_read_and_a_stale_copy_is_refreshed_behind_them() {
        let cache = Arc::new(GaugeCache::default());
        let reads = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (cache, read) = (cache.clone(), reader(&reads, Duration::from_millis(300)));
                tokio::spawn(async move { cache.get(read).await.unwrap().counts.pending })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 1);
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1, "one read for 50 requests");
        tokio::time::advance(Duration::from_millis(500)).await;
        let g = cache.get(reader(&reads, Duration::ZERO)).await.unwrap();
        assert_eq!((g.counts.pending, reads.load(Ordering::SeqCst)), (1, 1));
        // Older than a second: this request still gets the copy, and starts a read.
        tokio::time::advance(Duration::from_millis(600)).await;
        let g = cache.get(reader(&reads, Duration::ZERO)).await.unwrap();
        assert_eq!(g.counts.pending, 1);
        tokio::time::sleep(Duration::from_millis(1)).await;
        let g = cache.get(reader(&reads, Duration::ZERO)).await.unwrap();
        assert_eq!(g.counts.pending, 2, "the read behind it landed");
    }

    #[tokio::test(start_paused = true)]
    async fn while_a_slow_read_runs_every_request_gets_the_previous_figures_at_once() {
        let cache = Arc::new(GaugeCache::default());
        let reads = Arc::new(AtomicUsize::new(0));
        cache.get(reader(&reads, Duration::ZERO)).await.unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        let before = Instant::now();
        for _ in 0..10 {
            let g = cache
                .get(reader(&reads, Duration::from_secs(5)))
                .await
                .unwrap();
            assert_eq!(g.counts.pending, 1, "the previous figures");
        }
        assert_eq!(before.elapsed(), Duration::ZERO, "without waiting");
        tokio::task::yield_now().await;
        assert_eq!(
            reads.load(Ordering::SeqCst),
            2,
            "one read in flight, not ten"
        );
        tokio::time::sleep(Duration::from_secs(6)).await;
        let g = cache.get(reader(&reads, Duration::ZERO)).await.unwrap();
        assert_eq!(g.counts.pending, 2);
    }
}
