//! Row → domain mapping for the PostgreSQL store: the SQLite store's functions over `PgRow`.

use sqlx::postgres::PgRow;
use sqlx::Row;

use super::sqlite_rows::{corrupt, row_mappers, uuid};
use super::{AuditEntry, Result, TokenRecord};
use crate::domain::event::{Event, EventStatus};
use crate::domain::occurrence::{Attempt, OccStatus, Occurrence};
use crate::domain::Millis;

row_mappers!(PgRow);
