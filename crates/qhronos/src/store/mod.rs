//! Storage: one `Store` trait, one implementation per database. The database is the source of
//! truth: claims, leases and retries are rows, so a crash loses nothing that was committed.

pub mod postgres;
mod postgres_rows;
mod postgres_sql;
pub mod private_file;
pub mod sqlite;
mod sqlite_batch;
mod sqlite_rows;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::event::{Event, EventStatus};
use crate::domain::occurrence::{Attempt, NewOccurrence, OccStatus, Occurrence};
use crate::domain::Millis;

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
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

/// Filters for `GET /events`.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Events carrying any of these tags.
    pub tags: Vec<String>,
    pub status: Option<EventStatus>,
    /// Substring of the name or description.
    pub q: Option<String>,
    pub limit: i64,
    /// Events created before this one (ids sort by creation).
    pub before_id: Option<Uuid>,
}

/// Filters for `GET /occurrences` and `GET /events/{id}/occurrences`; newest first.
#[derive(Debug, Clone, Default)]
pub struct OccFilter {
    pub event_id: Option<Uuid>,
    pub tags: Vec<String>,
    pub status: Option<OccStatus>,
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    pub limit: i64,
    /// Strictly older than this `(scheduled_at, id)`.
    pub before: Option<(Millis, Uuid)>,
}

/// What `create_event` did.
#[derive(Debug)]
pub enum Created {
    New,
    /// The idempotency key was used before, by this event, for a request with this hash.
    Existing {
        event: Box<Event>,
        request_hash: Option<String>,
    },
}

/// True when a pull claim's stored receipt is the one presented (constant time, so that
/// answers do not leak how much of a guess was right).
pub(crate) fn receipt_matches(stored: &str, presented: &str) -> bool {
    use subtle::ConstantTimeEq;
    stored.len() == presented.len() && bool::from(stored.as_bytes().ct_eq(presented.as_bytes()))
}

/// A claimed occurrence with the event it belongs to.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub occ: Occurrence,
    pub event: Arc<Event>,
    /// The claim's `lease_expires_at` when it was taken: after it (unless renewed) another node
    /// may take the occurrence.
    pub lease_until: Millis,
    /// The claim's `lease_token`: tells this claim from a later one of the same row.
    pub token: i64,
}

/// What `claim_due` takes.
#[derive(Debug, Clone, Copy)]
pub struct ClaimSpec<'a> {
    pub owner: &'a str,
    /// Written into every row claimed (`lease_token`).
    pub token: i64,
    /// Pending occurrences due at or before this.
    pub due_before: Millis,
    pub lease_until: Millis,
    /// Scheduled occurrences whose lease ended before this are taken over (`Millis::MIN`: none).
    pub expired_before: Millis,
    pub limit: i64,
}

/// What happened to a claimed occurrence; written back in batches.
#[derive(Debug, Clone)]
pub enum Outcome {
    Attempted {
        occurrence_id: Uuid,
        event_id: Uuid,
        attempt: Attempt,
        next: Next,
        /// Pause the (recurring) event with this reason: its receiver answered 410 Gone.
        pause_event: Option<String>,
        /// The claim's `lease_token`: the outcome applies only while that claim holds the row.
        token: i64,
    },
    /// Skipped by the misfire policy.
    Missed {
        occurrence_id: Uuid,
        event_id: Uuid,
        token: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Completed,
    /// Back to pending, next attempt at this time.
    Retry(Millis),
    Failed,
}

/// What `redrive` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redrive {
    Done,
    NotFound,
    /// Only failed or missed occurrences can be re-driven.
    WrongStatus(OccStatus),
}

/// What a change to one occurrence found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OccChange {
    Done,
    NotFound,
    /// Only occurrences that have not been attempted yet can be cancelled or moved.
    WrongStatus(OccStatus),
    /// The event already has an occurrence at the new time.
    Taken,
}

/// An issued token, without its secret part.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenRecord {
    pub jti: String,
    pub sub: String,
    pub access: crate::domain::access::Access,
    pub scope: Vec<String>,
    #[serde(with = "crate::domain::ms_rfc3339")]
    pub expires_at: Millis,
    #[serde(with = "crate::domain::ms_rfc3339")]
    pub created_at: Millis,
    #[serde(with = "crate::domain::ms_rfc3339::option")]
    pub revoked_at: Option<Millis>,
}

