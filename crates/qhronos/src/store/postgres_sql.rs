//! The PostgreSQL store's statements shared by several `Store` methods, its LISTEN loop and its
//! outcome writer (split from postgres.rs to keep files small).

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};
use tokio::sync::broadcast;
use uuid::Uuid;

use super::sqlite_rows::to_json;
use super::{Change, Next, OccChange, Outcome, Result, StoreError};
use crate::domain::event::Event;
use crate::domain::occurrence::{NewOccurrence, OccStatus};
use crate::domain::Millis;

/// The NOTIFY channel of every node.
pub(super) const CHANNEL: &str = "qhronos";

pub(super) async fn listen(pool: PgPool, changes: broadcast::Sender<Change>) {
    // After the first connection, every new one may have missed notifications.
    let mut lost = false;
    loop {
        if pool.is_closed() {
            return;
        }
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "LISTEN connection failed; retrying");
                lost = true;
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::debug!(error = %e, "LISTEN failed; retrying");
            lost = true;
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        if lost {
            tracing::info!("listening for other nodes' changes again");
            let _ = changes.send(Change::Resync);
        }
        lost = true;
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    if let Some(c) = Change::parse(n.payload()) {
                        let _ = changes.send(c);
                    }
                }
                Ok(None) => {
                    let _ = changes.send(Change::Resync);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lost the LISTEN connection; reconnecting");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(super) async fn notify(c: &mut PgConnection, change: &Change) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(change.payload())
        .execute(&mut *c)
        .await?;
    Ok(())
}

pub(super) async fn insert_event_row(
    c: &mut PgConnection,
    e: &Event,
    idem: Option<(&str, &str)>,
) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO events (id, name, description, start_time, timezone, schedule, exdates, rdates, \
         action, tags, metadata, hmac_secret, previous_hmac_secret, previous_secret_until, retry, misfire, \
         status, next_fire_at, idempotency_key, request_hash, created_at, updated_at, paused_reason, queue) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24) \
         ON CONFLICT (idempotency_key) DO NOTHING",
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
    .bind(idem.map(|(k, _)| k))
    .bind(idem.map(|(_, h)| h))
    .bind(e.created_at)
    .bind(e.updated_at)
    .bind(&e.paused_reason)
    .bind(e.action.queue())
    .execute(&mut *c)
    .await?
    .rows_affected();
    if n == 0 {
        return Ok(false);
    }
    insert_tags(c, e).await?;
    Ok(true)
}

pub(super) async fn insert_tags(c: &mut PgConnection, e: &Event) -> Result<()> {
    if e.tags.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<Postgres>::new("INSERT INTO event_tags (tag, event_id) ");
    q.push_values(&e.tags, |mut b, t| {
        b.push_bind(t.clone()).push_bind(e.id.to_string());
    });
    q.push(" ON CONFLICT DO NOTHING");
    q.build().execute(&mut *c).await?;
    Ok(())
}

/// Inserts occurrences; an instant that exists is kept, except that one cancelled by a pause
/// or a re-plan comes back to life.
pub(super) async fn upsert_occurrences(
    c: &mut PgConnection,
    occs: &[NewOccurrence],
    now: Millis,
) -> Result<u64> {
    let mut n = 0;
    for chunk in occs.chunks(1000) {
        let ids: Vec<String> = chunk.iter().map(|o| o.id.to_string()).collect();
        let events: Vec<String> = chunk.iter().map(|o| o.event_id.to_string()).collect();
        let at: Vec<i64> = chunk.iter().map(|o| o.scheduled_at).collect();
        let limits: Vec<i64> = chunk.iter().map(|o| i64::from(o.attempt_limit)).collect();
        let owners: Vec<Option<String>> =
            chunk.iter().map(|o| o.lease.map(|l| l.owner())).collect();
        let until: Vec<Option<i64>> = chunk.iter().map(|o| o.lease.map(|l| l.until)).collect();
        let tokens: Vec<Option<i64>> = chunk.iter().map(|o| o.lease.map(|l| l.token)).collect();
        n += sqlx::query(
            "INSERT INTO occurrences (id, event_id, scheduled_at, status, attempts, attempt_limit, \
             next_attempt_at, lease_owner, lease_expires_at, lease_token, created_at, updated_at) \
             SELECT u.id, u.event_id, u.at, CASE WHEN u.owner IS NULL THEN 'pending' ELSE 'scheduled' END, \
             0, u.lim, u.at, u.owner, u.until, u.token, $5, $5 \
             FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $6::text[], $7::bigint[], $8::bigint[]) \
             AS u(id, event_id, at, lim, owner, until, token) \
             ON CONFLICT (event_id, scheduled_at) DO UPDATE SET status = 'pending', \
             cancelled_by = NULL, next_attempt_at = excluded.next_attempt_at, \
             updated_at = excluded.updated_at \
             WHERE occurrences.status = 'cancelled' AND occurrences.cancelled_by IN ('pause', 'replan')",
        )
        .bind(ids)
        .bind(events)
        .bind(at)
        .bind(limits)
        .bind(now)
        .bind(owners)
        .bind(until)
        .bind(tokens)
        .execute(&mut *c)
        .await?
        .rows_affected();
    }
    Ok(n)
}

