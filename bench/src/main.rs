//! qhronos-bench: starts a real qhronosd on a temporary data directory, an in-process webhook
//! receiver, drives load over the HTTP API and prints what it measured.
//!
//! `cargo run --release -p qhronos-bench -- <subcommand> [--qhronosd PATH]`

mod analytics;
mod api;
mod conflicts;
mod create;
mod due;
mod expander;
mod failover;
mod pending;
mod receiver;
mod search;
mod server;
mod stats;
mod ws;

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Parser, Subcommand};
use rand::distr::{Alphanumeric, SampleString};

use crate::api::Api;
use crate::receiver::Receiver;
use crate::server::Server;

#[derive(Parser, Debug)]
#[command(about = "Benchmarks for qhronosd (needs target/release/qhronosd)")]
struct Cli {
    /// The qhronosd binary. Default: <workspace>/target/release/qhronosd.
    #[arg(long, global = true, value_name = "PATH")]
    qhronosd: Option<PathBuf>,
    /// Run on PostgreSQL: a server URL (e.g. postgres://postgres@127.0.0.1:5432/postgres). Each
    /// run creates a fresh database on it (with `psql`) and drops it afterwards.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// qhronosd processes on the one database (needs --database-url); the API calls go to the
    /// first, deliveries come from all.
    #[arg(long, global = true, default_value_t = 1)]
    nodes: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug, Clone)]
