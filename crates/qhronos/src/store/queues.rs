//! Pull queues (clients claim and settle occurrences with receipts) and the WebSocket wake-up.

use std::collections::HashMap;

use async_trait::async_trait;
use uuid::Uuid;

use super::analytics::{write_rollup, AttemptEnd, Rollup};
use super::claims::{attach_events, Next};
use super::events::push_tags;
use super::occurrences::finish_if_done;
use super::sql::rows::{RowExt, OCC_COLS};
use super::sql::{fetch_one, query, Dialect, Push};
use super::workflows::{write_follow_ups, Cause};
use super::{Backend, Claimed, OccChange, Result};
use crate::domain::occurrence::OccStatus;
use crate::domain::Millis;

/// Pull queues and WebSocket clients.
#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// Claims up to `limit` due `pending` occurrences of the events whose action is `pull` on
    /// `queue` (with `tags`, only events carrying one of them; never of paused events), oldest
    /// due first: each becomes `dispatched`, `attempts + 1`, leased to `queue:<queue>` until
    /// `visible_until`. Expired claims (of every queue) are returned to their queues first, as
    /// `expire_claims`. Each claim gets a new random receipt, returned with it (and stored with
    /// the row); concurrent claimers never get the same row.
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
    /// Every pull queue that has an event not deleted (with `tags`, only events carrying one
    /// of them), by name: its occurrences `pending` and due by `now` (`ready`), `pending`
    /// later (`waiting`), and claimed and not yet settled (`claimed`, the `dispatched` ones),
    /// with the oldest ready one's due time. One grouped read over the queue's occurrences:
    /// for a page that shows the queues, not for a hot path.
    async fn queue_depths(&self, tags: &[String], now: Millis) -> Result<Vec<QueueDepth>>;
}

/// One pull queue's backlog (see [`QueueStore::queue_depths`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct QueueDepth {
    /// The queue's name (`action.params.queue` of its events).
    pub queue: String,
    /// Events on the queue (not deleted).
    pub events: i64,
    /// Occurrences due and waiting to be claimed.
    pub ready: i64,
    /// Occurrences pending with a later due time (future instances, retries backing off).
    pub waiting: i64,
    /// Occurrences claimed by a consumer and not yet acked or nacked.
    pub claimed: i64,
    /// The due time of the oldest ready occurrence (ms since the epoch).
    #[serde(skip)]
    pub oldest_ready_at: Option<Millis>,
}

/// True when a pull claim's stored receipt is the one presented (constant time, so that
/// answers do not leak how much of a guess was right).
fn receipt_matches(stored: &str, presented: &str) -> bool {
    use subtle::ConstantTimeEq;
    stored.len() == presented.len() && bool::from(stored.as_bytes().ct_eq(presented.as_bytes()))
}

const EXPIRED: &str = "visibility timeout expired";

/// Pull claims past their visibility timeout go back to their queue (due now), or to `failed`
/// when their last attempt is used; each expiry is recorded as a failed attempt.
async fn expire_claims_in<D: Dialect>(c: &mut D::Connection, now: Millis) -> Result<u64> {
    let mut q = query::<D>(
        "INSERT INTO attempts (occurrence_id, attempt, started_at, duration_ms, status_code, error, response, \
         scheduled_at) SELECT id, attempts, updated_at, ",
    );
    q.val(now)
        .push(" - updated_at, NULL, ")
        .val(EXPIRED)
        .push(format!(
            ", NULL, scheduled_at FROM occurrences{} WHERE status = 'dispatched' AND lease_expires_at < ",
            D::indexed_by("occurrences_claimed")
        ))
        .val(now)
        .push(" ON CONFLICT DO NOTHING RETURNING occurrence_id, started_at");
    // When each expired claim was taken (its attempt's start).
    let mut started: HashMap<Uuid, Millis> = HashMap::new();
    for r in D::fetch(q, c).await? {
        started.insert(r.id("occurrence_id")?, r.int("started_at")?);
    }
    let mut q = query::<D>(
        "UPDATE occurrences SET \
         status = CASE WHEN attempts >= attempt_limit THEN 'failed' ELSE 'pending' END, \
         next_attempt_at = CASE WHEN attempts >= attempt_limit THEN NULL ELSE ",
    );
    q.val(now)
        .push(" END, completed_at = CASE WHEN attempts >= attempt_limit THEN ")
        .val(now)
        .push(" ELSE NULL END, last_error = ")
        .val(EXPIRED)
        .push(", lease_owner = NULL, lease_expires_at = NULL, claim_receipt = NULL, updated_at = ")
        .val(now)
        .push(" WHERE status = 'dispatched' AND lease_expires_at < ")
        .val(now)
        .push(" RETURNING id, event_id, status, scheduled_at, attempts");
    let rs = D::fetch(q, c).await?;
    write_follow_ups::<D>(c, &Cause::from_rows(&rs)?, now).await?;
    let mut failed: Vec<String> = Vec::new();
    let mut rollup = Rollup::default();
    for r in &rs {
        let is_failed = r.text("status")? == "failed";
        if is_failed {
            failed.push(r.text("event_id")?);
        }
        let at = started.get(&r.id("id")?).copied().unwrap_or(now);
        rollup.attempt(
            r.id("event_id")?,
            r.int("scheduled_at")?,
            r.int("attempts")?,
            at,
            now - at,
            if is_failed {
                AttemptEnd::Failed
            } else {
                AttemptEnd::Retried
            },
            Some(EXPIRED.to_string()),
        );
    }
    write_rollup::<D>(c, rollup).await?;
    failed.sort();
    failed.dedup();
    finish_if_done::<D>(c, &failed, now).await?;
    Ok(rs.len() as u64)
}

