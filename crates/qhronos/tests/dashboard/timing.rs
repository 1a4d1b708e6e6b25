//! How long the first view of each page takes with 10,000 events and 100,000 occurrences in
//! the store (the goal: under 1 s). Prints the figures; run by hand:
//! `cargo test -p qhronos --test dashboard -- --ignored --nocapture first_view`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{in_ms, spawn_app};
use crate::Browser;

#[tokio::test]
#[ignore = "seeds 100,000 occurrences and prints timings; run by hand"]
async fn first_view_with_10k_events_and_100k_occurrences() {
    let app = spawn_app().await;
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
        let (s, v) = app.post("/events/batch", json!({ "events": events })).await;
        assert_eq!(s, 201, "{v}");
    }
    let (_, st) = app.get("/status").await;
    let occurrences: i64 = st["occurrences"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_i64()).sum())
        .unwrap_or(0);
    eprintln!(
        "seeded 10,000 events, {occurrences} occurrences in {:?}",
        seeded.elapsed()
    );
    let Some(b) = Browser::open(&app).await else {
        return;
    };
    b.sign_in_master().await;
    let (_, page) = app.get("/events?limit=1").await;
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
    ] {
        let t = Instant::now();
        b.visit(&path).await;
        b.s.find(ready).await;
        let took = t.elapsed();
        worst = worst.max(took);
        eprintln!("{path:<40} {:>6} ms", took.as_millis());
    }
    eprintln!("slowest first view: {} ms", worst.as_millis());
}
