//! Claims of the dispatcher: `claim_due`, leases, `release_claims`, `renew_leases`,
//! `release_leases` and the fenced `record_outcomes`.

use std::collections::HashSet;

use qhronos::domain::event::EventStatus;
use qhronos::domain::occurrence::OccStatus;
use qhronos::store::*;

use crate::fixtures::*;

crate::conformance!(
    claims_never_overlap,
    an_expired_lease_is_claimable_with_a_new_token,
    release_claims_never_undoes_a_newer_claim,
    renew_leases_renews_only_claims_still_held,
    outcomes_are_fenced_by_the_claim,
    a_retry_returns_the_row_to_pending_due_at_its_time,
    rows_of_paused_and_pull_events_are_not_claimed,
    release_leases_returns_expired_leases_or_all,
    a_gone_outcome_pauses_the_event_and_cancels_its_unfired_occurrences,
);

/// Two owners claiming at once get disjoint sets, and every due row is claimed exactly once.
async fn claims_never_overlap(s: &dyn Store) {
    const ROWS: i64 = 60;
    let e = one_time(T0 - ROWS * SEC);
    let times: Vec<_> = (0..ROWS).map(|i| T0 - i * SEC).collect();
    create(s, &e, &occs(&e, &times)).await;
    // Not due yet: must not be claimed.
    s.insert_occurrences(&[occ(&e, T0 + SEC)], T0)
        .await
        .expect("insert");
    let due: HashSet<_> = of_event(s, e.id)
        .await
        .into_iter()
        .filter(|o| o.scheduled_at <= T0)
        .map(|o| o.id)
        .collect();
    assert_eq!(due.len(), ROWS as usize);

    let (a, b) = tokio::join!(
        claim(s, Claim::at("node-a", 1, T0).limit(40)),
        claim(s, Claim::at("node-b", 2, T0).limit(40)),
    );
    let (ia, ib) = (ids(&a), ids(&b));
    assert_eq!(ia.len(), a.len(), "node-a got a row twice");
    assert_eq!(ib.len(), b.len(), "node-b got a row twice");
    assert!(
        ia.is_disjoint(&ib),
        "both owners claimed {:?}",
        ia.intersection(&ib)
    );
    let all: HashSet<_> = ia.union(&ib).copied().collect();
    assert_eq!(all, due, "every due row once, nothing that is not due");
    for c in a.iter().chain(&b) {
        assert_eq!(c.occ.status, OccStatus::Scheduled);
        assert_eq!(c.event.id, e.id);
        assert_eq!(c.lease_until, T0 + 30 * SEC);
    }
    assert!(a.iter().all(|c| c.token == 1) && b.iter().all(|c| c.token == 2));
    // Nothing is left to claim, by either.
    assert!(claim(s, Claim::at("node-c", 3, T0)).await.is_empty());
}

/// A lease that has not ended is not taken over; one that ended is, under the new token.
async fn an_expired_lease_is_claimable_with_a_new_token(s: &dyn Store) {
    let e = one_time(T0);
    create(s, &e, &[occ(&e, T0)]).await;
    let first = claim(s, Claim::at("node-a", 1, T0)).await;
    assert_eq!(first.len(), 1);
    let id = first[0].occ.id;

    let early = Claim::at("node-b", 2, T0 + 10 * SEC).taking_over();
    assert!(
        claim(s, early).await.is_empty(),
        "the lease runs until T0 + 30 s"
    );
    let no_takeover = Claim::at("node-b", 2, T0 + 60 * SEC);
    assert!(
        claim(s, no_takeover).await.is_empty(),
        "expired_before = MIN takes over nothing"
    );

    let late = Claim::at("node-b", 2, T0 + 31 * SEC).taking_over();
    let second = claim(s, late).await;
    assert_eq!(ids(&second), HashSet::from([id]));
    assert_eq!(second[0].token, 2);
    assert_eq!(second[0].lease_until, T0 + 61 * SEC);
    assert_eq!(status(s, id).await, OccStatus::Scheduled);
    // node-b holds it now: its renewal works, node-a's (the old claim) does not.
    let b = s
        .renew_leases("node-b", &[(id, 2)], T0 + 90 * SEC, T0 + 32 * SEC)
        .await
        .expect("renew");
    assert_eq!(b.renewed, vec![id]);
    let a = s
        .renew_leases("node-a", &[(id, 1)], T0 + 90 * SEC, T0 + 32 * SEC)
        .await
        .expect("renew");
    assert_eq!(a, Renewal::default());
}