/// One line of the audit log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "crate::domain::ms_rfc3339")]
    pub at: Millis,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub summary: serde_json::Value,
    /// The tags the entry concerns: the event's tags, or the token's scope. `None`: no tag
    /// (only admins without a scope read it).
    #[serde(skip)]
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    pub limit: i64,
    /// Entries older than this id.
    pub before_id: Option<i64>,
    /// Only entries whose tags are all in this scope (a scoped admin's); `None`: every entry.
    pub within: Option<Vec<String>>,
}

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Purged {
    /// Completed, missed and cancelled occurrences (with their attempts).
    pub occurrences_done: u64,
    pub occurrences_failed: u64,
    pub events: u64,
}

/// Cut-offs of a retention pass: rows last changed before these times go.
#[derive(Debug, Clone, Copy)]
pub struct PurgeCutoffs {
    pub done_before: Millis,
    pub failed_before: Millis,
    pub events_before: Millis,
    /// Rows deleted per statement, so that no transaction holds the writer for long.
    pub batch: i64,
}

/// Figures read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub counts: Counts,
    /// Due time of the oldest pending occurrence that is already due.
    pub oldest_overdue: Option<Millis>,
    /// The earliest instance of an active series not yet materialised.
    pub earliest_unexpanded: Option<Millis>,
    /// (pool, idle, in use)
    pub pools: Vec<(&'static str, u32, u32)>,
}

/// Occurrence counts by status, for `/status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counts {
    pub pending: i64,
    pub scheduled: i64,
    pub failed: i64,
    pub completed: i64,
    pub missed: i64,
    pub cancelled: i64,
}

/// A change made through one node that the others must act on, carried by PostgreSQL's
/// LISTEN/NOTIFY (see `Store::changes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An event was updated, paused, resumed or deleted: drop what is held of it, re-read it.
    Event(Uuid),
    /// One occurrence was cancelled or moved.
    Occurrence(Uuid),
    /// A token was revoked.
    Tokens,
    /// A message for other users of the channel (e.g. a WebSocket fan-out): `Store::publish`.
    Message(String),
    /// The listening connection was lost and came back: notifications may have been missed.
    Resync,
}

impl Change {
    /// The NOTIFY payload (at most 8000 bytes: PostgreSQL's limit).
    pub fn payload(&self) -> String {
        match self {
            Change::Event(id) => format!("e:{id}"),
            Change::Occurrence(id) => format!("o:{id}"),
            Change::Tokens => "t:".into(),
            Change::Message(m) => format!("m:{m}"),
            Change::Resync => "r:".into(),
        }
    }

    pub fn parse(payload: &str) -> Option<Change> {
        let (kind, rest) = payload.split_once(':')?;
        Some(match kind {
            "e" => Change::Event(Uuid::parse_str(rest).ok()?),
            "o" => Change::Occurrence(Uuid::parse_str(rest).ok()?),
            "t" => Change::Tokens,
            "m" => Change::Message(rest.to_string()),
            "r" => Change::Resync,
            _ => return None,
        })
    }
}

/// What the expander read with an event: the generation its plan is fenced by, and the rule's
/// count mark (`(instant, n)`: the rule has `n` instances up to and including that instant).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpandState {
    pub gen: i64,
    pub mark: Option<(Millis, i64)>,
}