#[async_trait]
impl<B: Backend> QueueStore for B {
    async fn claim_queue(
        &self,
        queue: &str,
        tags: &[String],
        limit: i64,
        visible_until: Millis,
        now: Millis,
    ) -> Result<Vec<(Claimed, String)>> {
        type D<B> = <B as Backend>::D;
        // The rows are chosen in a CTE, evaluated once (as in `claim_due`): a locking
        // sub-select inside `IN` may be re-run by the plan, and a re-run skips the rows this
        // statement has just updated, so a claim could return fewer rows than were due.
        let mut q = query::<D<B>>(format!(
            "WITH picked AS (SELECT o.id FROM occurrences o{} \
             WHERE o.status = 'pending' AND o.next_attempt_at <= ",
            D::<B>::indexed_by("occurrences_due")
        ));
        q.val(now)
            .push(" AND o.event_id IN (SELECT id FROM events WHERE status != 'paused' AND queue = ")
            .val(queue)
            .push(")");
        push_tags(&mut q, "o.event_id", tags);
        q.push(" ORDER BY o.next_attempt_at LIMIT ")
            .val(limit)
            .push(format!(
                "{}) UPDATE occurrences SET status = 'dispatched', attempts = attempts + 1, lease_owner = ",
                D::<B>::skip_locked("o")
            ))
            .val(format!("queue:{queue}"))
            .push(", lease_expires_at = ")
            .val(visible_until)
            .push(format!(
                ", claim_receipt = {}, next_attempt_at = NULL, updated_at = ",
                D::<B>::RECEIPT
            ))
            .val(now)
            .push(format!(
                " WHERE id IN (SELECT id FROM picked) RETURNING {OCC_COLS}, claim_receipt"
            ));
        let mut tx = self.writes().begin().await?;
        expire_claims_in::<D<B>>(&mut tx, now).await?;
        let rs = D::<B>::fetch(q, &mut tx).await?;
        let mut receipts = HashMap::with_capacity(rs.len());
        let mut occs = Vec::with_capacity(rs.len());
        for r in &rs {
            let occ = r.occurrence()?;
            receipts.insert(occ.id, r.text("claim_receipt")?);
            occs.push(occ);
        }
        let claimed = attach_events::<D<B>>(&mut tx, occs, visible_until, 0).await?;
        tx.commit().await?;
        Ok(claimed
            .into_iter()
            .filter_map(|c| {
                let receipt = receipts.remove(&c.occ.id)?;
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
        type D<B> = <B as Backend>::D;
        let mut tx = self.writes().begin().await?;
        let mut q = query::<D<B>>(
            "SELECT status, event_id, claim_receipt, scheduled_at, attempts, updated_at \
             FROM occurrences WHERE id = ",
        );
        q.val(id).push(D::<B>::FOR_UPDATE);
        let Some(row) = fetch_one(q, &mut tx).await? else {
            tx.rollback().await?;
            return Ok(OccChange::NotFound);
        };
        let status = row.occ_status("status")?;
        if status != OccStatus::Dispatched {
            tx.rollback().await?;
            return Ok(OccChange::WrongStatus(status));
        }
        let current = row.opt_text("claim_receipt")?;
        if !current.is_some_and(|c| receipt_matches(&c, receipt)) {
            tx.rollback().await?;
            return Ok(OccChange::Taken);
        }
        let event_id = row.text("event_id")?;
        let mut q = query::<D<B>>(
            "INSERT INTO attempts (occurrence_id, attempt, started_at, duration_ms, status_code, error, response, \
             scheduled_at) SELECT id, attempts, updated_at, ",
        );
        q.val(now)
            .push(" - updated_at, NULL, ")
            .val(error)
            .push(", NULL, scheduled_at FROM occurrences WHERE id = ")
            .val(id)
            .push(" ON CONFLICT DO NOTHING");
        D::<B>::exec(q, &mut tx).await?;
        let (status, next_at, done_at) = next.row(now);
        let mut q = query::<D<B>>("UPDATE occurrences SET status = ");
        q.val(status)
            .push(", next_attempt_at = ")
            .val(next_at)
            .push(", completed_at = ")
            .val(done_at)
            .push(", last_error = ")
            .val(error)
            .push(", lease_owner = NULL, lease_expires_at = NULL, claim_receipt = NULL, updated_at = ")
            .val(now)
            .push(" WHERE id = ")
            .val(id)
            .push(" RETURNING id, event_id, status, scheduled_at");
        let rs = D::<B>::fetch(q, &mut tx).await?;
        // In the settle's transaction: one follow-up per workflow and cause.
        write_follow_ups::<D<B>>(&mut tx, &Cause::from_rows(&rs)?, now).await?;
        // Counted with the settlement: the attempt ran from the claim to now.
        let claimed_at = row.int("updated_at")?;
        let mut rollup = Rollup::default();
        rollup.attempt(
            row.id("event_id")?,
            row.int("scheduled_at")?,
            row.int("attempts")?,
            claimed_at,
            now - claimed_at,
            match next {
                Next::Completed => AttemptEnd::Delivered,
                Next::Retry(_) => AttemptEnd::Retried,
                Next::Failed => AttemptEnd::Failed,
            },
            error.map(str::to_string),
        );
        write_rollup::<D<B>>(&mut tx, rollup).await?;
        if !matches!(next, Next::Retry(_)) {
            finish_if_done::<D<B>>(&mut tx, &[event_id], now).await?;
        }
        tx.commit().await?;
        Ok(OccChange::Done)
    }

    async fn expire_claims(&self, now: Millis) -> Result<u64> {
        let mut tx = self.writes().begin().await?;
        let n = expire_claims_in::<B::D>(&mut tx, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn wake_client(&self, client_name: &str, now: Millis) -> Result<u64> {
        type D<B> = <B as Backend>::D;
        let mut q = query::<D<B>>("UPDATE occurrences SET next_attempt_at = ");
        q.val(now)
            .push(", updated_at = ")
            .val(now)
            .push(" WHERE status = 'pending' AND attempts > 0 AND next_attempt_at > ")
            .val(now)
            .push(format!(
                " AND event_id IN (SELECT id FROM events WHERE status != 'deleted' AND {} = 'websocket' AND {} = ",
                D::<B>::json_text("action", &["type"]),
                D::<B>::json_text("action", &["params", "client_name"])
            ))
            .val(client_name)
            .push(")");
        let mut c = self.writes().acquire().await?;
        D::<B>::exec(q, &mut c).await
    }

    async fn queue_depths(&self, tags: &[String], now: Millis) -> Result<Vec<QueueDepth>> {
        type D<B> = <B as Backend>::D;
        // Grouped per event first (small rows), then per queue: events without occurrences
        // still name their queue. PostgreSQL's sum of BIGINTs is NUMERIC, hence the casts.
        let mut q = query::<D<B>>(
            "SELECT e.queue AS queue, count(*) AS events, \
             CAST(coalesce(sum(o.ready), 0) AS BIGINT) AS ready, CAST(coalesce(sum(o.waiting), 0) AS BIGINT) AS waiting, \
             CAST(coalesce(sum(o.claimed), 0) AS BIGINT) AS claimed, min(o.oldest) AS oldest \
             FROM events e LEFT JOIN (SELECT event_id, \
             sum(CASE WHEN status = 'pending' AND next_attempt_at <= ",
        );
        q.val(now)
            .push(" THEN 1 ELSE 0 END) AS ready, sum(CASE WHEN status = 'pending' AND next_attempt_at > ")
            .val(now)
            .push(
                " THEN 1 ELSE 0 END) AS waiting, \
                 sum(CASE WHEN status = 'dispatched' THEN 1 ELSE 0 END) AS claimed, \
                 min(CASE WHEN status = 'pending' AND next_attempt_at <= ",
            )
            .val(now)
            .push(
                " THEN next_attempt_at END) AS oldest FROM occurrences \
                 WHERE status IN ('pending', 'dispatched') GROUP BY event_id) o ON o.event_id = e.id \
                 WHERE e.queue IS NOT NULL AND e.status != 'deleted'",
            );
        push_tags(&mut q, "e.id", tags);
        q.push(" GROUP BY e.queue ORDER BY e.queue");
        let mut c = self.reads().acquire().await?;
        D::<B>::fetch(q, &mut c)
            .await?
            .iter()
            .map(|r| {
                Ok(QueueDepth {
                    queue: r.text("queue")?,
                    events: r.int("events")?,
                    ready: r.int("ready")?,
                    waiting: r.int("waiting")?,
                    claimed: r.int("claimed")?,
                    oldest_ready_at: r.opt_int("oldest")?,
                })
            })
            .collect()
    }
}
