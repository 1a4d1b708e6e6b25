//! PostgreSQL only: `occurrences` and `attempts` partitioned by `scheduled_at` (issue 18;
//! docs/scaling.md, "Time-partitioned occurrences"). The claim and the lists read one index
//! per partition and leave out the partitions they cannot match; retention drops whole
//! partitions (archiving them first); a row moved across a partition boundary is claimed once;
//! a database made by the unpartitioned schema is migrated with its rows usable.

use std::borrow::Cow;
use std::path::Path;

use qhronos::domain::occurrence::OccStatus;
use qhronos::domain::Millis;
use qhronos::store::*;
use sqlx::{Connection, PgConnection};

use crate::backend::TestStore;
use crate::fixtures::*;
use crate::plans::{claim_candidates, insert_events, plan};

const WEEK: Millis = 7 * DAY;

/// The partitions of `table`: (name, lower bound, upper bound), lowest first; `None` is
/// MINVALUE / MAXVALUE.
async fn parts(c: &mut PgConnection, table: &str) -> Vec<(String, Option<i64>, Option<i64>)> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i \
         JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass",
    )
    .bind(table)
    .fetch_all(&mut *c)
    .await
    .expect("partitions");
    let bound = |v: &str| v.trim_matches('\'').parse::<i64>().ok();
    let mut out: Vec<_> = rows
        .into_iter()
        .map(|(name, b)| {
            let b = b
                .trim_start_matches("FOR VALUES FROM (")
                .trim_end_matches(')')
                .to_string();
            let (lo, hi) = b.split_once(") TO (").expect("a range bound");
            (name, bound(lo), bound(hi))
        })
        .collect();
    out.sort_by_key(|p| p.1);
    out
}

async fn connect(db: &TestStore) -> PgConnection {
    let url = db.postgres_url().expect("a PostgreSQL store");
    PgConnection::connect(url).await.expect("connect")
}