/// The expander's work for one event, written by [`Store::save_expansion`].
#[derive(Debug, Clone, Copy)]
pub struct Expansion<'a> {
    /// The generation read with the event; the write happens only if it is still current.
    pub gen: i64,
    pub occurrences: &'a [NewOccurrence],
    /// Instants skipped because they were older than the catch-up window, each written as a
    /// `missed` occurrence with its reason in `last_error` (existing rows are left alone).
    pub missed: &'a [(NewOccurrence, String)],
    pub next_fire_at: Option<Millis>,
    pub mark: Option<(Millis, i64)>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`, for `/status` and logs.
    fn kind(&self) -> &'static str;
    /// True when only one process can use the database (the embedded store): every lease found
    /// at start-up was then held by an earlier run of this process.
    fn single_process(&self) -> bool;

    /// Cheap liveness check.
    async fn ping(&self) -> Result<()>;

    async fn get_setting(&self, key: &str) -> Result<Option<String>>;
    async fn set_setting(&self, key: &str, value: &str) -> Result<()>;
    /// Stores `value` unless the key exists; returns the stored value either way.
    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String>;

    /// Inserts an event and its first occurrences in one transaction. With an idempotency key
    /// already used, inserts nothing and returns the earlier event.
    async fn create_event(
        &self,
        event: &Event,
        occurrences: &[NewOccurrence],
        idempotency: Option<(&str, &str)>,
    ) -> Result<Created>;
    /// Inserts many new events and their first occurrences in one transaction: all or none.
    async fn create_events(&self, events: &[(Event, Vec<NewOccurrence>)]) -> Result<()>;
    /// Deleted events are not found.
    async fn get_event(&self, id: Uuid) -> Result<Option<Event>>;
    async fn list_events(&self, f: &EventFilter) -> Result<Vec<Event>>;
    /// Replaces an event. With `replan_after`, cancels its not-yet-attempted occurrences after
    /// that time (they are re-planned) and materialises `occurrences`.
    async fn update_event(
        &self,
        event: &Event,
        replan_after: Option<Millis>,
        occurrences: &[NewOccurrence],
    ) -> Result<bool>;
    /// Pauses (cancelling what has not fired) or resumes (materialising `occurrences`).
    async fn set_paused(
        &self,
        id: Uuid,
        paused: bool,
        next_fire_at: Option<Millis>,
        occurrences: &[NewOccurrence],
        now: Millis,
    ) -> Result<bool>;
    /// Marks the event deleted and cancels what has not fired. False when unknown.
    async fn delete_event(&self, id: Uuid, now: Millis) -> Result<bool>;

    /// Inserts occurrences, skipping instants that exist (reviving ones cancelled by a pause or
    /// a re-plan). Returns how many are pending now.
    async fn insert_occurrences(&self, occurrences: &[NewOccurrence], now: Millis) -> Result<u64>;
    async fn list_occurrences(&self, f: &OccFilter) -> Result<Vec<Occurrence>>;
    async fn get_occurrence(&self, id: Uuid) -> Result<Option<(Occurrence, Vec<Attempt>)>>;
    async fn redrive(&self, id: Uuid, extra_attempts: u32, now: Millis) -> Result<Redrive>;
    /// Cancels one upcoming occurrence (pending or scheduled, not yet attempted).
    async fn cancel_occurrence(&self, id: Uuid, now: Millis) -> Result<OccChange>;
    /// Moves one upcoming occurrence to another time; the rest of the series is untouched.
    async fn move_occurrence(&self, id: Uuid, to: Millis, now: Millis) -> Result<OccChange>;

    /// Active events whose next instance is at or before `until`, with the generation and count
    /// mark the expander hands back to [`Store::save_expansion`].
    async fn events_to_expand(
        &self,
        until: Millis,
        limit: i64,
    ) -> Result<Vec<(Event, ExpandState)>>;
    /// Materialises occurrences, records the skipped instants as `missed`, and moves the
    /// event's `next_fire_at` and count mark; marks a finished one-time event or series
    /// inactive once nothing is left to deliver. Writes nothing and returns false when the
    /// event is no longer active or was re-planned (its generation moved) since it was read:
    /// that work is stale.
    async fn save_expansion(&self, event_id: Uuid, x: &Expansion<'_>, now: Millis) -> Result<bool>;
    /// Claims pending occurrences due at or before `due_before`, and scheduled ones whose lease
    /// ended before `expired_before`, under a lease for `owner` with the claim's token.
    async fn claim_due(&self, spec: &ClaimSpec<'_>, now: Millis) -> Result<Vec<Claimed>>;
    /// Returns expired leases to `pending`; with `all`, every lease (a single-node store at
    /// start-up, when no other process can hold one).
    async fn release_leases(&self, now: Millis, all: bool) -> Result<u64>;
    /// Returns to `pending` the given occurrences still held by `owner` under the same claim
    /// (`(id, lease_token)`; a later claim of the row has another token and is left alone):
    /// the dispatcher dropped them before firing, or is stopping.
    async fn release_claims(&self, owner: &str, claims: &[(Uuid, i64)], now: Millis)
        -> Result<u64>;
    /// Moves the lease of the given claims (`(id, lease_token)`, still held by `owner`) to
    /// `until`; returns the ids renewed. A claim not renewed is no longer this node's (taken
    /// over after its lease ended, cancelled, or already finished).
    async fn renew_leases(
        &self,
        owner: &str,
        claims: &[(Uuid, i64)],
        until: Millis,
        now: Millis,
    ) -> Result<Vec<Uuid>>;
    /// Takes or renews the lease on a piece of upkeep that must run on one node at a time
    /// (`expander`, `retention`). True when `owner` holds it until `until`.
    async fn try_upkeep_lease(
        &self,
        name: &str,
        owner: &str,
        until: Millis,
        now: Millis,
    ) -> Result<bool>;
    /// Changes made through other nodes, as they commit. `None` for a single-process store.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>>;
    /// Tells every node (this one included) about a change. A single-process store has no
    /// other node, and its own callers act directly: it does nothing there.
    async fn publish(&self, change: &Change) -> Result<()>;
    /// Writes a batch of outcomes in one transaction. An outcome changes its occurrence only
    /// while the claim it names (`owner`, its token) still holds the row: a node whose claim was
    /// taken over never overwrites the newer one.
    async fn record_outcomes(&self, owner: &str, outcomes: &[Outcome], now: Millis) -> Result<()>;
    async fn counts(&self) -> Result<Counts>;

    /// Pull queues. Claims up to `limit` due `pending` occurrences of the events whose action is
    /// `pull` on `queue` (with `tags`, only events carrying one of them), oldest due first: each
    /// becomes `dispatched`, `attempts + 1`, leased to `queue:<queue>` until `visible_until`.
    /// Expired claims (of every queue) are returned to their queues first, as `expire_claims`.
    /// Each claim gets a new random receipt, returned with it (and stored with the row).
    async fn claim_queue(
        &self,
        queue: &str,
        tags: &[String],
        limit: i64,
        visible_until: Millis,
        now: Millis,
    ) -> Result<Vec<(Claimed, String)>>;
    /// Ends a pull claim (ack or nack): records attempt number `attempts` (started at the claim,
    /// with `error`) and applies `next`. Only a `dispatched` occurrence whose current claim has
    /// this `receipt` can be settled: another receipt (a stale one, of a claim that expired and
    /// was claimed again, or none at all) is `OccChange::Taken`.
    async fn settle_claim(
        &self,
        id: Uuid,
        receipt: &str,
        error: Option<&str>,
        next: Next,
        now: Millis,
    ) -> Result<OccChange>;
    /// Pull claims whose visibility timeout passed: each is recorded as a failed attempt
    /// ("visibility timeout expired") and goes back to `pending`, due now, or to `failed` when
    /// it has used its last attempt. Returns how many expired.
    async fn expire_claims(&self, now: Millis) -> Result<u64>;
    /// A WebSocket client connected: its occurrences waiting for a retry (`pending`, attempted
    /// at least once, next attempt later than `now`) become due now. Returns how many.
    async fn wake_client(&self, client_name: &str, now: Millis) -> Result<u64>;

    async fn gauges(&self, now: Millis) -> Result<Gauges>;
    /// One retention pass: deletes, in batches, finished occurrences and events older than the
    /// cut-offs. Never an event with a pending, scheduled or future occurrence, a dead letter
    /// (a failed occurrence, kept for `retention.failed`) or a next instance.
    async fn purge(&self, now: Millis, c: &PurgeCutoffs) -> Result<Purged>;
    /// Writes a consistent copy of the database to `path` while the service runs.
    async fn backup_to(&self, path: &std::path::Path) -> Result<()>;

    async fn create_token(&self, t: &TokenRecord) -> Result<()>;
    /// Newest first.
    /// Newest first. `within`: only tokens whose scope is not empty and lies inside it.
    async fn list_tokens(
        &self,
        limit: i64,
        before_jti: Option<&str>,
        within: Option<&[String]>,
    ) -> Result<Vec<TokenRecord>>;
    async fn get_token(&self, jti: &str) -> Result<Option<TokenRecord>>;
    /// False when the token is unknown; revoking twice is harmless.
    async fn revoke_token(&self, jti: &str, now: Millis) -> Result<bool>;
    async fn revoked_jtis(&self) -> Result<Vec<String>>;
    /// The tags of an event, deleted or not (for scope checks on old occurrences).
    async fn event_tags(&self, id: Uuid) -> Result<Option<Vec<String>>>;

    /// `entry.id` is ignored; the store numbers entries.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()>;
    /// Newest first.
    async fn list_audit(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>>;
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
