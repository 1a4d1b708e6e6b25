//! Many pending one-time events spread over days: memory, start-up to the first on-time fire,
//! and the precision row for the events due now, with all of them in the store.

use std::time::{Duration, Instant};

use crate::receiver::now_ns;
use crate::stats::{ms, table};
use crate::Harness;

const SEC: i128 = 1_000_000_000;
const CLIENTS: usize = 2;
/// Events created per round (then RSS is sampled).
const ROUND: usize = 200_000;

pub async fn run(
    h: &mut Harness,
    count: usize,
    days: u64,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<()> {
    // 1. The pending events, from 2 h to `days` ahead (beyond the look-ahead window: rows in
    //    the events table, none in memory).
    let begin = now_ns() + 2 * 3600 * SEC;
    let span = (days as i128 * 86_400 * SEC - 2 * 3600 * SEC).max(SEC);
    let step = span / count.max(1) as i128;
    let t = Instant::now();
    let mut made = 0usize;
    let mut rss_during = Vec::new();
    while made < count {
        let n = ROUND.min(count - made);
        let bodies = (made..made + n)
            .map(|i| h.api.event_body("pending", begin + i as i128 * step))
            .collect();
        h.api.create_many(bodies, CLIENTS).await?;
        made += n;
        let rss = h.server.rss_kb().unwrap_or(0);
        rss_during.push(rss);
        eprintln!(
            "[bench] {made} pending events created ({:.0}/s), RSS {:.1} MiB",
            made as f64 / t.elapsed().as_secs_f64(),
            rss as f64 / 1024.0
        );
    }
    let create_s = t.elapsed().as_secs_f64();
    let rss_loaded = h.server.rss_kb().unwrap_or(0);

    // 2. Start-up: probes due every 100 ms from 0.3 s to 3 s after the restart begins; the
    //    first probe delivered on time (within 10 ms) says when the new process fires on time.
    let restart_at = now_ns() + 2 * SEC;
    let probes: Vec<i128> = (3..=30).map(|i| restart_at + i * SEC / 10).collect();
    let probe_bodies = probes
        .iter()
        .map(|t| h.api.event_body("probe", *t))
        .collect();
    let probe_ids = h.api.create_many(probe_bodies, 1).await?;
    let d = restart_at - now_ns();
    if d > 0 {
        tokio::time::sleep(Duration::from_nanos(d as u64)).await;
    }
    let spawned = now_ns();
    h.restart()?;
    let listening = now_ns();
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let recs = h.receiver.snapshot();
    let mut first_on_time: Option<i128> = None;
    for d in &recs {
        if !probe_ids.contains(&d.event_id) {
            continue;
        }
        let Some(s) = d.scheduled_ns else { continue };
        if d.arrival_ns >= s && d.arrival_ns - s <= 10_000_000 && d.arrival_ns >= spawned {
            first_on_time = Some(first_on_time.map_or(s, |f: i128| f.min(s)));
        }
    }
    let rss_restarted = h.server.rss_kb().unwrap_or(0);
    table(
        &format!("pending {count} over {days} days"),
        &[
            (
                "created",
                format!(
                    "{count} in {create_s:.1} s ({:.0}/s)",
                    count as f64 / create_s
                ),
            ),
            (
                "RSS after creating (VmRSS)",
                format!("{:.1} MiB", rss_loaded as f64 / 1024.0),
            ),
            (
                "RSS max while creating",
                format!(
                    "{:.1} MiB",
                    *rss_during.iter().max().unwrap_or(&0) as f64 / 1024.0
                ),
            ),
            (
                "restart: spawn -> listening",
                format!("{:.3} s", ms(listening - spawned) / 1000.0),
            ),
            (
                "restart: spawn -> first on-time fire",
                match first_on_time {
                    Some(f) => format!(
                        "{:.3} s (probe due then, delivered within 10 ms)",
                        ms(f - spawned) / 1000.0
                    ),
                    None => "no probe was on time".into(),
                },
            ),
            (
                "RSS after restart",
                format!("{:.1} MiB", rss_restarted as f64 / 1024.0),
            ),
        ],
    );
    // 3. The precision row with all of them pending.
    crate::due::precision(h, rate, seconds).await?;
    table(
        "pending: after the precision run",
        &[(
            "RSS (VmRSS)",
            format!("{:.1} MiB", h.server.rss_kb().unwrap_or(0) as f64 / 1024.0),
        )],
    );
    Ok(())
}
