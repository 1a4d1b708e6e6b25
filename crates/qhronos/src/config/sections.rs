//! The sections of [`super::Config`]: one struct per concern (database, delivery, engine,
//! retention, …), each with its defaults.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::domain::duration::Dur;

/// The time partitions of occurrences on PostgreSQL (docs/scaling.md, "Time-partitioned
/// occurrences"); the SQLite store is not partitioned and ignores these.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PartitioningConfig {
    /// Partitions are kept created this far past now (rows further out share one last,
    /// open-ended partition until the window reaches them).
    pub ahead: Dur,
    /// The span of one new partition: `week` (UTC, Monday to Monday) or `day` (for a store
    /// firing thousands a second, so that a partition stays in the tens of millions of rows).
    pub interval: PartitionInterval,
    /// Finished occurrences wait for their partition to be dropped whole instead of being
    /// deleted row by row at their own age: a partition goes once all its rows are past
    /// their cut-offs, and the row pass takes only rows older than the longest retention plus
    /// one partition. Rows then outlive `retention.completed` (up to that bound).
    pub drop_whole: bool,
}

/// See [`PartitioningConfig::interval`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PartitionInterval {
    Week,
    Day,
}

impl PartitionInterval {
    /// The span in milliseconds.
    pub fn millis(self) -> i64 {
        match self {
            PartitionInterval::Week => 7 * 86_400_000,
            PartitionInterval::Day => 86_400_000,
        }
    }
}

impl Default for PartitioningConfig {
    fn default() -> Self {
        PartitioningConfig {
            ahead: Dur::from_secs(8 * 7 * 86_400),
            interval: PartitionInterval::Week,
            drop_whole: false,
        }
    }
}

/// Calendars' conflict checks (`calendar_id` on events, `POST /calendars/{id}/free-slots`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PlanningConfig {
    /// How far ahead a create or update is checked against the calendar's other events.
    pub horizon: Dur,
}

impl Default for PlanningConfig {
    fn default() -> Self {
        PlanningConfig {
            horizon: Dur::from_secs(90 * 86_400),
        }
    }
}

/// Workflows (`/workflows`: "when X finishes, do Y").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WorkflowsConfig {
    /// The longest chain of follow-ups (a follow-up of a follow-up …): the one that would be
    /// deeper is recorded as `missed` with the reason, so a loop the save-time check could not
    /// see ends.
    pub max_depth: u32,
}

impl Default for WorkflowsConfig {
    fn default() -> Self {
        WorkflowsConfig { max_depth: 8 }
    }
}

/// The WebSocket channel (`GET /ws`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebsocketConfig {
    /// How long a client has to acknowledge an event before the attempt counts as failed.
    pub ack_timeout: Dur,
    /// How often the server pings each connection.
    pub ping_interval: Dur,
    /// Messages queued per connection; when full, a delivery to it fails (and is retried) and
    /// tag-listener copies are dropped, so a slow client never holds the dispatcher.
    pub buffer: usize,
}

impl Default for WebsocketConfig {
    fn default() -> Self {
        WebsocketConfig {
            ack_timeout: Dur::from_secs(30),
            ping_interval: Dur::from_secs(15),
            buffer: 1024,
        }
    }
}

/// The pull channel (`POST /queues/{queue}/claim`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PullConfig {
    /// How long a claimed occurrence stays invisible before it returns to its queue, unless
    /// the claim gives `visibility`.
    pub visibility_timeout: Dur,
    /// The longest `wait` a claim may ask for (long polling).
    pub max_wait: Dur,
    /// How often a waiting claim looks again.
    pub poll_interval: Dur,
    /// How often expired claims are returned to their queues.
    pub sweep_interval: Dur,
}

impl Default for PullConfig {
    fn default() -> Self {
        PullConfig {
            visibility_timeout: Dur::from_secs(30),
            max_wait: Dur::from_secs(30),
            poll_interval: Dur::from_millis(200),
            sweep_interval: Dur::from_secs(1),
        }
    }
}

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP, upgraded with STARTTLS (required; port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or a test server.
    None,
}

