//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes go through a pool of exactly one connection, so they queue inside the process instead
//! of failing with `SQLITE_BUSY`; reads use a separate pool and run concurrently (WAL). With
//! `synchronous = NORMAL` a committed transaction survives a process crash (`kill -9`); only a
//! power loss can take the last few back.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, QueryBuilder, Row, Sqlite, SqliteConnection};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::sqlite_batch::Job;

use super::sqlite_rows::{self as rows, to_json, EVENT_COLS, OCC_COLS};
use super::{
    AuditEntry, AuditFilter, Change, ClaimSpec, Claimed, Counts, Created, EventFilter, Gauges,
    Next, OccChange, OccFilter, Outcome, PurgeCutoffs, Purged, Redrive, Result, Store, TokenRecord,
};
use super::{ExpandState, Expansion};
use crate::domain::event::Event;
use crate::domain::occurrence::{Attempt, NewOccurrence, OccStatus, Occurrence};
use crate::domain::Millis;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    /// Group-committed writes (see `sqlite_batch`).
    batch: mpsc::Sender<Job>,
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
            .connect_with(opts.clone())
            .await?;
        MIGRATOR.run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        let (batch, rx) = mpsc::channel(4096);
        tokio::spawn(super::sqlite_batch::run(write.clone(), rx));
        Ok(SqliteStore { read, write, batch })
    }
}

/// Checks that `path` is a Qhronos database, brings its schema up to date and folds its WAL
/// into the main file, so that it can be moved into place as `qhronos.db`.
pub async fn prepare_restore(path: &std::path::Path) -> Result<(u64, u64)> {
    use sqlx::Connection;
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

/// Pauses an event whose receiver said it is gone, with the reason, cancelling what has not
/// fired (resuming revives it).
async fn pause_gone(
    c: &mut SqliteConnection,
    event_id: Uuid,
    reason: &str,
    now: Millis,
) -> Result<()> {
    let n = sqlx::query(
        "UPDATE events SET status = 'paused', paused_reason = ?, updated_at = ? WHERE id = ? AND status = 'active'",
    )
    .bind(reason)
    .bind(now)
    .bind(event_id.to_string())
    .execute(&mut *c)
    .await?
    .rows_affected();
    if n > 0 {
        cancel_unfired(c, event_id, "pause", Some(now), now).await?;
    }
    Ok(())
}

fn writer_gone() -> super::StoreError {
    super::StoreError::Internal("the store's writer has stopped".into())
}

fn ids_list(n: usize) -> String {
    vec!["?"; n].join(",")
}

/// ` WHERE` the rows are still held by these claims of `owner` (`(id, lease_token)`).
fn push_claims(q: &mut QueryBuilder<Sqlite>, owner: &str, claims: &[(Uuid, i64)]) {
    q.push(" WHERE status = 'scheduled' AND lease_owner = ")
        .push_bind(owner.to_string())
        .push(" AND (id, lease_token) IN (VALUES ");
    let mut sep = q.separated(", ");
    for (id, token) in claims {
        sep.push("(")
            .push_bind_unseparated(id.to_string())
            .push_unseparated(", ")
            .push_bind_unseparated(*token)
            .push_unseparated(")");
    }
    q.push(")");
}

pub(super) async fn insert_event_row(
    c: &mut SqliteConnection,
    e: &Event,
    idem: Option<(&str, &str)>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO events (id, name, description, start_time, timezone, schedule, exdates, rdates, \
         action, tags, metadata, hmac_secret, previous_hmac_secret, previous_secret_until, retry, misfire, \
         status, next_fire_at, paused_reason, idempotency_key, request_hash, created_at, updated_at, queue) \
         VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    )
    .bind(e.id.to_string())
    .bind(&e.name)
    .bind(&e.description)
    .bind(e.start_time)
    .bind(&e.timezone)
    .bind(&e.schedule)
    .bind(to_json(&e.exdates))
    .bind(to_json(&e.rdates))
    .bind(to_json(&e.action))
    .bind(to_json(&e.tags))
    .bind(to_json(&e.metadata))
    .bind(&e.hmac_secret)
    .bind(e.previous_secret.as_ref().and_then(|p| p.0.clone()))
    .bind(e.previous_secret.as_ref().map(|p| p.1))
    .bind(to_json(&e.retry))
    .bind(to_json(&e.misfire))
    .bind(e.status.as_str())
    .bind(e.next_fire_at)
    .bind(&e.paused_reason)
    .bind(idem.map(|(k, _)| k))
    .bind(idem.map(|(_, h)| h))
    .bind(e.created_at)
    .bind(e.updated_at)
    .bind(e.action.queue())
    .execute(&mut *c)
    .await?;
    write_tags(c, e, true).await
}

async fn write_tags(c: &mut SqliteConnection, e: &Event, fresh: bool) -> Result<()> {
    if fresh {
        return insert_tags(c, e).await;
    }
    sqlx::query("DELETE FROM event_tags WHERE event_id = ?")
        .bind(e.id.to_string())
        .execute(&mut *c)
        .await?;
    insert_tags(c, e).await
}

async fn insert_tags(c: &mut SqliteConnection, e: &Event) -> Result<()> {
    if e.tags.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<Sqlite>::new("INSERT OR IGNORE INTO event_tags (tag, event_id) ");
    q.push_values(&e.tags, |mut b, t| {
        b.push_bind(t.clone()).push_bind(e.id.to_string());
    });
    q.build().execute(&mut *c).await?;
    Ok(())
}

