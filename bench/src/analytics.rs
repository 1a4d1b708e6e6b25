//! `analytics`: fills the analytics rollups for `deliveries` deliveries over `days` days
//! directly through the store (no qhronosd, no HTTP), then times the `GET /analytics` query a
//! dashboard makes (30 days by the hour): for every event, for one tag, and for one event.

use std::time::Instant;

use qhronos::api::event_io::EventIn;
use qhronos::domain::event::Event;
use qhronos::store::{AnalyticsQuery, AttemptEnd, Granularity, Rollup, Store, Subjects};
use serde_json::json;
use uuid::Uuid;

use crate::stats::{pct, sort, table};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// A deterministic spread (no RNG state to thread through).
fn mix(i: u64) -> u64 {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    x.wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (x >> 29)
}

fn event(i: usize, now: i64) -> anyhow::Result<Event> {
    let body = json!({
        "name": format!("bench {i}"),
        "start_time": jiff::Timestamp::from_millisecond(now + DAY)?.to_string(),
        "tags": [format!("team-{}", i % 10)],
        "action": {"type": "webhook", "params": {"url": format!("https://hooks.example/{}", i % 20)}},
    });
    let input: EventIn = serde_json::from_value(body)?;
    input
        .validate(Uuid::now_v7(), now, now)
        .map_err(|e| anyhow::anyhow!("bench event: {e}"))
}

pub async fn run(
    database_url: Option<String>,
    deliveries: u64,
    days: i64,
    events: usize,
    runs: usize,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = database_url
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let store: std::sync::Arc<dyn Store> =
        qhronos::store::connect(&url, &Default::default()).await?;
    let now = jiff::Timestamp::now().as_millisecond();
    let start = now - now % HOUR - days * DAY;
    let mut ids = Vec::with_capacity(events);
    for i in 0..events {
        let e = event(i, now)?;
        ids.push(e.id);
        store
            .create_event(&e, &[], None, qhronos::store::By::actor("bench"))
            .await?;
    }
    // Hour by hour, as the outcome writes would have left them: 2 % of attempts fail and are
    // retried, 0.5 % fail for good; durations 5 ms .. 2 s, lateness 0 .. 300 ms.
    let hours = days * 24;
    let per_hour = deliveries / hours as u64;
    let t = Instant::now();
    let mut cells = 0u64;
    for h in 0..hours {
        let mut r = Rollup::default();
        for k in 0..per_hour {
            let i = h as u64 * per_hour + k;
            let x = mix(i);
            let e = ids[(x % events as u64) as usize];
            let at = start + h * HOUR + ((x >> 8) % (HOUR as u64)) as i64;
            let late = ((x >> 20) % 300) as i64;
            let dur = 5 + ((x >> 30) % 2000) as i64 * ((x >> 42) % 3 + 1) as i64 / 3;
            let end = match (x >> 50) % 1000 {
                0..=4 => AttemptEnd::Failed,
                5..=19 => AttemptEnd::Retried,
                _ => AttemptEnd::Delivered,
            };
            let err = (end != AttemptEnd::Delivered).then(|| "HTTP 503".to_string());
            r.attempt(e, at - late, 1, at, dur, end, err);
        }
        cells += 1;
        store.add_rollup(r).await?;
    }
    let fill = t.elapsed();
    let q = |subjects| AnalyticsQuery {
        from: start,
        to: start + days * DAY,
        granularity: Granularity::Hour,
        subjects,
        top: 10,
    };
    let mut rows = vec![
        ("store", url.split(':').next().unwrap_or("?").to_string()),
        (
            "filled",
            format!(
                "{} deliveries, {days} days, {events} events, in {:.1} s ({cells} hour batches)",
                per_hour * hours as u64,
                fill.as_secs_f64()
            ),
        ),
    ];
    let cases = [
        ("all events, 30 d by hour", Subjects::All),
        (
            "one tag (10 % of events)",
            Subjects::Tags(vec!["team-3".into()]),
        ),
        ("one event", Subjects::Event(ids[7])),
    ];
    let mut out = Vec::new();
    for (name, s) in cases {
        let query = q(s);
        // One warm-up read, then the timed ones.
        let first = store.analytics(&query).await?;
        let total: i64 = first.buckets.iter().map(|b| b.due).sum();
        let mut ms = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let a = store.analytics(&query).await?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(a);
        }
        sort(&mut ms);
        out.push((
            name,
            format!(
                "p50 {:.1} ms, p99 {:.1} ms ({} buckets, {total} due)",
                pct(&ms, 50.0),
                pct(&ms, 99.0),
                first.buckets.len()
            ),
        ));
    }
    rows.extend(out);
    table("analytics query", &rows);
    Ok(())
}
