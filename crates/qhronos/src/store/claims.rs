//! Claims: the dispatcher's leases on due occurrences, their renewal and release, and the
//! outcomes written back under them (fenced by the claim's token).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::QueryBuilder;
use uuid::Uuid;

use super::analytics::{write_rollup, AttemptEnd, Rollup};
use super::occurrences::{cancel_unfired, finish_if_done};
use super::sql::rows::{RowExt, EVENT_COLS, OCC_COLS};
use super::sql::{query, Col, Dialect, Kind, Push, Rows, Val};
use super::workflows::{write_follow_ups, Cause};
use super::{Backend, Change, Result};
use crate::domain::event::Event;
use crate::domain::history::change;
use crate::domain::occurrence::{Attempt, Occurrence};
use crate::domain::Millis;

/// A claimed occurrence with the event it belongs to.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The occurrence as claimed (`scheduled`, its lease written).
    pub occ: Occurrence,
    /// Its event, shared by the claims of one batch.
    pub event: Arc<Event>,
    /// The claim's `lease_expires_at` when it was taken: after it (unless renewed) another node
    /// may take the occurrence.
    pub lease_until: Millis,
    /// The claim's `lease_token`: tells this claim from a later one of the same row.
    pub token: i64,
}

/// What `claim_due` takes: several instants, named so they cannot be swapped.
#[derive(Debug, Clone, Copy)]
pub struct ClaimDue<'a> {
    /// The node taking the claims (its lease owner name).
    pub owner: &'a str,
    /// Written into every row claimed (`lease_token`).
    pub token: i64,
    /// Pending occurrences due at or before this.
    pub due_before: Millis,
    /// The lease taken ends then.
    pub lease_until: Millis,
    /// Scheduled occurrences whose lease ended before this are taken over (`Millis::MIN`: none).
    pub expired_before: Millis,
    /// Most rows taken (due and expired together count up to twice this).
    pub limit: i64,
    /// The time written as the rows' `updated_at`.
    pub now: Millis,
}

/// What happened to a claimed occurrence; written back in batches.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// An attempt was made (delivered, or failed and maybe retried).
    Attempted {
        /// The occurrence attempted.
        occurrence_id: Uuid,
        /// Its event.
        event_id: Uuid,
        /// Its `scheduled_at` as claimed (`Claimed::occ`): with the id, it names the row's
        /// partition on PostgreSQL.
        scheduled_at: Millis,
        /// The attempt, recorded as a row of `attempts`.
        attempt: Attempt,
        /// Where the occurrence goes next.
        next: Next,
        /// Pause the (recurring) event with this reason: its receiver answered 410 Gone.
        pause_event: Option<String>,
        /// The claim's `lease_token`: the outcome applies only while that claim holds the row.
        token: i64,
    },
    /// Skipped by the misfire policy.
    Missed {
        /// The occurrence skipped.
        occurrence_id: Uuid,
        /// Its event.
        event_id: Uuid,
        /// Its `scheduled_at` as claimed (see `Attempted::scheduled_at`).
        scheduled_at: Millis,
        /// The claim's `lease_token` (see `Attempted::token`).
        token: i64,
    },
}

/// Where an attempted occurrence goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Delivered: done.
    Completed,
    /// Back to pending, next attempt at this time.
    Retry(Millis),
    /// Out of attempts, or not retryable: a dead letter.
    Failed,
}

impl Next {
    /// The row's `(status, next_attempt_at, completed_at)` after this.
    pub(super) fn row(self, now: Millis) -> (&'static str, Option<Millis>, Option<Millis>) {
        match self {
            Next::Completed => ("completed", None, Some(now)),
            Next::Retry(at) => ("pending", Some(at), None),
            Next::Failed => ("failed", None, Some(now)),
        }
    }
}

/// What a lease renewal found (see [`ClaimStore::renew_leases`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Renewal {
    /// Claims whose lease now runs to the renewal's `until`.
    pub renewed: Vec<Uuid>,
    /// Claims still held by the node, skipped because another transaction had their row
    /// locked (the outcome writer, about to finish them): their lease is unchanged.
    pub busy: Vec<Uuid>,
}