async fn run(c: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut *c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// No line of `plan` scans one of `big` sequentially.
fn no_seq_scan_of(plan: &str, big: &[String]) {
    for line in plan.lines().filter(|l| l.contains("Seq Scan on ")) {
        for b in big {
            assert!(
                !line.contains(&format!("Seq Scan on {b} ")) && !line.ends_with(b.as_str()),
                "{b} read sequentially:\n{plan}"
            );
        }
    }
}

const ROWS: i64 = 200_000;
const EVENTS: i64 = 2_000;

/// 200,000 occurrences of 2,000 events over four weekly partitions (50,000 each; those of the
/// first `completed`, the others `pending`, due at their time); analysed. (With a few thousand
/// rows a partition, a hash join over all of them is cheaper than a probe per row and is
/// rightly chosen; the store is meant for the sizes where it is not.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_and_lists_use_indexes_and_prune_partitions() {
    let Some(db) = TestStore::postgres().await else {
        return;
    };
    let mut c = connect(&db).await;
    let weeks: Vec<_> = parts(&mut c, "occurrences")
        .await
        .into_iter()
        .filter(|p| p.1.is_some() && p.2.is_some())
        .collect();
    assert!(weeks.len() >= 4, "{weeks:?}");
    let w0 = weeks[0].1.expect("lower bound");
    run(&mut c, &insert_events(EVENTS)).await;
    run(
        &mut c,
        &format!(
            "INSERT INTO occurrences (id, event_id, scheduled_at, status, attempt_limit, \
             next_attempt_at, created_at, updated_at) \
             SELECT lpad(g::text, 36, '0'), lpad((g % {EVENTS} + 1)::text, 36, '0'), \
             {w0} + (g % 4) * {WEEK} + g * 1000, \
             CASE WHEN g % 4 = 0 THEN 'completed' ELSE 'pending' END, 3, \
             CASE WHEN g % 4 = 0 THEN NULL ELSE {w0} + (g % 4) * {WEEK} + g * 1000 END, 0, 0 \
             FROM generate_series(1, {ROWS}) g"
        ),
    )
    .await;
    run(&mut c, "ANALYZE").await;
    let big: Vec<String> = weeks[..4].iter().map(|p| p.0.clone()).collect();
    let future: Vec<&String> = weeks[2..].iter().map(|p| &p.0).collect();

    // The claim's candidates, due in the second week: later partitions are not in the plan,
    // and each partition is read through its `occurrences_due` index.
    let due_before = weeks[1].1.expect("bound") + DAY;
    let p = plan(&mut c, &claim_candidates(due_before)).await;
    for f in &future {
        assert!(!p.contains(f.as_str()), "{f} is not pruned:\n{p}");
    }
    assert!(!p.contains("_p_max"), "{p}");
    assert!(p.contains("next_attempt_at_idx"), "{p}");
    assert!(p.contains("events_held"), "{p}");
    no_seq_scan_of(&p, &big);

    // The claim's update finds each candidate by (id, scheduled_at): an index probe of the
    // partitions, parameterised by the candidate's partition key (so pruned at run time to its
    // own partition), not a join over whole partitions.
    let p = plan(
        &mut c,
        &format!(
            "WITH due AS (SELECT o.id, o.scheduled_at FROM occurrences o WHERE o.status = 'pending' \
             AND o.next_attempt_at <= {due_before} AND o.scheduled_at <= {due_before} \
             ORDER BY o.next_attempt_at LIMIT 100 FOR UPDATE OF o SKIP LOCKED), \
             expired AS (SELECT x.id, x.scheduled_at FROM occurrences x WHERE x.status = 'scheduled' \
             AND x.lease_expires_at < {due_before} LIMIT 100 FOR UPDATE OF x SKIP LOCKED) \
             UPDATE occurrences SET status = 'scheduled', lease_owner = 'n', updated_at = 1 \
             WHERE (id, scheduled_at) IN (SELECT id, scheduled_at FROM due UNION ALL \
             SELECT id, scheduled_at FROM expired) RETURNING id"
        ),
    )
    .await;
    assert!(p.contains("Nested Loop"), "{p}");
    assert!(
        p.lines()
            .any(|l| l.contains("Index Cond") && l.contains("scheduled_at = due.scheduled_at")),
        "{p}"
    );
    no_seq_scan_of(&p, &big);

    // Lists: by time (one partition's range), by status, by event.
    let from = weeks[1].1.expect("bound");
    let to = from + 3 * HOUR;
    for (what, filter) in [
        (
            "time",
            format!("scheduled_at >= {from} AND scheduled_at <= {to}"),
        ),
        ("status", "status = 'completed'".to_string()),
        (
            "event",
            "event_id = '000000000000000000000000000000000042'".to_string(),
        ),
    ] {
        let p = plan(
            &mut c,
            &format!(
                "SELECT * FROM occurrences WHERE {filter} ORDER BY scheduled_at DESC, id DESC LIMIT 50"
            ),
        )
        .await;
        assert!(p.contains("Index"), "list by {what}:\n{p}");
        no_seq_scan_of(&p, &big);
        if what == "time" {
            for other in weeks.iter().filter(|w| w.0 != weeks[1].0) {
                assert!(
                    !p.contains(&other.0),
                    "list by time reads {}:\n{p}",
                    other.0
                );
            }
        }
    }
}

/// A partition filled moments ago and not yet analysed (a burst just created) is estimated
/// from default selectivities at a few dozen due rows: planned freely, the claim read every due
/// row through a bitmap scan and sorted them all, at each claim. Under the settings the
/// claim's transaction runs with (`Dialect::KEYED_PLANS` on PostgreSQL) the due index is
/// walked in order, and the walk stops at the claim's limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_on_a_partition_not_yet_analysed_walks_the_due_index() {
    let Some(db) = TestStore::postgres().await else {
        return;
    };
    let mut c = connect(&db).await;
    let now = qhronos::domain::now_ms();
    let Some(part) = parts(&mut c, "occurrences")
        .await
        .into_iter()
        .find(|p| p.1.is_some_and(|lo| lo <= now) && p.2.is_some_and(|hi| now < hi))
    else {
        panic!("no partition holds now");
    };
    // Nothing analyses it while the test runs.
    run(
        &mut c,
        &format!("ALTER TABLE {} SET (autovacuum_enabled = false)", part.0),
    )
    .await;
    run(&mut c, &insert_events(50_000)).await;
    run(
        &mut c,
        &format!(
            "INSERT INTO occurrences (id, event_id, scheduled_at, status, attempt_limit, \
             next_attempt_at, created_at, updated_at) \
             SELECT lpad(g::text, 36, '0'), lpad(g::text, 36, '0'), {now}, 'pending', 3, \
             {now}, 0, 0 FROM generate_series(1, 50000) g"
        ),
    )
    .await;
    let due_before = now + MIN;
    let mut tx = c.begin().await.expect("begin");
    run(
        &mut tx,
        "SELECT set_config('enable_seqscan', 'off', true), \
         set_config('enable_bitmapscan', 'off', true)",
    )
    .await;
    let p = plan(&mut tx, &claim_candidates(due_before)).await;
    tx.rollback().await.expect("rollback");
    let sorts = p.lines().any(|l| {
        l.trim_start()
            .trim_start_matches("->  ")
            .starts_with("Sort  (")
    });
    assert!(
        !sorts && !p.contains("Bitmap"),
        "every due row is read and sorted:\n{p}"
    );
    assert!(
        p.contains(&format!("Index Scan using {}_next_attempt_at_idx", part.0)),
        "{p}"
    );
}

