//! `conflicts`: the conflict check of one event against a calendar of `events` recurring
//! events over `days` days (issue 16's goal: 10,000 events, 90 days, at most 50 ms), in
//! process (no qhronosd, no database): the interval index built from the events (what each
//! check does now), the probe of a daily series against it, and the two together. The events
//! are a mix of daily, weekday, weekly and monthly rules of 15 to 90 minutes in five zones.

use std::time::Instant;

use qhronos::api::event_io::EventIn;
use qhronos::calendars::conflicts::{collisions, intervals, Index};
use qhronos::domain::event::Event;
use serde_json::json;
use uuid::Uuid;

use crate::stats::{pct, sort, table};

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

fn event(i: usize, now: i64) -> anyhow::Result<Event> {
    let start = jiff::Timestamp::from_millisecond(now - 30 * DAY + (i as i64 % 600) * 60_000)?;
    let body = json!({
        "name": format!("bench {i}"),
        "start_time": start.to_string(),
        "timezone": ZONES[i % ZONES.len()],
        "schedule": RULES[i % RULES.len()],
        "duration": format!("{}m", 15 + (i % 6) * 15),
        "action": {"type": "webhook", "params": {"url": "https://hooks.example/x"}},
    });
    let input: EventIn = serde_json::from_value(body)?;
    input
        .validate(Uuid::now_v7(), now, now)
        .map_err(|e| anyhow::anyhow!("bench event: {e}"))
}

pub fn run(events: usize, days: i64, runs: usize) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now().as_millisecond();
    let to = now + days * DAY;
    let cal: Vec<Event> = (0..events)
        .map(|i| event(i, now))
        .collect::<Result<_, _>>()?;
    let probe = event(events + 1, now)?;
    let mine = intervals(&probe, now, to);
    let (mut build, mut check, mut both) = (Vec::new(), Vec::new(), Vec::new());
    let mut size = 0;
    let mut found = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let ix = Index::build(&cal, now, to);
        let built = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let (c, _) = collisions(&ix, &mine, probe.id, usize::MAX);
        let checked = t.elapsed().as_secs_f64() * 1e3;
        size = ix.len();
        found = c.len();
        build.push(built);
        check.push(checked);
        both.push(built + checked);
    }
    for v in [&mut build, &mut check, &mut both] {
        sort(v);
    }
    let row = |v: &[f64]| {
        format!(
            "p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            pct(v, 0.5),
            pct(v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        )
    };
    table(
        &format!("conflict check: {events} recurring events, {days} days, {runs} runs"),
        &[
            ("occurrences indexed", size.to_string()),
            ("probe instances", mine.len().to_string()),
            ("collisions found", found.to_string()),
            ("index build", row(&build)),
            ("probe", row(&check)),
            ("build + probe (goal ≤ 50 ms)", row(&both)),
        ],
    );
    Ok(())
}