/// `release_claims` names the claim by token: an old claim of the same owner is not the
/// newer one, and releases nothing.
async fn release_claims_never_undoes_a_newer_claim(s: &dyn Store) {
    let e = one_time(T0);
    create(s, &e, &[occ(&e, T0)]).await;
    let id = claim(s, Claim::at("node-a", 1, T0)).await[0].occ.id;
    // The same owner (a restarted node keeps its name) takes it over after the lease ended.
    let again = claim(s, Claim::at("node-a", 7, T0 + 31 * SEC).taking_over()).await;
    assert_eq!(ids(&again), HashSet::from([id]));

    let n = s
        .release_claims("node-a", &[(id, 1)], T0 + 32 * SEC)
        .await
        .expect("release");
    assert_eq!(n, 0, "the old token must not release the newer claim");
    let n = s
        .release_claims("node-b", &[(id, 7)], T0 + 32 * SEC)
        .await
        .expect("release");
    assert_eq!(n, 0, "another owner must not release it");
    assert_eq!(status(s, id).await, OccStatus::Scheduled);

    let n = s
        .release_claims("node-a", &[(id, 7)], T0 + 33 * SEC)
        .await
        .expect("release");
    assert_eq!(n, 1);
    let o = get(s, id).await.0;
    assert_eq!(o.status, OccStatus::Pending);
    assert_eq!(o.attempts, 0);
    // Released: due again at once, for anyone.
    let c = claim(s, Claim::at("node-b", 8, T0 + 34 * SEC)).await;
    assert_eq!(ids(&c), HashSet::from([id]));
}

/// Renewal moves only the leases still held under the named claim (owner and token).
async fn renew_leases_renews_only_claims_still_held(s: &dyn Store) {
    let e = one_time(T0);
    create(s, &e, &occs(&e, &[T0, T0 + 1, T0 + 2])).await;
    let held = claim(s, Claim::at("node-a", 1, T0 + 1).lease(10 * SEC)).await;
    assert_eq!(held.len(), 2);
    let (o1, o2) = (at(s, e.id, T0).await.id, at(s, e.id, T0 + 1).await.id);
    let short = claim(s, Claim::at("node-a", 2, T0 + 2).lease(5 * SEC)).await;
    let o3 = short[0].occ.id;
    // o3 is taken over by node-b once its short lease ended; o2 is cancelled.
    let taken = claim(s, Claim::at("node-b", 9, T0 + 6 * SEC).taking_over()).await;
    assert_eq!(ids(&taken), HashSet::from([o3]));
    assert_eq!(
        s.cancel_occurrence(o2, T0 + 6 * SEC).await.expect("cancel"),
        OccChange::Done
    );

    let claims = [(o1, 1), (o2, 1), (o3, 2)];
    let wrong_owner = s
        .renew_leases("node-b", &[(o1, 1)], T0 + 60 * SEC, T0 + 7 * SEC)
        .await
        .expect("renew");
    assert_eq!(wrong_owner, Renewal::default(), "node-b does not hold o1");
    let wrong_token = s
        .renew_leases("node-a", &[(o1, 2)], T0 + 60 * SEC, T0 + 7 * SEC)
        .await
        .expect("renew");
    assert_eq!(
        wrong_token,
        Renewal::default(),
        "o1 is held under token 1, not 2"
    );
    let renewed = s
        .renew_leases("node-a", &claims, T0 + 60 * SEC, T0 + 7 * SEC)
        .await
        .expect("renew");
    assert_eq!(renewed.renewed, vec![o1]);
    assert!(renewed.busy.is_empty());

    // The renewal holds: past the first lease's end (T0 + 10 s), o1 is not taken over.
    let late = claim(s, Claim::at("node-c", 3, T0 + 20 * SEC).taking_over()).await;
    assert!(late.is_empty(), "o1 was renewed to T0 + 60 s: {late:?}");
    assert_eq!(status(s, o2).await, OccStatus::Cancelled);
}

