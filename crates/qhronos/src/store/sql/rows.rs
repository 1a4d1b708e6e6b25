//! Rows → domain values, written once for both databases' row types (the schemas use the same
//! column names and types: text ids and JSON, integer milliseconds).

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use crate::domain::event::{Event, EventStatus};
use crate::domain::occurrence::{Attempt, OccStatus, Occurrence};
use crate::domain::Millis;
use crate::store::{AuditEntry, Result, StoreError, TokenRecord};

/// The columns `RowExt::event` reads.
pub const EVENT_COLS: &str = "id, name, description, start_time, timezone, schedule, exdates, rdates, \
     action, tags, metadata, hmac_secret, previous_hmac_secret, previous_secret_until, retry, misfire, \
     status, next_fire_at, paused_reason, created_at, updated_at, duration_ms, all_day, calendar_id, \
     external_id";

/// The columns `RowExt::occurrence` reads.
pub const OCC_COLS: &str = "id, event_id, scheduled_at, status, attempts, attempt_limit, \
     next_attempt_at, last_error, created_at, updated_at, completed_at, caused_by_workflow, \
     caused_by_occurrence, cause, ends_at";

/// Stored data that does not read back: never the caller's doing.
pub fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// A stored id.
pub fn uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| corrupt("id", e))
}

/// A value as the JSON text the schemas store.
pub fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Typed access to a row of either database.
pub trait RowExt {
    /// A JSON text column, parsed.
    fn json<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<T>;
    /// A row of `EVENT_COLS`.
    fn event(&self) -> Result<Event>;
    /// A row of `OCC_COLS`.
    fn occurrence(&self) -> Result<Occurrence>;
    /// A row of `attempts`.
    fn attempt(&self) -> Result<Attempt>;
    /// A row of `tokens`.
    fn token(&self) -> Result<TokenRecord>;
    /// A row of `audit`.
    fn audit(&self) -> Result<AuditEntry>;
    /// A text column (by name or position).
    fn text(&self, col: &str) -> Result<String>;
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    fn int(&self, col: &str) -> Result<i64>;
    fn float(&self, col: &str) -> Result<f64>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    /// An occurrence status column.
    fn occ_status(&self, col: &str) -> Result<OccStatus> {
        OccStatus::parse(&self.text(col)?).map_err(StoreError::Corrupt)
    }
    /// An id column.
    fn id(&self, col: &str) -> Result<Uuid> {
        uuid(&self.text(col)?)
    }
}

