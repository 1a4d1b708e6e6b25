//! PostgreSQL only: lease renewal never waits for a row another transaction has locked.
//! The outcome writer locks the rows it finishes for the length of its transaction; a renewal
//! that waited for them while holding other rows the writer wanted next deadlocked the two
//! (seen with 2 M events and 1,000 fires/s, issue 18).

use std::time::Duration;

use sqlx::{Connection, PgConnection};

use crate::backend::TestStore;
use crate::fixtures::*;

/// A claim whose row is locked elsewhere is reported busy (still this node's, not renewed) at
/// once; the others are renewed; once the lock is gone, it is renewed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_skips_rows_locked_by_another_transaction() {
    let Some(db) = TestStore::postgres().await else {
        return;
    };
    let s = db.store();
    let e = one_time(T0);
    create(s, &e, &occs(&e, &[T0, T0 + 1])).await;
    let held = claim(s, Claim::at("node-a", 1, T0 + 1).lease(10 * SEC)).await;
    assert_eq!(held.len(), 2);
    let (locked, free) = (held[0].occ.id, held[1].occ.id);
    let claims = [(locked, 1), (free, 1)];

    let url = db.postgres_url().expect("a PostgreSQL store").to_string();
    let mut writer = PgConnection::connect(&url).await.expect("connect");
    let mut tx = writer.begin().await.expect("begin");
    sqlx::query("SELECT id FROM occurrences WHERE id = $1 FOR NO KEY UPDATE")
        .bind(locked.to_string())
        .fetch_one(&mut *tx)
        .await
        .expect("lock the row as the writer does");

    let r = tokio::time::timeout(
        Duration::from_secs(5),
        s.renew_leases("node-a", &claims, T0 + 60 * SEC, T0 + 2 * SEC),
    )
    .await
    .expect("renewal must not wait for the locked row")
    .expect("renew");
    assert_eq!(r.renewed, vec![free]);
    assert_eq!(r.busy, vec![locked]);

    tx.rollback().await.expect("rollback");
    let r = s
        .renew_leases("node-a", &claims, T0 + 60 * SEC, T0 + 3 * SEC)
        .await
        .expect("renew");
    let mut renewed = r.renewed.clone();
    renewed.sort();
    let mut both = vec![locked, free];
    both.sort();
    assert_eq!(renewed, both);
    assert!(r.busy.is_empty());
}
