//! What a database backend supplies beneath the shared store logic.

use async_trait::async_trait;
use sqlx::{Database, Pool};

use super::sql::Dialect;
use super::{AuditEntry, Change, Created, Result};
use crate::domain::event::Event;
use crate::domain::occurrence::NewOccurrence;
use crate::domain::Millis;

/// A database behind the store traits. Every store trait is implemented for every `Backend` by
/// logic written once (in the concern modules); a backend gives its SQL dialect, its pools and
/// the few calls that are not SQL.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The backend's SQL.
    type D: Dialect;

    /// `sqlite` or `postgres`, for `/status` and logs.
    fn kind(&self) -> &'static str;
    /// True when only one process can use the database (the embedded store): every lease found
    /// at start-up was then held by an earlier run of this process.
    fn single_process(&self) -> bool;
    /// The pool reads use (on SQLite, readers beside the one writer).
    fn reads(&self) -> &Pool<Self::D>;
    /// The pool writes use (on SQLite, one connection: writes queue here, never `SQLITE_BUSY`).
    fn writes(&self) -> &Pool<Self::D>;
    /// (name, idle, in use) of each pool, for the metrics.
    fn pools(&self) -> Vec<(&'static str, u32, u32)>;

    /// Tells the other nodes about `change` from inside the transaction that makes it, so that
    /// it reaches them exactly when it commits (PostgreSQL's NOTIFY). Nothing where one process
    /// owns the database: its own callers act directly.
    async fn announce(c: &mut <Self::D as Database>::Connection, change: &Change) -> Result<()>;

    /// Inserts an event and its first occurrences (see `EventStore::create_event`): SQLite
    /// commits them in groups through its writer task, PostgreSQL in a transaction each.
    async fn create_event(
        &self,
        event: &Event,
        occurrences: &[NewOccurrence],
        idempotency: Option<(&str, &str)>,
        actor: &str,
        audit: Option<&AuditEntry>,
    ) -> Result<Created>;
    /// Appends an audit line (SQLite: group-committed with other writes).
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()>;
    /// See `NodeStore::try_upkeep_lease`.
    async fn try_upkeep_lease(
        &self,
        name: &str,
        owner: &str,
        until: Millis,
        now: Millis,
    ) -> Result<bool>;
    /// See `NodeStore::changes`.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>>;
    /// See `NodeStore::publish`.
    async fn publish(&self, change: &Change) -> Result<()>;
    /// See `OpsStore::backup_to`.
    async fn backup_to(&self, path: &std::path::Path) -> Result<()>;
    /// See `OpsStore::keep_partitions_ahead`: nothing where the tables are not partitioned.
    async fn keep_partitions_ahead(
        &self,
        _now: Millis,
        _ahead: Millis,
        _step: Millis,
    ) -> Result<u32> {
        Ok(0)
    }
    /// See `OpsStore::drop_expired_partitions`: nothing where the tables are not partitioned.
    async fn drop_expired_partitions(
        &self,
        _now: Millis,
        _older_than: Millis,
        _cut: &super::PurgeCutoffs,
    ) -> Result<super::PartitionsDropped> {
        Ok(super::PartitionsDropped::default())
    }
}

/// (name, idle, in use) of a pool.
pub(crate) fn pool_gauge<D: Database>(name: &'static str, p: &Pool<D>) -> (&'static str, u32, u32) {
    let idle = u32::try_from(p.num_idle()).unwrap_or(u32::MAX);
    (name, idle, p.size().saturating_sub(idle))
}