macro_rules! impl_row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn json<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<T> {
                let row = self;
                let s: String = row.try_get(col)?;
                serde_json::from_str(&s).map_err(|e| corrupt(col, e))
            }

            fn event(&self) -> Result<Event> {
                let row = self;
                let status: String = row.try_get("status")?;
                Ok(Event {
                    id: uuid(row.try_get("id")?)?,
                    name: row.try_get("name")?,
                    description: row.try_get("description")?,
                    start_time: row.try_get("start_time")?,
                    timezone: row.try_get("timezone")?,
                    schedule: row.try_get("schedule")?,
                    exdates: row.json("exdates")?,
                    rdates: row.json("rdates")?,
                    action: row.json("action")?,
                    tags: row.json("tags")?,
                    metadata: row.json("metadata")?,
                    hmac_secret: row.try_get("hmac_secret")?,
                    previous_secret: row
                        .try_get::<Option<Millis>, _>("previous_secret_until")?
                        .map(|until| {
                            Ok::<_, sqlx::Error>((row.try_get("previous_hmac_secret")?, until))
                        })
                        .transpose()?,
                    retry: row.json("retry")?,
                    misfire: row.json("misfire")?,
                    status: match status.as_str() {
                        "deleted" => EventStatus::Deleted,
                        s => EventStatus::parse(s).map_err(|e| corrupt("status", e))?,
                    },
                    next_fire_at: row.try_get("next_fire_at")?,
                    paused_reason: row.try_get("paused_reason")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                    duration: row.try_get("duration_ms")?,
                    all_day: match row.try_get::<Option<String>, _>("all_day")? {
                        Some(s) => {
                            Some(serde_json::from_str(&s).map_err(|e| corrupt("all_day", e))?)
                        }
                        None => None,
                    },
                    calendar_id: row
                        .try_get::<Option<&str>, _>("calendar_id")?
                        .map(uuid)
                        .transpose()?,
                    external_id: row.try_get("external_id")?,
                })
            }

            fn occurrence(&self) -> Result<Occurrence> {
                let row = self;
                let status: String = row.try_get("status")?;
                let attempts: i64 = row.try_get("attempts")?;
                let limit: i64 = row.try_get("attempt_limit")?;
                Ok(Occurrence {
                    id: uuid(row.try_get("id")?)?,
                    event_id: uuid(row.try_get("event_id")?)?,
                    scheduled_at: row.try_get("scheduled_at")?,
                    status: OccStatus::parse(&status).map_err(|e| corrupt("status", e))?,
                    attempts: u32::try_from(attempts).unwrap_or(0),
                    attempt_limit: u32::try_from(limit).unwrap_or(1),
                    next_attempt_at: row.try_get("next_attempt_at")?,
                    last_error: row.try_get("last_error")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                    completed_at: row.try_get("completed_at")?,
                    ends_at: row.try_get("ends_at")?,
                    caused_by: match (
                        row.try_get::<Option<&str>, _>("caused_by_workflow")?,
                        row.try_get::<Option<&str>, _>("caused_by_occurrence")?,
                    ) {
                        (Some(w), Some(o)) => Some(crate::domain::occurrence::CausedBy {
                            workflow_id: uuid(w)?,
                            occurrence_id: uuid(o)?,
                        }),
                        _ => None,
                    },
                    cause: row
                        .try_get::<Option<&str>, _>("cause")?
                        .map(|c| serde_json::from_str(c).map(std::sync::Arc::new))
                        .transpose()
                        .map_err(|e| corrupt("cause", e))?,
                })
            }

            fn attempt(&self) -> Result<Attempt> {
                let row = self;
                let n: i64 = row.try_get("attempt")?;
                let code: Option<i64> = row.try_get("status_code")?;
                Ok(Attempt {
                    attempt: u32::try_from(n).unwrap_or(0),
                    started_at: row.try_get("started_at")?,
                    duration_ms: row.try_get("duration_ms")?,
                    status_code: code.and_then(|c| u16::try_from(c).ok()),
                    error: row.try_get("error")?,
                    response: row.try_get("response")?,
                })
            }

            fn token(&self) -> Result<TokenRecord> {
                let row = self;
                let access: String = row.try_get("access")?;
                Ok(TokenRecord {
                    jti: row.try_get("jti")?,
                    sub: row.try_get("sub")?,
                    access: crate::domain::access::Access::parse(&access)
                        .map_err(|e| corrupt("access", e))?,
                    scope: row.json("scope")?,
                    expires_at: row.try_get("expires_at")?,
                    created_at: row.try_get("created_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                })
            }

            fn audit(&self) -> Result<AuditEntry> {
                let row = self;
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    at: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    ip: row.try_get("ip")?,
                    summary: row.json("summary")?,
                    tags: row
                        .try_get::<Option<String>, _>("tags")?
                        .map(|t| serde_json::from_str(&t))
                        .transpose()
                        .map_err(|e| corrupt("tags", e))?,
                })
            }

            fn text(&self, col: &str) -> Result<String> {
                Ok(self.try_get(col)?)
            }

            fn opt_text(&self, col: &str) -> Result<Option<String>> {
                Ok(self.try_get(col)?)
            }

            fn int(&self, col: &str) -> Result<i64> {
                Ok(self.try_get(col)?)
            }

            fn float(&self, col: &str) -> Result<f64> {
                Ok(self.try_get(col)?)
            }

            fn opt_int(&self, col: &str) -> Result<Option<i64>> {
                Ok(self.try_get(col)?)
            }
        }
    };
}

impl_row_ext!(SqliteRow);
impl_row_ext!(PgRow);
