//! The partitions of `occurrences` and `attempts` (issue 18; docs/scaling.md, "Time-partitioned
//! occurrences"): both are `PARTITION BY RANGE (scheduled_at)` with the same bounds, from
//! `_p_min` `[MINVALUE, …)` through partitions of a week (or a day) to `_p_max` `[…, MAXVALUE)`.
//!
//! Two jobs, both run by the node holding the `retention` upkeep lease:
//!
//! - *ahead*: while `_p_max` starts less than `partitioning.ahead` after now, it is split: the
//!   next interval becomes a partition of its own, and the (few) rows of that interval move out of
//!   `_p_max` into it, in one short transaction.
//! - *drop*: the oldest partitions whose upper bound is past the cut-off and whose rows are all
//!   finished and expired are archived (with `retention.archive`) and dropped whole. The lowest
//!   range stays covered (a late insert of an old instant must find a partition): `_p_min` is
//!   emptied in place (dropped and made again, empty), and a dropped week above an empty
//!   `_p_min` is folded into it (an empty table re-attached with a wider bound: no scan).
//!
//! Every step takes its locks with a `lock_timeout`: detaching a partition takes an `ACCESS
//! EXCLUSIVE` lock on the parent table, and a step that cannot get it in time gives way to the
//! engine's statements and is tried again by the next pass.

use sqlx::{Connection, PgConnection, PgPool, Postgres};

use crate::domain::Millis;
use crate::store::archive::archive_events;
use crate::store::{PartitionsDropped as Dropped, PurgeCutoffs, Result, StoreError};

/// How long a step waits for a lock before giving way.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '2s'";

/// One partition: its table and its bounds (`None`: MINVALUE / MAXVALUE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The partition's table.
    pub name: String,
    /// Its lower bound (inclusive); `None`: MINVALUE.
    pub lo: Option<Millis>,
    /// Its upper bound (exclusive); `None`: MAXVALUE.
    pub hi: Option<Millis>,
}

/// The bounds in `FOR VALUES FROM ('1') TO (MAXVALUE)`: `None` for MINVALUE / MAXVALUE, and
/// `None` altogether for text that is not a range bound.
fn parse_bound(expr: &str) -> Option<(Option<Millis>, Option<Millis>)> {
    let rest = expr.strip_prefix("FOR VALUES FROM (")?;
    let (lo, rest) = rest.split_once(") TO (")?;
    let hi = rest.strip_suffix(')')?;
    let value = |v: &str| -> Option<Option<Millis>> {
        match v {
            "MINVALUE" | "MAXVALUE" => Some(None),
            v => v.trim_matches('\'').parse().ok().map(Some),
        }
    };
    Some((value(lo)?, value(hi)?))
}

/// The partitions of `table`, lowest first.
pub async fn parts(c: &mut PgConnection, table: &str) -> Result<Vec<Part>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i \
         JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass",
    )
    .bind(table)
    .fetch_all(&mut *c)
    .await?;
    let mut out: Vec<Part> = rows
        .into_iter()
        .filter_map(|(name, bound)| parse_bound(&bound).map(|(lo, hi)| Part { name, lo, hi }))
        .collect();
    // MINVALUE first (None sorts before Some).
    out.sort_by_key(|p| p.lo);
    Ok(out)
}

/// The partition of `table` with the same bounds as `p` (its `attempts` twin).
async fn twin(c: &mut PgConnection, table: &str, p: &Part) -> Result<Option<Part>> {
    Ok(parts(c, table)
        .await?
        .into_iter()
        .find(|t| t.lo == p.lo && t.hi == p.hi))
}

/// `20261207` for the UTC day of `at`.
fn day_name(at: Millis) -> String {
    jiff::Timestamp::from_millisecond(at)
        .map(|t| t.strftime("%Y%m%d").to_string())
        .unwrap_or_else(|_| at.to_string())
}

fn range(lo: Option<Millis>, hi: Option<Millis>) -> String {
    let b = |v: Option<Millis>, inf: &str| v.map_or(inf.to_string(), |v| v.to_string());
    format!(
        "FOR VALUES FROM ({}) TO ({})",
        b(lo, "MINVALUE"),
        b(hi, "MAXVALUE")
    )
}

