//! Row ↔ domain mapping for the SQLite store (and, through `row_mappers!`, PostgreSQL's).

use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use super::{AuditEntry, Result, StoreError, TokenRecord};
use crate::domain::event::{Event, EventStatus};
use crate::domain::occurrence::{Attempt, OccStatus, Occurrence};
use crate::domain::Millis;

pub const EVENT_COLS: &str = "id, name, description, start_time, timezone, schedule, exdates, rdates, \
     action, tags, metadata, hmac_secret, previous_hmac_secret, previous_secret_until, retry, misfire, \
     status, next_fire_at, paused_reason, created_at, updated_at";

pub const OCC_COLS: &str = "id, event_id, scheduled_at, status, attempts, attempt_limit, \
     next_attempt_at, last_error, created_at, updated_at, completed_at";

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub fn uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| corrupt("id", e))
}

/// Row → domain functions for one database's row type; the PostgreSQL store's rows use the same
/// column names and types (text JSON, integer milliseconds).
macro_rules! row_mappers {
    ($row:ty) => {
        fn json<T: serde::de::DeserializeOwned>(row: &$row, col: &str) -> Result<T> {
            let s: String = row.try_get(col)?;
            serde_json::from_str(&s).map_err(|e| corrupt(col, e))
        }

        pub fn event(row: &$row) -> Result<Event> {
            let status: String = row.try_get("status")?;
            Ok(Event {
                id: uuid(row.try_get("id")?)?,
                name: row.try_get("name")?,
                description: row.try_get("description")?,
                start_time: row.try_get("start_time")?,
                timezone: row.try_get("timezone")?,
                schedule: row.try_get("schedule")?,
                exdates: json(row, "exdates")?,
                rdates: json(row, "rdates")?,
                action: json(row, "action")?,
                tags: json(row, "tags")?,
                metadata: json(row, "metadata")?,
                hmac_secret: row.try_get("hmac_secret")?,
                previous_secret: row
                    .try_get::<Option<Millis>, _>("previous_secret_until")?
                    .map(|until| {
                        Ok::<_, sqlx::Error>((row.try_get("previous_hmac_secret")?, until))
                    })
                    .transpose()?,
                retry: json(row, "retry")?,
                misfire: json(row, "misfire")?,
                status: match status.as_str() {
                    "deleted" => EventStatus::Deleted,
                    s => EventStatus::parse(s).map_err(|e| corrupt("status", e))?,
                },
                next_fire_at: row.try_get("next_fire_at")?,
                paused_reason: row.try_get("paused_reason")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        pub fn occurrence(row: &$row) -> Result<Occurrence> {
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
            })
        }

        pub fn attempt(row: &$row) -> Result<Attempt> {
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

        pub fn token(row: &$row) -> Result<TokenRecord> {
            let access: String = row.try_get("access")?;
            Ok(TokenRecord {
                jti: row.try_get("jti")?,
                sub: row.try_get("sub")?,
                access: crate::domain::access::Access::parse(&access)
                    .map_err(|e| corrupt("access", e))?,
                scope: json(row, "scope")?,
                expires_at: row.try_get("expires_at")?,
                created_at: row.try_get("created_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        }

        pub fn audit(row: &$row) -> Result<AuditEntry> {
            Ok(AuditEntry {
                id: row.try_get("id")?,
                at: row.try_get("at")?,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                target: row.try_get("target")?,
                ip: row.try_get("ip")?,
                summary: json(row, "summary")?,
                tags: row
                    .try_get::<Option<String>, _>("tags")?
                    .map(|t| serde_json::from_str(&t))
                    .transpose()
                    .map_err(|e| corrupt("tags", e))?,
            })
        }
    };
}
pub(super) use row_mappers;

row_mappers!(SqliteRow);

pub fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}
