//! qhronos-bench: starts a real qhronosd on a temporary data directory, an in-process webhook
//! receiver, drives load over the HTTP API and prints what it measured.
//!
//! `cargo run --release -p qhronos-bench -- <subcommand> [--qhronosd PATH]`

mod api;
mod create;
mod due;
mod expander;
mod pending;
mod receiver;
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
    /// precision (1000/s, 30 s), burst 100000, create-latency, create-rate, batch-create.
    All,
}

/// One qhronosd on a fresh data directory, the receiver, and a client.
pub struct Harness {
    pub server: Server,
    pub receiver: Receiver,
    pub api: Api,
    // Dropped last: the server is killed before its directory goes.
    _dir: tempfile::TempDir,
}

impl Harness {
    pub fn start(bin: &Path) -> anyhow::Result<Harness> {
        Harness::start_with_env(bin, &[])
    }

    /// Like [`Harness::start`], with extra environment for qhronosd (see [`Server::start`]).
    pub fn start_with_env(bin: &Path, extra_env: &[(&str, &str)]) -> anyhow::Result<Harness> {
        let dir = tempfile::Builder::new()
            .prefix("qhronos-bench-")
            .tempdir()?;
        let token = Alphanumeric.sample_string(&mut rand::rng(), 32);
        let receiver = Receiver::start()?;
        let server = Server::start(bin, dir.path(), &token, extra_env)?;
        let api = Api::new(&server.base, &token, &receiver.url())?;
        Ok(Harness {
            server,
            receiver,
            api,
            _dir: dir,
        })
    }

    /// SIGKILL, then start again on the same data directory and token.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.server.restart()?;
        self.api.base = self.server.base.clone();
        Ok(())
    }

    /// Prints the peak RSS and what qhronosd logged at WARN/ERROR, then stops it.
    pub fn finish(self) {
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

async fn run(bin: &Path, cmd: Cmd) -> anyhow::Result<()> {
    if let Cmd::Expander {
        events,
        measure_seconds,
        clients,
    } = cmd
    {
        // Starts (and finishes) its own two servers.
        return expander::run(bin, events, measure_seconds, clients).await;
    }
    let h = Harness::start(bin)?;
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
        Cmd::Expander { .. } => unreachable!("handled above"),
        Cmd::All => unreachable!("expanded by main"),
    };
    h.finish();
    res
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bin = cli.qhronosd.clone().unwrap_or_else(default_qhronosd);
    if !bin.is_file() {
        bail!(
            "qhronosd not found at {}: run cargo build --release -p qhronos first (or pass --qhronosd PATH)",
            bin.display()
        );
    }
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
        if let Err(e) = run(&bin, c).await {
            eprintln!("[bench] failed: {e:#}");
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} benchmark(s) failed");
    }
    Ok(())
}
