//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes go through a pool of exactly one connection, so they queue inside the process instead
//! of failing with `SQLITE_BUSY`; reads use a separate pool and run concurrently (WAL). With
//! `synchronous = NORMAL` a committed transaction survives a process crash (`kill -9`); only a
//! power loss can take the last few back. Event creation and audit lines are group-committed
//! (`batch.rs`). One process owns the file: there are no other nodes to tell about changes.
//!
//! The WAL is folded into the database file by a task of its own ([`checkpoint`]), on its own
//! connection, every [`CHECKPOINT_EVERY`]: not by the committing writer, as SQLite does by
//! default once the WAL holds 1,000 pages. A checkpoint copies and syncs megabytes; done by the
//! writer it stalls every create and outcome queued behind that commit for milliseconds. The
//! writer still checkpoints itself past [`WRITER_CHECKPOINT_PAGES`], should the task fall behind.

mod batch;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Sqlite, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::backend::{pool_gauge, Backend};
use super::{AuditEntry, Change, Created, Result, StoreError};
use crate::domain::event::Event;
use crate::domain::occurrence::NewOccurrence;
use crate::domain::Millis;
use batch::Job;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How often the checkpoint task folds the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// WAL pages past which the writer checkpoints on commit (SQLite's default is 1,000): only when
/// the checkpoint task has fallen behind (64 MiB of WAL at 4 KiB pages).
const WRITER_CHECKPOINT_PAGES: u32 = 16_384;

/// The embedded store (see the module doc).
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    /// Group-committed writes (see `batch`).
    batch: mpsc::Sender<Job>,
    /// The checkpoint task, stopped with the store.
    checkpointer: tokio::task::JoinHandle<()>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.checkpointer.abort();
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies the embedded migrations.
    pub async fn open(url: &str) -> Result<SqliteStore> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                opts.clone()
                    .pragma("wal_autocheckpoint", WRITER_CHECKPOINT_PAGES.to_string()),
            )
            .await?;
        MIGRATOR.run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts.clone())
            .await?;
        let checkpoint_conn = SqliteConnection::connect_with(&opts).await?;
        let (batch, rx) = mpsc::channel(4096);
        tokio::spawn(batch::run(write.clone(), rx));
        let checkpointer = tokio::spawn(checkpoint(checkpoint_conn));
        Ok(SqliteStore {
            read,
            write,
            batch,
            checkpointer,
        })
    }

    /// Hands a job to the writer task and waits for its result (sent after the commit).
    async fn submit<T>(&self, job: impl FnOnce(oneshot::Sender<Result<T>>) -> Job) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.batch
            .send(job(reply))
            .await
            .map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())?
    }
}

/// Folds the WAL into the database file every [`CHECKPOINT_EVERY`] (`PASSIVE`: it never waits
/// for, nor blocks, the writer or a reader; what they still use is left for the next one), on
/// its own connection, until aborted. A failure is logged and tried again at the next tick.
async fn checkpoint(mut c: SqliteConnection) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut c)
            .await
        {
            tracing::warn!(error = %e, "checkpointing the WAL failed; trying again");
        }
    }
}

fn writer_gone() -> StoreError {
    StoreError::Internal("the store's writer has stopped".into())
}

/// Checks that `path` is a Qhronos database, brings its schema up to date and folds its WAL
/// into the main file, so that it can be moved into place as `qhronos.db`. Returns its
/// (events, occurrences) counts.
pub async fn prepare_restore(path: &std::path::Path) -> Result<(u64, u64)> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .foreign_keys(true);
    let mut c = sqlx::SqliteConnection::connect_with(&opts).await?;
    MIGRATOR.run(&mut c).await?;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut c)
        .await?;
    let occs: i64 = sqlx::query_scalar("SELECT count(*) FROM occurrences")
        .fetch_one(&mut c)
        .await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut c)
        .await?;
    c.close().await?;
    Ok((events.max(0) as u64, occs.max(0) as u64))
}

#[async_trait]
impl Backend for SqliteStore {
    type D = Sqlite;

    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn single_process(&self) -> bool {
        true
    }

    fn reads(&self) -> &SqlitePool {
        &self.read
    }

    fn writes(&self) -> &SqlitePool {
        &self.write
    }

    fn pools(&self) -> Vec<(&'static str, u32, u32)> {
        vec![
            pool_gauge("read", &self.read),
            pool_gauge("write", &self.write),
        ]
    }

    /// One process: its callers act on their own changes directly.
    async fn announce(_: &mut SqliteConnection, _: &Change) -> Result<()> {
        Ok(())
    }

    async fn create_event(
        &self,
        e: &Event,
        occs: &[NewOccurrence],
        idem: Option<(&str, &str)>,
        actor: &str,
        audit: Option<&AuditEntry>,
    ) -> Result<Created> {
        self.submit(|reply| Job::Create {
            event: Box::new(e.clone()),
            occurrences: occs.to_vec(),
            idempotency: idem.map(|(k, h)| (k.to_string(), h.to_string())),
            actor: actor.to_string(),
            audit: audit.map(|a| Box::new(a.clone())),
            reply,
        })
        .await
    }

    async fn append_audit(&self, e: &AuditEntry) -> Result<()> {
        self.submit(|reply| Job::Audit {
            entry: Box::new(e.clone()),
            reply,
        })
        .await
    }

    /// One process by construction: it always holds every upkeep lease.
    async fn try_upkeep_lease(&self, _: &str, _: &str, _: Millis, _: Millis) -> Result<bool> {
        Ok(true)
    }

    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }

    async fn publish(&self, _: &Change) -> Result<()> {
        Ok(())
    }

    async fn backup_to(&self, path: &std::path::Path) -> Result<()> {
        // A backup holds the JWT signing key, token hashes and webhook secrets: it is created
        // empty, readable by its owner only, before SQLite writes into it (VACUUM INTO accepts
        // an empty file), so it is never readable by others, whatever the umask.
        super::private_file::create(path)?;
        let target = path
            .to_str()
            .ok_or_else(|| StoreError::Invalid("backup path is not UTF-8".into()))?;
        // VACUUM INTO writes a consistent, compacted copy from one read transaction.
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&self.read)
            .await?;
        Ok(())
    }
}

/// `PRAGMA integrity_check` of the SQLite file at `path` (a backup), opened read-only: `"ok"`,
/// or the problems it lists, joined by `"; "`.
pub async fn integrity_check(path: &std::path::Path) -> Result<String> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false);
    let mut c = SqliteConnection::connect_with(&opts).await?;
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut c)
        .await?;
    c.close().await?;
    Ok(rows.join("; "))
}
