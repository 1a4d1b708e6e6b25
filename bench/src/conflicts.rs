//! `conflicts`: issue 16's goal — a conflict check against a calendar of `events` recurring
//! events over the planning horizon (`days`) in at most 50 ms — measured as a user meets it:
//! a real qhronosd with a calendar of `events` series (a mix of daily, weekday, weekly and
//! monthly rules of 15 to 90 minutes in five zones, created with `POST /events/batch`), then
//! `runs` times one `POST /events` into that calendar (a daily 30-minute series, checked
//! against all of it) and one `PUT /events/{id}` moving it (checked again), each timed at the
//! client. The calendar is `free`, so every checked write is saved and lists its conflicts.
//!
//! In process, for the parts: the interval index built from the same events (what a check
//! costs when no index is kept, or after another node wrote to the calendar) and a probe.

use std::time::Instant;

use anyhow::{bail, Context};
use qhronos::api::event_io::EventIn;
use qhronos::calendars::conflicts::{collisions, intervals, Index};
use qhronos::domain::event::Event;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::api::truncate;
use crate::stats::{pct, sort, table};
use crate::Harness;

const DAY: i64 = 86_400_000;
const ZONES: [&str; 5] = [
    "Europe/Berlin",
    "America/New_York",
    "Asia/Tokyo",
    "Australia/Sydney",
    "UTC",
];
const RULES: [&str; 5] = [
    "FREQ=DAILY",
    "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
    "FREQ=WEEKLY;BYDAY=TU,TH",
    "FREQ=WEEKLY",
    "FREQ=MONTHLY;BYDAY=1MO,3WE",
];
const BATCH: usize = 1000;

/// The body of the `i`-th series. They start tomorrow, so that none fires during the run.
fn body(i: usize, now: i64, hook: &str) -> anyhow::Result<Value> {
    let start = jiff::Timestamp::from_millisecond(now + DAY + (i as i64 % 600) * 60_000)?;
    Ok(json!({
        "name": format!("bench {i}"),
        "start_time": start.to_string(),
        "timezone": ZONES[i % ZONES.len()],
        "schedule": RULES[i % RULES.len()],
        "duration": format!("{}m", 15 + (i % 6) * 15),
        "action": {"type": "webhook", "params": {"url": hook}},
    }))
}

fn event(i: usize, now: i64) -> anyhow::Result<Event> {
    let input: EventIn = serde_json::from_value(body(i, now, "https://hooks.example/x")?)?;
    input
        .validate(Uuid::now_v7(), now, now)
        .map_err(|e| anyhow::anyhow!("bench event: {e}"))
}

fn row(v: &mut [f64]) -> String {
    sort(v);
    format!(
        "p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        pct(v, 50.0),
        pct(v, 99.0),
        v.last().copied().unwrap_or(f64::NAN)
    )
}

async fn send(req: reqwest::RequestBuilder, what: &str, want: u16) -> anyhow::Result<Value> {
    let r = req.send().await?;
    let code = r.status().as_u16();
    let text = r.text().await?;
    if code != want {
        bail!("{what}: {code}: {}", truncate(&text, 300));
    }
    serde_json::from_str(&text).with_context(|| format!("{what}: not JSON"))
}

/// Over HTTP: the calendar, its events, then the timed creates and updates.
pub async fn run(h: &Harness, events: usize, days: i64, runs: usize) -> anyhow::Result<()> {
    let api = &h.api;
    let now = jiff::Timestamp::now().as_millisecond();
    let cal = send(
        api.post("/calendars")
            .json(&json!({"name": "bench", "mode": "free"})),
        "POST /calendars",
        201,
    )
    .await?;
    let cal_id = cal["id"].as_str().unwrap_or_default().to_string();
    let t = Instant::now();
    for start in (0..events).step_by(BATCH) {
        let items = (start..(start + BATCH).min(events))
            .map(|i| {
                let mut b = body(i, now, &api.hook_url)?;
                b["calendar_id"] = json!(cal_id);
                Ok(b)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        send(
            api.post("/events/batch").json(&json!({"events": items})),
            "POST /events/batch",
            201,
        )
        .await?;
    }
    let filled = t.elapsed().as_secs_f64();
    let (mut creates, mut updates) = (Vec::new(), Vec::new());
    let mut listed = 0;
    // One more than timed: the first check after the fill builds the index.
    for r in 0..=runs {
        let start = jiff::Timestamp::from_millisecond(now + DAY + (r as i64 * 7 % 600) * 60_000)?;
        let probe = json!({
            "name": format!("probe {r}"),
            "start_time": start.to_string(),
            "timezone": "Europe/Berlin",
            "schedule": "FREQ=DAILY",
            "duration": "30m",
            "calendar_id": cal_id,
            "action": {"type": "webhook", "params": {"url": api.hook_url}},
        });
        let t = Instant::now();
        let out = send(api.post("/events").json(&probe), "POST /events", 201).await?;
        let created = t.elapsed().as_secs_f64() * 1e3;
        let id = out["id"].as_str().unwrap_or_default().to_string();
        listed = out["conflicts"].as_array().map_or(0, Vec::len);
        let moved = jiff::Timestamp::from_millisecond(now + DAY + 3_600_000 + r as i64 * 60_000)?;
        let t = Instant::now();
        let put = api
            .http
            .put(format!("{}/events/{id}", api.base))
            .bearer_auth(&api.token)
            .json(&json!({"start_time": moved.to_string()}));
        send(put, "PUT /events/{id}", 200).await?;
        let updated = t.elapsed().as_secs_f64() * 1e3;
        if r > 0 {
            creates.push(created);
            updates.push(updated);
        }
    }
    // In process, for the parts.
    let to = now + days * DAY;
    let evs: Vec<Event> = (0..events)
        .map(|i| event(i, now))
        .collect::<anyhow::Result<_>>()?;
    let probe = event(events + 1, now)?;
    let mine = intervals(&probe, now, to);
    let (mut build, mut check) = (Vec::new(), Vec::new());
    let mut size = 0;
    for _ in 0..runs.clamp(1, 5) {
        let t = Instant::now();
        let ix = Index::build(&evs, now, to);
        build.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let _ = collisions(&ix, &mine, probe.id, 50);
        check.push(t.elapsed().as_secs_f64() * 1e3);
        size = ix.len();
    }
    table(
        &format!(
            "conflict check: calendar of {events} recurring events, {days}-day horizon, {runs} runs"
        ),
        &[
            ("fill (POST /events/batch)", format!("{filled:.1} s")),
            ("conflicts listed per create", listed.to_string()),
            ("POST /events, checked (goal ≤ 50 ms)", row(&mut creates)),
            (
                "PUT /events/{id}, checked (goal ≤ 50 ms)",
                row(&mut updates),
            ),
            ("in process: intervals indexed", size.to_string()),
            ("in process: index build", row(&mut build)),
            ("in process: probe (50 listed)", row(&mut check)),
        ],
    );
    Ok(())
}
