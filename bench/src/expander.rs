//! expander: the CPU qhronosd spends keeping recurring events materialised 24 h ahead.
//!
//! An idle qhronosd (no events) is measured first as the baseline, then a second one is given
//! `events` recurring events whose first instance is at least an hour away (so nothing fires),
//! left to settle, and measured over the same window. During a window the bench only polls
//! `GET /status` every [`POLL`].

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};

use crate::api::{concurrently, rfc3339_ms, truncate, Api};
use crate::receiver::now_ns;
use crate::stats::table;
use crate::Harness;

const LOOK_AHEAD: &str = "24h";
const ENV: &[(&str, &str)] = &[("QHRONOS_ENGINE__LOOK_AHEAD", LOOK_AHEAD)];
/// `/status` polling while measuring.
const POLL: Duration = Duration::from_secs(10);
/// The initial expansion has settled when `pending` has not changed (by more than 0.1 %) for
/// this long.
const SETTLE_QUIET: Duration = Duration::from_secs(5);
const SETTLE_POLL: Duration = Duration::from_secs(1);
const SETTLE_MAX: Duration = Duration::from_secs(600);
/// Nothing fires during the run: every first instance is at least this far from its creation.
const FIRST_INSTANCE_AFTER_S: i128 = 3600;
const SEC: i128 = 1_000_000_000;

const RULES: [&str; 3] = [
    "FREQ=HOURLY",
    "FREQ=DAILY;BYHOUR=9",
    "FREQ=WEEKLY;BYDAY=MO,WE,FR",
];
const ZONES: [&str; 5] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Tokyo",
    "Australia/Sydney",
];

/// The `i`-th event: rules and zones cycle (3 and 5 are coprime: every pairing occurs), the
/// start is an hour from now plus a spread over a further hour (seconds and milliseconds).
fn body(api: &Api, i: usize) -> Value {
    let spread = (i as i128 * 7919) % 3600 * SEC + (i as i128 % 1000) * 1_000_000;
    let start = now_ns() + FIRST_INSTANCE_AFTER_S * SEC + spread;
    json!({
        "name": format!("expander-{i}"),
        "start_time": rfc3339_ms(start),
        "timezone": ZONES[i % ZONES.len()],
        "schedule": RULES[i % RULES.len()],
        "action": {"type": "webhook", "params": {"url": api.hook_url}},
    })
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 if that fails).
fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// utime + stime of a process (all its threads), in clock ticks: fields 14 and 15 of
/// `/proc/<pid>/stat`, counted after the `(comm)` field, which may contain spaces.
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    parse_stat_ticks(&text).with_context(|| format!("cannot parse /proc/{pid}/stat: {text}"))
}

fn parse_stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    // `rest` starts at field 3 (state): fields 14 and 15 are its 12th and 13th words.
    let mut w = rest.split_whitespace().skip(11);
    let utime: u64 = w.next()?.parse().ok()?;
    let stime: u64 = w.next()?.parse().ok()?;
    Some(utime + stime)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// One `/status` reading while measuring.
struct Sample {
    at_s: f64,
    ticks: u64,
    pending: i64,
}

struct Window {
    samples: Vec<Sample>,
    tck: u64,
    load_before: String,
    load_after: String,
}

impl Window {
    fn wall_s(&self) -> f64 {
        self.samples.last().map_or(0.0, |s| s.at_s)
    }

    fn cpu_s(&self) -> f64 {
        let (a, b) = (self.samples.first(), self.samples.last());
        match (a, b) {
            (Some(a), Some(b)) => (b.ticks - a.ticks) as f64 / self.tck as f64,
            _ => f64::NAN,
        }
    }

    fn pct(&self) -> f64 {
        100.0 * self.cpu_s() / self.wall_s()
    }

    /// The busiest interval between two samples, % of one core.
    fn max_interval_pct(&self) -> f64 {
        self.samples
            .windows(2)
            .map(|w| {
                let cpu = (w[1].ticks - w[0].ticks) as f64 / self.tck as f64;
                100.0 * cpu / (w[1].at_s - w[0].at_s)
            })
            .fold(f64::NAN, f64::max)
    }

