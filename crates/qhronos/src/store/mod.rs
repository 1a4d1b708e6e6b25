//! Storage. The database is the source of truth: claims, leases and retries are rows, so a
//! crash loses nothing that was committed.
//!
//! Layout (see docs/design.md, "The store"):
//! - one small trait per concern — [`EventStore`], [`HistoryStore`], [`BulkStore`], [`OccurrenceStore`], [`ClaimStore`],
//!   [`QueueStore`], [`TokenStore`], [`AuditStore`], [`SettingsStore`], [`NodeStore`],
//!   [`OpsStore`], [`ArchiveStore`], [`WorkflowStore`], [`TemplateStore`], [`SearchStore`],
//!   [`AnalyticsStore`], [`AgendaStore`] — each in its own file with its types, and [`Store`],
//!   all of them, which is
//!   what the service holds (`Arc<dyn Store>`);
//! - each trait is implemented once, for every [`Backend`], by logic written once and generic
//!   over the backend's SQL [`Dialect`](sql::Dialect) (`sql/`: what SQLite and PostgreSQL
//!   spell differently, and nothing else);
//! - the backends (`sqlite/`, `postgres/`) supply their pools and the calls that are not SQL:
//!   SQLite's group commit, PostgreSQL's notifications and upkeep leases.

#![warn(missing_docs)]

pub mod agenda;
pub mod analytics;
pub mod archive;
pub mod audit;
mod backend;
pub mod bulk;
pub mod calendars;
pub mod claims;
pub mod events;
pub mod history;
pub mod nodes;
pub mod occurrences;
pub mod ops;
pub mod postgres;
pub mod private_file;
pub mod queues;
pub mod search;
pub mod settings;
pub(crate) mod sql;
pub mod sqlite;
pub mod templates;
pub mod tokens;
pub mod workflows;

use std::sync::Arc;

pub use agenda::{AgendaRow, AgendaStore, AgendaWindow};
pub use analytics::{
    Analytics, AnalyticsQuery, AnalyticsStore, AttemptEnd, BucketStats, FailingTarget, Granularity,
    Rollup, Sketch, Subjects,
};
pub use archive::{ArchiveFilter, ArchiveStore, ArchiveSummary, ArchivedEvent, ArchivedOccurrence};
pub use audit::{AuditEntry, AuditFilter, AuditStore};
pub use backend::Backend;
pub use bulk::BulkStore;
pub use calendars::{Calendar, CalendarStore, ImportWrite, Override};
pub use claims::{ClaimDue, ClaimStore, Claimed, Next, Outcome, Renewal};
pub use events::{Created, EventFilter, EventStore, RunSummary};
pub use history::{By, EventVersion, HistoryStore};
pub use nodes::{Change, NodeStore};
pub use occurrences::{ExpandState, Expansion, OccChange, OccFilter, OccurrenceStore, Redrive};
pub use ops::{Counts, Gauges, OpsStore, PartitionsDropped, PurgeCutoffs, Purged};
pub use queues::{QueueDepth, QueueStore};
pub use search::{Found, SearchCursor, SearchStore};
pub use settings::SettingsStore;
pub use templates::{Template, TemplateDeleted, TemplateStore, TemplateUser};
pub use tokens::{TokenRecord, TokenStore};
pub use workflows::{Workflow, WorkflowStore};

/// The store's result.
pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
/// What a store call can fail with (mapped to HTTP in one place: `crate::error`).
pub enum StoreError {
    #[error("database error: {0}")]
    /// The database refused or failed a statement, or could not be reached.
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    /// The schema could not be brought up to date at start-up.
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value that does not read back (a bad status, id or JSON document).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// `database_url` names no store this build has.
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// A request the store cannot carry out as asked (a backup target that exists, a backup
    /// on a store that has none): the caller's to change.
    #[error("{0}")]
    Invalid(String),
    /// A fault of our own (a stopped writer, a lost batch result): never the caller's doing.
    #[error("internal store fault: {0}")]
    Internal(String),
}

/// Everything the service asks of its database: one object, every concern.
pub trait Store:
    EventStore
    + HistoryStore
    + BulkStore
    + OccurrenceStore
    + ClaimStore
    + QueueStore
    + TokenStore
    + AuditStore
    + SettingsStore
    + NodeStore
    + OpsStore
    + ArchiveStore
    + WorkflowStore
    + TemplateStore
    + SearchStore
    + AnalyticsStore
    + CalendarStore
    + AgendaStore
{
}

impl<T> Store for T where
    T: EventStore
        + HistoryStore
        + BulkStore
        + OccurrenceStore
        + ClaimStore
        + QueueStore
        + TokenStore
        + AuditStore
        + SettingsStore
        + NodeStore
        + OpsStore
        + ArchiveStore
        + WorkflowStore
        + TemplateStore
        + SearchStore
        + AnalyticsStore
        + CalendarStore
        + AgendaStore
{
}

/// Opens the store named by the URL and applies its migrations.
pub async fn connect(url: &str, db: &crate::config::DatabaseConfig) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(postgres::PgStore::open(url, db).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}