/// Inserts occurrences; an instant that exists is kept, except that one cancelled by a pause
/// or a re-plan comes back to life.
pub(super) async fn upsert_occurrences(
    c: &mut SqliteConnection,
    occs: &[NewOccurrence],
    now: Millis,
) -> Result<u64> {
    let mut n = 0;
    // Multi-row statements: one round trip per 500 occurrences, not one per occurrence.
    for chunk in occs.chunks(500) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO occurrences (id, event_id, scheduled_at, status, attempts, attempt_limit, \
             next_attempt_at, lease_owner, lease_expires_at, lease_token, created_at, updated_at) ",
        );
        q.push_values(chunk, |mut b, o| {
            b.push_bind(o.id.to_string())
                .push_bind(o.event_id.to_string())
                .push_bind(o.scheduled_at)
                .push(if o.lease.is_some() {
                    "'scheduled'"
                } else {
                    "'pending'"
                })
                .push("0")
                .push_bind(i64::from(o.attempt_limit))
                .push_bind(o.scheduled_at)
                .push_bind(o.lease.map(|l| l.owner()))
                .push_bind(o.lease.map(|l| l.until))
                .push_bind(o.lease.map(|l| l.token))
                .push_bind(now)
                .push_bind(now);
        });
        q.push(
            " ON CONFLICT (event_id, scheduled_at) DO UPDATE SET status = 'pending', \
             cancelled_by = NULL, next_attempt_at = excluded.next_attempt_at, \
             updated_at = excluded.updated_at \
             WHERE occurrences.status = 'cancelled' AND occurrences.cancelled_by IN ('pause', 'replan')",
        );
        n += q.build().execute(&mut *c).await?.rows_affected();
    }
    Ok(n)
}

async fn cancel_unfired(
    c: &mut SqliteConnection,
    event_id: Uuid,
    by: &str,
    after: Option<Millis>,
    now: Millis,
) -> Result<u64> {
    let mut q =
        QueryBuilder::<Sqlite>::new("UPDATE occurrences SET status = 'cancelled', cancelled_by = ");
    q.push_bind(by)
        .push(
            ", lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = NULL, updated_at = ",
        )
        .push_bind(now)
        .push(" WHERE event_id = ")
        .push_bind(event_id.to_string())
        .push(" AND status IN ('pending', 'scheduled')");
    if let Some(after) = after {
        q.push(" AND attempts = 0 AND scheduled_at > ")
            .push_bind(after);
    }
    Ok(q.build().execute(&mut *c).await?.rows_affected())
}

fn expand_state(r: &sqlx::sqlite::SqliteRow) -> Result<ExpandState> {
    let at: Option<i64> = r.try_get("mark_at")?;
    let n: Option<i64> = r.try_get("mark_index")?;
    Ok(ExpandState {
        gen: r.try_get("plan_gen")?,
        mark: at.zip(n),
    })
}

/// Skipped instants as `missed` occurrences; an instant that has a row keeps it.
async fn insert_missed(
    c: &mut SqliteConnection,
    missed: &[(NewOccurrence, String)],
    now: Millis,
) -> Result<()> {
    for chunk in missed.chunks(500) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO occurrences (id, event_id, scheduled_at, status, attempts, attempt_limit, \
             last_error, created_at, updated_at) ",
        );
        q.push_values(chunk, |mut b, (o, why)| {
            b.push_bind(o.id.to_string())
                .push_bind(o.event_id.to_string())
                .push_bind(o.scheduled_at)
                .push("'missed'")
                .push("0")
                .push_bind(i64::from(o.attempt_limit))
                .push_bind(why.clone())
                .push_bind(now)
                .push_bind(now);
        });
        q.push(" ON CONFLICT (event_id, scheduled_at) DO NOTHING");
        q.build().execute(&mut *c).await?;
    }
    Ok(())
}

/// A finished one-time event or series becomes `inactive` once nothing is left to deliver.
async fn finish_if_done(c: &mut SqliteConnection, event_id: &str, now: Millis) -> Result<()> {
    sqlx::query(
        "UPDATE events SET status = 'inactive', updated_at = ? WHERE id = ? AND status = 'active' \
         AND next_fire_at IS NULL AND NOT EXISTS (SELECT 1 FROM occurrences WHERE event_id = ? \
         AND status IN ('pending', 'scheduled', 'dispatched'))",
    )
    .bind(now)
    .bind(event_id)
    .bind(event_id)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// [`finish_if_done`] for many events in one statement.
async fn finish_if_done_many(c: &mut SqliteConnection, ids: &[String], now: Millis) -> Result<()> {
    let mut q = QueryBuilder::<Sqlite>::new("UPDATE events SET status = 'inactive', updated_at = ");
    q.push_bind(now);
    q.push(" WHERE status = 'active' AND next_fire_at IS NULL AND id IN (");
    let mut sep = q.separated(", ");
    for id in ids {
        sep.push_bind(id.clone());
    }
    q.push(
        ") AND NOT EXISTS (SELECT 1 FROM occurrences o WHERE o.event_id = events.id \
         AND o.status IN ('pending', 'scheduled', 'dispatched'))",
    );
    q.build().execute(&mut *c).await?;
    Ok(())
}

fn push_tags(q: &mut QueryBuilder<Sqlite>, col: &str, tags: &[String]) {
    if tags.is_empty() {
        return;
    }
    q.push(format!(
        " AND {col} IN (SELECT event_id FROM event_tags WHERE tag IN ("
    ));
    let mut sep = q.separated(", ");
    for t in tags {
        sep.push_bind(t.clone());
    }
    q.push("))");
}

/// `Some` when the occurrence is unknown or no longer upcoming.
async fn upcoming_check(c: &mut SqliteConnection, id: Uuid) -> Result<Option<OccChange>> {
    let row = sqlx::query("SELECT status, attempts FROM occurrences WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?;
    let Some(row) = row else {
        return Ok(Some(OccChange::NotFound));
    };
    let status: String = row.try_get("status")?;
    let attempts: i64 = row.try_get("attempts")?;
    let status = OccStatus::parse(&status).map_err(super::StoreError::Corrupt)?;
    if !matches!(status, OccStatus::Pending | OccStatus::Scheduled) || attempts > 0 {
        return Ok(Some(OccChange::WrongStatus(status)));
    }
    Ok(None)
}

/// Claimed occurrence rows with their events (an occurrence whose event is gone is dropped).
async fn attach_events(
    c: &mut SqliteConnection,
    rs: &[sqlx::sqlite::SqliteRow],
    lease_until: Millis,
    token: i64,
) -> Result<Vec<Claimed>> {
    let occs = rs
        .iter()
        .map(rows::occurrence)
        .collect::<Result<Vec<_>>>()?;
    let mut events: HashMap<Uuid, Arc<Event>> = HashMap::new();
    let mut ids: Vec<String> = occs.iter().map(|o| o.event_id.to_string()).collect();
    ids.sort();
    ids.dedup();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE id IN ({})",
            ids_list(chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql.as_str()));
        for id in chunk {
            q = q.bind(id);
        }
        for row in q.fetch_all(&mut *c).await? {
            let e = rows::event(&row)?;
            events.insert(e.id, Arc::new(e));
        }
    }
    Ok(occs
        .into_iter()
        .filter_map(|occ| {
            events.get(&occ.event_id).cloned().map(|event| Claimed {
                occ,
                event,
                lease_until,
                token,
            })
        })
        .collect())
}