/// The weeks ahead are made out of the last partition, rows of the new week moving with it;
/// retention drops a week whose rows are all expired (archiving them and their attempts) and
/// keeps the range covered; a week with a row still to do stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_expired_partitions_and_archives_them() {
    let Some(db) = TestStore::postgres().await else {
        return;
    };
    let s = db.store();
    let mut c = connect(&db).await;
    let before = parts(&mut c, "occurrences").await;
    let max_from = before.last().and_then(|p| p.1).expect("a last partition");
    // Two rows past the partitions made so far: in `_p_max` until the window reaches them.
    let far = one_time(max_from + HOUR);
    create(
        s,
        &far,
        &[
            occ(&far, max_from + HOUR),
            occ(&far, max_from + WEEK + HOUR),
        ],
    )
    .await;
    let made = s
        .keep_partitions_ahead(max_from, 2 * WEEK, WEEK)
        .await
        .expect("ahead");
    assert_eq!(made, 2);
    let after = parts(&mut c, "occurrences").await;
    assert_eq!(after.len(), before.len() + 2);
    assert_eq!(after.last().and_then(|p| p.1), Some(max_from + 2 * WEEK));
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}",
        after[after.len() - 3].0
    )))
    .fetch_one(&mut c)
    .await
    .expect("count");
    assert_eq!(n, 1, "the row of the new week moved into it");
    assert_eq!(of_event(s, far.id).await.len(), 2);
    assert_eq!(
        parts(&mut c, "attempts").await.len(),
        after.len(),
        "attempts follow"
    );

    // Week 1 (after the current one): a delivered occurrence; week 2: one delivered, one
    // failed and young.
    let w1 = after[2].1.expect("a week");
    let w2 = after[3].1.expect("a week");
    let done = one_time(w1 + HOUR);
    let mixed = one_time(w2 + HOUR);
    create(s, &done, &[occ(&done, w1 + HOUR)]).await;
    create(s, &mixed, &occs(&mixed, &[w2 + HOUR, w2 + 2 * HOUR])).await;
    let got = claim(s, Claim::at("n", 1, w2 + 2 * HOUR)).await;
    assert_eq!(got.len(), 3);
    let outcomes: Vec<Outcome> = got
        .iter()
        .map(|g| {
            let next = if g.occ.scheduled_at == w2 + 2 * HOUR {
                Next::Failed
            } else {
                Next::Completed
            };
            attempted(g, 200, next, w2 + 2 * HOUR)
        })
        .collect();
    record(s, "n", &outcomes, w2 + 2 * HOUR).await;

    let now = w2 + 3 * WEEK;
    let cut = cutoffs(now);
    let dropped = s
        .drop_expired_partitions(now, cut.done_before, &cut)
        .await
        .expect("drop");
    // The empty current week and week 1 went; week 2 holds a dead letter younger than its
    // cut-off.
    assert_eq!(
        dropped,
        PartitionsDropped {
            partitions: 2,
            done: 1,
            failed: 0
        }
    );
    let left = parts(&mut c, "occurrences").await;
    assert!(left.iter().all(|p| p.0 != after[1].0 && p.0 != after[2].0));
    assert_eq!(left[0].1, None);
    assert_eq!(
        left[0].2,
        Some(w2),
        "the lowest partition covers the dropped range"
    );
    assert_eq!(parts(&mut c, "attempts").await.len(), left.len());
    assert!(of_event(s, done.id).await.is_empty());
    let archived = s
        .list_archived(&ArchiveFilter {
            event_id: Some(done.id),
            limit: 100,
            ..ArchiveFilter::default()
        })
        .await
        .expect("archive");
    assert_eq!(archived.len(), 1);
    let ids: Vec<_> = archived.iter().map(|a| a.id).collect();
    assert_eq!(s.archived_attempts(&ids).await.expect("attempts").len(), 1);
    assert_eq!(of_event(s, mixed.id).await.len(), 2, "week 2 stays");
    // A late row of a dropped week still finds a partition (the lowest); cancelled, it
    // expires with the rest.
    let late = one_time(w1);
    create(s, &late, &[occ(&late, w1)]).await;
    let late_id = of_event(s, late.id).await[0].id;
    assert_eq!(
        s.cancel_occurrence(late_id, w2 + 3 * HOUR)
            .await
            .expect("cancel"),
        OccChange::Done
    );

    // Once the dead letter expires, week 2 goes too.
    let later = w2 + 40 * DAY;
    let cut = PurgeCutoffs {
        archive: false,
        ..cutoffs(later)
    };
    let dropped = s
        .drop_expired_partitions(later, cut.done_before, &cut)
        .await
        .expect("drop");
    assert!(dropped.partitions >= 2, "{dropped:?}");
    assert_eq!((dropped.done, dropped.failed), (2, 1), "{dropped:?}");
    assert!(of_event(s, mixed.id).await.is_empty());
    assert!(of_event(s, late.id).await.is_empty());
}

