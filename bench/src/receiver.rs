//! The webhook receiver: an axum server on 127.0.0.1:0 in its own multi-threaded runtime (so
//! the load generator never delays an arrival timestamp). It answers 200 at once and records
//! the arrival wall-clock time and the body's ids and `scheduled_at`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;

/// Wall clock, ns since the Unix epoch.
pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

#[derive(Clone, Debug)]
pub struct Delivery {
    pub arrival_ns: i128,
    /// `scheduled_at` of the body, ns since the epoch (None if absent or unparsable).
    pub scheduled_ns: Option<i128>,
    pub occurrence_id: String,
    pub event_id: String,
    pub webhook_id: String,
    pub attempt: u64,
}

#[derive(Default)]
struct Inner {
    recs: Mutex<(Vec<Delivery>, HashSet<String>)>,
    /// Requests received.
    total: AtomicUsize,
    /// Distinct event ids received.
    distinct_events: AtomicUsize,
    /// Requests whose body could not be read as the expected JSON.
    bad: AtomicUsize,
}

pub struct Receiver {
    inner: Arc<Inner>,
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Receiver {
    /// Starts the receiver in a thread of its own that owns its runtime (so it can be started
    /// and stopped from async code).
    pub fn start() -> anyhow::Result<Receiver> {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/hook", post(hook))
            .fallback(hook)
            .with_state(inner.clone());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("receiver".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("receiver-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return drop(addr_tx.send(Err(anyhow::Error::from(e)))),
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
                        Ok(l) => l,
                        Err(e) => return drop(addr_tx.send(Err(e.into()))),
                    };
                    let _ = addr_tx.send(listener.local_addr().map_err(Into::into));
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stop_rx.await;
                        })
                        .await;
                });
                rt.shutdown_background();
            })?;
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .context("receiver did not start")??;
        Ok(Receiver {
            inner,
            addr,
            stop: Some(stop_tx),
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn total(&self) -> usize {
        self.inner.total.load(Ordering::Relaxed)
    }

    pub fn distinct_events(&self) -> usize {
        self.inner.distinct_events.load(Ordering::Relaxed)
    }

    pub fn bad(&self) -> usize {
        self.inner.bad.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> Vec<Delivery> {
        self.inner.recs.lock().unwrap().0.clone()
    }

    /// Waits until `want` distinct events have arrived, or `max` has passed, or nothing new
    /// arrived for `stall`. Returns true when all arrived.
    pub async fn wait_for(&self, want: usize, max: Duration, stall: Duration) -> bool {
        let start = Instant::now();
        let mut last = self.total();
        let mut last_change = Instant::now();
        loop {
            if self.distinct_events() >= want {
                return true;
            }
            let now = self.total();
            if now != last {
                last = now;
                last_change = Instant::now();
            }
            if start.elapsed() >= max || last_change.elapsed() >= stall {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn hook(State(inner): State<Arc<Inner>>, req: Request<Body>) -> StatusCode {
    let arrival_ns = now_ns();
    inner.total.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = req.into_parts();
    let webhook_id = parts
        .headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        inner.bad.fetch_add(1, Ordering::Relaxed);
        return StatusCode::OK;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        inner.bad.fetch_add(1, Ordering::Relaxed);
        return StatusCode::OK;
    };
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let scheduled_ns = v
        .get("scheduled_at")
        .and_then(|x| x.as_str())
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_nanosecond());
    let d = Delivery {
        arrival_ns,
        scheduled_ns,
        occurrence_id: s("occurrence_id"),
        event_id: s("event_id"),
        webhook_id,
        attempt: v.get("attempt").and_then(|x| x.as_u64()).unwrap_or(0),
    };
    if d.occurrence_id.is_empty() || scheduled_ns.is_none() {
        inner.bad.fetch_add(1, Ordering::Relaxed);
    }
    let mut g = inner.recs.lock().unwrap();
    if g.1.insert(d.event_id.clone()) {
        inner.distinct_events.fetch_add(1, Ordering::Relaxed);
    }
    g.0.push(d);
    StatusCode::OK
}
