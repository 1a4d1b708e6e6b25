//! Scenarios of events created ahead of their time: precision, burst, kill9.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::receiver::{now_ns, Delivery};
use crate::stats::{self, account, ms, table};
use crate::Harness;

const CREATE_CONCURRENCY: usize = 32;
/// Batch requests in flight while setting a scenario up.
const BATCH_CLIENTS: usize = 2;
const SEC: i128 = 1_000_000_000;

/// Sleeps until the wall-clock instant `ns` (bounded by the distance to it).
pub(crate) async fn sleep_until_ns(ns: i128) {
    let d = ns - now_ns();
    if d > 0 {
        tokio::time::sleep(Duration::from_nanos(d as u64)).await;
    }
}

/// Measures how fast this server creates events (a throw-away batch of far-future events,
/// deleted again so that they leave nothing pending), and returns the instant at which `n`
/// events created from now on will all exist, plus `lead`.
pub(crate) async fn plan_start(h: &Harness, n: usize, lead: Duration) -> anyhow::Result<i128> {
    let k = (n / 20).clamp(100, 1000);
    let far = now_ns() + 400 * 86_400 * SEC;
    let bodies = (0..k)
        .map(|i| h.api.event_body("calibration", far + i as i128 * SEC))
        .collect();
    let t = Instant::now();
    let ids = h.api.create_many(bodies, BATCH_CLIENTS).await?;
    let rate = k as f64 / t.elapsed().as_secs_f64();
    h.api.delete_all(ids, CREATE_CONCURRENCY).await?;
    let est = Duration::from_secs_f64(n as f64 / rate * 1.3 + 1.0);
    eprintln!(
        "[bench] create rate ~{rate:.0}/s: creating {n} events should take ~{:.1} s; first due time in {:.1} s",
        n as f64 / rate,
        (est + lead).as_secs_f64()
    );
    Ok(now_ns() + (est + lead).as_nanos() as i128)
}

/// Creates the events, reporting how long it took and whether it ran into the first due time.
pub(crate) async fn create_before(
    h: &Harness,
    starts: &[i128],
    first_due: i128,
) -> anyhow::Result<Vec<String>> {
    let bodies: Vec<Value> = starts.iter().map(|s| h.api.event_body("b", *s)).collect();
    let t = Instant::now();
    let ids = h.api.create_many(bodies, BATCH_CLIENTS).await?;
    let took = t.elapsed().as_secs_f64();
    let margin = ms(first_due - now_ns()) / 1000.0;
    eprintln!(
        "[bench] created {} events in {took:.2} s ({:.0}/s); first due in {margin:.2} s",
        ids.len(),
        ids.len() as f64 / took
    );
    if margin < 0.5 {
        eprintln!("[bench] WARNING: creation ended {margin:.2} s before the first due time: the first deliveries may be late because of it");
    }
    Ok(ids)
}