/// The dispatcher's side of the occurrences table.
#[async_trait]
pub trait ClaimStore: Send + Sync + 'static {
    /// Claims pending occurrences due at or before `due_before` (not of pull-queue events, nor
    /// of paused ones), and scheduled ones whose lease ended before `expired_before`, under a
    /// lease for `owner` with the claim's token, soonest due first. Concurrent claimers (on
    /// other nodes) never get the same row: a row is claimed by one of them until its lease
    /// ends.
    async fn claim_due(&self, spec: &ClaimDue<'_>) -> Result<Vec<Claimed>>;
    /// Returns expired leases to `pending`; with `all`, every lease (a single-node store at
    /// start-up, when no other process can hold one).
    async fn release_leases(&self, now: Millis, all: bool) -> Result<u64>;
    /// Returns to `pending` the given occurrences still held by `owner` under the same claim
    /// (`(id, lease_token)`; a later claim of the row has another token and is left alone):
    /// the dispatcher dropped them before firing, or is stopping.
    async fn release_claims(&self, owner: &str, claims: &[(Uuid, i64)], now: Millis)
        -> Result<u64>;
    /// Moves the lease of the given claims (`(id, lease_token)`, still held by `owner`) to
    /// `until`. Never waits for a row another transaction has locked (the outcome writer
    /// finishing it, on PostgreSQL): such a claim is `busy`, still this node's but not renewed.
    /// A claim in neither list is no longer this node's (taken over after its lease ended,
    /// cancelled, or already finished).
    async fn renew_leases(
        &self,
        owner: &str,
        claims: &[(Uuid, i64)],
        until: Millis,
        now: Millis,
    ) -> Result<Renewal>;
    /// Writes a batch of outcomes in one transaction. An outcome changes its occurrence only
    /// while the claim it names (`owner`, its token) still holds the row: a node whose claim was
    /// taken over never overwrites the newer one. An attempt row is written once per
    /// (occurrence, attempt number). A 410 outcome pauses its event and cancels what has not
    /// fired; an event with nothing left to deliver becomes inactive. The follow-ups of the
    /// outcomes recorded (workflows, see `WorkflowStore`) are written in the same transaction,
    /// once per (workflow, cause).
    async fn record_outcomes(&self, owner: &str, outcomes: &[Outcome], now: Millis) -> Result<()>;
}

