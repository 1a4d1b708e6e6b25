//! Retention: `purge` removes old finished work and never pending, scheduled or future work,
//! nor a dead letter younger than its cut-off, nor the events these belong to.

use qhronos::domain::event::EventStatus;
use qhronos::domain::occurrence::OccStatus;
use qhronos::store::*;

use crate::fixtures::*;

crate::conformance!(purge_removes_old_finished_work_and_nothing_still_to_do);

async fn purge_removes_old_finished_work_and_nothing_still_to_do(s: &dyn Store) {
    let now = T0 + 30 * DAY;
    let cut = PurgeCutoffs {
        done_before: now - DAY,
        failed_before: now - 7 * DAY,
        events_before: now - DAY,
        // Small batches, so that a pass takes several statements.
        batch: 2,
    };
    // Old finished one-time events: a completed one, and a dead letter past its cut-off.
    let done = one_time(T0);
    let dead = one_time(T0);
    // A dead letter younger than its cut-off (but older than `events_before`).
    let young_dead = one_time(now - 3 * DAY);
    // A series: an old completed instance, one due long ago never claimed, one claimed long
    // ago (its node died), one in the future; and a recent completed one.
    let series = hourly(T0, now + 2 * DAY);
    // A finished one-time event triggered once more, for later (`/trigger` adds a row to an
    // inactive event): the event must stay for it.
    let triggered = one_time(T0);
    // A pull event with an old claim still out.
    let queued = pull(T0, "jobs");
    create(s, &done, &[occ(&done, T0)]).await;
    create(s, &dead, &[occ(&dead, T0 + 1)]).await;
    create(s, &young_dead, &[occ(&young_dead, now - 3 * DAY)]).await;
    create(
        s,
        &series,
        &occs(
            &series,
            &[T0 + 2, T0 + 3, T0 + 4, now + DAY, now - 2 * HOUR],
        ),
    )
    .await;
    create(s, &queued, &[occ(&queued, T0)]).await;
    create(s, &triggered, &[occ(&triggered, T0 - 1)]).await;

    let c = claim(s, Claim::at("node-a", 1, T0 + 2)).await;
    let by = |t| {
        c.iter()
            .find(|c| c.occ.scheduled_at == t)
            .expect("claimed")
            .clone()
    };
    record(
        s,
        "node-a",
        &[
            attempted(&by(T0), 200, Next::Completed, T0),
            attempted(&by(T0 + 1), 500, Next::Failed, T0),
            attempted(&by(T0 + 2), 200, Next::Completed, T0),
            attempted(&by(T0 - 1), 200, Next::Completed, T0),
        ],
        T0,
    )
    .await;
    let stuck = claim(s, Claim::at("node-a", 2, T0 + 4).limit(1)).await;
    assert_eq!(stuck[0].occ.scheduled_at, T0 + 3);
    let pulled = s
        .claim_queue("jobs", &[], 1, T0 + MIN, T0)
        .await
        .expect("claim_queue");
    assert_eq!(pulled.len(), 1);
    let c = claim(s, Claim::at("node-a", 3, now - 3 * DAY)).await;
    let young = c
        .iter()
        .find(|c| c.occ.event_id == young_dead.id)
        .expect("young");
    let untouched = c
        .iter()
        .find(|c| c.occ.scheduled_at == T0 + 4)
        .expect("old pending")
        .occ
        .id;
    record(
        s,
        "node-a",
        &[attempted(young, 500, Next::Failed, now - 3 * DAY)],
        now - 3 * DAY,
    )
    .await;
    s.release_claims("node-a", &[(untouched, 3)], T0 + 5)
        .await
        .expect("release");
    // (The old pending one is claimed again with it, and released again.)
    let c = claim(s, Claim::at("node-a", 4, now - 2 * HOUR)).await;
    assert_eq!(c.len(), 2);
    let recent = c
        .iter()
        .find(|c| c.occ.scheduled_at == now - 2 * HOUR)
        .expect("recent")
        .clone();
    s.release_claims("node-a", &[(untouched, 4)], now - 2 * HOUR)
        .await
        .expect("release");
    record(
        s,
        "node-a",
        &[attempted(&recent, 200, Next::Completed, now - HOUR)],
        now - HOUR,
    )
    .await;
    let later = occ(&triggered, now + DAY);
    assert_eq!(
        s.insert_occurrences(&[later], T0 + 10)
            .await
            .expect("insert"),
        1
    );
    // The premises: what is finished, what is not.
    for e in [&done, &dead, &young_dead, &triggered] {
        let ev = s.get_event(e.id).await.expect("get").expect("event");
        assert_eq!(ev.status, EventStatus::Inactive);
    }
    assert_eq!(at(s, series.id, T0 + 4).await.status, OccStatus::Pending);
    let kept_by_series = of_event(s, series.id).await.len() - 1;

    let p = s.purge(now, &cut).await.expect("purge");
    assert_eq!(
        p,
        Purged {
            occurrences_done: 3,
            occurrences_failed: 1,
            events: 2,
            analytics: 0,
        }
    );
    // Gone with their occurrences: the old finished events.
    for e in [&done, &dead] {
        assert!(s.get_event(e.id).await.expect("get").is_none());
        assert!(
            s.event_tags(e.id).await.expect("tags").is_none(),
            "the row is gone"
        );
        assert!(of_event(s, e.id).await.is_empty());
    }
    // Kept: the young dead letter and its event, every series row but the old completed one,
    // the pull claim.
    assert!(s.get_event(young_dead.id).await.expect("get").is_some());
    assert_eq!(
        at(s, young_dead.id, now - 3 * DAY).await.status,
        OccStatus::Failed
    );
    let rows = of_event(s, series.id).await;
    assert_eq!(rows.len(), kept_by_series);
    assert!(rows.iter().all(|o| o.scheduled_at != T0 + 2));
    assert_eq!(at(s, series.id, T0 + 3).await.status, OccStatus::Scheduled);
    assert_eq!(at(s, series.id, T0 + 4).await.status, OccStatus::Pending);
    assert_eq!(at(s, series.id, now + DAY).await.status, OccStatus::Pending);
    assert_eq!(
        at(s, series.id, now - 2 * HOUR).await.status,
        OccStatus::Completed
    );
    assert_eq!(at(s, queued.id, T0).await.status, OccStatus::Dispatched);
    assert!(s.get_event(queued.id).await.expect("get").is_some());
    assert!(s.get_event(triggered.id).await.expect("get").is_some());
    assert_eq!(status(s, later.id).await, OccStatus::Pending);

    // A second pass finds nothing more.
    assert_eq!(s.purge(now, &cut).await.expect("purge"), Purged::default());
}