pub(super) async fn cancel_unfired(
    c: &mut PgConnection,
    event_id: Uuid,
    by: &str,
    after: Option<Millis>,
    now: Millis,
) -> Result<u64> {
    let mut q = QueryBuilder::<Postgres>::new(
        "UPDATE occurrences SET status = 'cancelled', cancelled_by = ",
    );
    q.push_bind(by.to_string())
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

/// Finished one-time events and series become `inactive` once nothing is left to deliver.
pub(super) async fn finish_if_done(
    c: &mut PgConnection,
    event_ids: &[String],
    now: Millis,
) -> Result<()> {
    if event_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE events e SET status = 'inactive', updated_at = $1 WHERE e.id = ANY($2) \
         AND e.status = 'active' AND e.next_fire_at IS NULL AND NOT EXISTS (SELECT 1 FROM occurrences o \
         WHERE o.event_id = e.id AND o.status IN ('pending', 'scheduled', 'dispatched'))",
    )
    .bind(now)
    .bind(event_ids)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub(super) fn push_tags(q: &mut QueryBuilder<Postgres>, col: &str, tags: &[String]) {
    if tags.is_empty() {
        return;
    }
    q.push(format!(
        " AND {col} IN (SELECT event_id FROM event_tags WHERE tag = ANY("
    ));
    q.push_bind(tags.to_vec());
    q.push("))");
}

/// `Some` when the occurrence is unknown or no longer upcoming. Locks the row.
pub(super) async fn upcoming_check(c: &mut PgConnection, id: Uuid) -> Result<Option<OccChange>> {
    let row = sqlx::query("SELECT status, attempts FROM occurrences WHERE id = $1 FOR UPDATE")
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?;
    let Some(row) = row else {
        return Ok(Some(OccChange::NotFound));
    };
    let status: String = row.try_get("status")?;
    let attempts: i64 = row.try_get("attempts")?;
    let status = OccStatus::parse(&status).map_err(StoreError::Corrupt)?;
    if !matches!(status, OccStatus::Pending | OccStatus::Scheduled) || attempts > 0 {
        return Ok(Some(OccChange::WrongStatus(status)));
    }
    Ok(None)
}

/// Writes a batch of outcomes in one transaction: three statements per batch, whatever its
/// size (arrays in, UNNEST on the server).
pub(super) async fn record_outcomes(
    pool: &PgPool,
    owner: &str,
    outcomes: &[Outcome],
    now: Millis,
) -> Result<()> {
    // Three statements per batch, whatever its size: arrays in, UNNEST on the server.
    let mut a_id = Vec::new();
    let mut a_n = Vec::new();
    let mut a_start = Vec::new();
    let mut a_dur = Vec::new();
    let mut a_code: Vec<Option<i64>> = Vec::new();
    let mut a_err: Vec<Option<String>> = Vec::new();
    let mut a_resp: Vec<Option<String>> = Vec::new();
    let mut u_id = Vec::new();
    let mut u_status = Vec::new();
    let mut u_attempt: Vec<Option<i64>> = Vec::new();
    let mut u_next: Vec<Option<i64>> = Vec::new();
    let mut u_err: Vec<Option<String>> = Vec::new();
    let mut u_token: Vec<i64> = Vec::new();
    let mut finished: Vec<String> = Vec::new();
    let mut gone: Vec<(Uuid, String)> = Vec::new();
    for o in outcomes {
        match o {
            Outcome::Attempted {
                occurrence_id,
                event_id,
                attempt: a,
                next,
                pause_event,
                token,
            } => {
                u_token.push(*token);
                if let Some(reason) = pause_event {
                    gone.push((*event_id, reason.clone()));
                }
                let id = occurrence_id.to_string();
                a_id.push(id.clone());
                a_n.push(i64::from(a.attempt));
                a_start.push(a.started_at);
                a_dur.push(a.duration_ms);
                a_code.push(a.status_code.map(i64::from));
                a_err.push(a.error.clone());
                a_resp.push(a.response.clone());
                let (status, next_at) = match next {
                    Next::Completed => ("completed", None),
                    Next::Retry(at) => ("pending", Some(*at)),
                    Next::Failed => ("failed", None),
                };
                u_id.push(id);
                u_status.push(status.to_string());
                u_attempt.push(Some(i64::from(a.attempt)));
                u_next.push(next_at);
                u_err.push(if *next == Next::Completed {
                    None
                } else {
                    a.error
                        .clone()
                        .or_else(|| a.status_code.map(|c| format!("HTTP {c}")))
                });
                if !matches!(next, Next::Retry(_)) {
                    finished.push(event_id.to_string());
                }
            }
            Outcome::Missed {
                occurrence_id,
                event_id,
                token,
            } => {
                u_token.push(*token);
                u_id.push(occurrence_id.to_string());
                u_status.push("missed".to_string());
                u_attempt.push(None);
                u_next.push(None);
                u_err.push(None);
                finished.push(event_id.to_string());
            }
        }
    }
    finished.sort();
    finished.dedup();
    let mut tx = pool.begin().await?;
    if !a_id.is_empty() {
        sqlx::query(
            "INSERT INTO attempts (occurrence_id, attempt, started_at, duration_ms, status_code, error, response) \
             SELECT u.* FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], \
             $6::text[], $7::text[]) AS u(id, n, s, d, c, e, r) \
             WHERE EXISTS (SELECT 1 FROM occurrences o WHERE o.id = u.id) ON CONFLICT DO NOTHING",
        )
        .bind(&a_id)
        .bind(&a_n)
        .bind(&a_start)
        .bind(&a_dur)
        .bind(&a_code)
        .bind(&a_err)
        .bind(&a_resp)
        .execute(&mut *tx)
        .await?;
    }
    if !u_id.is_empty() {
        sqlx::query(
            "UPDATE occurrences o SET status = u.status, \
             attempts = GREATEST(o.attempts, COALESCE(u.attempt, o.attempts)), \
             next_attempt_at = u.next_at, lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL, \
             last_error = CASE WHEN u.attempt IS NULL THEN o.last_error ELSE u.err END, \
             updated_at = $6, completed_at = CASE WHEN u.status = 'pending' THEN NULL ELSE $6 END \
             FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $8::bigint[]) \
             AS u(id, status, attempt, next_at, err, token) \
             WHERE o.id = u.id AND o.status = 'scheduled' AND o.lease_owner = $7 AND o.lease_token = u.token",
        )
        .bind(&u_id)
        .bind(&u_status)
        .bind(&u_attempt)
        .bind(&u_next)
        .bind(&u_err)
        .bind(now)
        .bind(owner)
        .bind(&u_token)
        .execute(&mut *tx)
        .await?;
    }
    // After the occurrences' own updates: the pause cancels the rest of the series.
    for (event_id, reason) in &gone {
        let n = sqlx::query(
            "UPDATE events SET status = 'paused', paused_reason = $1, updated_at = $2 \
             WHERE id = $3 AND status = 'active'",
        )
        .bind(reason)
        .bind(now)
        .bind(event_id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            cancel_unfired(&mut tx, *event_id, "pause", Some(now), now).await?;
        }
    }
    finish_if_done(&mut tx, &finished, now).await?;
    tx.commit().await?;
    Ok(())
}