    fn rows(&self) -> Vec<(&'static str, String)> {
        let first = self.samples.first().map_or(-1, |s| s.pending);
        let last = self.samples.last().map_or(-1, |s| s.pending);
        vec![
            ("window", format!("{:.1} s", self.wall_s())),
            ("CPU used (utime+stime)", format!("{:.2} s", self.cpu_s())),
            ("average, % of one core", format!("{:.2} %", self.pct())),
            (
                "busiest interval, % of one core",
                format!("{:.2} %", self.max_interval_pct()),
            ),
            ("pending at start of window", first.to_string()),
            ("pending at end of window", last.to_string()),
            ("pending growth", (last - first).to_string()),
            (
                "load average before / after",
                format!("{} / {}", self.load_before, self.load_after),
            ),
        ]
    }

    /// `t=10s cpu=0.12s pending=…` for every interval.
    fn print_trace(&self) {
        for w in self.samples.windows(2) {
            let cpu = (w[1].ticks - w[0].ticks) as f64 / self.tck as f64;
            println!(
                "  | t={:>6.1} s  cpu {:>6.2} s ({:>6.2} %)  pending {}",
                w[1].at_s,
                cpu,
                100.0 * cpu / (w[1].at_s - w[0].at_s),
                w[1].pending
            );
        }
    }
}

/// CPU of the child over `seconds`, while polling `/status` every [`POLL`].
async fn measure(h: &Harness, seconds: u64, tck: u64) -> anyhow::Result<Window> {
    let pid = h.server.pid().context("qhronosd is not running")?;
    let load_before = loadavg();
    let t0 = tokio::time::Instant::now();
    let end = t0 + Duration::from_secs(seconds);
    let mut samples = Vec::new();
    let mut next = t0;
    loop {
        let at = tokio::time::Instant::now();
        let ticks = cpu_ticks(pid)?;
        let pending = h.api.count("pending").await?;
        samples.push(Sample {
            at_s: at.duration_since(t0).as_secs_f64(),
            ticks,
            pending,
        });
        if next >= end {
            break;
        }
        next = (next + POLL).min(end);
        tokio::time::sleep_until(next).await;
    }
    Ok(Window {
        samples,
        tck,
        load_before,
        load_after: loadavg(),
    })
}

/// Polls `pending` until it has not changed (by more than 0.1 %) for [`SETTLE_QUIET`]; returns it
/// and how long it took.
async fn settle(h: &Harness) -> anyhow::Result<(i64, f64)> {
    let t = Instant::now();
    let mut last = h.api.count("pending").await?;
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(SETTLE_POLL).await;
        let p = h.api.count("pending").await?;
        // With many hourly series the moving windows add a few occurrences every expander
        // tick, so `pending` may never stand still for 5 s: a change of under 0.1 % counts as
        // settled too.
        if (p - last).abs() * 1000 > last.max(1) {
            last = p;
            since = Instant::now();
        } else if since.elapsed() >= SETTLE_QUIET {
            return Ok((p, t.elapsed().as_secs_f64()));
        }
        if t.elapsed() > SETTLE_MAX {
            eprintln!(
                "[bench] WARNING: pending still changing after {SETTLE_MAX:?} ({p}); measuring anyway"
            );
            return Ok((p, t.elapsed().as_secs_f64()));
        }
    }
}

/// Creates `n` events with `clients` workers; returns (created, errors, first error, seconds).
async fn create(
    h: &Harness,
    n: usize,
    clients: usize,
) -> anyhow::Result<(usize, usize, Option<String>, f64)> {
    let errors = Arc::new(AtomicUsize::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let done = Arc::new(AtomicUsize::new(0));
    let t = Instant::now();
    let (api, e, fe, d) = (
        h.api.clone(),
        errors.clone(),
        first_error.clone(),
        done.clone(),
    );
    let progress = tokio::spawn({
        let done = done.clone();
        async move {
            let t = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(15)).await;
                let k = done.load(Ordering::Relaxed);
                eprintln!(
                    "[bench] created {k}/{n} ({:.0}/s)",
                    k as f64 / t.elapsed().as_secs_f64()
                );
            }
        }
    });
    let res = concurrently((0..n).collect(), clients, move |i| {
        let (api, e, fe, d) = (api.clone(), e.clone(), fe.clone(), d.clone());
        async move {
            match api.create(&body(&api, i)).await {
                Ok(_) => {
                    d.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => {
                    e.fetch_add(1, Ordering::Relaxed);
                    fe.lock().unwrap().get_or_insert(format!("{err:#}"));
                }
            }
            Ok(())
        }
    })
    .await;
    progress.abort();
    res?;
    let took = t.elapsed().as_secs_f64();
    let fe = first_error.lock().unwrap().take();
    Ok((
        done.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        fe,
        took,
    ))
}