async fn exec(c: &mut PgConnection, sql: String) -> Result<u64> {
    Ok(sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut *c)
        .await?
        .rows_affected())
}

/// Most partitions one call creates: after a long stop (or a test's `now` years ahead) the
/// next passes go on, and the rows meanwhile land in `_p_max`.
const MAX_NEW: u32 = 16;

/// Splits `_p_max` until it starts at least `ahead` after `now`, `step` ms a partition (a
/// week or a day), at most [`MAX_NEW`] at a time. Returns the partitions created.
pub async fn keep_ahead(pool: &PgPool, now: Millis, ahead: Millis, step: Millis) -> Result<u32> {
    let mut made = 0;
    let mut c = pool.acquire().await?;
    loop {
        let Some(last) = parts(&mut c, "occurrences").await?.pop() else {
            return Ok(made);
        };
        let (Some(from), None) = (last.lo, last.hi) else {
            return Ok(made);
        };
        if from >= now.saturating_add(ahead) || made >= MAX_NEW {
            return Ok(made);
        }
        let Some(last_attempts) = twin(&mut c, "attempts", &last).await? else {
            return Ok(made);
        };
        let to = from + step;
        let name = day_name(from);
        let mut tx = c.begin().await?;
        exec(&mut tx, LOCK_TIMEOUT.into()).await?;
        if !lock_for_ddl(&mut tx).await? {
            tracing::warn!(
                "partition upkeep found no moment without engine writes; the next pass goes on"
            );
            return Ok(made);
        }
        let (o, a) = (&last.name, &last_attempts.name);
        for sql in [
            format!("ALTER TABLE attempts DETACH PARTITION {a}"),
            format!("ALTER TABLE occurrences DETACH PARTITION {o}"),
            format!(
                "CREATE TABLE occurrences_p{name} PARTITION OF occurrences {}",
                range(Some(from), Some(to))
            ),
            format!(
                "CREATE TABLE attempts_p{name} PARTITION OF attempts {}",
                range(Some(from), Some(to))
            ),
            // The rows of the new interval (far-future ones, usually few) move out of the
            // detached last partition: through the parent, into their new partition.
            format!("INSERT INTO occurrences SELECT * FROM {o} WHERE scheduled_at < {to}"),
            format!("INSERT INTO attempts SELECT * FROM {a} WHERE scheduled_at < {to}"),
            format!("DELETE FROM {a} WHERE scheduled_at < {to}"),
            format!("DELETE FROM {o} WHERE scheduled_at < {to}"),
            format!(
                "ALTER TABLE occurrences ATTACH PARTITION {o} {}",
                range(Some(to), None)
            ),
            format!(
                "ALTER TABLE attempts ATTACH PARTITION {a} {}",
                range(Some(to), None)
            ),
        ] {
            if let Err(e) = exec(&mut tx, sql).await {
                return gave_way(e, made);
            }
        }
        tx.commit().await?;
        made += 1;
    }
}

