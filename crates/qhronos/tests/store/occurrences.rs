//! Occurrences: paging, cancelling and moving one instance, re-driving dead letters.

use std::collections::HashSet;

use qhronos::domain::occurrence::OccStatus;
use qhronos::store::*;
use serde_json::json;
use uuid::Uuid;

use crate::fixtures::*;

crate::conformance!(
    counts_in_counts_by_status_within_the_tags,
    list_occurrences_pages_by_time_and_id_without_gaps_or_repeats,
    only_upcoming_unattempted_occurrences_are_cancelled_or_moved,
    only_failed_or_missed_occurrences_are_redriven,
);

/// Many occurrences share a `scheduled_at`: the `(scheduled_at, id)` cursor still visits each
/// exactly once, newest first.
async fn list_occurrences_pages_by_time_and_id_without_gaps_or_repeats(s: &dyn Store) {
    let times = [T0, T0 + MIN, T0 + 2 * MIN, T0 + 3 * MIN];
    let mut events = Vec::new();
    for _ in 0..5 {
        let e = one_time(T0);
        create(s, &e, &occs(&e, &times)).await;
        events.push(e);
    }
    // Some of them completed, so that a status filter has something to skip.
    let c = claim(s, Claim::at("node-a", 1, T0)).await;
    let outcomes: Vec<_> = c
        .iter()
        .map(|c| attempted(c, 200, Next::Completed, T0))
        .collect();
    record(s, "node-a", &outcomes, T0).await;

    let all = s
        .list_occurrences(&OccFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(all.len(), 20);
    let cases = [
        ("all", OccFilter::default()),
        (
            "one event",
            OccFilter {
                event_id: Some(events[2].id),
                ..Default::default()
            },
        ),
        (
            "pending",
            OccFilter {
                status: Some(OccStatus::Pending),
                ..Default::default()
            },
        ),
        (
            "a time range",
            OccFilter {
                from: Some(T0 + MIN),
                to: Some(T0 + 2 * MIN),
                ..Default::default()
            },
        ),
    ];
    for (what, filter) in cases {
        let expected: HashSet<Uuid> = all
            .iter()
            .filter(|o| filter.event_id.is_none_or(|id| o.event_id == id))
            .filter(|o| filter.status.is_none_or(|st| o.status == st))
            .filter(|o| filter.from.is_none_or(|t| o.scheduled_at >= t))
            .filter(|o| filter.to.is_none_or(|t| o.scheduled_at <= t))
            .map(|o| o.id)
            .collect();
        assert!(!expected.is_empty(), "{what}: the fixture has such rows");
        for limit in [1, 3, 7] {
            let mut seen = Vec::new();
            let mut f = OccFilter {
                limit,
                ..filter.clone()
            };
            loop {
                let page = s.list_occurrences(&f).await.expect("list");
                assert!(page.len() as i64 <= limit);
                seen.extend(page.iter().map(|o| (o.scheduled_at, o.id)));
                match page.last() {
                    Some(last) if page.len() as i64 == limit => {
                        f.before = Some((last.scheduled_at, last.id))
                    }
                    _ => break,
                }
            }
            assert!(
                seen.windows(2).all(|w| w[0] > w[1]),
                "{what}: newest (scheduled_at, id) first"
            );
            let ids: Vec<Uuid> = seen.iter().map(|(_, id)| *id).collect();
            assert_each_once(&ids, &expected, &format!("{what}, pages of {limit}"));
        }
    }
}

async fn only_upcoming_unattempted_occurrences_are_cancelled_or_moved(s: &dyn Store) {
    let e = one_time(T0);
    let times = [
        T0,
        T0 + MIN,
        T0 + 2 * MIN,
        T0 + 3 * MIN,
        T0 + HOUR,
        T0 + 2 * HOUR,
    ];
    create(s, &e, &occs(&e, &times)).await;
    // T0: completed; T0 + 1 min: attempted, waiting for a retry; T0 + 2 min: claimed, not yet
    // attempted; T0 + 3 min: released (pending again, unattempted).
    let c = claim(s, Claim::at("node-a", 1, T0 + 3 * MIN)).await;
    assert_eq!(c.len(), 4);
    let by = |t| {
        c.iter()
            .find(|c| c.occ.scheduled_at == t)
            .expect("claimed")
            .clone()
    };
    let outcomes = [
        attempted(&by(T0), 200, Next::Completed, T0),
        attempted(&by(T0 + MIN), 500, Next::Retry(T0 + 10 * MIN), T0 + MIN),
    ];
    record(s, "node-a", &outcomes, T0 + MIN).await;
    let released = by(T0 + 3 * MIN).occ.id;
    s.release_claims("node-a", &[(released, 1)], T0 + MIN)
        .await
        .expect("release");
    let (completed, retrying, claimed) =
        (by(T0).occ.id, by(T0 + MIN).occ.id, by(T0 + 2 * MIN).occ.id);
    let pending = at(s, e.id, T0 + HOUR).await.id;
    let far = at(s, e.id, T0 + 2 * HOUR).await.id;
    let now = T0 + 2 * MIN;

    for id in [completed, retrying] {
        let st = status(s, id).await;
        assert_eq!(
            s.cancel_occurrence(id, now).await.expect("cancel"),
            OccChange::WrongStatus(st)
        );
        assert_eq!(
            s.move_occurrence(id, T0 + 5 * HOUR, now)
                .await
                .expect("move"),
            OccChange::WrongStatus(st)
        );
        assert_eq!(status(s, id).await, st, "unchanged");
    }
    let unknown = Uuid::now_v7();
    assert_eq!(
        s.cancel_occurrence(unknown, now).await.expect("cancel"),
        OccChange::NotFound
    );
    assert_eq!(
        s.move_occurrence(unknown, T0, now).await.expect("move"),
        OccChange::NotFound
    );

    // Moving onto an instant the event already has (whatever its status) is Taken.
    for used in [T0, T0 + 2 * HOUR] {
        assert_eq!(
            s.move_occurrence(pending, used, now).await.expect("move"),
            OccChange::Taken
        );
    }
    assert_eq!(get(s, pending).await.0.scheduled_at, T0 + HOUR);

    // A claimed, unattempted one is cancelled, and its claim is gone.
    assert_eq!(
        s.cancel_occurrence(claimed, now).await.expect("cancel"),
        OccChange::Done
    );
    assert_eq!(status(s, claimed).await, OccStatus::Cancelled);
    assert!(s
        .renew_leases("node-a", &[(claimed, 1)], now + HOUR, now)
        .await
        .expect("renew")
        .renewed
        .is_empty());
    assert_eq!(
        s.cancel_occurrence(claimed, now).await.expect("cancel"),
        OccChange::WrongStatus(OccStatus::Cancelled)
    );

    // A pending one moves; the rest of the series stays.
    let to = T0 + 90 * MIN;
    assert_eq!(
        s.move_occurrence(pending, to, now).await.expect("move"),
        OccChange::Done
    );
    let o = get(s, pending).await.0;
    assert_eq!(
        (o.status, o.scheduled_at, o.next_attempt_at),
        (OccStatus::Pending, to, Some(to))
    );
    assert_eq!(get(s, far).await.0.scheduled_at, T0 + 2 * HOUR);
    assert_eq!(
        s.move_occurrence(released, T0 + 4 * MIN, now)
            .await
            .expect("move"),
        OccChange::Done
    );
    // Its old instant is free again.
    assert_eq!(
        s.move_occurrence(far, T0 + HOUR, now).await.expect("move"),
        OccChange::Done
    );
    // The moved one is claimed at its new time, not before.
    assert!(!ids(&claim(s, Claim::at("node-b", 2, to - 1)).await).contains(&pending));
    assert!(ids(&claim(s, Claim::at("node-b", 3, to)).await).contains(&pending));
}

async fn only_failed_or_missed_occurrences_are_redriven(s: &dyn Store) {
    let e = one_time(T0);
    create(s, &e, &occs(&e, &[T0, T0 + 1, T0 + 2, T0 + HOUR])).await;
    let c = claim(s, Claim::at("node-a", 1, T0 + 2)).await;
    let by = |t| {
        c.iter()
            .find(|c| c.occ.scheduled_at == t)
            .expect("claimed")
            .clone()
    };
    let (failed, missed, completed) = (by(T0), by(T0 + 1), by(T0 + 2));
    let outcomes = [
        attempted(&failed, 500, Next::Failed, T0),
        Outcome::Missed {
            occurrence_id: missed.occ.id,
            event_id: e.id,
            scheduled_at: missed.occ.scheduled_at,
            token: missed.token,
        },
        attempted(&completed, 200, Next::Completed, T0),
    ];
    record(s, "node-a", &outcomes, T0 + SEC).await;
    let pending = at(s, e.id, T0 + HOUR).await.id;
    assert_eq!(status(s, failed.occ.id).await, OccStatus::Failed);
    assert_eq!(status(s, missed.occ.id).await, OccStatus::Missed);

    let now = T0 + MIN;
    assert_eq!(
        s.redrive(completed.occ.id, 2, now).await.expect("redrive"),
        Redrive::WrongStatus(OccStatus::Completed)
    );
    assert_eq!(
        s.redrive(pending, 2, now).await.expect("redrive"),
        Redrive::WrongStatus(OccStatus::Pending)
    );
    assert_eq!(
        s.redrive(Uuid::now_v7(), 2, now).await.expect("redrive"),
        Redrive::NotFound
    );
    for id in [failed.occ.id, missed.occ.id] {
        assert_eq!(s.redrive(id, 2, now).await.expect("redrive"), Redrive::Done);
        let o = get(s, id).await.0;
        assert_eq!(o.status, OccStatus::Pending);
        assert_eq!(o.next_attempt_at, Some(now));
        assert_eq!(o.attempt_limit, o.attempts + 2, "two more attempts");
        assert_eq!(o.completed_at, None);
    }
    assert_eq!(
        s.redrive(failed.occ.id, 2, now).await.expect("redrive"),
        Redrive::WrongStatus(OccStatus::Pending)
    );
    let again = claim(s, Claim::at("node-b", 2, now)).await;
    assert_eq!(ids(&again), HashSet::from([failed.occ.id, missed.occ.id]));
}

async fn counts_in_counts_by_status_within_the_tags(s: &dyn Store) {
    let mut b = body(T0);
    b["tags"] = json!(["a"]);
    let a = event(b);
    create(s, &a, &occs(&a, &[T0, T0 + MIN, T0 + 2 * MIN])).await;
    let mut b = body(T0);
    b["tags"] = json!(["b"]);
    let other = event(b);
    create(s, &other, &[occ(&other, T0)]).await;
    let only = s.counts_in(&["a".to_string()]).await.expect("counts_in");
    assert_eq!((only.pending, only.failed), (3, 0), "{only:?}");
    let all = s.counts_in(&[]).await.expect("counts_in");
    assert_eq!(all.pending, 4, "{all:?}");
    assert_eq!(s.counts().await.expect("counts").pending, 4);
    let none = s
        .counts_in(&["nobody".to_string()])
        .await
        .expect("counts_in");
    assert_eq!(none.pending, 0);
}