pub async fn run(bin: &Path, events: usize, seconds: u64, clients: usize) -> anyhow::Result<()> {
    let tck = clock_ticks();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "\nlook_ahead {LOOK_AHEAD}; CPU from /proc/<pid>/stat utime+stime, CLK_TCK {tck}; {cores} cores; /status polled every {POLL:?}"
    );

    // The baseline: the same settings, no events.
    eprintln!("[bench] baseline: idle qhronosd, 0 events, {seconds} s");
    let idle = Harness::start_with_env(bin, ENV)?;
    let (p, _) = settle(&idle).await?;
    let base = measure(&idle, seconds, tck).await?;
    let mut rows = vec![("events", "0".to_string())];
    rows.extend(base.rows());
    if p != 0 {
        rows.push(("pending before the window", p.to_string()));
    }
    table("expander: idle baseline (0 events)", &rows);
    base.print_trace();
    idle.finish();

    eprintln!("[bench] loaded: {events} recurring events, {clients} clients");
    let h = Harness::start_with_env(bin, ENV)?;
    let (created, errors, first_error, took) = create(&h, events, clients).await?;
    let after_create = h.api.count("pending").await?;
    eprintln!("[bench] created {created} in {took:.1} s; waiting for pending to settle");
    let (settled, settle_s) = settle(&h).await?;
    let start_kb = h.server.peak_kb();
    eprintln!("[bench] settled at {settled} pending after {settle_s:.1} s; measuring {seconds} s");
    let m = measure(&h, seconds, tck).await?;
    let status = h.api.status().await.unwrap_or(Value::Null);
    let occ = &status["occurrences"];

    let mut rows = vec![
        ("events (hourly / daily / weekly)", {
            let k = |r: usize| (0..events).filter(|i| i % RULES.len() == r).count();
            format!("{events} ({} / {} / {})", k(0), k(1), k(2))
        }),
        (
            "created",
            format!(
                "{created} in {took:.1} s ({:.0}/s), {clients} clients",
                created as f64 / took
            ),
        ),
        ("create errors", errors.to_string()),
        ("pending right after creation", after_create.to_string()),
        (
            "pending once settled",
            format!(
                "{settled} ({:.1} per event; settled {settle_s:.1} s after creation)",
                settled as f64 / created.max(1) as f64
            ),
        ),
        (
            "peak RSS before the window",
            format!("{:.1} MiB", start_kb as f64 / 1024.0),
        ),
    ];
    if let Some(e) = &first_error {
        rows.push(("first create error", truncate(e, 300).to_string()));
    }
    rows.extend(m.rows());
    rows.push((
        "above the idle baseline",
        format!(
            "{:.2} s CPU, {:.2} % of one core",
            m.cpu_s() - base.cpu_s(),
            m.pct() - base.pct()
        ),
    ));
    rows.push((
        "after: scheduled / completed / missed / failed",
        format!(
            "{} / {} / {} / {}",
            occ["scheduled"], occ["completed"], occ["missed"], occ["failed"]
        ),
    ));
    rows.push((
        "webhooks received (expect 0)",
        h.receiver.total().to_string(),
    ));
    table(&format!("expander: {events} recurring events"), &rows);
    m.print_trace();
    h.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        let l = "1234 (qhronos d) S 1 1234 1234 0 -1 4194560 2883 0 0 0 157 42 0 0 20 0 9 0 \
                 12345 1000000 2000 18446744073709551615";
        assert_eq!(parse_stat_ticks(l), Some(199));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }
}
