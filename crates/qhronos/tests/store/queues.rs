//! Pull queues: `claim_queue`, receipts, `settle_claim`, `expire_claims`.

use std::collections::HashSet;

use qhronos::domain::event::EventStatus;
use qhronos::domain::occurrence::OccStatus;
use qhronos::store::*;
use serde_json::json;
use uuid::Uuid;

use crate::fixtures::*;

crate::conformance!(
    claim_queue_gives_each_row_to_one_claimer_with_its_own_receipt,
    settle_claim_needs_the_current_receipt,
    an_expired_pull_claim_is_a_failed_attempt_and_returns_to_its_queue,
    queue_depths_count_ready_waiting_and_claimed_per_queue_within_the_tags,
);

async fn claim_queue_gives_each_row_to_one_claimer_with_its_own_receipt(s: &dyn Store) {
    let e = pull(T0, "jobs");
    let times: Vec<_> = (0..10).map(|i| T0 - i * SEC).collect();
    create(s, &e, &occs(&e, &times)).await;
    let other = pull(T0, "other");
    create(s, &other, &[occ(&other, T0)]).await;
    // Not due yet.
    s.insert_occurrences(&[occ(&e, T0 + MIN)], T0)
        .await
        .expect("insert");

    let (a, b) = tokio::join!(
        s.claim_queue("jobs", &[], 6, T0 + 30 * SEC, T0),
        s.claim_queue("jobs", &[], 6, T0 + 30 * SEC, T0),
    );
    let (a, b) = (a.expect("claim_queue"), b.expect("claim_queue"));
    let ia: HashSet<Uuid> = a.iter().map(|(c, _)| c.occ.id).collect();
    let ib: HashSet<Uuid> = b.iter().map(|(c, _)| c.occ.id).collect();
    assert!(
        ia.is_disjoint(&ib),
        "both claimers got {:?}",
        ia.intersection(&ib)
    );
    assert_eq!(ia.len() + ib.len(), 10, "every due row once");
    let receipts: HashSet<&str> = a.iter().chain(&b).map(|(_, r)| r.as_str()).collect();
    assert_eq!(receipts.len(), 10, "a receipt per claim");
    for (c, _) in a.iter().chain(&b) {
        assert_eq!(c.event.id, e.id);
        assert_eq!(c.occ.status, OccStatus::Dispatched);
        assert_eq!(c.occ.attempts, 1);
        assert_eq!(c.lease_until, T0 + 30 * SEC);
    }
    assert!(s
        .claim_queue("jobs", &[], 6, T0 + 30 * SEC, T0)
        .await
        .expect("claim")
        .is_empty());
    let o = s
        .claim_queue("other", &[], 6, T0 + 30 * SEC, T0)
        .await
        .expect("claim");
    assert_eq!(o.len(), 1);

    // `tags`: only events carrying one of them.
    let mut b = body(T0);
    b["action"] = json!({"type": "pull", "params": {"queue": "tagged"}});
    b["tags"] = json!(["t1"]);
    let t1 = event(b.clone());
    b["tags"] = json!(["t2"]);
    let t2 = event(b);
    create(s, &t1, &[occ(&t1, T0)]).await;
    create(s, &t2, &[occ(&t2, T0)]).await;
    let got = s
        .claim_queue(
            "tagged",
            &["t1".into(), "t3".into()],
            10,
            T0 + MIN,
            T0 + SEC,
        )
        .await
        .expect("claim");
    assert_eq!(
        got.iter().map(|(c, _)| c.event.id).collect::<Vec<_>>(),
        vec![t1.id]
    );
    // A paused event's rows wait.
    assert!(s
        .set_paused(t2.id, true, None, &[], T0 + SEC, BY)
        .await
        .expect("pause"));
    assert_eq!(at(s, t2.id, T0).await.status, OccStatus::Pending, "premise");
    assert!(s
        .claim_queue("tagged", &[], 10, T0 + MIN, T0 + 2 * SEC)
        .await
        .expect("claim")
        .is_empty());
}