/// A pending occurrence moved into the next week is claimed once, at its new time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_moved_across_a_partition_boundary_is_claimed_once() {
    let Some(db) = TestStore::postgres().await else {
        return;
    };
    let s = db.store();
    let mut c = connect(&db).await;
    let weeks = parts(&mut c, "occurrences").await;
    let w1 = weeks[2].1.expect("a week");
    let w2 = weeks[3].1.expect("a week");
    let e = one_time(w1 + HOUR);
    create(s, &e, &[occ(&e, w1 + HOUR)]).await;
    let id = of_event(s, e.id).await[0].id;
    assert_eq!(
        s.move_occurrence(id, w2 + HOUR, w1).await.expect("move"),
        OccChange::Done
    );
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {} WHERE id = '{id}'",
        weeks[3].0
    )))
    .fetch_one(&mut c)
    .await
    .expect("count");
    assert_eq!(n, 1, "the row is in its new partition");
    assert!(claim(s, Claim::at("a", 1, w1 + 2 * HOUR)).await.is_empty());
    let got = claim(s, Claim::at("a", 2, w2 + HOUR)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].occ.id, id);
    assert!(claim(s, Claim::at("b", 3, w2 + 2 * HOUR)).await.is_empty());
    record(
        s,
        "a",
        &[attempted(&got[0], 200, Next::Completed, w2 + HOUR)],
        w2 + HOUR,
    )
    .await;
    let (o, attempts) = s.get_occurrence(id).await.expect("get").expect("found");
    assert_eq!(o.status, OccStatus::Completed);
    assert_eq!(attempts.len(), 1);
}

/// Claims racing moves across a partition boundary: a claim that meets a row while it moves
/// to another partition (SQLSTATE 40001 under SKIP LOCKED) runs again instead of failing; every
/// row ends in its new partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_racing_moves_across_a_boundary_never_fail() {
    let Some(db) = TestStore::postgres().await else {
        return;
    };
    let s = db.store();
    let mut c = connect(&db).await;
    let weeks = parts(&mut c, "occurrences").await;
    let w1 = weeks[2].1.expect("a week");
    let w2 = weeks[3].1.expect("a week");
    let mut ids = Vec::new();
    for i in 0..40 {
        let e = one_time(w1 + i);
        create(s, &e, &[occ(&e, w2 - WEEK / 2 + i)]).await;
        ids.push(of_event(s, e.id).await[0].id);
    }
    let now = w2 + DAY;
    for (token, id) in (1..).zip(&ids) {
        let spec = ClaimDue {
            owner: "a",
            token,
            due_before: now,
            lease_until: now + 60 * SEC,
            expired_before: Millis::MIN,
            limit: 100,
            now,
        };
        // The move (into the next week) and a claim of everything due, at once.
        let (moved, got) = tokio::join!(s.move_occurrence(*id, w2 + HOUR, now), s.claim_due(&spec));
        // (A row the claim took first is moved all the same: a move ends a claim.)
        moved.expect("move");
        got.expect("a claim meeting a moving row does not fail");
    }
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {} WHERE scheduled_at = {}",
        weeks[3].0,
        w2 + HOUR
    )))
    .fetch_one(&mut c)
    .await
    .expect("count");
    assert_eq!(n, 40, "every row moved into the next week's partition");
}

