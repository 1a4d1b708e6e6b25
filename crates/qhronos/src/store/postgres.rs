//! The PostgreSQL store: several `qhronosd` nodes on one database.
//!
//! Claims take due rows with `FOR UPDATE SKIP LOCKED` under a lease, so nodes never wait on each
//! other and a dead node's work comes back when its lease expires. Upkeep that must run once
//! (expansion, retention) holds a row lease in `upkeep_leases`. Changes that other nodes must act
//! on at once (pause, delete, update, cancel, move, revocation) are sent with `pg_notify` inside
//! the transaction that makes them, so they arrive exactly when they commit; one connection per
//! node LISTENs and hands them out through `changes()`.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgConnection, Postgres, QueryBuilder, Row};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::postgres_rows as rows;
use super::postgres_sql::{
    self as sql, cancel_unfired, finish_if_done, insert_event_row, insert_tags, listen, notify,
    push_tags, upcoming_check, upsert_occurrences,
};
use super::sqlite_rows::{to_json, EVENT_COLS, OCC_COLS};
use super::{
    AuditEntry, AuditFilter, Change, ClaimSpec, Claimed, Counts, Created, EventFilter, Gauges,
    Next, OccChange, OccFilter, Outcome, PurgeCutoffs, Purged, Redrive, Result, Store, StoreError,
    TokenRecord,
};
use super::{ExpandState, Expansion};
use crate::config::DatabaseConfig;
use crate::domain::event::Event;
use crate::domain::occurrence::{Attempt, NewOccurrence, OccStatus, Occurrence};
use crate::domain::Millis;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
    changes: broadcast::Sender<Change>,
}

impl PgStore {
    /// Connects, applies the embedded migrations (one node at a time: sqlx takes an advisory
    /// lock) and starts listening for other nodes' changes.
    pub async fn open(url: &str, db: &DatabaseConfig) -> Result<PgStore> {
        let opts = PgConnectOptions::from_str(url)?
            .application_name("qhronosd")
            .options([(
                "statement_timeout",
                format!("{}ms", db.statement_timeout.as_millis()),
            )]);
        let pool = PgPoolOptions::new()
            // One more for the LISTEN connection, which stays checked out.
            .max_connections(db.pool_size + 1)
            .acquire_timeout(db.connect_timeout.0)
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await?;
        let (changes, _) = broadcast::channel(4096);
        tokio::spawn(listen(pool.clone(), changes.clone()));
        Ok(PgStore { pool, changes })
    }
}

