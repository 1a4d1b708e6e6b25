use std::path::PathBuf;

use clap::Parser;
use qhronos::config::{Config, Overrides};
use qhronos::startup::{describe_store, open_store, Application};

/// qhronosd: the Qhronos scheduling and delivery service.
///
/// Settings come from built-in defaults, then --config FILE, then QHRONOS_* environment
/// variables, then these flags.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// YAML configuration file (see config.example.yaml).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    #[arg(long)]
    host: Option<std::net::IpAddr>,
    #[arg(long)]
    port: Option<u16>,
    /// error, warn, info, debug, trace (or a tracing filter).
    #[arg(long)]
    log_level: Option<String>,
    /// text or json.
    #[arg(long)]
    log_format: Option<String>,
    /// Directory of the embedded store.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// sqlite://PATH (default: <data-dir>/qhronos.db).
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// The master token (at least 16 characters). Prefer QHRONOS_MASTER_TOKEN: flags show in `ps`.
    #[arg(long, value_name = "TOKEN")]
    master_token: Option<String>,
    /// Apply database migrations, then exit.
    #[arg(long)]
    migrate: bool,
    /// Generate a new master token, print it once, store its hash, then exit.
    #[arg(long)]
    reset_master_token: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let overrides = Overrides {
        port: cli.port,
        host: cli.host,
        log_level: cli.log_level,
        log_format: cli.log_format,
        data_dir: cli.data_dir,
        database_url: cli.database_url,
        master_token: cli.master_token,
    };
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    qhronos::telemetry::init(&config.log_level, &config.log_format);
    if cli.migrate {
        open_store(&config).await?;
        eprintln!("migrations applied: {}", describe_store(&config));
        return Ok(());
    }
    if cli.reset_master_token {
        let store = open_store(&config).await?;
        if let (_, qhronos::auth::TokenSource::Generated(t)) =
            qhronos::auth::MasterToken::generate(store.as_ref()).await?
        {
            println!("{t}");
            eprintln!("new master token stored (as a hash) in {}; the old one no longer works once qhronosd restarts", describe_store(&config));
        }
        return Ok(());
    }
    Application::build(config).await?.run_until_stopped().await
}
