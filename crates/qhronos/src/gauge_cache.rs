//! The figures `/status` and `/metrics` read from the store (occurrence counts by status, the
//! oldest overdue occurrence, the expander's lag), cached for at most a second.
//!
//! Counting by status reads every occurrence row: at 10 million rows that is a scan per request,
//! and both routes are open to anonymous callers. So the figures are read at most once a second,
//! by one request at a time; every other request in that second gets the cached copy. While a
//! refresh is in flight, requests that find the copy stale get the previous one instead of
//! queueing behind the scan, so a request costs O(1) whatever the table holds.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::store::{Gauges, Result};

/// How old the cached figures may be before a request reads them again.
pub const MAX_AGE: Duration = Duration::from_secs(1);

pub struct GaugeCache {
    max_age: Duration,
    /// When the figures were read (the start of the read), and the figures.
    last: Mutex<Option<(Instant, Arc<Gauges>)>>,
    /// Held by the one request that refreshes.
    refresh: tokio::sync::Mutex<()>,
}

impl Default for GaugeCache {
    fn default() -> Self {
        GaugeCache::new(MAX_AGE)
    }
}

impl GaugeCache {
    pub fn new(max_age: Duration) -> GaugeCache {
        GaugeCache {
            max_age,
            last: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }

    fn last(&self) -> Option<(Instant, Arc<Gauges>)> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn fresh(&self) -> Option<Arc<Gauges>> {
        self.last()
            .filter(|(at, _)| at.elapsed() <= self.max_age)
            .map(|(_, g)| g)
    }

    /// The cached figures when fresh; otherwise `read` runs, in one caller at a time.
    pub async fn get<F, Fut>(&self, read: F) -> Result<Arc<Gauges>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Gauges>>,
    {
        if let Some(g) = self.fresh() {
            return Ok(g);
        }
        let _refreshing = match self.refresh.try_lock() {
            Ok(guard) => guard,
            Err(_) => match self.last() {
                // Someone is reading: the previous figures, rather than a queue behind the scan.
                Some((_, g)) => return Ok(g),
                // Nothing read yet: wait for the first read.
                None => self.refresh.lock().await,
            },
        };
        if let Some(g) = self.fresh() {
            return Ok(g);
        }
        let started = Instant::now();
        let g = Arc::new(read().await?);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((started, g.clone()));
        Ok(g)
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
    async fn many_requests_at_once_share_one_read_and_the_figures_are_at_most_a_second_old() {
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
        tokio::time::advance(Duration::from_millis(600)).await;
        let g = cache.get(reader(&reads, Duration::ZERO)).await.unwrap();
        assert_eq!(g.counts.pending, 2, "older than a second: read again");
    }

    #[tokio::test(start_paused = true)]
    async fn while_a_slow_read_runs_other_requests_get_the_previous_figures_at_once() {
        let cache = Arc::new(GaugeCache::default());
        let reads = Arc::new(AtomicUsize::new(0));
        cache.get(reader(&reads, Duration::ZERO)).await.unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        let slow = {
            let (cache, read) = (cache.clone(), reader(&reads, Duration::from_secs(5)));
            tokio::spawn(async move { cache.get(read).await.unwrap().counts.pending })
        };
        tokio::task::yield_now().await;
        let before = Instant::now();
        let g = cache.get(reader(&reads, Duration::ZERO)).await.unwrap();
        assert_eq!(g.counts.pending, 1, "the previous figures");
        assert_eq!(before.elapsed(), Duration::ZERO, "without waiting");
        assert_eq!(slow.await.unwrap(), 2);
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }
}
