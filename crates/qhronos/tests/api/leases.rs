//! Claims, leases and their fencing, against the store directly (both backends): a claim is
//! known by (owner, token); renewal keeps it; once it is taken over, the old holder's renewal,
//! release and outcome change nothing.

use std::sync::Arc;

use qhronos::domain::occurrence::{Attempt, NewOccurrence, OccStatus};
use qhronos::store::{ClaimDue, Next, Outcome, Store};
use uuid::Uuid;

use crate::helpers::TestDb;

struct Fixture {
    store: Arc<dyn Store>,
    _db: Option<TestDb>,
    _dir: tempfile::TempDir,
}

async fn store() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::for_test().await;
    let url = match &db {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}", dir.path().join("q.db").display()),
    };
    let store = qhronos::store::connect(&url, &Default::default())
        .await
        .unwrap();
    Fixture {
        store,
        _db: db,
        _dir: dir,
    }
}

/// A one-time webhook event with one occurrence due at `due`; returns the occurrence id.
async fn one_occurrence(store: &dyn Store, due: i64) -> (Uuid, Uuid) {
    let input: qhronos::api::event_io::EventIn = serde_json::from_value(serde_json::json!({
        "name": "lease test",
        "start_time": jiff::Timestamp::from_millisecond(due).unwrap().to_string(),
        "action": {"type": "webhook", "params": {"url": "http://127.0.0.1:9/"}}
    }))
    .unwrap();
    let event = input.validate(Uuid::now_v7(), due, due).unwrap();
    let occ = NewOccurrence::new(event.id, due, 3);
    store
        .create_event(&event, &[occ], None, qhronos::store::By::actor("master"))
        .await
        .unwrap();
    (event.id, occ.id)
}

fn spec(owner: &str, token: i64, now: i64, lease: i64) -> ClaimDue<'_> {
    ClaimDue {
        owner,
        token,
        due_before: now + 2_000,
        lease_until: now + lease,
        expired_before: now,
        limit: 100,
        now,
    }
}

fn completed(
    occurrence_id: Uuid,
    event_id: Uuid,
    scheduled_at: i64,
    token: i64,
    at: i64,
) -> Outcome {
    Outcome::Attempted {
        occurrence_id,
        event_id,
        scheduled_at,
        attempt: Attempt {
            attempt: 1,
            started_at: at,
            duration_ms: 1,
            status_code: Some(200),
            error: None,
            response: None,
        },
        next: Next::Completed,
        pause_event: None,
        token,
    }
}

async fn status(store: &dyn Store, id: Uuid) -> OccStatus {
    store.get_occurrence(id).await.unwrap().unwrap().0.status
}

#[tokio::test]
async fn a_claim_taken_over_after_its_lease_ran_out_fences_out_the_old_holder() {
    let f = store().await;
    let s = f.store.as_ref();
    let t0 = 1_900_000_000_000;
    let (event, occ) = one_occurrence(s, t0).await;
    let a = s.claim_due(&spec("node-a", 1, t0, 1_000)).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].token, 1);
    // A's lease ran out unrenewed: B takes the occurrence over.
    let t1 = t0 + 1_500;
    let b = s.claim_due(&spec("node-b", 2, t1, 1_000)).await.unwrap();
    assert_eq!(b.len(), 1, "the expired claim is taken over");
    // A, late: its renewal, its outcome and its release change nothing.
    let renewed = s
        .renew_leases("node-a", &[(occ, 1)], t1 + 4_000, t1)
        .await
        .unwrap();
    assert_eq!(
        renewed,
        qhronos::store::Renewal::default(),
        "a claim taken over is not renewed"
    );
    s.record_outcomes("node-a", &[completed(occ, event, t0, 1, t1)], t1)
        .await
        .unwrap();
    assert_eq!(
        status(s, occ).await,
        OccStatus::Scheduled,
        "the stale outcome must not overwrite B's claim"
    );
    assert_eq!(
        s.release_claims("node-a", &[(occ, 1)], t1).await.unwrap(),
        0
    );
    // A token of B's under A's name is no claim either.
    s.record_outcomes("node-a", &[completed(occ, event, t0, 2, t1)], t1)
        .await
        .unwrap();
    assert_eq!(status(s, occ).await, OccStatus::Scheduled);
    // B's outcome lands.
    s.record_outcomes("node-b", &[completed(occ, event, t0, 2, t1)], t1)
        .await
        .unwrap();
    assert_eq!(status(s, occ).await, OccStatus::Completed);
}

#[tokio::test]
async fn a_renewed_lease_is_never_taken_over_and_a_store_outage_defers_takeovers() {
    let f = store().await;
    let s = f.store.as_ref();
    let t0 = 1_900_000_000_000;
    let (event, occ) = one_occurrence(s, t0).await;
    assert_eq!(
        s.claim_due(&spec("node-a", 7, t0, 1_000))
            .await
            .unwrap()
            .len(),
        1
    );
    // Renewed before it ran out: a claim at t0 + 1.5 s leaves it alone.
    let renewed = s
        .renew_leases("node-a", &[(occ, 7)], t0 + 3_000, t0 + 800)
        .await
        .unwrap();
    assert_eq!(renewed.renewed, vec![occ]);
    let t1 = t0 + 1_500;
    assert!(s
        .claim_due(&spec("node-b", 8, t1, 1_000))
        .await
        .unwrap()
        .is_empty());
    // Past the renewed lease, but B just saw the store fail: it takes over nothing.
    let t2 = t0 + 3_500;
    let mut deferred = spec("node-b", 8, t2, 1_000);
    deferred.expired_before = i64::MIN;
    assert!(s.claim_due(&deferred).await.unwrap().is_empty());
    // A, still alive, writes its outcome within that time.
    s.record_outcomes("node-a", &[completed(occ, event, t0, 7, t2)], t2)
        .await
        .unwrap();
    assert_eq!(status(s, occ).await, OccStatus::Completed);
}