/// A pull claim's receipt: 128 random bits (122 on PostgreSQL's v4 UUID), as hex, one per row.
const RECEIPT: &str = "lower(hex(randomblob(16)))";

/// Pull claims past their visibility timeout go back to their queue (due now), or to `failed`
/// when their last attempt is used; each expiry is recorded as a failed attempt.
async fn expire_claims_in(c: &mut SqliteConnection, now: Millis) -> Result<u64> {
    const EXPIRED: &str = "visibility timeout expired";
    sqlx::query(
        "INSERT OR IGNORE INTO attempts (occurrence_id, attempt, started_at, duration_ms, status_code, error, response) \
         SELECT id, attempts, updated_at, ? - updated_at, NULL, ?, NULL FROM occurrences \
         INDEXED BY occurrences_claimed WHERE status = 'dispatched' AND lease_expires_at < ?",
    )
    .bind(now)
    .bind(EXPIRED)
    .bind(now)
    .execute(&mut *c)
    .await?;
    let rs = sqlx::query(
        "UPDATE occurrences SET \
         status = CASE WHEN attempts >= attempt_limit THEN 'failed' ELSE 'pending' END, \
         next_attempt_at = CASE WHEN attempts >= attempt_limit THEN NULL ELSE ? END, \
         completed_at = CASE WHEN attempts >= attempt_limit THEN ? ELSE NULL END, \
         last_error = ?, lease_owner = NULL, lease_expires_at = NULL, claim_receipt = NULL, updated_at = ? \
         WHERE status = 'dispatched' AND lease_expires_at < ? RETURNING event_id, status",
    )
    .bind(now)
    .bind(now)
    .bind(EXPIRED)
    .bind(now)
    .bind(now)
    .fetch_all(&mut *c)
    .await?;
    let mut failed: Vec<String> = Vec::new();
    for r in &rs {
        if r.try_get::<String, _>("status")? == "failed" {
            failed.push(r.try_get("event_id")?);
        }
    }
    failed.sort();
    failed.dedup();
    for id in &failed {
        finish_if_done(c, id, now).await?;
    }
    Ok(rs.len() as u64)
}

