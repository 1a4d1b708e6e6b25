//! Failover: several nodes on one PostgreSQL database, one of them killed (SIGKILL) half-way
//! through a steady stream of due events. What it held (claimed, outcome not written) must be
//! delivered by the others soon after its due time, nothing lost, and no more duplicates than
//! it held.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::due::{create_before, plan_start, sleep_until_ns};
use crate::receiver::now_ns;
use crate::stats::{self, account, pct, sort, table};
use crate::{psql_rows, Harness};

const SEC: i128 = 1_000_000_000;

/// `(occurrence id, scheduled_at ms)` of what `owner` holds.
fn held_by(db: &str, owner: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let out = psql_rows(
        db,
        &format!(
            "SELECT id, scheduled_at FROM occurrences WHERE status = 'scheduled' AND lease_owner = '{owner}'"
        ),
    )?;
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (id, at) = l.split_once('|').context("psql row")?;
            Ok((id.to_string(), at.trim().parse()?))
        })
        .collect()
}

pub async fn run(h: &mut Harness, rate: u64, seconds: u64) -> anyhow::Result<()> {
    let Some(db) = h.db_url().map(str::to_string) else {
        bail!("failover needs --database-url (and --nodes 2 or more)");
    };
    if h.others.is_empty() {
        bail!("failover needs --nodes 2 or more");
    }
    let n = (rate * seconds) as usize;
    let w = plan_start(h, n, Duration::from_secs(3)).await?;
    let step = SEC as f64 / rate as f64;
    let starts: Vec<i128> = (0..n).map(|i| w + (i as f64 * step) as i128).collect();
    let ids = create_before(h, &starts, w).await?;
    // Half-way, kill a node that is not the one the API calls go to.
    sleep_until_ns(w + i128::from(seconds) * SEC / 2).await;
    let victim = &mut h.others[0];
    let owner = victim
        .log
        .lock()
        .map_err(|_| anyhow::anyhow!("log lock"))?
        .owner
        .clone()
        .context("the node to kill logged no dispatcher owner")?;
    if !owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        bail!("unexpected lease owner {owner}");
    }
    let kill_at = now_ns();
    victim.kill9()?;
    let held = held_by(&db, &owner)?;
    let t = Instant::now();
    let taken_over = loop {
        if held_by(&db, &owner)?.is_empty() {
            break Some(t.elapsed());
        }
        if t.elapsed() > Duration::from_secs(60) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let all = h
        .receiver
        .wait_for(
            n,
            Duration::from_secs(seconds + 60),
            Duration::from_secs(15),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await; // late duplicates
    let recs = h.receiver.snapshot();
    let a = account(&recs, &ids);
    // The last arrival of each occurrence: for one the killed node had sent without recording
    // it, the other node's delivery.
    let mut last: HashMap<&str, i128> = HashMap::new();
    for d in &recs {
        let e = last.entry(d.occurrence_id.as_str()).or_insert(d.arrival_ns);
        *e = (*e).max(d.arrival_ns);
    }
    let mut late: Vec<f64> = held
        .iter()
        .map(|(id, due)| {
            last.get(id.as_str()).map_or(f64::INFINITY, |at| {
                stats::ms(*at - i128::from(*due) * 1_000_000)
            })
        })
        .collect();
    sort(&mut late);
    let within = late.iter().filter(|l| **l <= 5_000.0).count();
    let mut rows = stats::lateness_rows(&a, n);
    rows.insert(
        0,
        (
            "nodes, rate x seconds",
            format!("{}, {rate}/s x {seconds} s", h.others.len() + 1),
        ),
    );
    rows.extend([
        (
            "SIGKILL after the first due time",
            format!("{:.3} s", (kill_at - w) as f64 / 1e9),
        ),
        ("held by the killed node", held.len().to_string()),
        (
            "its claims all taken over after",
            taken_over.map_or("not within 60 s".into(), |d| {
                format!("{:.3} s", d.as_secs_f64())
            }),
        ),
        (
            "held: delivered <= 5 s after due",
            format!("{within} of {}", held.len()),
        ),
        (
            "held: lateness p50 / p99 / max (ms)",
            format!(
                "{:.0} / {:.0} / {:.0}",
                pct(&late, 50.0),
                pct(&late, 99.0),
                late.last().copied().unwrap_or(f64::NAN)
            ),
        ),
        (
            "duplicates <= held",
            if a.duplicates <= held.len() {
                "yes".into()
            } else {
                format!("NO: {} > {}", a.duplicates, held.len())
            },
        ),
    ]);
    if !all {
        rows.push(("WAIT", "gave up before every event arrived".into()));
    }
    table("failover", &rows);
    Ok(())
}