/// Claimed occurrence rows with their events (an occurrence whose event is gone is dropped).
pub(super) async fn attach_events<D: Dialect>(
    c: &mut D::Connection,
    occs: Vec<Occurrence>,
    lease_until: Millis,
    token: i64,
) -> Result<Vec<Claimed>> {
    let mut ids: Vec<String> = occs.iter().map(|o| o.event_id.to_string()).collect();
    ids.sort();
    ids.dedup();
    let mut events: HashMap<Uuid, Arc<Event>> = HashMap::new();
    for chunk in ids.chunks(D::max_rows(1)) {
        let mut q = query::<D>(format!("SELECT {EVENT_COLS} FROM events WHERE "));
        D::push_in(&mut q, "id", chunk.to_vec());
        for row in D::fetch(q, c).await? {
            let e = row.event()?;
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

const CLAIM_COLS: [Col; 2] = [("id", Kind::Text), ("token", Kind::Int)];

/// ` WHERE` the rows are still held by these claims of `owner` (`(id, lease_token)`).
fn push_held<D: Dialect>(q: &mut QueryBuilder<D>, owner: &str, claims: &[(Uuid, i64)]) {
    q.push(" WHERE status = 'scheduled' AND lease_owner = ")
        .val(owner)
        .push(" AND (id, lease_token) IN (SELECT id, token FROM ");
    let rows = claims
        .iter()
        .map(|(id, t)| vec![(*id).into(), (*t).into()])
        .collect();
    D::push_relation(q, "held", &CLAIM_COLS, rows);
    q.push(")");
}

/// A batch of outcomes as the rows it writes: the one place that says what an outcome does to
/// its occurrence (status, next attempt, error text, completion time).
#[derive(Default)]
struct OutcomeRows {
    /// `attempts` rows, each with its occurrence: written for the occurrences the fenced
    /// update changed.
    attempts: Vec<(Uuid, Vec<super::sql::Val>)>,
    /// Occurrence updates (see `UPDATE_COLS`).
    updates: Rows,
    /// Events to pause, with the reason: their receiver said they are gone.
    gone: Vec<(Uuid, String)>,
    /// Events that may have nothing left to deliver.
    finished: Vec<String>,
}

const ATTEMPT_COLS: [Col; 8] = [
    ("occurrence_id", Kind::Text),
    ("attempt", Kind::Int),
    ("started_at", Kind::Int),
    ("duration_ms", Kind::Int),
    ("status_code", Kind::Int),
    ("error", Kind::Text),
    ("response", Kind::Text),
    // The occurrence's: PostgreSQL's partition key of `attempts`.
    ("scheduled_at", Kind::Int),
];

const UPDATE_COLS: [Col; 7] = [
    ("id", Kind::Text),
    // With the id, the row's partition on PostgreSQL: the update probes one partition per row.
    ("at", Kind::Int),
    ("status", Kind::Text),
    // NULL for a missed occurrence: its attempts and last error stay as they were.
    ("attempt", Kind::Int),
    ("next_at", Kind::Int),
    ("err", Kind::Text),
    ("token", Kind::Int),
];

impl OutcomeRows {
    fn of(outcomes: &[Outcome], now: Millis) -> OutcomeRows {
        let mut r = OutcomeRows::default();
        for o in outcomes {
            match o {
                Outcome::Attempted {
                    occurrence_id,
                    event_id,
                    scheduled_at,
                    attempt: a,
                    next,
                    pause_event,
                    token,
                } => {
                    r.attempts.push((
                        *occurrence_id,
                        vec![
                            (*occurrence_id).into(),
                            i64::from(a.attempt).into(),
                            a.started_at.into(),
                            a.duration_ms.into(),
                            a.status_code.map(i64::from).into(),
                            a.error.clone().into(),
                            a.response.clone().into(),
                            (*scheduled_at).into(),
                        ],
                    ));
                    let (status, next_at, _) = next.row(now);
                    // The last error says why it is not done: the transport's error, else the
                    // receiver's status code.
                    let err = (*next != Next::Completed)
                        .then(|| {
                            a.error
                                .clone()
                                .or_else(|| a.status_code.map(|c| format!("HTTP {c}")))
                        })
                        .flatten();
                    r.updates.push(vec![
                        (*occurrence_id).into(),
                        (*scheduled_at).into(),
                        status.into(),
                        i64::from(a.attempt).into(),
                        next_at.into(),
                        err.into(),
                        (*token).into(),
                    ]);
                    if let Some(reason) = pause_event {
                        r.gone.push((*event_id, reason.clone()));
                    }
                    if !matches!(next, Next::Retry(_)) {
                        r.finished.push(event_id.to_string());
                    }
                }
                Outcome::Missed {
                    occurrence_id,
                    event_id,
                    scheduled_at,
                    token,
                } => {
                    r.updates.push(vec![
                        (*occurrence_id).into(),
                        (*scheduled_at).into(),
                        "missed".into(),
                        None::<i64>.into(),
                        None::<i64>.into(),
                        None::<String>.into(),
                        (*token).into(),
                    ]);
                    r.finished.push(event_id.to_string());
                }
            }
        }
        r.finished.sort();
        r.finished.dedup();
        r
    }
}

/// The least and greatest `scheduled_at` (column `at` of [`UPDATE_COLS`]) of outcome rows.
fn scheduled_span(rows: &Rows) -> Option<(i64, i64)> {
    rows.iter()
        .filter_map(|r| match r.get(1) {
            Some(Val::Int(Some(at))) => Some(*at),
            _ => None,
        })
        .fold(None, |span, at| match span {
            None => Some((at, at)),
            Some((lo, hi)) => Some((at.min(lo), at.max(hi))),
        })
}

/// The analytics of the outcomes that applied (`applied`: their occurrences' scheduled time
/// and attempt count after the write).
fn rollup_of(outcomes: &[Outcome], applied: &HashMap<Uuid, (Millis, i64)>) -> Rollup {
    let mut r = Rollup::default();
    for o in outcomes {
        match o {
            Outcome::Attempted {
                occurrence_id,
                event_id,
                attempt: a,
                next,
                ..
            } => {
                let Some((scheduled_at, _)) = applied.get(occurrence_id) else {
                    continue;
                };
                let end = match next {
                    Next::Completed => AttemptEnd::Delivered,
                    Next::Retry(_) => AttemptEnd::Retried,
                    Next::Failed => AttemptEnd::Failed,
                };
                let error = a
                    .error
                    .clone()
                    .or_else(|| a.status_code.map(|c| format!("HTTP {c}")));
                r.attempt(
                    *event_id,
                    *scheduled_at,
                    i64::from(a.attempt),
                    a.started_at,
                    a.duration_ms,
                    end,
                    error,
                );
            }
            Outcome::Missed {
                occurrence_id,
                event_id,
                ..
            } => {
                if let Some((scheduled_at, attempts)) = applied.get(occurrence_id) {
                    r.missed(*event_id, *scheduled_at, *attempts == 0);
                }
            }
        }
    }
    r
}

/// Pauses an event whose receiver said it is gone, with the reason, cancelling what has not
/// fired (resuming revives it).
async fn pause_gone<B: Backend>(
    c: &mut <B::D as sqlx::Database>::Connection,
    event_id: Uuid,
    reason: &str,
    now: Millis,
) -> Result<()> {
    let mut q = query::<B::D>("UPDATE events SET status = 'paused', paused_reason = ");
    q.val(reason)
        .push(", plan_gen = plan_gen + 1, updated_at = ")
        .val(now)
        .push(" WHERE id = ")
        .val(event_id)
        .push(" AND status = 'active'");
    if B::D::exec(q, c).await? > 0 {
        cancel_unfired::<B::D>(c, event_id, "pause", Some(now), now).await?;
        let by = super::history::By::actor(crate::domain::history::SYSTEM);
        super::history::record_change::<B::D>(c, event_id, by, change::PAUSE_GONE, now).await?;
        B::announce(c, &Change::Event(event_id)).await?;
    }
    Ok(())
}

/// "Tuple to be locked was already moved to another partition" (SQLSTATE 40001): a claim that
/// met a row while a PATCH moved it across a partition boundary.
fn is_moved_row(e: &super::StoreError) -> bool {
    matches!(e, super::StoreError::Db(sqlx::Error::Database(d)) if d.code().as_deref() == Some("40001"))
}

/// Turns index-only planning on or off for the rest of the transaction (see
/// [`Dialect::KEYED_PLANS`]).
async fn keyed_plans<D: Dialect>(c: &mut D::Connection, on: bool) -> Result<()> {
    if let Some([enter, leave]) = D::KEYED_PLANS {
        D::fetch(query::<D>(if on { enter } else { leave }), c).await?;
    }
    Ok(())
}

/// One run of the claim statement (see `ClaimStore::claim_due`).
async fn claim_once<B: Backend>(b: &B, s: &ClaimDue<'_>) -> Result<Vec<Claimed>> {
    type D<B> = <B as Backend>::D;
    // Due pending rows (not of pull events: clients claim those, nor of paused events: the
    // pause holds them), and rows whose lease expired (an attempt a node left: its node
    // died or stalled). Rows another node is claiming right now are skipped, not waited for.
    // The candidates are chosen in CTEs, evaluated once (PostgreSQL materialises a locking
    // CTE): a locking sub-select inside `IN` may be re-run by the plan, and a re-run skips
    // the rows this very statement has just updated, so some due rows went unclaimed.
    let mut q = query::<D<B>>(format!(
        "WITH due AS (SELECT o.id, o.scheduled_at FROM occurrences o{} \
         WHERE o.status = 'pending' AND o.next_attempt_at <= ",
        D::<B>::indexed_by("occurrences_due")
    ));
    // A due row has `scheduled_at <= next_attempt_at` (a retry comes after its time), so
    // the second bound changes no answer; on PostgreSQL it prunes the partitions of the
    // future from the plan.
    q.val(s.due_before)
        .push(" AND o.scheduled_at <= ")
        .val(s.due_before)
        .push(
            " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = o.event_id \
             AND (e.queue IS NOT NULL OR e.status = 'paused')) ORDER BY o.next_attempt_at LIMIT ",
        )
        .val(s.limit)
        .push(format!(
            "{}), expired AS (SELECT x.id, x.scheduled_at FROM occurrences x{} \
             WHERE x.status = 'scheduled' AND x.lease_expires_at < ",
            D::<B>::skip_locked("o"),
            D::<B>::indexed_by("occurrences_leased")
        ))
        .val(s.expired_before);
    if D::<B>::PARTITIONED {
        // No answer changes (see the bound on the update below); the future partitions are
        // pruned from the scan.
        q.push(" AND x.scheduled_at <= ").val(s.due_before);
    }
    q.push(" LIMIT ")
        .val(s.limit)
        .push(format!(
            "{}) UPDATE occurrences SET status = 'scheduled', lease_owner = ",
            D::<B>::skip_locked("x")
        ))
        .val(s.owner)
        .push(", lease_expires_at = ")
        .val(s.lease_until)
        .push(", lease_token = ")
        .val(s.token)
        .push(", updated_at = ")
        .val(s.now)
        .push(if D::<B>::PARTITIONED {
            // With the partition key, each row is found in its own partition only.
            " WHERE (id, scheduled_at) IN (SELECT id, scheduled_at FROM due UNION ALL \
             SELECT id, scheduled_at FROM expired)"
        } else {
            " WHERE id IN (SELECT id FROM due UNION ALL SELECT id FROM expired)"
        });
    if D::<B>::PARTITIONED {
        // Every row ever claimed had `scheduled_at <= next_attempt_at <= due_before` of its
        // claim, so this bound changes no answer (unless another node's clock runs ahead:
        // then its expired claims wait for this clock to reach their time). It lets the
        // planner prune the future partitions from the update too, which the sub-select alone
        // does not.
        q.push(" AND scheduled_at <= ").val(s.due_before);
    }
    q.push(format!(" RETURNING {OCC_COLS}"));
    let mut tx = b.writes().begin().await?;
    keyed_plans::<D<B>>(&mut tx, true).await?;
    let occs = D::<B>::fetch_pruned(q, &mut tx)
        .await?
        .iter()
        .map(|r| r.occurrence())
        .collect::<Result<Vec<_>>>()?;
    let claimed = attach_events::<D<B>>(&mut tx, occs, s.lease_until, s.token).await?;
    tx.commit().await?;
    Ok(claimed)
}

#[async_trait]
impl<B: Backend> ClaimStore for B {
    async fn claim_due(&self, s: &ClaimDue<'_>) -> Result<Vec<Claimed>> {
        // On partitioned PostgreSQL, a row moved to another partition (a PATCH across a
        // partition boundary) while this claim meets it fails the statement with 40001, even
        // under SKIP LOCKED: nothing is wrong, the claim runs again at once.
        let mut tries = 0;
        loop {
            match claim_once(self, s).await {
                Err(e) if tries < 3 && is_moved_row(&e) => tries += 1,
                r => return r,
            }
        }
    }

    async fn release_leases(&self, now: Millis, all: bool) -> Result<u64> {
        let mut q = query::<B::D>(
            "UPDATE occurrences SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, updated_at = ",
        );
        q.val(now)
            .push(" WHERE status = 'scheduled' AND (")
            .val(all)
            .push(" OR lease_expires_at < ")
            .val(now)
            .push(")");
        let mut c = self.writes().acquire().await?;
        B::D::exec(q, &mut c).await
    }

    async fn release_claims(
        &self,
        owner: &str,
        claims: &[(Uuid, i64)],
        now: Millis,
    ) -> Result<u64> {
        let mut n = 0;
        let mut c = self.writes().acquire().await?;
        for chunk in claims.chunks(B::D::max_rows(CLAIM_COLS.len())) {
            let mut q = query::<B::D>(
                "UPDATE occurrences SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL, \
                 lease_token = NULL, updated_at = ",
            );
            q.val(now);
            push_held(&mut q, owner, chunk);
            n += B::D::exec(q, &mut c).await?;
        }
        Ok(n)
    }

    async fn renew_leases(
        &self,
        owner: &str,
        claims: &[(Uuid, i64)],
        until: Millis,
        _now: Millis,
    ) -> Result<Renewal> {
        // The rows are locked with `SKIP LOCKED` (PostgreSQL): a renewal that waited for the
        // outcome writer while holding rows the writer wants next deadlocked the two (each
        // multi-row statement locks in its plan's order). A skipped row is being written, so
        // it needs no renewal; whether it is still this node's is read without a lock.
        let mut out = Renewal::default();
        let mut c = self.writes().acquire().await?;
        for chunk in claims.chunks(B::D::max_rows(CLAIM_COLS.len())) {
            let mut q = query::<B::D>("WITH mine AS (SELECT id FROM occurrences");
            push_held(&mut q, owner, chunk);
            q.push(B::D::skip_locked("occurrences"))
                .push(") UPDATE occurrences SET lease_expires_at = ")
                .val(until)
                .push(" FROM mine WHERE occurrences.id = mine.id RETURNING occurrences.id AS id");
            let before = out.renewed.len();
            for row in B::D::fetch(q, &mut c).await? {
                out.renewed.push(row.id("id")?);
            }
            if out.renewed.len() - before == chunk.len() {
                continue;
            }
            let done: HashSet<Uuid> = out.renewed[before..].iter().copied().collect();
            let rest: Vec<(Uuid, i64)> = chunk
                .iter()
                .filter(|(id, _)| !done.contains(id))
                .copied()
                .collect();
            let mut q = query::<B::D>("SELECT id FROM occurrences");
            push_held(&mut q, owner, &rest);
            for row in B::D::fetch(q, &mut c).await? {
                out.busy.push(row.id("id")?);
            }
        }
        Ok(out)
    }

    async fn record_outcomes(&self, owner: &str, outcomes: &[Outcome], now: Millis) -> Result<()> {
        type D<B> = <B as Backend>::D;
        // A few multi-row statements per batch, not two or three per outcome: at 20,000
        // deliveries a second the statement count is what the writer pays for.
        let rows = OutcomeRows::of(outcomes, now);
        let mut tx = self.writes().begin().await?;
        keyed_plans::<D<B>>(&mut tx, true).await?;
        let mut causes = Vec::new();
        // (scheduled_at, attempts) of each occurrence an outcome changed.
        let mut applied: HashMap<Uuid, (Millis, i64)> = HashMap::new();
        let mut updates = rows.updates.into_iter().peekable();
        while updates.peek().is_some() {
            let chunk: Rows = updates
                .by_ref()
                .take(D::<B>::max_rows(UPDATE_COLS.len()))
                .collect();
            // The chunk's span of `scheduled_at`: on PostgreSQL, said as a range the planner
            // prunes the partitions by (the join on `v.at` alone prunes nothing, so every
            // partition and its indexes would be locked and probed for each statement).
            let span = D::<B>::PARTITIONED
                .then(|| scheduled_span(&chunk))
                .flatten();
            let greatest = D::<B>::GREATEST;
            let mut q = query::<D<B>>(format!(
                "UPDATE occurrences SET status = v.status, \
                 attempts = {greatest}(occurrences.attempts, COALESCE(v.attempt, occurrences.attempts)), \
                 next_attempt_at = v.next_at, lease_owner = NULL, lease_expires_at = NULL, lease_token = NULL, \
                 last_error = CASE WHEN v.attempt IS NULL THEN occurrences.last_error ELSE v.err END, \
                 completed_at = CASE WHEN v.status = 'pending' THEN NULL ELSE "
            ));
            q.val(now)
                .push(" END, updated_at = ")
                .val(now)
                .push(" FROM ");
            D::<B>::push_relation(&mut q, "v", &UPDATE_COLS, chunk);
            // Fenced: only while this node's claim (owner, token) still holds the row.
            q.push(
                " WHERE occurrences.id = v.id AND occurrences.scheduled_at = v.at \
                 AND occurrences.status = 'scheduled' \
                 AND occurrences.lease_owner = ",
            )
            .val(owner);
            if let Some((lo, hi)) = span {
                q.push(" AND occurrences.scheduled_at BETWEEN ")
                    .val(lo)
                    .push(" AND ")
                    .val(hi);
            }
            q.push(
                " AND occurrences.lease_token = v.token RETURNING occurrences.id AS id, \
                 occurrences.event_id AS event_id, occurrences.status AS status, \
                 occurrences.scheduled_at AS scheduled_at, occurrences.attempts AS attempts",
            );
            let rows = D::<B>::fetch_pruned(q, &mut tx).await?;
            // The rows this batch changed: only their outcomes can cause follow-ups, and only
            // they are counted.
            causes.extend(Cause::from_rows(&rows)?);
            for r in &rows {
                applied.insert(r.id("id")?, (r.int("scheduled_at")?, r.int("attempts")?));
            }
        }
        // The attempts of the outcomes that applied: fenced like the update (an attempt is
        // recorded only while the claim it was made under held the row, so a node whose claim
        // was taken over never writes attempt n before the new holder does), without a probe
        // per row: the update has just locked and changed exactly those rows. Written after the
        // update, the foreign key's check finds each row already locked by this transaction.
        keyed_plans::<D<B>>(&mut tx, false).await?;
        let mut attempts = rows
            .attempts
            .into_iter()
            .filter(|(id, _)| applied.contains_key(id))
            .map(|(_, row)| row)
            .peekable();
        while attempts.peek().is_some() {
            let chunk: Rows = attempts
                .by_ref()
                .take(D::<B>::max_rows(ATTEMPT_COLS.len()))
                .collect();
            let mut q = query::<D<B>>(format!(
                "INSERT INTO attempts ({})",
                super::sql::names(&ATTEMPT_COLS)
            ));
            D::<B>::push_insert_rows(&mut q, &ATTEMPT_COLS, chunk);
            q.push(" ON CONFLICT DO NOTHING");
            D::<B>::exec(q, &mut tx).await?;
        }
        // In the outcome's transaction: a recorded cause has its follow-ups, a fenced-out one none.
        write_follow_ups::<D<B>>(&mut tx, &causes, now).await?;
        // After the occurrences' own updates: the pause cancels the rest of the series.
        for (event_id, reason) in &rows.gone {
            pause_gone::<B>(&mut tx, *event_id, reason, now).await?;
        }
        // Each finished event is found by its key and its open occurrences by theirs.
        keyed_plans::<D<B>>(&mut tx, true).await?;
        finish_if_done::<D<B>>(&mut tx, &rows.finished, now).await?;
        // Counted with the outcomes, for those that applied (a fenced-out one counts nothing).
        // Last: the every-event rows it upserts are shared by the writers of all nodes, and are
        // then locked only until the commit.
        write_rollup::<D<B>>(&mut tx, rollup_of(outcomes, &applied)).await?;
        tx.commit().await?;
        Ok(())
    }
}