/// An outcome written under a claim that was taken over changes nothing; the current
/// claim's outcome writes status, attempts and the attempt row.
async fn outcomes_are_fenced_by_the_claim(s: &dyn Store) {
    let e = one_time(T0);
    let other = one_time(T0);
    create(s, &e, &[occ(&e, T0)]).await;
    create(s, &other, &[occ(&other, T0)]).await;
    let old = claim(s, Claim::at("node-a", 1, T0)).await;
    assert_eq!(old.len(), 2);
    let old_e = old
        .iter()
        .find(|c| c.occ.event_id == e.id)
        .expect("e's")
        .clone();
    let old_other = old
        .iter()
        .find(|c| c.occ.event_id == other.id)
        .expect("other's")
        .clone();
    let new = claim(s, Claim::at("node-b", 2, T0 + 31 * SEC).taking_over()).await;
    assert_eq!(new.len(), 2);
    let new_e = new
        .iter()
        .find(|c| c.occ.event_id == e.id)
        .expect("e's")
        .clone();

    // node-a's late outcomes: a delivery and a misfire skip.
    let stale = [
        attempted(&old_e, 200, Next::Completed, T0 + 32 * SEC),
        Outcome::Missed {
            occurrence_id: old_other.occ.id,
            event_id: other.id,
            scheduled_at: old_other.occ.scheduled_at,
            token: old_other.token,
        },
    ];
    record(s, "node-a", &stale, T0 + 33 * SEC).await;
    // The right owner with a token of an older claim is as stale.
    record(
        s,
        "node-b",
        &[attempted(&old_e, 500, Next::Failed, T0 + 33 * SEC)],
        T0 + 33 * SEC,
    )
    .await;
    for c in &new {
        let (o, attempts) = get(s, c.occ.id).await;
        assert_eq!(
            o.status,
            OccStatus::Scheduled,
            "a stale outcome changed {o:?}"
        );
        assert_eq!(o.attempts, 0);
        assert_eq!(o.completed_at, None);
        assert!(
            attempts.is_empty(),
            "a stale outcome wrote an attempt row: {attempts:?}"
        );
    }
    assert_eq!(
        s.get_event(e.id).await.expect("get").map(|e| e.status),
        Some(EventStatus::Active)
    );

    // node-b's outcome is the one that counts.
    let now = T0 + 40 * SEC;
    record(
        s,
        "node-b",
        &[attempted(&new_e, 204, Next::Completed, now)],
        now,
    )
    .await;
    let (o, attempts) = get(s, new_e.occ.id).await;
    assert_eq!(o.status, OccStatus::Completed);
    assert_eq!(o.attempts, 1);
    assert_eq!(o.completed_at, Some(now));
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].attempt, 1);
    assert_eq!(attempts[0].status_code, Some(204));
    assert_eq!(
        attempts[0].response.as_deref(),
        Some("answer 204 to token 2")
    );
    // The one-time event has nothing left to deliver.
    let ev = s.get_event(e.id).await.expect("get").expect("event");
    assert_eq!(ev.status, EventStatus::Inactive);
    // Written once: the same outcome again (the claim is gone) changes nothing.
    record(
        s,
        "node-b",
        &[attempted(&new_e, 500, Next::Failed, now)],
        now + SEC,
    )
    .await;
    assert_eq!(status(s, new_e.occ.id).await, OccStatus::Completed);
}

/// `Next::Retry(t)` puts the row back to pending, due at `t`, with the attempt counted.
async fn a_retry_returns_the_row_to_pending_due_at_its_time(s: &dyn Store) {
    let e = one_time(T0);
    create(s, &e, &[occ(&e, T0)]).await;
    let c = claim(s, Claim::at("node-a", 1, T0)).await;
    let retry_at = T0 + 5 * MIN;
    record(
        s,
        "node-a",
        &[attempted(&c[0], 503, Next::Retry(retry_at), T0)],
        T0 + SEC,
    )
    .await;
    let (o, attempts) = get(s, c[0].occ.id).await;
    assert_eq!(o.status, OccStatus::Pending);
    assert_eq!(o.next_attempt_at, Some(retry_at));
    assert_eq!(o.attempts, 1);
    assert!(o.last_error.is_some(), "the failure is recorded: {o:?}");
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        s.get_event(e.id).await.expect("get").map(|e| e.status),
        Some(EventStatus::Active),
        "a retry is still to deliver"
    );

    assert!(claim(s, Claim::at("node-a", 2, retry_at - 1))
        .await
        .is_empty());
    let again = claim(s, Claim::at("node-a", 3, retry_at)).await;
    assert_eq!(ids(&again), HashSet::from([c[0].occ.id]));
    assert_eq!(again[0].occ.attempts, 1);
}

