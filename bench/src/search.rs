//! `search`: fills `events` events through the store (the real write path, so the full-text
//! index is kept by its triggers as in service), starts qhronosd on that database, and times
//! `GET /events?q=<one word>&limit=50` over HTTP, one query at a time.
//!
//! The text is drawn from a vocabulary of 5,000 made-up words (`w0000` … `w4999`) and a few
//! real ones: every 3-character prefix of a made-up word matches 100 words and so about a fifth
//! of the table — a harder case than real text, where prefixes are spread more thinly. Queries
//! are a random word cut to 3, 4 or 5 characters (as a person types), or the whole real word.

use std::path::Path;
use std::time::Instant;

use qhronos::api::event_io::EventIn;
use qhronos::domain::event::Event;
use qhronos::store::{By, Store};
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use uuid::Uuid;

use crate::api::Api;
use crate::server::Server;
use crate::stats::{pct, sort, table};
use crate::BenchDb;

const REAL: [&str; 8] = [
    "nightly", "backup", "report", "deploy", "sync", "billing", "invoice", "cleanup",
];

fn word(r: &mut StdRng) -> String {
    let i = r.random_range(0..5_008usize);
    match i.checked_sub(5_000) {
        Some(k) => REAL[k].to_string(),
        None => format!("w{i:04}"),
    }
}

fn words(r: &mut StdRng, n: usize) -> String {
    (0..n).map(|_| word(r)).collect::<Vec<_>>().join(" ")
}

fn event(r: &mut StdRng, i: usize, now: i64) -> anyhow::Result<Event> {
    let body = json!({
        "name": words(r, 3),
        "description": words(r, 6),
        "start_time": jiff::Timestamp::from_millisecond(now + 86_400_000)?.to_string(),
        "tags": [word(r)],
        "metadata": {"owner": word(r), "n": i},
        "action": {"type": "webhook", "params": {"url": "https://hooks.example/x"}},
    });
    let input: EventIn = serde_json::from_value(body)?;
    input
        .validate(Uuid::now_v7(), now, now)
        .map_err(|e| anyhow::anyhow!("bench event: {e}"))
}

/// Makes one query from the random source.
type MakeQuery = fn(&mut StdRng) -> String;

pub async fn run(
    bin: &Path,
    database_url: Option<String>,
    keep: Option<std::path::PathBuf>,
    events: usize,
    queries: usize,
) -> anyhow::Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("qhronos-bench-")
        .tempdir()?;
    // A data directory to keep (SQLite): filled on the first run, reused by the next ones.
    let dir = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let reuse = database_url.is_none() && dir.join("qhronos.db").is_file();
    let db = database_url.as_deref().map(BenchDb::create).transpose()?;
    let url = match &db {
        Some(d) => d.url.clone(),
        None => format!("sqlite://{}", dir.join("qhronos.db").display()),
    };
    let mut r = StdRng::seed_from_u64(7);
    let now = jiff::Timestamp::now().as_millisecond();
    let t = Instant::now();
    if !reuse {
        let store: std::sync::Arc<dyn Store> =
            qhronos::store::connect(&url, &Default::default()).await?;
        let mut done = 0;
        while done < events {
            let n = (events - done).min(1_000);
            let batch = (done..done + n)
                .map(|i| Ok((event(&mut r, i, now)?, Vec::new())))
                .collect::<anyhow::Result<Vec<_>>>()?;
            store.create_events(&batch, By::actor("bench")).await?;
            done += n;
            if done % 100_000 == 0 {
                eprintln!(
                    "[bench] {done} events in {:.0} s",
                    t.elapsed().as_secs_f64()
                );
            }
        }
    }
    let fill = t.elapsed();
    if let Some(d) = &db {
        // What autovacuum does to a table after this many inserts, done now rather than in the
        // middle of the timed queries: the GIN index's pending list merged, statistics taken
        // (without them the planner guesses every match count alike).
        crate::psql_rows(&d.url, "VACUUM ANALYZE events")?;
    }
    let token = Alphanumeric.sample_string(&mut rand::rng(), 32);
    let env: Vec<(&str, &str)> = db
        .as_ref()
        .map(|d| vec![("QHRONOS_DATABASE_URL", d.url.as_str())])
        .unwrap_or_default();
    let server = Server::start(bin, &dir, &token, &env)?;
    let api = Api::new(&server.base, &token, "http://127.0.0.1:9/")?;
    let mut rows = vec![
        ("store", url.split(':').next().unwrap_or("?").to_string()),
        (
            "filled",
            match reuse {
                true => format!("reused {}", dir.display()),
                false => format!("{events} events in {:.1} s", fill.as_secs_f64()),
            },
        ),
    ];
    let cases: [(&str, MakeQuery); 2] = [
        ("prefix of 3-5 characters", |r| {
            let w = word(r);
            let n = r.random_range(3..=5usize).min(w.len());
            w[..n].to_string()
        }),
        ("a whole real word", |r| {
            REAL[r.random_range(0..REAL.len())].to_string()
        }),
    ];
    for (name, make) in cases {
        // A few untimed queries warm the caches, as a running service has them.
        for _ in 0..5 {
            search(&api, &make(&mut r)).await?;
        }
        let (mut ms, mut full) = (Vec::with_capacity(queries), 0);
        for _ in 0..queries {
            let q = make(&mut r);
            let t = Instant::now();
            let n = search(&api, &q).await?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            full += usize::from(n == 50);
        }
        sort(&mut ms);
        rows.push((
            name,
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({queries} queries, {full} with a full page)",
                pct(&ms, 50.0),
                pct(&ms, 99.0),
                ms.last().copied().unwrap_or(0.0)
            ),
        ));
    }
    table("GET /events?q=… (limit 50), one client", &rows);
    drop(server);
    drop(db);
    Ok(())
}

/// One search page; how many events it held.
async fn search(api: &Api, q: &str) -> anyhow::Result<usize> {
    // The bench's words are letters and digits: nothing to escape.
    let res = api.get(&format!("/events?q={q}&limit=50")).send().await?;
    let status = res.status();
    let v: serde_json::Value = res.json().await?;
    anyhow::ensure!(status.is_success(), "GET /events?q={q}: {status} {v}");
    Ok(v["data"].as_array().map_or(0, |a| a.len()))
}