/// Takes, for the DDL of a step, `occurrences`, `attempts` and `follow_ups` in `ACCESS
/// EXCLUSIVE` mode and `events` in `SHARE ROW EXCLUSIVE` mode (a partition's foreign key to
/// `events` is dropped or made with it) — never waiting for them: `NOWAIT`, and again up to
/// 50 times 20 ms apart. The engine's transactions take these tables in both orders (a create
/// writes `events` then `occurrences`, an outcome the reverse), so a step that waited in any
/// order could deadlock with one of them; one that never waits cannot. `false`: no moment
/// without a write in flight was found.
async fn lock_for_ddl(c: &mut PgConnection) -> Result<bool> {
    for _ in 0..50 {
        exec(c, "SAVEPOINT ddl_locks".into()).await?;
        let locked = match exec(
            c,
            "LOCK TABLE occurrences, attempts, follow_ups IN ACCESS EXCLUSIVE MODE NOWAIT".into(),
        )
        .await
        {
            Ok(_) => {
                exec(
                    c,
                    "LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE NOWAIT".into(),
                )
                .await
            }
            Err(e) => Err(e),
        };
        match locked {
            Ok(_) => {
                exec(c, "RELEASE SAVEPOINT ddl_locks".into()).await?;
                return Ok(true);
            }
            Err(StoreError::Db(sqlx::Error::Database(d)))
                if d.code().as_deref() == Some("55P03") =>
            {
                exec(c, "ROLLBACK TO SAVEPOINT ddl_locks".into()).await?;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// A step that did not get its lock within [`LOCK_TIMEOUT`] (SQLSTATE 55P03), or that a
/// deadlock with another transaction's locks ended (40P01: a pull-claim expiry writes attempts
/// before it reads occurrences), gives way: what was done so far is the result, the next pass
/// goes on. Any other error is one.
fn gave_way<T>(e: StoreError, done: T) -> Result<T> {
    match &e {
        StoreError::Db(sqlx::Error::Database(d))
            if matches!(d.code().as_deref(), Some("55P03" | "40P01")) =>
        {
            tracing::warn!(error = %e, "partition upkeep gave way to the engine's locks; the next pass goes on");
            Ok(done)
        }
        _ => Err(e),
    }
}

/// True when every row of partition `p` is finished and past its cut-off (what the row-by-row
/// pass would delete now). Three probes, each of an index of the partition (one `OR` of them
/// may be planned as a scan of the whole partition, which a stuck old partition would then
/// pay at every pass).
async fn expired(c: &mut PgConnection, p: &Part, cut: &PurgeCutoffs) -> Result<bool> {
    for (cond, since) in [
        (
            "status IN ('pending', 'scheduled', 'dispatched') AND $1 = $1",
            0,
        ),
        (
            "status IN ('completed', 'missed', 'cancelled') AND updated_at >= $1",
            cut.done_before,
        ),
        ("status = 'failed' AND updated_at >= $1", cut.failed_before),
    ] {
        let live: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT 1 FROM {} WHERE {cond} LIMIT 1",
            p.name
        )))
        .bind(since)
        .fetch_optional(&mut *c)
        .await?;
        if live.is_some() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// (failed, other) rows of `p`: counted as the row-by-row pass counts what it deletes.
async fn counts(c: &mut PgConnection, p: &Part) -> Result<(i64, i64)> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FILTER (WHERE status = 'failed'), \
         count(*) FILTER (WHERE status <> 'failed') FROM {}",
        p.name
    )))
    .fetch_one(&mut *c)
    .await?)
}

async fn is_empty(c: &mut PgConnection, p: &Part) -> Result<bool> {
    let any: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM {} LIMIT 1",
        p.name
    )))
    .fetch_optional(&mut *c)
    .await?;
    Ok(any.is_none())
}

/// Copies the rows of `p` (and `a`, its attempts) into the archive.
async fn archive(c: &mut PgConnection, p: &Part, a: &Part, now: Millis) -> Result<()> {
    let events: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT DISTINCT event_id FROM {}",
        p.name
    )))
    .fetch_all(&mut *c)
    .await?;
    for chunk in events.chunks(10_000) {
        archive_events::<Postgres>(c, chunk.to_vec(), now, false).await?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO archived_occurrences (id, event_id, scheduled_at, status, attempts, last_error, \
         cancelled_by, created_at, updated_at, completed_at, archived_at) \
         SELECT id, event_id, scheduled_at, status, attempts, last_error, cancelled_by, created_at, \
         updated_at, completed_at, $1 FROM {}",
        p.name
    )))
    .bind(now)
    .execute(&mut *c)
    .await?;
    exec(
        c,
        format!(
            "INSERT INTO archived_attempts (occurrence_id, attempt, started_at, duration_ms, \
             status_code, error, response) SELECT occurrence_id, attempt, started_at, duration_ms, \
             status_code, error, response FROM {}",
            a.name
        ),
    )
    .await?;
    Ok(())
}

