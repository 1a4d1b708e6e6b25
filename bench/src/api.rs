//! A small client for the qhronosd HTTP API (reqwest, HTTP/1.1 keep-alive).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use jiff::Timestamp;
use serde_json::{json, Value};

#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
    pub hook_url: String,
}

/// RFC 3339, UTC, millisecond precision: `2026-11-25T16:00:00.123Z`.
pub fn rfc3339_ms(ns: i128) -> String {
    let ms = ns.div_euclid(1_000_000) as i64;
    let t = Timestamp::from_millisecond(ms).expect("instant in range");
    format!("{t:.3}")
}

impl Api {
    pub fn new(base: &str, token: &str, hook_url: &str) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .http1_only()
            .no_proxy()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Api {
            http,
            base: base.to_string(),
            token: token.to_string(),
            hook_url: hook_url.to_string(),
        })
    }

    pub fn event_body(&self, name: &str, start_ns: i128) -> Value {
        json!({
            "name": name,
            "start_time": rfc3339_ms(start_ns),
            "action": {"type": "webhook", "params": {"url": self.hook_url}},
            "retry": {"max_attempts": 3, "initial_delay": "100ms"},
        })
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Creates one event; returns its id.
    pub async fn create(&self, body: &Value) -> anyhow::Result<String> {
        let r = self.post("/events").json(body).send().await?;
        let code = r.status();
        let text = r.text().await?;
        if code.as_u16() != 201 {
            bail!("POST /events: {code}: {}", truncate(&text, 300));
        }
        let v: Value = serde_json::from_str(&text).context("POST /events: not JSON")?;
        Ok(v["id"].as_str().unwrap_or_default().to_string())
    }

    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        let r = self
            .http
            .delete(format!("{}/events/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("DELETE /events/{id}: {}", r.status());
        }
        Ok(())
    }

    /// GET /status: the whole JSON.
    pub async fn status(&self) -> anyhow::Result<Value> {
        let r = self
            .http
            .get(format!("{}/status", self.base))
            .send()
            .await?;
        Ok(r.json().await?)
    }

    /// `occurrences.<key>` of GET /status.
    pub async fn count(&self, key: &str) -> anyhow::Result<i64> {
        let v = self.status().await?;
        v["occurrences"][key]
            .as_i64()
            .with_context(|| format!("GET /status has no occurrences.{key}: {v}"))
    }

    /// Creates one event per body with `concurrency` workers; returns the ids in body order.
    /// Stops at the first error.
    pub async fn create_all(
        &self,
        bodies: Vec<Value>,
        concurrency: usize,
    ) -> anyhow::Result<Vec<String>> {
        let api = self.clone();
        concurrently(bodies, concurrency, move |b| {
            let api = api.clone();
            async move { api.create(&b).await }
        })
        .await
    }

    /// Creates the events through `POST /events/batch` (1,000 a request, `clients` requests at
    /// a time); returns the ids in body order. Falls back to one request an event on a build
    /// without the route.
    pub async fn create_many(
        &self,
        bodies: Vec<Value>,
        clients: usize,
    ) -> anyhow::Result<Vec<String>> {
        let probe = self
            .post("/events/batch")
            .json(&json!({"events": []}))
            .send()
            .await?;
        if matches!(probe.status().as_u16(), 403..=405) {
            return self.create_all(bodies, clients.max(32)).await;
        }
        let chunks: Vec<Vec<Value>> = bodies.chunks(1000).map(<[Value]>::to_vec).collect();
        let api = self.clone();
        let ids = concurrently(chunks, clients, move |chunk| {
            let api = api.clone();
            async move {
                let r = api
                    .post("/events/batch")
                    .json(&json!({ "events": chunk }))
                    .send()
                    .await?;
                let code = r.status();
                let text = r.text().await?;
                if code.as_u16() != 201 {
                    bail!("POST /events/batch: {code}: {}", truncate(&text, 300));
                }
                let v: Value = serde_json::from_str(&text).context("not JSON")?;
                let ids: Vec<String> = v["ids"]
                    .as_array()
                    .context("no ids in the answer")?
                    .iter()
                    .map(|i| i.as_str().unwrap_or_default().to_string())
                    .collect();
                Ok(ids)
            }
        })
        .await?;
        Ok(ids.into_iter().flatten().collect())
    }

    /// Deletes events with `concurrency` workers.
    pub async fn delete_all(&self, ids: Vec<String>, concurrency: usize) -> anyhow::Result<()> {
        let api = self.clone();
        concurrently(ids, concurrency, move |id| {
            let api = api.clone();
            async move { api.delete(&id).await }
        })
        .await?;
        Ok(())
    }
}

/// Runs `f` over every item with `concurrency` workers; results in item order. The first error
/// stops the workers.
pub async fn concurrently<T, R, F, Fut>(
    items: Vec<T>,
    concurrency: usize,
    f: F,
) -> anyhow::Result<Vec<R>>
where
    T: Clone + Send + Sync + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<R>> + Send,
{
    let n = items.len();
    let items = Arc::new(items);
    let next = Arc::new(AtomicUsize::new(0));
    let out: Arc<Mutex<Vec<Option<R>>>> = Arc::new(Mutex::new((0..n).map(|_| None).collect()));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.clamp(1, n.max(1)) {
        let (items, next, out, f) = (items.clone(), next.clone(), out.clone(), f.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items.len() {
                    return Ok::<(), anyhow::Error>(());
                }
                match f(items[i].clone()).await {
                    Ok(r) => out.lock().unwrap()[i] = Some(r),
                    Err(e) => {
                        next.store(usize::MAX / 2, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let v = std::mem::take(&mut *out.lock().unwrap());
    Ok(v.into_iter().map(|r| r.expect("every item ran")).collect())
}

pub fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_milliseconds() {
        let ns = 1_795_622_400_123_456_789i128; // 2026-11-25T16:00:00.123456789Z
        assert_eq!(rfc3339_ms(ns), "2026-11-25T16:00:00.123Z");
        assert_eq!(
            rfc3339_ms(1_795_622_400_000_000_000),
            "2026-11-25T16:00:00.000Z"
        );
    }
}
