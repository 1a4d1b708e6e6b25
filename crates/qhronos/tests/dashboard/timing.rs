//! How long the first view of each page takes with 10,000 events and 100,000 occurrences in
//! the store (the goal: under 1 s). Prints the figures; run by hand:
//! `cargo test -p qhronos --test dashboard -- --ignored --nocapture first_view`.
//!
//! The server is the test's own (`spawn_app`, as built: debug under a plain `cargo test`)
//! unless `TIMING_SERVER` names a running one (`http://127.0.0.1:8080`, master token in
//! `TIMING_TOKEN`, an empty store): then that server is seeded and timed, so a release
//! `qhronosd` can be measured by the debug test binary (which only drives the browser). See
//! docs/dashboard.md, "Figures", for the command.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{in_ms, spawn_app, TOKEN};
use crate::Browser;

/// The server under test: its address and master token.
struct Target {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Target {
    async fn req(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request sent");
        let s = resp.status().as_u16();
        (s, resp.json().await.unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        self.req(reqwest::Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.req(reqwest::Method::POST, path, Some(body)).await
    }
}

#[tokio::test]
#[ignore = "seeds 100,000 occurrences and prints timings; run by hand"]
async fn first_view_with_10k_events_and_100k_occurrences() {
    let own = match std::env::var("TIMING_SERVER") {
        Ok(_) => None,
        Err(_) => Some(spawn_app().await),
    };
    let target = Target {
        base: match &own {
            Some(app) => app.url(""),
            None => std::env::var("TIMING_SERVER").expect("TIMING_SERVER"),
        },
        token: std::env::var("TIMING_TOKEN").unwrap_or_else(|_| TOKEN.to_string()),
        http: reqwest::Client::new(),
    };
    let seeded = Instant::now();
    // 3,334 series every minute from 30 minutes on: 30 instants each inside the 1 h look-ahead
    // window, 100,020 occurrences; the rest one-time events.
    let start = in_ms(30 * 60_000);
    for batch in 0..10 {
        let events: Vec<_> = (0..1000)
            .map(|i| {
                let n = batch * 1000 + i;
                let mut e = json!({
                    "name": format!("event {n}"),
                    "start_time": start,
                    "webhook": "http://127.0.0.1:9/hook",
                    "tags": [format!("team-{}", n % 20)],
                });
                if n < 3334 {
                    e["schedule"] = json!("FREQ=MINUTELY");
                }
                e
            })
            .collect();
        let (s, v) = target
            .post("/events/batch", json!({ "events": events }))
            .await;
        assert_eq!(s, 201, "{v}");
    }
    // Exact counts (GET /status's are a cached gauge).
    let (_, st) = target.get("/occurrences/counts").await;
    let occurrences: i64 = st
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_i64()).sum())
        .unwrap_or(0);
    eprintln!(
        "seeded 10,000 events, {occurrences} occurrences in {:?} ({} server)",
        seeded.elapsed(),
        if own.is_some() {
            "the test's own"
        } else {
            "an external"
        }
    );
    let Some(b) = Browser::open_at(&target.base, 1280, 900).await else {
        return;
    };
    b.sign_in(&target.token).await;
    let (_, page) = target.get("/events?limit=1").await;
    let id = page["data"][0]["id"]
        .as_str()
        .expect("an event")
        .to_string();
    let mut worst = Duration::ZERO;
    for (path, ready) in [
        ("/ui/".to_string(), "#counts"),
        ("/ui/events".to_string(), "#events tr[data-event]"),
        (
            "/ui/events?q=event%2042".to_string(),
            "#events tr[data-event]",
        ),
        (format!("/ui/events/{id}"), "ol.versions"),
        ("/ui/events/new".to_string(), "#preview li"),
        (
            "/ui/deliveries".to_string(),
            "#deliveries tr[data-occurrence]",
        ),
        ("/ui/channels".to_string(), "main h2"),
        ("/ui/admin".to_string(), "#audit tr"),
        ("/ui/calendar".to_string(), "#calendar a.item"),
        ("/ui/calendar?view=week".to_string(), "#calendar a.item"),
    ] {
        let t = Instant::now();
        b.visit(&path).await;
        b.s.find(ready).await;
        let took = t.elapsed();
        worst = worst.max(took);
        eprintln!("{path:<40} {:>6} ms", took.as_millis());
    }
    // The calendar's whole month (every day's cell filled), for the record.
    let t = Instant::now();
    b.visit("/ui/calendar").await;
    b.s.find("#calendar a.item").await;
    while !b.s.all("#calendar .loading").await.is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the month did not load"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "{:<40} {:>6} ms",
        "calendar month, every day",
        t.elapsed().as_millis()
    );
    eprintln!("slowest first view: {} ms", worst.as_millis());
}