/// A database made by the schema before partitioning (migrations 1–17) with rows in it: the
/// migration keeps them, and they read, claim, record and retain as new ones do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_made_before_partitioning_survive_the_migration() {
    // Before the migration's first week: the rows land in the lowest partition.
    let old: Millis = 1_700_000_000_000;
    let Some(db) = TestStore::postgres_then(|url| async move {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
        let mut m = sqlx::migrate::Migrator::new(dir).await.expect("migrations");
        m.migrations = Cow::Owned(
            m.migrations
                .iter()
                .filter(|x| x.version < 18)
                .cloned()
                .collect(),
        );
        let mut c = PgConnection::connect(&url).await.expect("connect");
        m.run(&mut c).await.expect("migrations 1-17");
        let ev = "INSERT INTO events (id, name, start_time, timezone, exdates, rdates, action, tags, \
                  metadata, retry, misfire, status, created_at, updated_at) VALUES";
        let occ = "INSERT INTO occurrences (id, event_id, scheduled_at, status, attempts, \
                   attempt_limit, next_attempt_at, created_at, updated_at, completed_at, \
                   caused_by_workflow, caused_by_occurrence) VALUES";
        for sql in [
            format!(
                "{ev} ('00000000-0000-7000-8000-000000000001', 'old', {old}, 'UTC', '[]', '[]', \
                 '{{\"type\":\"webhook\",\"params\":{{\"url\":\"https://example.com/\"}}}}', '[]', '{{}}', '{{}}', '{{}}', \
                 'active', {old}, {old})"
            ),
            format!(
                "{occ} ('00000000-0000-7000-8000-00000000000a', '00000000-0000-7000-8000-000000000001', \
                 {old}, 'completed', 1, 3, NULL, {old}, {old}, {old}, NULL, NULL), \
                 ('00000000-0000-7000-8000-00000000000b', '00000000-0000-7000-8000-000000000001', \
                 {old} + 1, 'pending', 0, 3, {old} + 1, {old}, {old}, NULL, \
                 '00000000-0000-7000-8000-0000000000ff', '00000000-0000-7000-8000-00000000000a')"
            ),
            format!(
                "INSERT INTO attempts (occurrence_id, attempt, started_at, duration_ms, status_code) \
                 VALUES ('00000000-0000-7000-8000-00000000000a', 1, {old}, 5, 200)"
            ),
        ] {
            run(&mut c, &sql).await;
        }
    })
    .await
    else {
        return;
    };
    let s = db.store();
    let mut c = connect(&db).await;
    let done: uuid::Uuid = "00000000-0000-7000-8000-00000000000a".parse().expect("id");
    let pending: uuid::Uuid = "00000000-0000-7000-8000-00000000000b".parse().expect("id");
    let (o, attempts) = s.get_occurrence(done).await.expect("get").expect("kept");
    assert_eq!(o.status, OccStatus::Completed);
    assert_eq!(attempts.len(), 1, "its attempt is kept");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM follow_ups")
        .fetch_one(&mut c)
        .await
        .expect("follow_ups");
    assert_eq!(n, 1, "the follow-up of the old cause is recorded");
    let got = claim(s, Claim::at("n", 1, old + 2)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].occ.id, pending);
    record(
        s,
        "n",
        &[attempted(&got[0], 200, Next::Completed, old + 2)],
        old + 2,
    )
    .await;
    // Retention: the whole lowest partition (every row made before) expired, goes at once
    // (and the empty weeks above it, up to the open-ended last one).
    let now = T0;
    let cut = cutoffs(now);
    let dropped = s
        .drop_expired_partitions(now, cut.done_before, &cut)
        .await
        .expect("drop");
    assert_eq!((dropped.done, dropped.failed), (2, 0), "{dropped:?}");
    assert!(s.get_occurrence(done).await.expect("get").is_none());
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM archived_occurrences")
        .fetch_one(&mut c)
        .await
        .expect("archive");
    assert_eq!(n, 2);
    assert_eq!(
        parts(&mut c, "occurrences").await[0].1,
        None,
        "still covered"
    );
}

/// The occurrences of an event, newest first.
async fn of_event(s: &dyn Store, id: uuid::Uuid) -> Vec<qhronos::domain::occurrence::Occurrence> {
    s.list_occurrences(&OccFilter {
        event_id: Some(id),
        limit: 100,
        ..OccFilter::default()
    })
    .await
    .expect("list")
}

/// The default retention's cut-offs as of `now` (7 days completed, 30 failed and events),
/// archiving, batches of 100.
fn cutoffs(now: Millis) -> PurgeCutoffs {
    PurgeCutoffs {
        done_before: now - 7 * DAY,
        failed_before: now - 30 * DAY,
        events_before: now - 30 * DAY,
        batch: 100,
        archive: true,
        archive_before: now - 400 * DAY,
    }
}