/// Drops, lowest first, the partitions whose upper bound is at or before `older_than` and
/// whose rows are all expired by `cut` (archived first when `cut.archive`); stops at the first
/// that is not. See the module doc for how the lowest range stays covered.
pub async fn drop_expired(
    pool: &PgPool,
    now: Millis,
    older_than: Millis,
    cut: &PurgeCutoffs,
) -> Result<Dropped> {
    let mut out = Dropped::default();
    let mut c = pool.acquire().await?;
    loop {
        let all = parts(&mut c, "occurrences").await?;
        let Some(lowest) = all.first().cloned() else {
            return Ok(out);
        };
        // Usually `_p_min` is empty and the week above it is the candidate.
        let lowest_empty = is_empty(&mut c, &lowest).await?;
        let target = if lowest_empty {
            match all.get(1) {
                Some(p) => p.clone(),
                None => return Ok(out),
            }
        } else {
            lowest.clone()
        };
        let Some(hi) = target.hi else {
            return Ok(out);
        };
        if hi > older_than {
            return Ok(out);
        }
        let Some(attempts) = twin(&mut c, "attempts", &target).await? else {
            return Ok(out);
        };
        let Some(lowest_attempts) = twin(&mut c, "attempts", &lowest).await? else {
            return Ok(out);
        };
        if !expired(&mut c, &target, cut).await? {
            return Ok(out);
        }
        let mut tx = c.begin().await?;
        exec(&mut tx, LOCK_TIMEOUT.into()).await?;
        // The copy runs without a lock that stops writes: any such lock on a partition stops
        // every claim and outcome (an UPDATE of the parent locks all its partitions when it
        // starts). Nothing writes to expired rows but a redrive or a late insert of an old
        // instant; either leaves a row to do (pending), which the probes under the lock find,
        // and the whole step, copy included, is rolled back. (Not a count under the lock: that
        // would read the whole partition while the engine waits.)
        let before = counts(&mut tx, &target).await?;
        if cut.archive {
            archive(&mut tx, &target, &attempts, now).await?;
        }
        if !lock_for_ddl(&mut tx).await? {
            tracing::warn!(
                "partition drop found no moment without engine writes; the next pass goes on"
            );
            return Ok(out);
        }
        let lowest_still_empty = !lowest_empty || is_empty(&mut tx, &lowest).await?;
        if !lowest_still_empty || !expired(&mut tx, &target, cut).await? {
            // Changed while it was copied: the next pass looks again.
            tx.rollback().await?;
            return Ok(out);
        }
        let (failed, done) = before;
        // `follow_ups` references the rows (a foreign key stops the detach otherwise).
        let (lo_cond, hi_cond) = (
            target
                .lo
                .map_or(String::new(), |lo| format!("cause_at >= {lo} AND ")),
            format!("cause_at < {hi}"),
        );
        let mut steps = vec![
            format!("DELETE FROM follow_ups WHERE {lo_cond}{hi_cond}"),
            format!("ALTER TABLE attempts DETACH PARTITION {}", attempts.name),
            format!("DROP TABLE {}", attempts.name),
            format!("ALTER TABLE occurrences DETACH PARTITION {}", target.name),
            format!("DROP TABLE {}", target.name),
        ];
        if lowest_empty {
            // The empty `_p_min` takes over the dropped range.
            for (parent, p) in [("attempts", &lowest_attempts), ("occurrences", &lowest)] {
                steps.push(format!("ALTER TABLE {parent} DETACH PARTITION {}", p.name));
                steps.push(format!(
                    "ALTER TABLE {parent} ATTACH PARTITION {} {}",
                    p.name,
                    range(None, Some(hi))
                ));
            }
        } else {
            // `_p_min` itself went: an empty one covers its range again.
            for parent in ["occurrences", "attempts"] {
                steps.push(format!(
                    "CREATE TABLE {parent}_p_min PARTITION OF {parent} {}",
                    range(None, Some(hi))
                ));
            }
        }
        for sql in steps {
            if let Err(e) = exec(&mut tx, sql).await {
                return gave_way(e, out);
            }
        }
        tx.commit().await?;
        out.partitions += 1;
        out.done += u64::try_from(done).unwrap_or(0);
        out.failed += u64::try_from(failed).unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bound;

    #[test]
    fn bounds_read_back_from_the_catalog_text() {
        assert_eq!(
            parse_bound("FOR VALUES FROM ('1796601600000') TO ('1797206400000')"),
            Some((Some(1_796_601_600_000), Some(1_797_206_400_000)))
        );
        assert_eq!(
            parse_bound("FOR VALUES FROM (MINVALUE) TO ('5')"),
            Some((None, Some(5)))
        );
        assert_eq!(
            parse_bound("FOR VALUES FROM ('5') TO (MAXVALUE)"),
            Some((Some(5), None))
        );
        assert_eq!(parse_bound("DEFAULT"), None);
    }
}