enum Cmd {
    /// One-time events spread at `rate` per second over `seconds`: lateness of each delivery.
    Precision {
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// `count` one-time events all due at the same instant.
    Burst {
        #[arg(long, default_value_t = 100_000)]
        count: u64,
    },
    /// Events due now, created at a steady rate: create call → webhook arrival.
    CreateLatency {
        #[arg(long, default_value_t = 500)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Concurrent clients creating far-future events as fast as they can.
    CreateRate {
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// POST /events/batch with 1000 events a request, if the build has it.
    BatchCreate {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// `count` one-time events pending over `days` days: RSS, restart to first on-time fire,
    /// then the precision row (`rate` x `seconds`) with all of them in the store.
    Pending {
        #[arg(long, default_value_t = 10_000_000)]
        count: usize,
        #[arg(long, default_value_t = 30)]
        days: u64,
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// A burst, with qhronosd killed (SIGKILL) half-way through and restarted.
    Kill9 {
        #[arg(long, default_value_t = 100_000)]
        count: u64,
    },
    /// CPU qhronosd needs to keep `events` recurring events materialised 24 h ahead, against
    /// an idle qhronosd with none.
    Expander {
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        #[arg(long, default_value_t = 120)]
        measure_seconds: u64,
        #[arg(long, default_value_t = 32)]
        clients: usize,
    },
    /// Events to one WebSocket client (action `websocket`) that acknowledges each: lateness at
    /// the client, losses, and whether every occurrence was recorded completed.
    Websocket {
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Several nodes on PostgreSQL (`--nodes`, `--database-url`), one-time events at `rate` per
    /// second over `seconds`; one node other than the API's is killed (SIGKILL) half-way: how
    /// late what it held is delivered by the others, lost, duplicates.
    Failover {
        #[arg(long, default_value_t = 1000)]
        rate: u64,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Analytics rollups for `deliveries` over `days` filled through the store (no qhronosd):
    /// the 30-day hourly `GET /analytics` query timed `runs` times (all events, a tag, an event).
    Analytics {
        #[arg(long, default_value_t = 10_000_000)]
        deliveries: u64,
        #[arg(long, default_value_t = 30)]
        days: i64,
        #[arg(long, default_value_t = 100)]
        events: usize,
        #[arg(long, default_value_t = 50)]
        runs: usize,
    },
    /// `events` events filled through the store, then `GET /events?q=` timed over HTTP,
    /// `queries` one-word queries of each kind (prefixes, whole words).
    Search {
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long, default_value_t = 300)]
        queries: usize,
        /// Keep the SQLite data directory here; a later run on it skips the fill.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// A calendar of `events` recurring events, a `days`-day planning horizon: `runs` times one
    /// `POST /events` and one `PUT /events/{id}` checked against it, over HTTP (and, in
    /// process, the index build and a probe).
    Conflicts {
        #[arg(long, default_value_t = 10_000)]
        events: usize,
        #[arg(long, default_value_t = 90)]
        days: i64,
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// precision (1000/s, 30 s), burst 100000, create-latency, create-rate, batch-create.
    All,
}

/// Where the servers keep their data: a fresh data directory (SQLite), or a fresh database on a
/// PostgreSQL server shared by `nodes` servers.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    pub database_url: Option<String>,
    pub nodes: usize,
}

/// A database created for one run with `psql`, dropped with this value.
pub struct BenchDb {
    server: String,
    name: String,
    pub url: String,
}

impl BenchDb {
    pub fn create(server: &str) -> anyhow::Result<BenchDb> {
        let name = format!(
            "qhronos_bench_{}",
            Alphanumeric
                .sample_string(&mut rand::rng(), 12)
                .to_lowercase()
        );
        psql(server, &format!("CREATE DATABASE {name}"))?;
        let (base, _) = server
            .rsplit_once('/')
            .ok_or_else(|| anyhow::anyhow!("--database-url {server}: no /database part"))?;
        let url = format!("{base}/{name}");
        eprintln!("[bench] database {url}");
        Ok(BenchDb {
            server: server.to_string(),
            name,
            url,
        })
    }
}

impl Drop for BenchDb {
    /// Drops the database, unless `QHRONOS_BENCH_KEEP_DB` is set (to look at it afterwards;
    /// its name is printed).
    fn drop(&mut self) {
        if std::env::var_os("QHRONOS_BENCH_KEEP_DB").is_some() {
            eprintln!(
                "[bench] kept database {} (QHRONOS_BENCH_KEEP_DB)",
                self.name
            );
            return;
        }
        let _ = psql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    psql_rows(url, sql).map(|_| ())
}

/// The rows of a query, `|`-separated, one a line.
pub fn psql_rows(url: &str, sql: &str) -> anyhow::Result<String> {
    let out = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .map_err(|e| anyhow::anyhow!("psql: {e} (--database-url needs the psql client)"))?;
    if !out.status.success() {
        bail!("psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One qhronosd (or several on PostgreSQL) on fresh storage, the receiver, and a client.
pub struct Harness {
    pub server: Server,
    /// Further nodes on the same database.
    pub others: Vec<Server>,
    pub receiver: Receiver,
    pub api: Api,
    // Dropped last: the servers are killed before their storage goes.
    _db: Option<BenchDb>,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub fn start(bin: &Path, setup: &Setup) -> anyhow::Result<Harness> {
        Harness::start_on(bin, setup, &[])
    }

    /// Like [`Harness::start`], with extra environment for qhronosd (see [`Server::start`]).
    pub fn start_with_env(bin: &Path, extra_env: &[(&str, &str)]) -> anyhow::Result<Harness> {
        Harness::start_on(bin, &Setup::default(), extra_env)
    }

    fn start_on(bin: &Path, setup: &Setup, extra_env: &[(&str, &str)]) -> anyhow::Result<Harness> {
        let dir = tempfile::Builder::new()
            .prefix("qhronos-bench-")
            .tempdir()?;
        let token = Alphanumeric.sample_string(&mut rand::rng(), 32);
        let receiver = Receiver::start()?;
        let db = setup
            .database_url
            .as_deref()
            .map(BenchDb::create)
            .transpose()?;
        let mut env: Vec<(&str, &str)> = extra_env.to_vec();
        if let Some(db) = &db {
            env.push(("QHRONOS_DATABASE_URL", db.url.as_str()));
        }
        let server = Server::start(bin, dir.path(), &token, &env)?;
        let others = (1..setup.nodes.max(1))
            .map(|_| Server::start(bin, dir.path(), &token, &env))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let api = Api::new(&server.base, &token, &receiver.url())?;
        Ok(Harness {
            server,
            others,
            receiver,
            api,
            _db: db,
            _dir: dir,
        })
    }

    /// The run's database (PostgreSQL runs only).
    pub fn db_url(&self) -> Option<&str> {
        self._db.as_ref().map(|d| d.url.as_str())
    }

    /// SIGKILL, then start again on the same data directory and token.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.server.restart()?;
        self.api.base = self.server.base.clone();
        Ok(())
    }

    /// Prints the peak RSS and what qhronosd logged at WARN/ERROR, then stops it.
    pub fn finish(self) {
        for (i, s) in self.others.iter().enumerate() {
            let log = s.log.lock().unwrap();
            println!(
                "  node {}: peak RSS {:.1} MiB, {} WARN and {} ERROR log lines",
                i + 2,
                s.peak_kb() as f64 / 1024.0,
                log.warnings,
                log.errors
            );
        }
        let kb = self.server.peak_kb();
        let log = self.server.log.lock().unwrap();
        let mut rows = vec![
            (
                "qhronosd peak RSS (VmHWM)",
                format!("{:.1} MiB", kb as f64 / 1024.0),
            ),
            ("log lines at WARN", log.warnings.to_string()),
            ("log lines at ERROR", log.errors.to_string()),
        ];
        if self.receiver.bad() > 0 {
            rows.push(("unparsable webhook bodies", self.receiver.bad().to_string()));
        }
        stats::table("qhronosd", &rows);
        for p in &log.problems {
            println!("  | {}", api::truncate(p, 400));
        }
    }
}

fn default_qhronosd() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/qhronosd")
}

async fn run(bin: &Path, setup: &Setup, cmd: Cmd) -> anyhow::Result<()> {
    if let Cmd::Expander {
        events,
        measure_seconds,
        clients,
    } = cmd
    {
        // Starts (and finishes) its own two servers.
        return expander::run(bin, events, measure_seconds, clients).await;
    }
    if let Cmd::Conflicts { events, days, runs } = cmd {
        let horizon = format!("{days}d");
        let h = Harness::start_on(bin, setup, &[("QHRONOS_PLANNING__HORIZON", &horizon)])?;
        let r = conflicts::run(&h, events, days, runs).await;
        h.finish();
        return r;
    }
    let h = Harness::start(bin, setup)?;
    let res = match cmd {
        Cmd::Precision { rate, seconds } => due::precision(&h, rate, seconds).await,
        Cmd::Burst { count } => due::burst(&h, count as usize).await,
        Cmd::Pending {
            count,
            days,
            rate,
            seconds,
        } => {
            let mut h = h;
            let r = pending::run(&mut h, count, days, rate, seconds).await;
            h.finish();
            return r;
        }
        Cmd::Kill9 { count } => {
            let mut h = h;
            let r = due::kill9(&mut h, count as usize).await;
            h.finish();
            return r;
        }
        Cmd::CreateLatency { rate, seconds } => create::latency(&h, rate, seconds).await,
        Cmd::CreateRate { clients, seconds } => create::rate(&h, clients, seconds).await,
        Cmd::BatchCreate { seconds } => create::batch(&h, seconds).await,
        Cmd::Websocket { rate, seconds } => ws::websocket(&h, rate, seconds).await,
        Cmd::Failover { rate, seconds } => {
            let mut h = h;
            let r = failover::run(&mut h, rate, seconds).await;
            h.finish();
            return r;
        }
        Cmd::Expander { .. }
        | Cmd::Analytics { .. }
        | Cmd::Search { .. }
        | Cmd::Conflicts { .. } => {
            unreachable!("handled above")
        }
        Cmd::All => unreachable!("expanded by main"),
    };
    h.finish();
    res
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Cmd::Analytics {
        deliveries,
        days,
        events,
        runs,
    } = cli.cmd
    {
        return analytics::run(cli.database_url.clone(), deliveries, days, events, runs).await;
    }
    let bin = cli.qhronosd.clone().unwrap_or_else(default_qhronosd);
    if !bin.is_file() {
        bail!(
            "qhronosd not found at {}: run cargo build --release -p qhronos first (or pass --qhronosd PATH)",
            bin.display()
        );
    }
    if let Cmd::Search {
        events,
        queries,
        ref data_dir,
    } = cli.cmd
    {
        let keep = data_dir.clone();
        return search::run(&bin, cli.database_url.clone(), keep, events, queries).await;
    }
    if cli.nodes > 1 && cli.database_url.is_none() {
        bail!("--nodes above 1 needs --database-url (several nodes share one PostgreSQL database)");
    }
    let setup = Setup {
        database_url: cli.database_url.clone(),
        nodes: cli.nodes,
    };
    let cmds = match cli.cmd {
        Cmd::All => vec![
            Cmd::Precision {
                rate: 1000,
                seconds: 30,
            },
            Cmd::Burst { count: 100_000 },
            Cmd::CreateLatency {
                rate: 500,
                seconds: 10,
            },
            Cmd::CreateRate {
                clients: 64,
                seconds: 10,
            },
            Cmd::BatchCreate { seconds: 10 },
        ],
        c => vec![c],
    };
    let mut failed = 0;
    for c in cmds {
        println!("\n#### {c:?}");
        if let Err(e) = run(&bin, &setup, c).await {
            eprintln!("[bench] failed: {e:#}");
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} benchmark(s) failed");
    }
    Ok(())
}
