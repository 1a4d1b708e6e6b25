//! PostgreSQL only: the dispatcher's statements use their indexes on a table of some size
//! (issue 18). A plan that scans `events` once per claim costs nothing in a small test and
//! seconds on a large store, so these tests read the plans, on 20,000 events and occurrences.

use sqlx::{Connection, PgConnection};

use crate::backend::TestStore;

const ROWS: i64 = 20_000;

/// A fresh PostgreSQL store with `ROWS` active one-time events, each with one pending
/// occurrence due at 5,000 ms, analysed; `None` when PostgreSQL is not available.
async fn filled() -> Option<(TestStore, PgConnection)> {
    let db = TestStore::postgres().await?;
    let url = db.postgres_url().expect("a PostgreSQL store").to_string();
    let mut c = PgConnection::connect(&url).await.expect("connect");
    for sql in [
        insert_events(ROWS),
        format!(
            "INSERT INTO occurrences (id, event_id, scheduled_at, status, attempt_limit, \
             next_attempt_at, created_at, updated_at) \
             SELECT lpad(g::text, 36, '0'), lpad(g::text, 36, '0'), 5000, 'pending', 3, 5000, 0, 0 \
             FROM generate_series(1, {ROWS}) g"
        ),
        "ANALYZE".to_string(),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .expect("fill");
    }
    Some((db, c))
}

/// No sequential read of `events` or of the partition holding the rows (`occurrences_p_min`:
/// the rows are due in 1970). The other, empty partitions may be read so: there is nothing in them.
fn no_seq_scan(plan: &str) {
    for t in ["events ", "occurrences_p_min "] {
        assert!(!plan.contains(&format!("Seq Scan on {t}")), "{plan}");
    }
}

/// `n` active one-time webhook events, ids `lpad(g, 36, '0')` for g in 1..=n.
pub(crate) fn insert_events(n: i64) -> String {
    format!(
        "INSERT INTO events (id, name, start_time, timezone, exdates, rdates, action, tags, \
         metadata, retry, misfire, status, created_at, updated_at) \
         SELECT lpad(g::text, 36, '0'), 'e' || g, 1000, 'UTC', '[]', '[]', \
         '{{\"type\":\"webhook\"}}', '[]', '{{}}', '{{}}', '{{}}', 'active', 0, 0 \
         FROM generate_series(1, {n}) g"
    )
}

/// The claim's candidates due by `due_before`: the `due` part of `claim_due`, as the store
/// sends it.
pub(crate) fn claim_candidates(due_before: i64) -> String {
    format!(
        "SELECT o.id, o.scheduled_at FROM occurrences o WHERE o.status = 'pending' \
         AND o.next_attempt_at <= {due_before} AND o.scheduled_at <= {due_before} \
         AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = o.event_id \
         AND (e.queue IS NOT NULL OR e.status = 'paused')) ORDER BY o.next_attempt_at LIMIT 1000 \
         FOR UPDATE OF o SKIP LOCKED"
    )
}

/// The plan PostgreSQL chooses for `sql`, as `EXPLAIN` prints it.
pub(crate) async fn plan(c: &mut PgConnection, sql: &str) -> String {
    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
        .fetch_all(&mut *c)
        .await
        .expect("explain");
    rows.into_iter().map(|r| r.0).collect::<Vec<_>>().join("\n")
}

/// The claim's candidates (the `due` part of `claim_due`, as the store sends it): the due rows
/// come from the partial index `occurrences_due` (on a partition: its `…_next_attempt_at_idx`),
/// and the "not of a pull-queue or paused event" check probes `events_held` instead of
/// scanning `events`. (partitions.rs reads these plans over several partitions.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_reads_its_indexes_not_the_tables() {
    let Some((_db, mut c)) = filled().await else {
        return;
    };
    let p = plan(&mut c, &claim_candidates(6000)).await;
    assert!(p.contains("next_attempt_at_idx"), "{p}");
    assert!(p.contains("events_held"), "{p}");
    no_seq_scan(&p);
}

/// An outcome's fenced update finds its rows by primary key or by the leased rows, and
/// the "is the event finished?" check uses `occurrences_event_status` (on a partition: its
/// `…_event_id_status_idx`); the cause index has no entry for rows without a cause (every claim
/// and outcome writes one per index).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcome_statements_use_their_indexes() {
    let Some((_db, mut c)) = filled().await else {
        return;
    };
    let p = plan(
        &mut c,
        "UPDATE events SET status = 'inactive', updated_at = 1 WHERE status = 'active' \
         AND next_fire_at IS NULL AND id = ANY(ARRAY['000000000000000000000000000000000001', \
         '000000000000000000000000000000000002']) AND NOT EXISTS (SELECT 1 FROM occurrences o \
         WHERE o.event_id = events.id AND o.status IN ('pending', 'scheduled', 'dispatched'))",
    )
    .await;
    assert!(p.contains("events_pkey"), "{p}");
    assert!(p.contains("event_id_status_idx"), "{p}");
    no_seq_scan(&p);
    let (def,): (String,) =
        sqlx::query_as("SELECT indexdef FROM pg_indexes WHERE indexname = 'occurrences_cause_of'")
            .fetch_one(&mut c)
            .await
            .expect("occurrences_cause_of exists");
    assert!(
        def.contains("WHERE (caused_by_occurrence IS NOT NULL)"),
        "{def}"
    );
}