pub async fn precision(h: &Harness, rate: u64, seconds: u64) -> anyhow::Result<()> {
    let n = (rate * seconds) as usize;
    let w = plan_start(h, n, Duration::from_secs(3)).await?;
    let step = SEC as f64 / rate as f64;
    let starts: Vec<i128> = (0..n).map(|i| w + (i as f64 * step) as i128).collect();
    let ids = create_before(h, &starts, w).await?;
    sleep_until_ns(w).await;
    let all = h
        .receiver
        .wait_for(
            n,
            Duration::from_secs(seconds + 60),
            Duration::from_secs(15),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await; // late duplicates
    let a = account(&h.receiver.snapshot(), &ids);
    let mut rows = stats::lateness_rows(&a, n);
    rows.insert(0, ("rate x seconds", format!("{rate}/s x {seconds} s")));
    if !all {
        rows.push(("WAIT", "gave up before every event arrived".into()));
    }
    table("precision", &rows);
    Ok(())
}

/// Creates `count` events due at one instant T; returns (T, event ids).
async fn create_burst(h: &Harness, count: usize) -> anyhow::Result<(i128, Vec<String>)> {
    let t = plan_start(h, count, Duration::from_secs(2)).await?;
    let t = t - t.rem_euclid(1_000_000); // on a millisecond, as the server keeps it
    let ids = create_before(h, &vec![t; count], t).await?;
    Ok((t, ids))
}

fn burst_max_wait(count: usize) -> Duration {
    Duration::from_secs(60 + (count as u64 / 200).min(540))
}

fn secs(ns: i128) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

pub async fn burst(h: &Harness, count: usize) -> anyhow::Result<()> {
    let (t, ids) = create_burst(h, count).await?;
    sleep_until_ns(t).await;
    let all = h
        .receiver
        .wait_for(count, burst_max_wait(count), Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a = account(&h.receiver.snapshot(), &ids);
    let mut rows = stats::lateness_rows(&a, count);
    if let (Some(first), Some(last)) = (a.firsts.first(), a.firsts.last()) {
        let span = (last.arrival_ns - first.arrival_ns).max(1);
        rows.push((
            "first arrival after T (ms)",
            format!("{:.3}", ms(first.arrival_ns - t)),
        ));
        rows.push((
            "last arrival after T (ms)",
            format!("{:.3}", ms(last.arrival_ns - t)),
        ));
        rows.push((
            "T -> all delivered",
            if all {
                secs(last.arrival_ns - t)
            } else {
                "not all delivered".into()
            },
        ));
        rows.push((
            "throughput (deliveries/s)",
            format!("{:.0}", a.firsts.len() as f64 / (span as f64 / 1e9)),
        ));
    }
    let recorded = wait_status(h, |o| o["completed"].as_i64() >= Some(count as i64), 120).await?;
    rows.push((
        "T -> all recorded completed",
        match recorded {
            Some(at) => secs(at - t),
            None => "not within 120 s".into(),
        },
    ));
    table(&format!("burst {count}"), &rows);
    Ok(())
}

/// Polls GET /status every 50 ms until `done(occurrences)`, for at most `max_s` seconds.
/// Returns the instant it became true, or None.
pub(crate) async fn wait_status(
    h: &Harness,
    done: impl Fn(&Value) -> bool,
    max_s: u64,
) -> anyhow::Result<Option<i128>> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(max_s) {
        let v = h.api.status().await.context("GET /status")?;
        if done(&v["occurrences"]) {
            return Ok(Some(now_ns()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(None)
}

pub async fn kill9(h: &mut Harness, count: usize) -> anyhow::Result<()> {
    let (t, ids) = create_burst(h, count).await?;
    sleep_until_ns(t).await;
    h.receiver
        .wait_for(count / 2, burst_max_wait(count), Duration::from_secs(20))
        .await;
    let before = h.receiver.total();
    let kill_at = now_ns();
    h.server.kill9()?;
    let after_kill = h.receiver.total();
    let t_restart = Instant::now();
    h.restart()?;
    let restart_took = t_restart.elapsed();
    let back_at = now_ns();
    let all = h
        .receiver
        .wait_for(count, burst_max_wait(count), Duration::from_secs(30))
        .await;
    let done_at = now_ns();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let recs = h.receiver.snapshot();
    let a = account(&recs, &ids);
    // Delivered by the first process and again by the second: the deliveries the dead process
    // had made without recording them (in flight at the kill, or done but not yet written).
    let firsts_before: std::collections::HashSet<&str> = a
        .firsts
        .iter()
        .filter(|d| d.arrival_ns < back_at)
        .map(|d| d.occurrence_id.as_str())
        .collect();
    let redelivered = recs
        .iter()
        .filter(|d| d.arrival_ns >= back_at && firsts_before.contains(d.occurrence_id.as_str()))
        .map(|d| d.occurrence_id.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len();
    let idle = wait_status(
        h,
        |o| o["pending"].as_i64() == Some(0) && o["scheduled"].as_i64() == Some(0),
        30,
    )
    .await?;
    let status = h.api.status().await?;
    let mut rows = stats::lateness_rows(&a, count);
    rows.extend([
        ("SIGKILL after T", secs(kill_at - t)),
        ("arrived before SIGKILL", before.to_string()),
        ("arrived while dying", (after_kill - before).to_string()),
        (
            "restart (kill -> listening)",
            format!("{:.3} s", restart_took.as_secs_f64()),
        ),
        (
            "restart -> all delivered",
            if all {
                secs(done_at - back_at)
            } else {
                "not all delivered".into()
            },
        ),
        (
            "in flight at the kill (delivered by both)",
            redelivered.to_string(),
        ),
        (
            "duplicated occurrence ids",
            a.duplicated_ids.len().to_string(),
        ),
        (
            "stuck (pending/scheduled left)",
            match idle {
                Some(_) => "no".into(),
                None => format!("YES: {}", status["occurrences"]),
            },
        ),
    ]);
    table(&format!("kill9 {count}"), &rows);
    for id in a.lost.iter().take(5) {
        let v: Value = h
            .api
            .get(&format!("/events/{id}/occurrences"))
            .send()
            .await?
            .json()
            .await?;
        println!(
            "  lost event {id}: {}",
            crate::api::truncate(&v.to_string(), 400)
        );
    }
    report_late_attempts(&a.firsts);
    Ok(())
}

/// How many first arrivals were not a first attempt (the earlier attempt failed or was lost).
fn report_late_attempts(firsts: &[Delivery]) {
    let retried = firsts.iter().filter(|d| d.attempt > 1).count();
    if retried > 0 {
        println!("  first arrivals with attempt > 1: {retried}");
    }
}
