//! Bulk: `redrive_many` sends failed and missed occurrences again with more attempts, and
//! leaves alone any that is no longer failed or missed.

use qhronos::domain::occurrence::OccStatus;
use qhronos::store::*;

use crate::fixtures::*;

crate::conformance!(redrive_many_sends_failed_and_missed_again_and_nothing_else);

async fn redrive_many_sends_failed_and_missed_again_and_nothing_else(s: &dyn Store) {
    let e = hourly(T0, T0 + 5 * HOUR);
    let times = [T0, T0 + 1, T0 + 2, T0 + 3 * HOUR];
    create(s, &e, &occs(&e, &times)).await;
    let c = claim(s, Claim::at("node-a", 1, T0 + 2)).await;
    assert_eq!(c.len(), 3);
    let by_time = |t| c.iter().find(|c| c.occ.scheduled_at == t).expect("claimed");
    let (failed, missed, done) = (by_time(T0), by_time(T0 + 1), by_time(T0 + 2));
    let outcomes = [
        attempted(failed, 500, Next::Failed, T0 + 2),
        Outcome::Missed {
            occurrence_id: missed.occ.id,
            event_id: e.id,
            scheduled_at: missed.occ.scheduled_at,
            token: 1,
        },
        attempted(done, 200, Next::Completed, T0 + 2),
    ];
    record(s, "node-a", &outcomes, T0 + 3).await;
    let pending = at(s, e.id, T0 + 3 * HOUR).await;

    let ids = [failed.occ.id, missed.occ.id, done.occ.id, pending.id];
    let rows: Vec<_> = ids.iter().map(|id| (*id, 4)).collect();
    assert_eq!(s.redrive_many(&rows, T0 + MIN).await.expect("redrive"), 2);
    for id in [failed.occ.id, missed.occ.id] {
        let (o, _) = get(s, id).await;
        assert_eq!(o.status, OccStatus::Pending, "{id}");
        assert_eq!(o.next_attempt_at, Some(T0 + MIN));
        assert_eq!(o.attempt_limit, o.attempts + 4);
        assert_eq!(o.completed_at, None);
    }
    assert_eq!(status(s, done.occ.id).await, OccStatus::Completed);
    assert_eq!(
        get(s, pending.id).await.0.next_attempt_at,
        Some(T0 + 3 * HOUR)
    );
    // Pending now: a second call changes nothing.
    assert_eq!(s.redrive_many(&rows, T0 + 2 * MIN).await.expect("again"), 0);
    assert_eq!(s.redrive_many(&[], T0).await.expect("empty"), 0);
    // The re-driven rows are claimable at once.
    let again = claim(s, Claim::at("node-b", 2, T0 + MIN)).await;
    let mut want = vec![failed.occ.id, missed.occ.id];
    want.sort();
    assert_eq!(ids_of(&again), want);
}

fn ids_of(c: &[Claimed]) -> Vec<uuid::Uuid> {
    let mut v: Vec<_> = c.iter().map(|c| c.occ.id).collect();
    v.sort();
    v
}