/// The email channel. Without `host`, events with an `email` action are refused (422).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: Option<String>,
    pub port: u16,
    pub tls: SmtpTls,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The sender, e.g. `Qhronos <qhronos@example.com>`.
    pub from: String,
    /// Connecting and each SMTP command.
    pub timeout: Dur,
    /// Who may be mailed: addresses (`ann@example.com`) and whole domains (`@example.com`),
    /// matched without regard to case. Empty: every recipient is refused (422 at creation,
    /// a failed attempt at delivery), so the server is never an open relay by default.
    pub allowed_recipients: Vec<String>,
    /// Messages one token may have sent per hour (a sliding hour, counted per node at
    /// delivery, per the token that last created or changed the event); the master token is
    /// not counted. 0: no cap.
    pub max_per_token_per_hour: u32,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: None,
            port: 587,
            tls: SmtpTls::Starttls,
            user: None,
            password: None,
            from: "qhronos@localhost".into(),
            timeout: Dur::from_secs(10),
            allowed_recipients: Vec::new(),
            max_per_token_per_hour: 100,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Record metrics and serve `GET /metrics`.
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true }
    }
}

/// Connection settings of the PostgreSQL store (the embedded store ignores them).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connections per node (one more is held for LISTEN/NOTIFY).
    pub pool_size: u32,
    /// Longest a statement may run before PostgreSQL cancels it.
    pub statement_timeout: Dur,
    /// Longest wait for a connection (a new one, or a free one from the pool); `/health` turns
    /// unhealthy after this when the database is away.
    pub connect_timeout: Dur,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            pool_size: 16,
            statement_timeout: Dur::from_secs(30),
            connect_timeout: Dur::from_secs(5),
        }
    }
}

/// How long finished work is kept.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Completed, missed and cancelled occurrences (and their attempts).
    pub completed: Dur,
    /// Failed occurrences (the dead-letter list).
    pub failed: Dur,
    /// Finished events (inactive one-time events, ended series, deleted events).
    pub events: Dur,
    /// Analytics rollups (`GET /analytics`), counted from the start of their bucket: kept
    /// longer than the occurrences they count.
    pub analytics: Dur,
    /// How often a pass runs.
    pub interval: Dur,
    /// Rows deleted per statement.
    pub batch: i64,
    /// Copy what a pass removes into the archive tables (`archived_events`,
    /// `archived_occurrences`, `archived_attempts`) in the same transaction as the delete.
    pub archive: bool,
    /// How long archived rows are kept, counted from when they were archived; then deleted.
    pub archive_for: Dur,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            completed: Dur::from_secs(7 * 86_400),
            failed: Dur::from_secs(30 * 86_400),
            events: Dur::from_secs(30 * 86_400),
            analytics: Dur::from_secs(400 * 86_400),
            interval: Dur::from_secs(60),
            batch: 500,
            archive: true,
            archive_for: Dur::from_secs(400 * 86_400),
        }
    }
}

/// Scheduled online backups of the embedded store (`VACUUM INTO`, then `PRAGMA integrity_check`
/// on the copy), rotated grandfather-father-son. Refused at start on PostgreSQL: use `pg_dump`
/// (docs/deployment.md).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// How often a backup is taken. Empty (the default): no scheduled backups.
    pub every: Option<Dur>,
    /// How many scheduled backups rotation keeps.
    pub keep: BackupKeep,
    /// Where scheduled backups go. Empty: `<data_dir>/backups` (where `POST /admin/backup`
    /// writes too; rotation only ever deletes scheduled ones).
    pub dir: Option<PathBuf>,
}

impl BackupConfig {
    /// The backup directory for a data dir.
    pub fn dir_in(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("backups"))
    }
}

/// Grandfather-father-son rotation: the newest backup of each of the last `daily` days, of
/// each of the last `weekly` ISO weeks and of each of the last `monthly` months (UTC) is kept,
/// and the newest backup always is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackupKeep {
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

impl Default for BackupKeep {
    fn default() -> Self {
        BackupKeep {
            daily: 7,
            weekly: 4,
            monthly: 6,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 key for issued tokens. Empty: generated on first start and stored.
    pub jwt_secret: Option<String>,
    /// How long an event's previous `hmac_secret` still signs after it is changed.
    pub secret_rotation_grace: Dur,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: None,
            secret_rotation_grace: Dur::from_secs(24 * 3600),
        }
    }
}