/// Inserts new events (no idempotency key), their tags and first occurrences with multi-row
/// statements: a few round trips to SQLite's thread for any number of events.
pub(super) async fn insert_events_many(
    c: &mut SqliteConnection,
    events: &[(&Event, &[NewOccurrence])],
) -> Result<()> {
    // Multi-row statements: 24 values an event, well under SQLite's 32,766 variables.
    for chunk in events.chunks(400) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (id, name, description, start_time, timezone, schedule, exdates, rdates, \
             action, tags, metadata, hmac_secret, previous_hmac_secret, previous_secret_until, retry, misfire, \
             status, next_fire_at, paused_reason, idempotency_key, request_hash, created_at, updated_at, queue) ",
        );
        q.push_values(chunk, |mut b, (e, _)| {
            b.push_bind(e.id.to_string())
                .push_bind(e.name.clone())
                .push_bind(e.description.clone())
                .push_bind(e.start_time)
                .push_bind(e.timezone.clone())
                .push_bind(e.schedule.clone())
                .push_bind(to_json(&e.exdates))
                .push_bind(to_json(&e.rdates))
                .push_bind(to_json(&e.action))
                .push_bind(to_json(&e.tags))
                .push_bind(to_json(&e.metadata))
                .push_bind(e.hmac_secret.clone())
                .push_bind(e.previous_secret.as_ref().and_then(|p| p.0.clone()))
                .push_bind(e.previous_secret.as_ref().map(|p| p.1))
                .push_bind(to_json(&e.retry))
                .push_bind(to_json(&e.misfire))
                .push_bind(e.status.as_str())
                .push_bind(e.next_fire_at)
                .push_bind(e.paused_reason.clone())
                .push_bind(None::<String>)
                .push_bind(None::<String>)
                .push_bind(e.created_at)
                .push_bind(e.updated_at)
                .push_bind(e.action.queue().map(str::to_string));
        });
        q.build().execute(&mut *c).await?;
    }
    let tags: Vec<(&str, String)> = events
        .iter()
        .flat_map(|(e, _)| e.tags.iter().map(|t| (t.as_str(), e.id.to_string())))
        .collect();
    for chunk in tags.chunks(1000) {
        let mut q =
            QueryBuilder::<Sqlite>::new("INSERT OR IGNORE INTO event_tags (tag, event_id) ");
        q.push_values(chunk, |mut b, (t, id)| {
            b.push_bind(*t).push_bind(id.clone());
        });
        q.build().execute(&mut *c).await?;
    }
    let occs: Vec<NewOccurrence> = events.iter().flat_map(|(_, o)| o.iter().copied()).collect();
    let now = events.first().map_or(0, |(e, _)| e.created_at);
    upsert_occurrences(c, &occs, now).await?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn single_process(&self) -> bool {
        true
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(key)
                .fetch_optional(&self.read)
                .await?,
        )
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query("INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)")
            .bind(key)
            .bind(value)
            .execute(&self.write)
            .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(key)
                .fetch_one(&self.write)
                .await?,
        )
    }

    async fn create_event(
        &self,
        e: &Event,
        occs: &[NewOccurrence],
        idem: Option<(&str, &str)>,
    ) -> Result<Created> {
        let (reply, rx) = oneshot::channel();
        let job = Job::Create {
            event: Box::new(e.clone()),
            occurrences: occs.to_vec(),
            idempotency: idem.map(|(k, h)| (k.to_string(), h.to_string())),
            reply,
        };
        self.batch.send(job).await.map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())?
    }

    async fn create_events(&self, events: &[(Event, Vec<NewOccurrence>)]) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let refs: Vec<(&Event, &[NewOccurrence])> =
            events.iter().map(|(e, o)| (e, o.as_slice())).collect();
        insert_events_many(&mut tx, &refs).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_event(&self, id: Uuid) -> Result<Option<Event>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EVENT_COLS} FROM events WHERE id = ? AND status != 'deleted'"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(rows::event).transpose()
    }

    async fn list_events(&self, f: &EventFilter) -> Result<Vec<Event>> {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {EVENT_COLS} FROM events WHERE status != 'deleted'"
        ));
        if let Some(s) = f.status {
            q.push(" AND status = ").push_bind(s.as_str());
        }
        if let Some(text) = &f.q {
            let pat = format!(
                "%{}%",
                text.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            q.push(" AND (name LIKE ")
                .push_bind(pat.clone())
                .push(" ESCAPE '\\' OR description LIKE ")
                .push_bind(pat)
                .push(" ESCAPE '\\')");
        }
        if let Some(b) = f.before_id {
            q.push(" AND id < ").push_bind(b.to_string());
        }
        push_tags(&mut q, "id", &f.tags);
        q.push(" ORDER BY id DESC LIMIT ").push_bind(f.limit);
        let rs = q.build().fetch_all(&self.read).await?;
        rs.iter().map(rows::event).collect()
    }

    async fn update_event(
        &self,
        e: &Event,
        replan_after: Option<Millis>,
        occs: &[NewOccurrence],
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let n = sqlx::query(
            "UPDATE events SET name = ?, description = ?, start_time = ?, timezone = ?, schedule = ?, \
             exdates = ?, rdates = ?, action = ?, tags = ?, metadata = ?, hmac_secret = ?, \
             previous_hmac_secret = ?, previous_secret_until = ?, retry = ?, \
             misfire = ?, status = ?, next_fire_at = CASE WHEN ? THEN ? ELSE next_fire_at END, paused_reason = ?, updated_at = ?, queue = ?, \
             plan_gen = plan_gen + ?, mark_at = CASE WHEN ? THEN NULL ELSE mark_at END, \
             mark_index = CASE WHEN ? THEN NULL ELSE mark_index END WHERE id = ? AND status != 'deleted'",
        )
        .bind(&e.name)
        .bind(&e.description)
        .bind(e.start_time)
        .bind(&e.timezone)
        .bind(&e.schedule)
        .bind(to_json(&e.exdates))
        .bind(to_json(&e.rdates))
        .bind(to_json(&e.action))
        .bind(to_json(&e.tags))
        .bind(to_json(&e.metadata))
        .bind(&e.hmac_secret)
        .bind(e.previous_secret.as_ref().and_then(|p| p.0.clone()))
        .bind(e.previous_secret.as_ref().map(|p| p.1))
        .bind(to_json(&e.retry))
        .bind(to_json(&e.misfire))
        .bind(e.status.as_str())
        // Without a re-plan the expander owns next_fire_at: writing back the value read before
        // would undo what it saved meanwhile.
        .bind(replan_after.is_some())
        .bind(e.next_fire_at)
        .bind(&e.paused_reason)
        .bind(e.updated_at)
        .bind(e.action.queue())
        .bind(i64::from(replan_after.is_some()))
        .bind(replan_after.is_some())
        .bind(replan_after.is_some())
        .bind(e.id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        write_tags(&mut tx, e, false).await?;
        if let Some(after) = replan_after {
            cancel_unfired(&mut tx, e.id, "replan", Some(after), e.updated_at).await?;
            upsert_occurrences(&mut tx, occs, e.updated_at).await?;
        }
        finish_if_done(&mut tx, &e.id.to_string(), e.updated_at).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_paused(
        &self,
        id: Uuid,
        paused: bool,
        next_fire_at: Option<Millis>,
        occs: &[NewOccurrence],
        now: Millis,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let n = if paused {
            sqlx::query("UPDATE events SET status = 'paused', paused_reason = NULL, updated_at = ?, plan_gen = plan_gen + 1 WHERE id = ? AND status != 'deleted'")
                .bind(now)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected()
        } else {
            sqlx::query("UPDATE events SET status = 'active', paused_reason = NULL, next_fire_at = ?, updated_at = ?, plan_gen = plan_gen + 1 WHERE id = ? AND status != 'deleted'")
                .bind(next_fire_at)
                .bind(now)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected()
        };
        if n == 0 {
            return Ok(false);
        }
        if paused {
            cancel_unfired(&mut tx, id, "pause", Some(now), now).await?;
        } else {
            upsert_occurrences(&mut tx, occs, now).await?;
            finish_if_done(&mut tx, &id.to_string(), now).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_event(&self, id: Uuid, now: Millis) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let n = sqlx::query("UPDATE events SET status = 'deleted', next_fire_at = NULL, idempotency_key = NULL, updated_at = ? WHERE id = ? AND status != 'deleted'")
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM event_tags WHERE event_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        cancel_unfired(&mut tx, id, "delete", None, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn insert_occurrences(&self, occs: &[NewOccurrence], now: Millis) -> Result<u64> {
        let mut tx = self.write.begin().await?;
        let n = upsert_occurrences(&mut tx, occs, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn list_occurrences(&self, f: &OccFilter) -> Result<Vec<Occurrence>> {
        let mut q =
            QueryBuilder::<Sqlite>::new(format!("SELECT {OCC_COLS} FROM occurrences WHERE 1 = 1"));
        if let Some(id) = f.event_id {
            q.push(" AND event_id = ").push_bind(id.to_string());
        }
        if let Some(s) = f.status {
            q.push(" AND status = ").push_bind(s.as_str());
        }
        if let Some(from) = f.from {
            q.push(" AND scheduled_at >= ").push_bind(from);
        }
        if let Some(to) = f.to {
            q.push(" AND scheduled_at <= ").push_bind(to);
        }
        if let Some((at, id)) = f.before {
            q.push(" AND (scheduled_at < ")
                .push_bind(at)
                .push(" OR (scheduled_at = ")
                .push_bind(at)
                .push(" AND id < ")
                .push_bind(id.to_string())
                .push("))");
        }
        push_tags(&mut q, "event_id", &f.tags);
        q.push(" ORDER BY scheduled_at DESC, id DESC LIMIT ")
            .push_bind(f.limit);
        let rs = q.build().fetch_all(&self.read).await?;
        rs.iter().map(rows::occurrence).collect()
    }

    async fn get_occurrence(&self, id: Uuid) -> Result<Option<(Occurrence, Vec<Attempt>)>> {
        let Some(row) = sqlx::query(AssertSqlSafe(format!(
            "SELECT {OCC_COLS} FROM occurrences WHERE id = ?"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.read)
        .await?
        else {
            return Ok(None);
        };
        let occ = rows::occurrence(&row)?;
        let attempts =
            sqlx::query("SELECT * FROM attempts WHERE occurrence_id = ? ORDER BY attempt")
                .bind(id.to_string())
                .fetch_all(&self.read)
                .await?
                .iter()
                .map(rows::attempt)
                .collect::<Result<Vec<_>>>()?;
        Ok(Some((occ, attempts)))
    }

    async fn redrive(&self, id: Uuid, extra: u32, now: Millis) -> Result<Redrive> {
        let mut tx = self.write.begin().await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM occurrences WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(status) = status else {
            return Ok(Redrive::NotFound);
        };
        let status = OccStatus::parse(&status).map_err(super::StoreError::Corrupt)?;
        if !matches!(status, OccStatus::Failed | OccStatus::Missed) {
            return Ok(Redrive::WrongStatus(status));
        }
        sqlx::query(
            "UPDATE occurrences SET status = 'pending', next_attempt_at = ?, attempt_limit = attempts + ?, \
             completed_at = NULL, updated_at = ? WHERE id = ?",
        )
        .bind(now)
        .bind(i64::from(extra))
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Redrive::Done)
    }

    async fn cancel_occurrence(&self, id: Uuid, now: Millis) -> Result<OccChange> {
        let mut tx = self.write.begin().await?;
        if let Some(c) = upcoming_check(&mut tx, id).await? {
            return Ok(c);
        }
        sqlx::query(
            "UPDATE occurrences SET status = 'cancelled', cancelled_by = 'user', lease_owner = NULL, \
             lease_expires_at = NULL, next_attempt_at = NULL, updated_at = ? WHERE id = ?",
        )
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(OccChange::Done)
    }

    async fn move_occurrence(&self, id: Uuid, to: Millis, now: Millis) -> Result<OccChange> {
        let mut tx = self.write.begin().await?;
        if let Some(c) = upcoming_check(&mut tx, id).await? {
            return Ok(c);
        }
        let taken: Option<String> = sqlx::query_scalar(
            "SELECT o.id FROM occurrences o JOIN occurrences me ON me.event_id = o.event_id \
             WHERE me.id = ? AND o.scheduled_at = ? AND o.id != me.id",
        )
        .bind(id.to_string())
        .bind(to)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Ok(OccChange::Taken);
        }
        sqlx::query(
            "UPDATE occurrences SET status = 'pending', scheduled_at = ?, next_attempt_at = ?, \
             lease_owner = NULL, lease_expires_at = NULL, updated_at = ? WHERE id = ?",
        )
        .bind(to)
        .bind(to)
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(OccChange::Done)
    }

    async fn events_to_expand(
        &self,
        until: Millis,
        limit: i64,
    ) -> Result<Vec<(Event, ExpandState)>> {
        let rs = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EVENT_COLS}, plan_gen, mark_at, mark_index FROM events INDEXED BY events_expand WHERE status = 'active' AND next_fire_at IS NOT NULL \
             AND next_fire_at <= ? ORDER BY next_fire_at LIMIT ?"
        )))
        .bind(until)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rs.iter()
            .map(|r| Ok((rows::event(r)?, expand_state(r)?)))
            .collect()
    }

    async fn save_expansion(&self, event_id: Uuid, x: &Expansion<'_>, now: Millis) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let n = sqlx::query(
            "UPDATE events SET next_fire_at = ?, mark_at = ?, mark_index = ? \
             WHERE id = ? AND status = 'active' AND plan_gen = ?",
        )
        .bind(x.next_fire_at)
        .bind(x.mark.map(|m| m.0))
        .bind(x.mark.map(|m| m.1))
        .bind(event_id.to_string())
        .bind(x.gen)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Paused, deleted or re-planned meanwhile: this work is stale, write nothing.
        if n > 0 {
            insert_missed(&mut tx, x.missed, now).await?;
            upsert_occurrences(&mut tx, x.occurrences, now).await?;
            finish_if_done(&mut tx, &event_id.to_string(), now).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn claim_due(&self, spec: &ClaimSpec<'_>, now: Millis) -> Result<Vec<Claimed>> {
        let mut tx = self.write.begin().await?;
        // Due pending rows (not of pull events: clients claim those, nor of paused events: the
        // pause holds them), and rows whose lease expired (an attempt the dispatcher left).
        let rs = sqlx::query(AssertSqlSafe(format!(
            "UPDATE occurrences SET status = 'scheduled', lease_owner = ?, lease_expires_at = ?, lease_token = ?, updated_at = ? \
             WHERE id IN (SELECT id FROM (SELECT o.id FROM occurrences o INDEXED BY occurrences_due WHERE o.status = 'pending' \
             AND o.next_attempt_at <= ? AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = o.event_id AND (e.queue IS NOT NULL OR e.status = 'paused')) \
             ORDER BY o.next_attempt_at LIMIT ?) \
             UNION ALL SELECT id FROM (SELECT id FROM occurrences INDEXED BY occurrences_leased WHERE status = 'scheduled' \
             AND lease_expires_at < ? LIMIT ?)) RETURNING {OCC_COLS}"
        )))
        .bind(spec.owner)
        .bind(spec.lease_until)
        .bind(spec.token)
        .bind(now)
        .bind(spec.due_before)
        .bind(spec.limit)
        .bind(spec.expired_before)
        .bind(spec.limit)
        .fetch_all(&mut *tx)
        .await?;
        let claimed = attach_events(&mut tx, &rs, spec.lease_until, spec.token).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn release_leases(&self, now: Millis, all: bool) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE occurrences SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, \
             updated_at = ? WHERE status = 'scheduled' AND (? OR lease_expires_at < ?)",
        )
        .bind(now)
        .bind(all)
        .bind(now)
        .execute(&self.write)
        .await?
        .rows_affected())
    }

    async fn release_claims(
        &self,
        owner: &str,
        claims: &[(Uuid, i64)],
        now: Millis,
    ) -> Result<u64> {
        let mut n = 0;
        for chunk in claims.chunks(500) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "UPDATE occurrences SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, \
                 lease_token = NULL, updated_at = ",
            );
            q.push_bind(now);
            push_claims(&mut q, owner, chunk);
            n += q.build().execute(&self.write).await?.rows_affected();
        }
        Ok(n)
    }

    async fn renew_leases(
        &self,
        owner: &str,
        claims: &[(Uuid, i64)],
        until: Millis,
        _now: Millis,
    ) -> Result<Vec<Uuid>> {
        let mut renewed = Vec::with_capacity(claims.len());
        for chunk in claims.chunks(500) {
            let mut q = QueryBuilder::<Sqlite>::new("UPDATE occurrences SET lease_expires_at = ");
            q.push_bind(until);
            push_claims(&mut q, owner, chunk);
            q.push(" RETURNING id");
            for row in q.build().fetch_all(&self.write).await? {
                let id: String = row.try_get(0)?;
                if let Ok(id) = Uuid::parse_str(&id) {
                    renewed.push(id);
                }
            }
        }
        Ok(renewed)
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

    async fn record_outcomes(&self, owner: &str, outcomes: &[Outcome], now: Millis) -> Result<()> {
        // Multi-row statements, a few per batch rather than two or three per outcome: at
        // 20,000 deliveries a second the statement count is what the single writer pays for.
        let mut attempted = Vec::new();
        let mut missed = Vec::new();
        let mut gone = Vec::new();
        let mut finished: Vec<String> = Vec::new();
        for o in outcomes {
            match o {
                Outcome::Attempted {
                    occurrence_id,
                    event_id,
                    attempt,
                    next,
                    pause_event,
                    token,
                } => {
                    attempted.push((occurrence_id.to_string(), attempt, *next, *token));
                    if let Some(reason) = pause_event {
                        gone.push((*event_id, reason.as_str()));
                    }
                    if !matches!(next, Next::Retry(_)) {
                        finished.push(event_id.to_string());
                    }
                }
                Outcome::Missed {
                    occurrence_id,
                    event_id,
                    token,
                } => {
                    missed.push((*occurrence_id, *token));
                    finished.push(event_id.to_string());
                }
            }
        }
        let mut tx = self.write.begin().await?;
        // 7 values an attempt, 7 an update: well under SQLite's 32,766 variables.
        for chunk in attempted.chunks(1000) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT OR IGNORE INTO attempts (occurrence_id, attempt, started_at, duration_ms, \
                 status_code, error, response) SELECT * FROM (",
            );
            q.push_values(chunk, |mut b, (id, a, _, _)| {
                b.push_bind(id.clone())
                    .push_bind(i64::from(a.attempt))
                    .push_bind(a.started_at)
                    .push_bind(a.duration_ms)
                    .push_bind(a.status_code.map(i64::from))
                    .push_bind(a.error.clone())
                    .push_bind(a.response.clone());
            });
            // An occurrence purged or gone meanwhile takes no attempt row.
            q.push(") AS v WHERE EXISTS (SELECT 1 FROM occurrences o WHERE o.id = v.column1)");
            q.build().execute(&mut *tx).await?;

            let mut q = QueryBuilder::<Sqlite>::new(
                "WITH v(id, status, attempt, next_at, err, done_at, token) AS (",
            );
            q.push_values(chunk, |mut b, (id, a, next, token)| {
                let (status, next_at, done_at) = match next {
                    Next::Completed => ("completed", None, Some(now)),
                    Next::Retry(at) => ("pending", Some(*at), None),
                    Next::Failed => ("failed", None, Some(now)),
                };
                let err = if *next == Next::Completed {
                    None
                } else {
                    a.error
                        .clone()
                        .or_else(|| a.status_code.map(|c| format!("HTTP {c}")))
                };
                b.push_bind(id.clone())
                    .push_bind(status)
                    .push_bind(i64::from(a.attempt))
                    .push_bind(next_at)
                    .push_bind(err)
                    .push_bind(done_at)
                    .push_bind(*token);
            });
            q.push(
                ") UPDATE occurrences SET status = v.status, attempts = max(occurrences.attempts, v.attempt), \
                 next_attempt_at = v.next_at, lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL, \
                 last_error = v.err, completed_at = v.done_at, updated_at = ",
            );
            q.push_bind(now);
            // Fenced: only while this node's claim (owner, token) still holds the row.
            q.push(" FROM v WHERE occurrences.id = v.id AND occurrences.status = 'scheduled' AND occurrences.lease_owner = ")
                .push_bind(owner.to_string())
                .push(" AND occurrences.lease_token = v.token");
            q.build().execute(&mut *tx).await?;
        }
        for chunk in missed.chunks(500) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "UPDATE occurrences SET status = 'missed', lease_owner = NULL, lease_expires_at = NULL, \
                 lease_token = NULL, next_attempt_at = NULL, updated_at = ",
            );
            q.push_bind(now).push(", completed_at = ").push_bind(now);
            push_claims(&mut q, owner, chunk);
            q.build().execute(&mut *tx).await?;
        }
        // After the occurrences' own updates: the pause cancels the rest of the series.
        for (event_id, reason) in gone {
            pause_gone(&mut tx, event_id, reason, now).await?;
        }
        finished.sort();
        finished.dedup();
        for chunk in finished.chunks(1000) {
            finish_if_done_many(&mut tx, chunk, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn claim_queue(
        &self,
        queue: &str,
        tags: &[String],
        limit: i64,
        visible_until: Millis,
        now: Millis,
    ) -> Result<Vec<(Claimed, String)>> {
        let mut tx = self.write.begin().await?;
        expire_claims_in(&mut tx, now).await?;
        let mut q = QueryBuilder::<Sqlite>::new(
            "UPDATE occurrences SET status = 'dispatched', attempts = attempts + 1, lease_owner = ",
        );
        q.push_bind(format!("queue:{queue}"))
            .push(", lease_expires_at = ")
            .push_bind(visible_until)
            .push(format!(
                ", claim_receipt = {RECEIPT}, next_attempt_at = NULL, updated_at = "
            ))
            .push_bind(now)
            .push(
                " WHERE id IN (SELECT o.id FROM occurrences o INDEXED BY occurrences_due \
                 WHERE o.status = 'pending' AND o.next_attempt_at <= ",
            )
            .push_bind(now)
            .push(" AND o.event_id IN (SELECT id FROM events WHERE status != 'paused' AND queue = ")
            .push_bind(queue.to_string())
            .push(")");
        push_tags(&mut q, "o.event_id", tags);
        q.push(" ORDER BY o.next_attempt_at LIMIT ")
            .push_bind(limit)
            .push(format!(") RETURNING {OCC_COLS}, claim_receipt"));
        let rs = q.build().fetch_all(&mut *tx).await?;
        let mut receipts = HashMap::with_capacity(rs.len());
        for r in &rs {
            let id: String = r.try_get("id")?;
            let receipt: String = r.try_get("claim_receipt")?;
            receipts.insert(id, receipt);
        }
        let claimed = attach_events(&mut tx, &rs, visible_until, 0).await?;
        tx.commit().await?;
        Ok(claimed
            .into_iter()
            .filter_map(|c| {
                let receipt = receipts.remove(&c.occ.id.to_string())?;
                Some((c, receipt))
            })
            .collect())
    }

    async fn settle_claim(
        &self,
        id: Uuid,
        receipt: &str,
        error: Option<&str>,
        next: Next,
        now: Millis,
    ) -> Result<OccChange> {
        let mut tx = self.write.begin().await?;
        let row =
            sqlx::query("SELECT status, event_id, claim_receipt FROM occurrences WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(row) = row else {
            return Ok(OccChange::NotFound);
        };
        let status: String = row.try_get("status")?;
        let event_id: String = row.try_get("event_id")?;
        let status = OccStatus::parse(&status).map_err(super::StoreError::Corrupt)?;
        if status != OccStatus::Dispatched {
            return Ok(OccChange::WrongStatus(status));
        }
        let current: Option<String> = row.try_get("claim_receipt")?;
        if !current.is_some_and(|c| super::receipt_matches(&c, receipt)) {
            return Ok(OccChange::Taken);
        }
        sqlx::query(
            "INSERT OR IGNORE INTO attempts (occurrence_id, attempt, started_at, duration_ms, status_code, error, response) \
             SELECT id, attempts, updated_at, ? - updated_at, NULL, ?, NULL FROM occurrences WHERE id = ?",
        )
        .bind(now)
        .bind(error)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        let (status, next_at, done_at) = match next {
            Next::Completed => ("completed", None, Some(now)),
            Next::Retry(at) => ("pending", Some(at), None),
            Next::Failed => ("failed", None, Some(now)),
        };
        sqlx::query(
            "UPDATE occurrences SET status = ?, next_attempt_at = ?, completed_at = ?, last_error = ?, \
             lease_owner = NULL, lease_expires_at = NULL, claim_receipt = NULL, updated_at = ? WHERE id = ?",
        )
        .bind(status)
        .bind(next_at)
        .bind(done_at)
        .bind(error)
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if !matches!(next, Next::Retry(_)) {
            finish_if_done(&mut tx, &event_id, now).await?;
        }
        tx.commit().await?;
        Ok(OccChange::Done)
    }

    async fn expire_claims(&self, now: Millis) -> Result<u64> {
        let mut tx = self.write.begin().await?;
        let n = expire_claims_in(&mut tx, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn wake_client(&self, client_name: &str, now: Millis) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE occurrences SET next_attempt_at = ?, updated_at = ? WHERE status = 'pending' \
             AND attempts > 0 AND next_attempt_at > ? AND event_id IN (SELECT id FROM events \
             WHERE status != 'deleted' AND json_extract(action, '$.type') = 'websocket' \
             AND json_extract(action, '$.params.client_name') = ?)",
        )
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(client_name)
        .execute(&self.write)
        .await?
        .rows_affected())
    }

    async fn counts(&self) -> Result<Counts> {
        let rs = sqlx::query("SELECT status, count(*) AS n FROM occurrences GROUP BY status")
            .fetch_all(&self.read)
            .await?;
        let mut c = Counts::default();
        for r in rs {
            let s: String = r.try_get("status")?;
            let n: i64 = r.try_get("n")?;
            match s.as_str() {
                "pending" => c.pending = n,
                "scheduled" | "dispatched" => c.scheduled += n,
                "failed" => c.failed = n,
                "completed" => c.completed = n,
                "missed" => c.missed = n,
                "cancelled" => c.cancelled = n,
                _ => {}
            }
        }
        Ok(c)
    }

    async fn gauges(&self, now: Millis) -> Result<Gauges> {
        let counts = self.counts().await?;
        let oldest_overdue: Option<i64> = sqlx::query_scalar(
            "SELECT min(next_attempt_at) FROM occurrences INDEXED BY occurrences_due WHERE status = 'pending' AND next_attempt_at <= ?",
        )
        .bind(now)
        .fetch_one(&self.read)
        .await?;
        let earliest_unexpanded: Option<i64> = sqlx::query_scalar(
            "SELECT min(next_fire_at) FROM events INDEXED BY events_expand WHERE status = 'active' AND next_fire_at IS NOT NULL",
        )
        .fetch_one(&self.read)
        .await?;
        let pool = |name, p: &SqlitePool| {
            let idle = u32::try_from(p.num_idle()).unwrap_or(u32::MAX);
            (name, idle, p.size().saturating_sub(idle))
        };
        Ok(Gauges {
            counts,
            oldest_overdue,
            earliest_unexpanded,
            pools: vec![pool("read", &self.read), pool("write", &self.write)],
        })
    }

    async fn purge(&self, now: Millis, c: &PurgeCutoffs) -> Result<Purged> {
        let mut out = Purged::default();
        // Each statement is its own short transaction: the engine's writes interleave.
        let delete_occ = |statuses: &'static str, before: Millis| {
            let sql = format!(
                "DELETE FROM occurrences WHERE id IN (SELECT id FROM occurrences WHERE status IN ({statuses}) \
                 AND updated_at < ? LIMIT ?)"
            );
            (sql, before)
        };
        for (kind, (sql, before)) in [
            (
                0,
                delete_occ("'completed', 'missed', 'cancelled'", c.done_before),
            ),
            (1, delete_occ("'failed'", c.failed_before)),
        ] {
            loop {
                let n = sqlx::query(AssertSqlSafe(sql.as_str()))
                    .bind(before)
                    .bind(c.batch)
                    .execute(&self.write)
                    .await?
                    .rows_affected();
                if kind == 0 {
                    out.occurrences_done += n;
                } else {
                    out.occurrences_failed += n;
                }
                if n < c.batch as u64 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        // An event stays while it has a dead letter: the failed pass above removed the expired
        // ones, so what is left is younger than `retention.failed` (which may outlast
        // `retention.events`) and must keep its event.
        loop {
            let n = sqlx::query(
                "DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.status IN ('inactive', 'deleted') \
                 AND e.updated_at < ? AND e.next_fire_at IS NULL AND NOT EXISTS (SELECT 1 FROM occurrences o \
                 WHERE o.event_id = e.id AND (o.status IN ('pending', 'scheduled', 'dispatched', 'failed') OR o.scheduled_at > ?)) \
                 LIMIT ?)",
            )
            .bind(c.events_before)
            .bind(now)
            .bind(c.batch)
            .execute(&self.write)
            .await?
            .rows_affected();
            out.events += n;
            if n < c.batch as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(out)
    }

    async fn backup_to(&self, path: &std::path::Path) -> Result<()> {
        // A backup holds the JWT signing key, token hashes and webhook secrets: it is created
        // empty, readable by its owner only, before SQLite writes into it (VACUUM INTO accepts
        // an empty file), so it is never readable by others, whatever the umask.
        super::private_file::create(path)?;
        let target = path
            .to_str()
            .ok_or_else(|| super::StoreError::Invalid("backup path is not UTF-8".into()))?;
        // VACUUM INTO writes a consistent, compacted copy from one read transaction.
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&self.read)
            .await?;
        Ok(())
    }

    async fn create_token(&self, t: &TokenRecord) -> Result<()> {
        sqlx::query("INSERT INTO tokens (jti, sub, access, scope, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(&t.jti)
            .bind(&t.sub)
            .bind(t.access.as_str())
            .bind(to_json(&t.scope))
            .bind(t.expires_at)
            .bind(t.created_at)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn list_tokens(
        &self,
        limit: i64,
        before: Option<&str>,
        within: Option<&[String]>,
    ) -> Result<Vec<TokenRecord>> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM tokens WHERE 1 = 1");
        if let Some(b) = before {
            q.push(" AND jti < ").push_bind(b.to_string());
        }
        if let Some(scope) = within {
            push_within(&mut q, "tokens.scope", scope);
        }
        q.push(" ORDER BY jti DESC LIMIT ").push_bind(limit);
        q.build()
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(rows::token)
            .collect()
    }

    async fn get_token(&self, jti: &str) -> Result<Option<TokenRecord>> {
        sqlx::query("SELECT * FROM tokens WHERE jti = ?")
            .bind(jti)
            .fetch_optional(&self.read)
            .await?
            .as_ref()
            .map(rows::token)
            .transpose()
    }

    async fn revoke_token(&self, jti: &str, now: Millis) -> Result<bool> {
        let n = sqlx::query("UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE jti = ?")
            .bind(now)
            .bind(jti)
            .execute(&self.write)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn revoked_jtis(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT jti FROM tokens WHERE revoked_at IS NOT NULL")
                .fetch_all(&self.read)
                .await?,
        )
    }

    async fn event_tags(&self, id: Uuid) -> Result<Option<Vec<String>>> {
        let tags: Option<String> = sqlx::query_scalar("SELECT tags FROM events WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?;
        tags.map(|t| {
            serde_json::from_str(&t).map_err(|e| super::StoreError::Corrupt(format!("tags: {e}")))
        })
        .transpose()
    }

    async fn append_audit(&self, e: &AuditEntry) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        let job = Job::Audit {
            entry: Box::new(e.clone()),
            reply,
        };
        self.batch.send(job).await.map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())?
    }

    async fn list_audit(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM audit WHERE 1 = 1");
        if let Some(a) = &f.actor {
            q.push(" AND actor = ").push_bind(a.clone());
        }
        if let Some(a) = &f.action {
            q.push(" AND action = ").push_bind(a.clone());
        }
        if let Some(t) = &f.target {
            q.push(" AND target = ").push_bind(t.clone());
        }
        if let Some(from) = f.from {
            q.push(" AND at >= ").push_bind(from);
        }
        if let Some(to) = f.to {
            q.push(" AND at <= ").push_bind(to);
        }
        if let Some(b) = f.before_id {
            q.push(" AND id < ").push_bind(b);
        }
        if let Some(scope) = &f.within {
            push_within(&mut q, "audit.tags", scope);
        }
        q.push(" ORDER BY id DESC LIMIT ").push_bind(f.limit);
        q.build()
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(rows::audit)
            .collect()
    }
}

/// `AND` the JSON tag array in `column` is not empty and every tag of it is in `scope` (what a
/// scoped admin may see of tokens and audit entries).
fn push_within(q: &mut QueryBuilder<Sqlite>, column: &'static str, scope: &[String]) {
    q.push(format!(
        " AND {column} IS NOT NULL AND {column} <> '[]' AND NOT EXISTS (SELECT 1 FROM json_each({column}) j WHERE j.value NOT IN ("
    ));
    let mut sep = q.separated(", ");
    // An empty scope would make `NOT IN ()`: it is never passed (an empty scope is unscoped).
    for t in scope {
        sep.push_bind(t.clone());
    }
    q.push("))");
}
