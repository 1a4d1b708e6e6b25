use std::path::PathBuf;

/// mimalloc instead of glibc's malloc: a profile of a 60,000-delivery burst spent ~15 % of
/// qhronosd's CPU in glibc's allocator (`_int_malloc`, `malloc_consolidate`, `_int_free`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use qhronos::config::{Config, Overrides};
use qhronos::startup::{describe_store, open_store, Application};

/// qhronosd: the Qhronos scheduling and delivery service.
///
/// Settings come from built-in defaults, then --config FILE, then QHRONOS_* environment
/// variables, then these flags. Without a command, qhronosd serves.
#[derive(Parser, Debug)]
#[command(name = "qhronosd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// YAML configuration file (see config.example.yaml).
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    #[arg(long, global = true)]
    host: Option<std::net::IpAddr>,
    #[arg(long, global = true)]
    port: Option<u16>,
    /// error, warn, info, debug, trace (or a tracing filter).
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// text or json.
    #[arg(long, global = true)]
    log_format: Option<String>,
    /// Directory of the embedded store.
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// sqlite://PATH (default: <data-dir>/qhronos.db).
    #[arg(long, value_name = "URL", global = true)]
    database_url: Option<String>,
    /// The master token (at least 16 characters). Prefer QHRONOS_MASTER_TOKEN: flags show in `ps`.
    #[arg(long, value_name = "TOKEN", global = true)]
    master_token: Option<String>,
    /// Apply database migrations, then exit.
    #[arg(long)]
    migrate: bool,
    /// Generate a new master token, print it once, store its hash, then exit.
    #[arg(long)]
    reset_master_token: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Work with the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Write a consistent copy of the embedded database to FILE; safe while qhronosd runs.
    Backup {
        /// The new file (must not exist).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Replace the embedded database with a backup. Stop qhronosd first.
    Restore {
        /// A file written by `qhronosd backup` or `POST /admin/backup`.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// Replace an existing database (it is kept as qhronos.db.before-restore).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate the configuration (defaults, --config FILE, QHRONOS_* environment, flags) and
    /// print the effective settings as YAML, secrets masked. Exit code 0 when it is valid, 2
    /// (with the error) when it is not.
    Check,
}

/// `qhronosd config check`.
fn config_check(file: Option<&std::path::Path>, overrides: &Overrides) -> ! {
    match Config::load(file, overrides) {
        Ok(config) => {
            let yaml = serde_yaml_ng::to_string(&qhronos::config::masked(&config))
                .unwrap_or_else(|e| format!("# cannot print the settings: {e}\n"));
            println!(
                "# effective configuration: defaults, then {}, then QHRONOS_* environment, then flags; secrets masked",
                file.map_or_else(|| "no config file".to_string(), |p| p.display().to_string())
            );
            print!("{yaml}");
            eprintln!("configuration is valid");
            std::process::exit(0)
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2)
        }
    }
}

fn main() -> anyhow::Result<()> {
    tune_allocator();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

/// `mi_option_purge_delay` (formerly `reset_delay`) in mimalloc.h's `mi_option_e`, whose
/// numbering is kept across versions (the Rust bindings predate the name).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays with the allocator before it goes back to the OS (ms).
const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// mimalloc 3 keeps freed memory for a second before it gives it back to the OS
/// (`purge_delay`): a burst's claims, freed as they are delivered, stay in the RSS
/// meanwhile. Give it back after 10 ms, mimalloc 2's default (a burst of 100,000: peak RSS
/// 243–261 → 206–215 MiB, the same deliveries a second), unless `MIMALLOC_PURGE_DELAY` says
/// otherwise. Called before the runtime's threads start.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: stores one of mimalloc's option values (a plain store into its option
        // table); no other thread is running yet.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

async fn run() -> anyhow::Result<()> {
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
    if let Some(Command::Config(ConfigCommand::Check)) = cli.command {
        config_check(cli.config.as_deref(), &overrides);
    }
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    qhronos::telemetry::init(&config.log_level, &config.log_format);
    match cli.command {
        Some(Command::Backup { to }) => return backup(&config, &to).await,
        Some(Command::Restore { from, force }) => return restore(&config, &from, force).await,
        _ => {}
    }
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

/// `qhronosd backup --to FILE`.
async fn backup(config: &Config, to: &std::path::Path) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    store.backup_to(to).await?;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "backup of {} written to {} ({bytes} bytes)",
        describe_store(config),
        to.display()
    );
    Ok(())
}

/// `qhronosd restore --from FILE [--force]`: checks the backup, brings its schema up to date on
/// a copy, then moves the copy into place. The running service must be stopped: SQLite cannot
/// swap a database under an open connection.
async fn restore(config: &Config, from: &std::path::Path, force: bool) -> anyhow::Result<()> {
    use anyhow::Context;
    if config
        .database_url
        .as_deref()
        .is_some_and(|u| !u.is_empty())
    {
        anyhow::bail!("restore works on the embedded store in --data-dir; a database_url is set");
    }
    anyhow::ensure!(from.is_file(), "{} is not a file", from.display());
    std::fs::create_dir_all(&config.data_dir)?;
    let db = config.data_dir.join("qhronos.db");
    if db.exists() && !force {
        anyhow::bail!(
            "{} exists: stop qhronosd, then run again with --force to replace it (the current one is kept as qhronos.db.before-restore)",
            db.display()
        );
    }
    let staging = config.data_dir.join("qhronos.db.restoring");
    std::fs::copy(from, &staging).with_context(|| format!("cannot copy {}", from.display()))?;
    let (events, occurrences) = qhronos::store::sqlite::prepare_restore(&staging)
        .await
        .with_context(|| format!("{} is not a usable Qhronos database", from.display()))?;
    // The old database moves aside with its WAL, which may hold its last transactions.
    for suffix in ["", "-wal", "-shm"] {
        let old = config.data_dir.join(format!("qhronos.db{suffix}"));
        if old.exists() {
            std::fs::rename(
                &old,
                config
                    .data_dir
                    .join(format!("qhronos.db.before-restore{suffix}")),
            )?;
        }
    }
    std::fs::rename(&staging, &db)?;
    eprintln!(
        "restored {} into {} ({events} events, {occurrences} occurrences); start qhronosd",
        from.display(),
        db.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The number names the option meant: its default is mimalloc 3's purge delay (1,000 ms),
    /// and tuning sets it.
    #[test]
    fn the_allocator_option_is_the_one_meant() {
        use libmimalloc_sys::mi_option_get;
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            eprintln!("skipped: MIMALLOC_PURGE_DELAY is set in the environment");
            return;
        }
        // SAFETY: reads and stores of mimalloc's option table.
        unsafe {
            assert_eq!(mi_option_get(MI_OPTION_PURGE_DELAY), 1000);
            tune_allocator();
            assert_eq!(mi_option_get(MI_OPTION_PURGE_DELAY), PURGE_DELAY_MS);
        }
    }
}