/// A token bucket per issued token, and one per client IP for requests without a valid token.
/// The master token is not limited unless `master` is set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Requests an issued token may send at once.
    pub burst: u32,
    /// Sustained requests per second of an issued token.
    pub per_second: f64,
    /// Requests without a valid token, per client IP.
    pub anonymous: BucketConfig,
    /// Limit the master token too (with `burst` and `per_second`). Off by default: the operator's
    /// own scripts (an import of thousands of events) should not stall on 429.
    pub master: bool,
}

/// One token bucket's figures.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BucketConfig {
    /// Requests that may arrive at once.
    pub burst: u32,
    /// Sustained requests per second.
    pub per_second: f64,
}

impl Default for BucketConfig {
    fn default() -> Self {
        BucketConfig {
            burst: 100,
            per_second: 10.0,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            // A normal import (a few thousand events created one by one) goes through.
            burst: 1000,
            per_second: 200.0,
            anonymous: BucketConfig::default(),
            master: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Deliveries in flight at once, over all targets.
    pub concurrency: usize,
    /// Deliveries in flight at once to one host:port.
    pub per_target_concurrency: usize,
    /// Networks that delivery targets may resolve into even though they are not global
    /// (loopback, private ranges). Read by the SSRF guard.
    pub allowed_networks: Vec<IpNet>,
    /// Fixed addresses for host names, used instead of DNS (like /etc/hosts or curl's
    /// `--resolve`); the SSRF guard checks them like any other address.
    pub hosts: std::collections::BTreeMap<String, Vec<IpAddr>>,
    /// How much of a response body an attempt keeps.
    pub response_excerpt_bytes: usize,
    pub user_agent: String,
    /// Also send the original `X-Qhronos-Signature` (hex HMAC of the body alone: no timestamp,
    /// so a captured request can be replayed). Turn it off once receivers check
    /// `webhook-signature`.
    pub legacy_signature: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// How far ahead the expander materialises occurrences of recurring events.
    pub look_ahead: Dur,
    /// How often the expander looks for events whose window must move.
    pub expander_interval: Dur,
    /// How far ahead the dispatcher claims occurrences into its in-memory timer.
    pub claim_horizon: Dur,
    /// How often the dispatcher claims when nothing wakes it earlier.
    pub poll_interval: Dur,
    /// Occurrences claimed per round trip.
    pub claim_batch: i64,
    /// How long a claim lasts unless renewed. The node renews the claims it holds every quarter
    /// of a lease (also during a long attempt); the claims of a node that died come back to the
    /// others this long after its last renewal.
    pub lease: Dur,
    /// Lateness at first attempt beyond which the misfire policy applies.
    pub misfire_threshold: Dur,
    /// On SIGTERM/SIGINT, how long deliveries in flight may take to finish before the process
    /// exits (the unfinished ones are delivered again after the restart).
    pub shutdown_grace: Dur,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RetryDefaults {
    pub max_attempts: u32,
    pub initial_delay: Dur,
    pub max_delay: Dur,
    pub timeout: Dur,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MisfireDefaults {
    pub catch_up_window: Dur,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            concurrency: 512,
            per_target_concurrency: 64,
            allowed_networks: Vec::new(),
            hosts: Default::default(),
            response_excerpt_bytes: 1024,
            user_agent: concat!("Qhronos/", env!("CARGO_PKG_VERSION")).into(),
            legacy_signature: true,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            look_ahead: Dur::from_secs(3600),
            expander_interval: Dur::from_secs(5),
            claim_horizon: Dur::from_secs(2),
            poll_interval: Dur::from_millis(500),
            claim_batch: 1000,
            lease: Dur::from_secs(4),
            misfire_threshold: Dur::from_secs(60),
            shutdown_grace: Dur::from_secs(10),
        }
    }
}

impl Default for RetryDefaults {
    fn default() -> Self {
        RetryDefaults {
            max_attempts: 8,
            initial_delay: Dur::from_secs(5),
            max_delay: Dur::from_secs(3 * 3600),
            timeout: Dur::from_secs(10),
        }
    }
}

impl Default for MisfireDefaults {
    fn default() -> Self {
        MisfireDefaults {
            catch_up_window: Dur::from_secs(3600),
        }
    }
}