async fn settle_claim_needs_the_current_receipt(s: &dyn Store) {
    let e = pull(T0, "jobs");
    create(s, &e, &[occ(&e, T0)]).await;
    let first = s
        .claim_queue("jobs", &[], 1, T0 + 30 * SEC, T0)
        .await
        .expect("claim");
    let (c, r1) = first[0].clone();
    let id = c.occ.id;
    let now = T0 + SEC;
    assert_eq!(
        s.settle_claim(
            id,
            "0123456789abcdef0123456789abcdef",
            None,
            Next::Completed,
            now
        )
        .await
        .expect("settle"),
        OccChange::Taken
    );
    assert_eq!(
        s.settle_claim(id, "", None, Next::Completed, now)
            .await
            .expect("settle"),
        OccChange::Taken
    );
    assert_eq!(
        s.settle_claim(Uuid::now_v7(), &r1, None, Next::Completed, now)
            .await
            .expect("settle"),
        OccChange::NotFound
    );
    assert_eq!(status(s, id).await, OccStatus::Dispatched);

    // The visibility timeout passes; another client claims it again.
    let second = s
        .claim_queue("jobs", &[], 1, T0 + 90 * SEC, T0 + 31 * SEC)
        .await
        .expect("claim");
    assert_eq!(second.len(), 1);
    let (c2, r2) = second[0].clone();
    assert_eq!(c2.occ.id, id);
    assert_eq!(c2.occ.attempts, 2);
    assert_ne!(r1, r2);
    let now = T0 + 32 * SEC;
    assert_eq!(
        s.settle_claim(id, &r1, None, Next::Completed, now)
            .await
            .expect("settle"),
        OccChange::Taken,
        "a stale receipt"
    );
    assert_eq!(status(s, id).await, OccStatus::Dispatched);

    assert_eq!(
        s.settle_claim(id, &r2, None, Next::Completed, now)
            .await
            .expect("settle"),
        OccChange::Done
    );
    let (o, attempts) = get(s, id).await;
    assert_eq!(o.status, OccStatus::Completed);
    assert_eq!(o.completed_at, Some(now));
    assert_eq!(
        attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(
        attempts[0].error.as_deref(),
        Some("visibility timeout expired")
    );
    assert_eq!(attempts[1].error, None);
    assert_eq!(
        s.settle_claim(id, &r2, None, Next::Completed, now)
            .await
            .expect("settle"),
        OccChange::WrongStatus(OccStatus::Completed)
    );
    let ev = s.get_event(e.id).await.expect("get").expect("event");
    assert_eq!(ev.status, EventStatus::Inactive, "nothing left to deliver");

    // A nack with a retry time: pending, due then, with the error recorded.
    let e = pull(T0, "jobs");
    create(s, &e, &[occ(&e, T0)]).await;
    let (c, r) = s
        .claim_queue("jobs", &[], 1, T0 + HOUR, now)
        .await
        .expect("claim")[0]
        .clone();
    let retry_at = now + 10 * MIN;
    assert_eq!(
        s.settle_claim(c.occ.id, &r, Some("busy"), Next::Retry(retry_at), now + SEC)
            .await
            .expect("settle"),
        OccChange::Done
    );
    let (o, attempts) = get(s, c.occ.id).await;
    assert_eq!(
        (o.status, o.next_attempt_at, o.attempts),
        (OccStatus::Pending, Some(retry_at), 1)
    );
    assert_eq!(attempts[0].error.as_deref(), Some("busy"));
    assert!(s
        .claim_queue("jobs", &[], 1, T0 + HOUR, retry_at - 1)
        .await
        .expect("claim")
        .is_empty());
    assert_eq!(
        s.claim_queue("jobs", &[], 1, T0 + HOUR, retry_at)
            .await
            .expect("claim")
            .len(),
        1
    );
}

async fn an_expired_pull_claim_is_a_failed_attempt_and_returns_to_its_queue(s: &dyn Store) {
    let e = pull(T0, "jobs");
    let mut o = occ(&e, T0);
    o.attempt_limit = 2;
    create(s, &e, &[o]).await;
    let c = s
        .claim_queue("jobs", &[], 1, T0 + 10 * SEC, T0)
        .await
        .expect("claim");
    assert_eq!(c.len(), 1);
    assert_eq!(
        s.expire_claims(T0 + 5 * SEC).await.expect("expire"),
        0,
        "still visible"
    );
    assert_eq!(status(s, o.id).await, OccStatus::Dispatched);

    let now = T0 + 11 * SEC;
    assert_eq!(s.expire_claims(now).await.expect("expire"), 1);
    let (got, attempts) = get(s, o.id).await;
    assert_eq!(got.status, OccStatus::Pending);
    assert_eq!(got.next_attempt_at, Some(now), "due again at once");
    assert_eq!(got.attempts, 1);
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        attempts[0].error.as_deref(),
        Some("visibility timeout expired")
    );
    assert_eq!(
        s.expire_claims(now).await.expect("expire"),
        0,
        "expired once"
    );

    // The second (last) claim expires too: a dead letter.
    let c = s
        .claim_queue("jobs", &[], 1, now + 10 * SEC, now + SEC)
        .await
        .expect("claim");
    assert_eq!(c.len(), 1);
    let now = now + 12 * SEC;
    assert_eq!(s.expire_claims(now).await.expect("expire"), 1);
    let (got, attempts) = get(s, o.id).await;
    assert_eq!(got.status, OccStatus::Failed);
    assert_eq!(got.attempts, 2);
    assert_eq!(got.completed_at, Some(now));
    assert_eq!(attempts.len(), 2);
    assert!(s
        .claim_queue("jobs", &[], 1, now + MIN, now + SEC)
        .await
        .expect("claim")
        .is_empty());
}

async fn queue_depths_count_ready_waiting_and_claimed_per_queue_within_the_tags(s: &dyn Store) {
    let e = pull(T0, "jobs");
    create(
        s,
        &e,
        &occs(&e, &[T0 - 3 * SEC, T0 - 2 * SEC, T0 - SEC, T0 + MIN]),
    )
    .await;
    let mut b = body(T0);
    b["action"] = json!({"type": "pull", "params": {"queue": "mail"}});
    b["tags"] = json!(["team-b"]);
    let tagged = event(b);
    create(s, &tagged, &[]).await;
    // A webhook event is no queue's.
    let w = one_time(T0);
    create(s, &w, &[occ(&w, T0 - SEC)]).await;
    let claimed = s
        .claim_queue("jobs", &[], 1, T0 + 30 * SEC, T0)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);

    let d = s.queue_depths(&[], T0).await.expect("queue_depths");
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[0].queue, "jobs");
    assert_eq!(
        (d[0].events, d[0].ready, d[0].waiting, d[0].claimed),
        (1, 2, 1, 1),
        "{d:?}"
    );
    assert_eq!(d[0].oldest_ready_at, Some(T0 - 2 * SEC));
    assert_eq!(d[1].queue, "mail");
    assert_eq!((d[1].events, d[1].ready, d[1].claimed), (1, 0, 0));
    assert_eq!(d[1].oldest_ready_at, None);

    let only = s
        .queue_depths(&["team-b".to_string()], T0)
        .await
        .expect("queue_depths");
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].queue, "mail");
    // Later, the future instance is ready too.
    let later = s.queue_depths(&[], T0 + 2 * MIN).await.expect("later");
    assert_eq!((later[0].ready, later[0].waiting), (3, 0), "{later:?}");
}