/// Forwards NOTIFY payloads to `changes`, reconnecting for as long as the process runs. After a
/// reconnection it sends `Change::Resync`: notifications may have been missed meanwhile.
/// Claimed occurrence rows with their events (an occurrence whose event is gone is dropped).
async fn attach_events(
    c: &mut PgConnection,
    rs: &[sqlx::postgres::PgRow],
    lease_until: Millis,
    token: i64,
) -> Result<Vec<Claimed>> {
    let occs = rs
        .iter()
        .map(rows::occurrence)
        .collect::<Result<Vec<_>>>()?;
    let mut ids: Vec<String> = occs.iter().map(|o| o.event_id.to_string()).collect();
    ids.sort();
    ids.dedup();
    let mut events: HashMap<Uuid, Arc<Event>> = HashMap::new();
    if !ids.is_empty() {
        let rs = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EVENT_COLS} FROM events WHERE id = ANY($1)"
        )))
        .bind(&ids)
        .fetch_all(&mut *c)
        .await?;
        for row in rs {
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
const RECEIPT: &str = "replace(gen_random_uuid()::text, '-', '')";

/// Pull claims past their visibility timeout go back to their queue (due now), or to `failed`
/// when their last attempt is used; each expiry is recorded as a failed attempt.
async fn expire_claims_in(c: &mut PgConnection, now: Millis) -> Result<u64> {
    const EXPIRED: &str = "visibility timeout expired";
    sqlx::query(
        "INSERT INTO attempts (occurrence_id, attempt, started_at, duration_ms, status_code, error, response) \
         SELECT id, attempts, updated_at, $1 - updated_at, NULL, $2, NULL FROM occurrences \
         WHERE status = 'dispatched' AND lease_expires_at < $1 ON CONFLICT DO NOTHING",
    )
    .bind(now)
    .bind(EXPIRED)
    .execute(&mut *c)
    .await?;
    let rs = sqlx::query(
        "UPDATE occurrences SET \
         status = CASE WHEN attempts >= attempt_limit THEN 'failed' ELSE 'pending' END, \
         next_attempt_at = CASE WHEN attempts >= attempt_limit THEN NULL ELSE $1 END, \
         completed_at = CASE WHEN attempts >= attempt_limit THEN $1 ELSE NULL END, \
         last_error = $2, lease_owner = NULL, lease_expires_at = NULL, claim_receipt = NULL, updated_at = $1 \
         WHERE status = 'dispatched' AND lease_expires_at < $1 RETURNING event_id, status",
    )
    .bind(now)
    .bind(EXPIRED)
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
    finish_if_done(c, &failed, now).await?;
    Ok(rs.len() as u64)
}

#[async_trait]
impl Store for PgStore {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn single_process(&self) -> bool {
        false
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn create_event(
        &self,
        e: &Event,
        occs: &[NewOccurrence],
        idem: Option<(&str, &str)>,
    ) -> Result<Created> {
        let mut tx = self.pool.begin().await?;
        // With a key already used, the insert does nothing (waiting for a concurrent insert of
        // the same key to commit or roll back), and the earlier event is returned.
        if !insert_event_row(&mut tx, e, idem).await? {
            let key = idem.map(|(k, _)| k).unwrap_or_default();
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT {EVENT_COLS}, request_hash FROM events WHERE idempotency_key = $1"
            )))
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::Internal("idempotency key vanished".into()))?;
            return Ok(Created::Existing {
                event: Box::new(rows::event(&row)?),
                request_hash: row.try_get("request_hash")?,
            });
        }
        upsert_occurrences(&mut tx, occs, e.created_at).await?;
        tx.commit().await?;
        Ok(Created::New)
    }

    async fn create_events(&self, events: &[(Event, Vec<NewOccurrence>)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // Arrays in, UNNEST on the server: one statement for the events, one for their tags.
        let mut cols: [Vec<Option<String>>; 13] = Default::default();
        let (mut start, mut prev_until, mut next, mut created, mut updated) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut tag, mut tag_event) = (Vec::new(), Vec::new());
        for (e, _) in events {
            let text = [
                Some(e.id.to_string()),
                Some(e.name.clone()),
                e.description.clone(),
                Some(e.timezone.clone()),
                e.schedule.clone(),
                Some(to_json(&e.exdates)),
                Some(to_json(&e.rdates)),
                Some(to_json(&e.action)),
                Some(to_json(&e.tags)),
                Some(to_json(&e.metadata)),
                e.hmac_secret.clone(),
                e.previous_secret.as_ref().and_then(|p| p.0.clone()),
                e.action.queue().map(str::to_string),
            ];
            for (col, v) in cols.iter_mut().zip(text) {
                col.push(v);
            }
            start.push(e.start_time);
            prev_until.push(e.previous_secret.as_ref().map(|p| p.1));
            next.push(e.next_fire_at);
            created.push(e.created_at);
            updated.push(e.updated_at);
            for t in &e.tags {
                tag.push(t.clone());
                tag_event.push(e.id.to_string());
            }
        }
        let policies: Vec<(String, String, String)> = events
            .iter()
            .map(|(e, _)| {
                (
                    to_json(&e.retry),
                    to_json(&e.misfire),
                    e.status.as_str().to_string(),
                )
            })
            .collect();
        let retry: Vec<&str> = policies.iter().map(|p| p.0.as_str()).collect();
        let misfire: Vec<&str> = policies.iter().map(|p| p.1.as_str()).collect();
        let status: Vec<&str> = policies.iter().map(|p| p.2.as_str()).collect();
        let mut q = sqlx::query(
            "INSERT INTO events (id, name, description, timezone, schedule, exdates, rdates, action, \
             tags, metadata, hmac_secret, previous_hmac_secret, queue, start_time, previous_secret_until, \
             next_fire_at, created_at, updated_at, retry, misfire, status) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
             $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
             $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[], $19::text[], $20::text[], \
             $21::text[])",
        );
        for col in cols {
            q = q.bind(col);
        }
        q.bind(start)
            .bind(prev_until)
            .bind(next)
            .bind(created)
            .bind(updated)
            .bind(retry)
            .bind(misfire)
            .bind(status)
            .execute(&mut *tx)
            .await?;
        if !tag.is_empty() {
            sqlx::query(
                "INSERT INTO event_tags (tag, event_id) SELECT * FROM UNNEST($1::text[], $2::text[]) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(tag)
            .bind(tag_event)
            .execute(&mut *tx)
            .await?;
        }
        let occs: Vec<NewOccurrence> = events.iter().flat_map(|(_, o)| o.iter().copied()).collect();
        let now = events.first().map_or(0, |(e, _)| e.created_at);
        upsert_occurrences(&mut tx, &occs, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_event(&self, id: Uuid) -> Result<Option<Event>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EVENT_COLS} FROM events WHERE id = $1 AND status != 'deleted'"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rows::event).transpose()
    }

    async fn list_events(&self, f: &EventFilter) -> Result<Vec<Event>> {
        let mut q = QueryBuilder::<Postgres>::new(format!(
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
            // ILIKE: SQLite's LIKE ignores ASCII case, and so does the API on both stores.
            q.push(" AND (name ILIKE ")
                .push_bind(pat.clone())
                .push(" ESCAPE '\\' OR description ILIKE ")
                .push_bind(pat)
                .push(" ESCAPE '\\')");
        }
        if let Some(b) = f.before_id {
            q.push(" AND id < ").push_bind(b.to_string());
        }
        push_tags(&mut q, "id", &f.tags);
        q.push(" ORDER BY id DESC LIMIT ").push_bind(f.limit);
        let rs = q.build().fetch_all(&self.pool).await?;
        rs.iter().map(rows::event).collect()
    }

    async fn update_event(
        &self,
        e: &Event,
        replan_after: Option<Millis>,
        occs: &[NewOccurrence],
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE events SET name = $1, description = $2, start_time = $3, timezone = $4, schedule = $5, \
             exdates = $6, rdates = $7, action = $8, tags = $9, metadata = $10, hmac_secret = $11, \
             previous_hmac_secret = $12, previous_secret_until = $13, retry = $14, \
             misfire = $15, status = $16, next_fire_at = CASE WHEN $22 THEN $17 ELSE next_fire_at END, \
             updated_at = $18, paused_reason = $20, queue = $21, plan_gen = plan_gen + $23, \
             mark_at = CASE WHEN $22 THEN NULL ELSE mark_at END, \
             mark_index = CASE WHEN $22 THEN NULL ELSE mark_index END \
             WHERE id = $19 AND status != 'deleted'",
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
        .bind(e.next_fire_at)
        .bind(e.updated_at)
        .bind(e.id.to_string())
        .bind(&e.paused_reason)
        .bind(e.action.queue())
        // Without a re-plan the expander owns next_fire_at: writing back the value read before
        // would undo what it saved meanwhile.
        .bind(replan_after.is_some())
        .bind(i64::from(replan_after.is_some()))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM event_tags WHERE event_id = $1")
            .bind(e.id.to_string())
            .execute(&mut *tx)
            .await?;
        insert_tags(&mut tx, e).await?;
        if let Some(after) = replan_after {
            cancel_unfired(&mut tx, e.id, "replan", Some(after), e.updated_at).await?;
            upsert_occurrences(&mut tx, occs, e.updated_at).await?;
        }
        finish_if_done(&mut tx, &[e.id.to_string()], e.updated_at).await?;
        notify(&mut tx, &Change::Event(e.id)).await?;
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
        let mut tx = self.pool.begin().await?;
        let n = if paused {
            sqlx::query("UPDATE events SET status = 'paused', paused_reason = NULL, updated_at = $1, plan_gen = plan_gen + 1 WHERE id = $2 AND status != 'deleted'")
                .bind(now)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected()
        } else {
            sqlx::query("UPDATE events SET status = 'active', paused_reason = NULL, next_fire_at = $1, updated_at = $2, plan_gen = plan_gen + 1 WHERE id = $3 AND status != 'deleted'")
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
            finish_if_done(&mut tx, &[id.to_string()], now).await?;
        }
        notify(&mut tx, &Change::Event(id)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_event(&self, id: Uuid, now: Millis) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("UPDATE events SET status = 'deleted', next_fire_at = NULL, idempotency_key = NULL, updated_at = $1 WHERE id = $2 AND status != 'deleted'")
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM event_tags WHERE event_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        cancel_unfired(&mut tx, id, "delete", None, now).await?;
        notify(&mut tx, &Change::Event(id)).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn insert_occurrences(&self, occs: &[NewOccurrence], now: Millis) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let n = upsert_occurrences(&mut tx, occs, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn list_occurrences(&self, f: &OccFilter) -> Result<Vec<Occurrence>> {
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT {OCC_COLS} FROM occurrences WHERE 1 = 1"
        ));
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
            q.push(" AND (scheduled_at, id) < (")
                .push_bind(at)
                .push(", ")
                .push_bind(id.to_string())
                .push(")");
        }
        push_tags(&mut q, "event_id", &f.tags);
        q.push(" ORDER BY scheduled_at DESC, id DESC LIMIT ")
            .push_bind(f.limit);
        let rs = q.build().fetch_all(&self.pool).await?;
        rs.iter().map(rows::occurrence).collect()
    }

    async fn get_occurrence(&self, id: Uuid) -> Result<Option<(Occurrence, Vec<Attempt>)>> {
        let Some(row) = sqlx::query(AssertSqlSafe(format!(
            "SELECT {OCC_COLS} FROM occurrences WHERE id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let occ = rows::occurrence(&row)?;
        let attempts =
            sqlx::query("SELECT * FROM attempts WHERE occurrence_id = $1 ORDER BY attempt")
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(rows::attempt)
                .collect::<Result<Vec<_>>>()?;
        Ok(Some((occ, attempts)))
    }

    async fn redrive(&self, id: Uuid, extra: u32, now: Millis) -> Result<Redrive> {
        let mut tx = self.pool.begin().await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM occurrences WHERE id = $1 FOR UPDATE")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(status) = status else {
            return Ok(Redrive::NotFound);
        };
        let status = OccStatus::parse(&status).map_err(StoreError::Corrupt)?;
        if !matches!(status, OccStatus::Failed | OccStatus::Missed) {
            return Ok(Redrive::WrongStatus(status));
        }
        sqlx::query(
            "UPDATE occurrences SET status = 'pending', next_attempt_at = $1, attempt_limit = attempts + $2, \
             completed_at = NULL, updated_at = $3 WHERE id = $4",
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
        let mut tx = self.pool.begin().await?;
        if let Some(c) = upcoming_check(&mut tx, id).await? {
            return Ok(c);
        }
        sqlx::query(
            "UPDATE occurrences SET status = 'cancelled', cancelled_by = 'user', lease_owner = NULL, \
             lease_expires_at = NULL, next_attempt_at = NULL, updated_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        notify(&mut tx, &Change::Occurrence(id)).await?;
        tx.commit().await?;
        Ok(OccChange::Done)
    }

    async fn move_occurrence(&self, id: Uuid, to: Millis, now: Millis) -> Result<OccChange> {
        let mut tx = self.pool.begin().await?;
        if let Some(c) = upcoming_check(&mut tx, id).await? {
            return Ok(c);
        }
        let taken: Option<String> = sqlx::query_scalar(
            "SELECT o.id FROM occurrences o JOIN occurrences me ON me.event_id = o.event_id \
             WHERE me.id = $1 AND o.scheduled_at = $2 AND o.id != me.id",
        )
        .bind(id.to_string())
        .bind(to)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Ok(OccChange::Taken);
        }
        let moved = sqlx::query(
            "UPDATE occurrences SET status = 'pending', scheduled_at = $1, next_attempt_at = $1, \
             lease_owner = NULL, lease_expires_at = NULL, updated_at = $2 WHERE id = $3",
        )
        .bind(to)
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await;
        match moved {
            Ok(_) => {}
            // A concurrent move to the same instant committed first.
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
                return Ok(OccChange::Taken)
            }
            Err(e) => return Err(e.into()),
        }
        notify(&mut tx, &Change::Occurrence(id)).await?;
        tx.commit().await?;
        Ok(OccChange::Done)
    }

    async fn events_to_expand(
        &self,
        until: Millis,
        limit: i64,
    ) -> Result<Vec<(Event, ExpandState)>> {
        let rs = sqlx::query(AssertSqlSafe(format!(
            "SELECT {EVENT_COLS}, plan_gen, mark_at, mark_index FROM events WHERE status = 'active' AND next_fire_at IS NOT NULL \
             AND next_fire_at <= $1 ORDER BY next_fire_at LIMIT $2"
        )))
        .bind(until)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rs.iter()
            .map(|r| {
                let at: Option<i64> = r.try_get("mark_at")?;
                let n: Option<i64> = r.try_get("mark_index")?;
                let st = ExpandState {
                    gen: r.try_get("plan_gen")?,
                    mark: at.zip(n),
                };
                Ok((rows::event(r)?, st))
            })
            .collect()
    }

    async fn save_expansion(&self, event_id: Uuid, x: &Expansion<'_>, now: Millis) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE events SET next_fire_at = $1, mark_at = $2, mark_index = $3 \
             WHERE id = $4 AND status = 'active' AND plan_gen = $5",
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
            if !x.missed.is_empty() {
                let ids: Vec<String> = x.missed.iter().map(|(o, _)| o.id.to_string()).collect();
                let at: Vec<i64> = x.missed.iter().map(|(o, _)| o.scheduled_at).collect();
                let lim: Vec<i64> = x
                    .missed
                    .iter()
                    .map(|(o, _)| i64::from(o.attempt_limit))
                    .collect();
                let why: Vec<String> = x.missed.iter().map(|(_, w)| w.clone()).collect();
                sqlx::query(
                    "INSERT INTO occurrences (id, event_id, scheduled_at, status, attempts, attempt_limit, \
                     last_error, created_at, updated_at) \
                     SELECT u.id, $2, u.at, 'missed', 0, u.lim, u.why, $3, $3 \
                     FROM UNNEST($1::text[], $4::bigint[], $5::bigint[], $6::text[]) AS u(id, at, lim, why) \
                     ON CONFLICT (event_id, scheduled_at) DO NOTHING",
                )
                .bind(ids)
                .bind(event_id.to_string())
                .bind(now)
                .bind(at)
                .bind(lim)
                .bind(why)
                .execute(&mut *tx)
                .await?;
            }
            upsert_occurrences(&mut tx, x.occurrences, now).await?;
            finish_if_done(&mut tx, &[event_id.to_string()], now).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn claim_due(&self, spec: &ClaimSpec<'_>, now: Millis) -> Result<Vec<Claimed>> {
        let mut tx = self.pool.begin().await?;
        // SKIP LOCKED: rows another node is claiming right now are left to it, not waited for.
        // Besides due pending rows, rows whose lease has expired (their node died, or stalled)
        // are taken over: other nodes keep running, so no start-up can release them.
        let rs = sqlx::query(AssertSqlSafe(format!(
            "WITH due AS (SELECT o.id FROM occurrences o WHERE o.status = 'pending' AND o.next_attempt_at <= $4 \
               AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = o.event_id AND (e.queue IS NOT NULL OR e.status = 'paused')) \
               ORDER BY o.next_attempt_at LIMIT $5 FOR UPDATE OF o SKIP LOCKED), \
             expired AS (SELECT id FROM occurrences WHERE status = 'scheduled' AND lease_expires_at < $6 \
               LIMIT $5 FOR UPDATE SKIP LOCKED) \
             UPDATE occurrences SET status = 'scheduled', lease_owner = $1, lease_expires_at = $2, lease_token = $7, \
               updated_at = $3 \
             WHERE id IN (SELECT id FROM due UNION ALL SELECT id FROM expired) \
             RETURNING {OCC_COLS}"
        )))
        .bind(spec.owner)
        .bind(spec.lease_until)
        .bind(now)
        .bind(spec.due_before)
        .bind(spec.limit)
        .bind(spec.expired_before)
        .bind(spec.token)
        .fetch_all(&mut *tx)
        .await?;
        let claimed = attach_events(&mut tx, &rs, spec.lease_until, spec.token).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn release_leases(&self, now: Millis, all: bool) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE occurrences SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, \
             updated_at = $1 WHERE status = 'scheduled' AND ($2 OR lease_expires_at < $1)",
        )
        .bind(now)
        .bind(all)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn release_claims(
        &self,
        owner: &str,
        claims: &[(Uuid, i64)],
        now: Millis,
    ) -> Result<u64> {
        if claims.is_empty() {
            return Ok(0);
        }
        let ids: Vec<String> = claims.iter().map(|(id, _)| id.to_string()).collect();
        let tokens: Vec<i64> = claims.iter().map(|(_, t)| *t).collect();
        Ok(sqlx::query(
            "UPDATE occurrences SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, \
             lease_token = NULL, updated_at = $1 WHERE status = 'scheduled' AND lease_owner = $2 \
             AND (id, lease_token) IN (SELECT * FROM UNNEST($3::text[], $4::bigint[]))",
        )
        .bind(now)
        .bind(owner)
        .bind(ids)
        .bind(tokens)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn renew_leases(
        &self,
        owner: &str,
        claims: &[(Uuid, i64)],
        until: Millis,
        _now: Millis,
    ) -> Result<Vec<Uuid>> {
        if claims.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = claims.iter().map(|(id, _)| id.to_string()).collect();
        let tokens: Vec<i64> = claims.iter().map(|(_, t)| *t).collect();
        let renewed: Vec<String> = sqlx::query_scalar(
            "UPDATE occurrences SET lease_expires_at = $1 WHERE status = 'scheduled' AND lease_owner = $2 \
             AND (id, lease_token) IN (SELECT * FROM UNNEST($3::text[], $4::bigint[])) RETURNING id",
        )
        .bind(until)
        .bind(owner)
        .bind(ids)
        .bind(tokens)
        .fetch_all(&self.pool)
        .await?;
        Ok(renewed
            .iter()
            .filter_map(|id| Uuid::parse_str(id).ok())
            .collect())
    }

    async fn try_upkeep_lease(
        &self,
        name: &str,
        owner: &str,
        until: Millis,
        now: Millis,
    ) -> Result<bool> {
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO upkeep_leases (name, owner, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE upkeep_leases.owner = excluded.owner OR upkeep_leases.expires_at < $4 \
             RETURNING owner",
        )
        .bind(name)
        .bind(owner)
        .bind(until)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(held.is_some())
    }

    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.changes.subscribe())
    }

    async fn publish(&self, change: &Change) -> Result<()> {
        let mut c = self.pool.acquire().await?;
        notify(&mut c, change).await
    }

    async fn record_outcomes(&self, owner: &str, outcomes: &[Outcome], now: Millis) -> Result<()> {
        sql::record_outcomes(&self.pool, owner, outcomes, now).await
    }

    async fn claim_queue(
        &self,
        queue: &str,
        tags: &[String],
        limit: i64,
        visible_until: Millis,
        now: Millis,
    ) -> Result<Vec<(Claimed, String)>> {
        let mut tx = self.pool.begin().await?;
        expire_claims_in(&mut tx, now).await?;
        let mut q = QueryBuilder::<Postgres>::new(
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
                " WHERE id IN (SELECT o.id FROM occurrences o \
                 WHERE o.status = 'pending' AND o.next_attempt_at <= ",
            )
            .push_bind(now)
            .push(" AND o.event_id IN (SELECT id FROM events WHERE status != 'paused' AND queue = ")
            .push_bind(queue.to_string())
            .push(")");
        push_tags(&mut q, "o.event_id", tags);
        q.push(" ORDER BY o.next_attempt_at LIMIT ")
            .push_bind(limit)
            .push(format!(
                " FOR UPDATE OF o SKIP LOCKED) RETURNING {OCC_COLS}, claim_receipt"
            ));
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
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT status, event_id, claim_receipt FROM occurrences WHERE id = $1 FOR UPDATE",
        )
        .bind(id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(OccChange::NotFound);
        };
        let status: String = row.try_get("status")?;
        let event_id: String = row.try_get("event_id")?;
        let status = OccStatus::parse(&status).map_err(StoreError::Corrupt)?;
        if status != OccStatus::Dispatched {
            return Ok(OccChange::WrongStatus(status));
        }
        let current: Option<String> = row.try_get("claim_receipt")?;
        if !current.is_some_and(|c| super::receipt_matches(&c, receipt)) {
            return Ok(OccChange::Taken);
        }
        sqlx::query(
            "INSERT INTO attempts (occurrence_id, attempt, started_at, duration_ms, status_code, error, response) \
             SELECT id, attempts, updated_at, $1 - updated_at, NULL, $2, NULL FROM occurrences WHERE id = $3 \
             ON CONFLICT DO NOTHING",
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
            "UPDATE occurrences SET status = $1, next_attempt_at = $2, completed_at = $3, last_error = $4, \
             lease_owner = NULL, lease_expires_at = NULL, claim_receipt = NULL, updated_at = $5 WHERE id = $6",
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
            finish_if_done(&mut tx, &[event_id], now).await?;
        }
        tx.commit().await?;
        Ok(OccChange::Done)
    }

    async fn expire_claims(&self, now: Millis) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let n = expire_claims_in(&mut tx, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn wake_client(&self, client_name: &str, now: Millis) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE occurrences SET next_attempt_at = $1, updated_at = $1 WHERE status = 'pending' \
             AND attempts > 0 AND next_attempt_at > $1 AND event_id IN (SELECT id FROM events \
             WHERE status != 'deleted' AND action::jsonb->>'type' = 'websocket' \
             AND action::jsonb->'params'->>'client_name' = $2)",
        )
        .bind(now)
        .bind(client_name)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn counts(&self) -> Result<Counts> {
        let rs = sqlx::query("SELECT status, count(*) AS n FROM occurrences GROUP BY status")
            .fetch_all(&self.pool)
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
            "SELECT min(next_attempt_at) FROM occurrences WHERE status = 'pending' AND next_attempt_at <= $1",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        let earliest_unexpanded: Option<i64> = sqlx::query_scalar(
            "SELECT min(next_fire_at) FROM events WHERE status = 'active' AND next_fire_at IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
        Ok(Gauges {
            counts,
            oldest_overdue,
            earliest_unexpanded,
            pools: vec![("postgres", idle, self.pool.size().saturating_sub(idle))],
        })
    }

    async fn purge(&self, now: Millis, c: &PurgeCutoffs) -> Result<Purged> {
        let mut out = Purged::default();
        // Each statement is its own short transaction: the engine's writes interleave.
        for (done, statuses, before) in [
            (true, "'completed', 'missed', 'cancelled'", c.done_before),
            (false, "'failed'", c.failed_before),
        ] {
            let sql = format!(
                "DELETE FROM occurrences WHERE id IN (SELECT id FROM occurrences WHERE status IN ({statuses}) \
                 AND updated_at < $1 LIMIT $2)"
            );
            loop {
                let n = sqlx::query(AssertSqlSafe(sql.as_str()))
                    .bind(before)
                    .bind(c.batch)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                if done {
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
                 AND e.updated_at < $1 AND e.next_fire_at IS NULL AND NOT EXISTS (SELECT 1 FROM occurrences o \
                 WHERE o.event_id = e.id AND (o.status IN ('pending', 'scheduled', 'dispatched', 'failed') OR o.scheduled_at > $2)) \
                 LIMIT $3)",
            )
            .bind(c.events_before)
            .bind(now)
            .bind(c.batch)
            .execute(&self.pool)
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

    async fn backup_to(&self, _: &std::path::Path) -> Result<()> {
        Err(StoreError::Invalid(
            "backups of the PostgreSQL store are PostgreSQL's job: use pg_dump or your provider's \
             snapshots (see docs/deployment.md)"
                .into(),
        ))
    }

    async fn create_token(&self, t: &TokenRecord) -> Result<()> {
        sqlx::query("INSERT INTO tokens (jti, sub, access, scope, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&t.jti)
            .bind(&t.sub)
            .bind(t.access.as_str())
            .bind(to_json(&t.scope))
            .bind(t.expires_at)
            .bind(t.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_tokens(
        &self,
        limit: i64,
        before: Option<&str>,
        within: Option<&[String]>,
    ) -> Result<Vec<TokenRecord>> {
        let mut q = QueryBuilder::<Postgres>::new("SELECT * FROM tokens WHERE 1 = 1");
        if let Some(b) = before {
            q.push(" AND jti < ").push_bind(b.to_string());
        }
        if let Some(scope) = within {
            q.push(" AND scope::jsonb <> '[]'::jsonb AND scope::jsonb <@ ")
                .push_bind(to_json(&scope))
                .push("::jsonb");
        }
        q.push(" ORDER BY jti DESC LIMIT ").push_bind(limit);
        q.build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::token)
            .collect()
    }

    async fn get_token(&self, jti: &str) -> Result<Option<TokenRecord>> {
        sqlx::query("SELECT * FROM tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(rows::token)
            .transpose()
    }

    async fn revoke_token(&self, jti: &str, now: Millis) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n =
            sqlx::query("UPDATE tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE jti = $2")
                .bind(now)
                .bind(jti)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if n > 0 {
            notify(&mut tx, &Change::Tokens).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn revoked_jtis(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT jti FROM tokens WHERE revoked_at IS NOT NULL")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn event_tags(&self, id: Uuid) -> Result<Option<Vec<String>>> {
        let tags: Option<String> = sqlx::query_scalar("SELECT tags FROM events WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        tags.map(|t| {
            serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("tags: {e}")))
        })
        .transpose()
    }

    async fn append_audit(&self, e: &AuditEntry) -> Result<()> {
        sqlx::query("INSERT INTO audit (at, actor, action, target, ip, summary, tags) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(e.at)
            .bind(&e.actor)
            .bind(&e.action)
            .bind(&e.target)
            .bind(&e.ip)
            .bind(to_json(&e.summary))
            .bind(e.tags.as_ref().map(to_json))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_audit(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let mut q = QueryBuilder::<Postgres>::new("SELECT * FROM audit WHERE 1 = 1");
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
            // Not empty, and every tag of the entry inside the scope.
            q.push(" AND tags IS NOT NULL AND tags::jsonb <> '[]'::jsonb AND tags::jsonb <@ ")
                .push_bind(to_json(scope))
                .push("::jsonb");
        }
        q.push(" ORDER BY id DESC LIMIT ").push_bind(f.limit);
        q.build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rows::audit)
            .collect()
    }
}