/// The pause holds a paused event's due rows; pull events' rows wait for a pull client.
async fn rows_of_paused_and_pull_events_are_not_claimed(s: &dyn Store) {
    let paused = one_time(T0);
    let queued = pull(T0, "jobs");
    create(s, &paused, &[occ(&paused, T0)]).await;
    create(s, &queued, &[occ(&queued, T0)]).await;
    // A pause cancels what has not fired yet; the row already due stays pending, held.
    assert!(s
        .set_paused(paused.id, true, None, &[], T0 + SEC, BY)
        .await
        .expect("pause"));
    let held = at(s, paused.id, T0).await;
    assert_eq!(held.status, OccStatus::Pending, "the premise of this test");

    assert!(claim(s, Claim::at("node-a", 1, T0 + 2 * SEC))
        .await
        .is_empty());

    // The pull row is there for its queue…
    let pulled = s
        .claim_queue("jobs", &[], 10, T0 + MIN, T0 + 3 * SEC)
        .await
        .expect("claim_queue");
    assert_eq!(pulled.len(), 1);
    assert_eq!(pulled[0].0.occ.event_id, queued.id);
    // …and the paused one is claimed once the event is resumed.
    assert!(s
        .set_paused(paused.id, false, None, &[], T0 + 4 * SEC, BY)
        .await
        .expect("resume"));
    let c = claim(s, Claim::at("node-a", 2, T0 + 5 * SEC)).await;
    assert_eq!(ids(&c), HashSet::from([held.id]));
}

/// `release_leases` returns expired leases to pending; with `all`, every lease.
async fn release_leases_returns_expired_leases_or_all(s: &dyn Store) {
    let e = one_time(T0);
    create(s, &e, &occs(&e, &[T0, T0 + 1])).await;
    let short = claim(s, Claim::at("node-a", 1, T0).lease(5 * SEC)).await;
    let long = claim(s, Claim::at("node-a", 2, T0 + 1).lease(60 * SEC)).await;
    assert_eq!((short.len(), long.len()), (1, 1));

    let n = s
        .release_leases(T0 + 10 * SEC, false)
        .await
        .expect("release");
    assert_eq!(n, 1);
    assert_eq!(status(s, short[0].occ.id).await, OccStatus::Pending);
    assert_eq!(status(s, long[0].occ.id).await, OccStatus::Scheduled);

    let n = s
        .release_leases(T0 + 10 * SEC, true)
        .await
        .expect("release");
    assert_eq!(n, 1);
    assert_eq!(status(s, long[0].occ.id).await, OccStatus::Pending);
    // Both due again.
    let c = claim(s, Claim::at("node-b", 3, T0 + 11 * SEC)).await;
    assert_eq!(c.len(), 2);
}

/// A 410 answer (`pause_event`) pauses the series and cancels what has not fired.
async fn a_gone_outcome_pauses_the_event_and_cancels_its_unfired_occurrences(s: &dyn Store) {
    let e = hourly(T0, T0 + 3 * HOUR);
    create(s, &e, &occs(&e, &[T0, T0 + HOUR, T0 + 2 * HOUR])).await;
    let c = claim(s, Claim::at("node-a", 1, T0)).await;
    assert_eq!(c.len(), 1);
    let mut gone = attempted(&c[0], 410, Next::Failed, T0);
    if let Outcome::Attempted { pause_event, .. } = &mut gone {
        *pause_event = Some("the receiver answered 410 Gone".into());
    }
    record(s, "node-a", &[gone], T0 + SEC).await;

    let ev = s.get_event(e.id).await.expect("get").expect("event");
    assert_eq!(ev.status, EventStatus::Paused);
    assert_eq!(
        ev.paused_reason.as_deref(),
        Some("the receiver answered 410 Gone")
    );
    assert_eq!(status(s, c[0].occ.id).await, OccStatus::Failed);
    for t in [T0 + HOUR, T0 + 2 * HOUR] {
        assert_eq!(at(s, e.id, t).await.status, OccStatus::Cancelled);
    }
    assert!(claim(s, Claim::at("node-a", 2, T0 + 3 * HOUR))
        .await
        .is_empty());
}
