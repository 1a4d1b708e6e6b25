//! The expander's reads and writes: `events_to_expand` and the generation-fenced
//! `save_expansion`.

use std::collections::HashSet;

use qhronos::domain::event::EventStatus;
use qhronos::domain::occurrence::OccStatus;
use qhronos::store::*;

use crate::fixtures::*;

crate::conformance!(
    events_to_expand_returns_only_active_events_due_by_until,
    a_stale_expansion_writes_nothing,
);

async fn events_to_expand_returns_only_active_events_due_by_until(s: &dyn Store) {
    let due = hourly(T0, T0 + HOUR);
    let later = hourly(T0, T0 + 5 * HOUR);
    let paused = hourly(T0, T0 + HOUR);
    let deleted = hourly(T0, T0 + HOUR);
    let once = one_time(T0 + HOUR);
    for e in [&due, &later, &paused, &deleted, &once] {
        create(s, e, &[]).await;
    }
    assert!(s
        .set_paused(paused.id, true, None, &[], T0, BY)
        .await
        .expect("pause"));
    assert!(s.delete_event(deleted.id, T0, BY).await.expect("delete"));

    let got = s
        .events_to_expand(T0 + 2 * HOUR, 100)
        .await
        .expect("expand");
    let ids: HashSet<_> = got.iter().map(|(e, _)| e.id).collect();
    assert_eq!(ids, HashSet::from([due.id]));
    assert_eq!(got[0].0.next_fire_at, Some(T0 + HOUR));

    let got = s
        .events_to_expand(T0 + 5 * HOUR, 100)
        .await
        .expect("expand");
    let ids: HashSet<_> = got.iter().map(|(e, _)| e.id).collect();
    assert_eq!(
        ids,
        HashSet::from([due.id, later.id]),
        "`until` is inclusive"
    );
    let one = s.events_to_expand(T0 + 5 * HOUR, 1).await.expect("expand");
    assert_eq!(one.len(), 1, "limit");
}

/// Work read before a pause or a re-plan is stale: it writes nothing and says so; work read
/// after it is written.
async fn a_stale_expansion_writes_nothing(s: &dyn Store) {
    let mut e = hourly(T0, T0 + HOUR);
    create(s, &e, &[occ(&e, T0)]).await;
    let read = s.events_to_expand(T0 + 2 * HOUR, 10).await.expect("expand");
    assert_eq!(read.len(), 1);
    let stale_gen = read[0].1.gen;

    // Re-planned meanwhile (the API's update with a changed rule).
    e.updated_at = T0 + SEC;
    assert!(s
        .update_event(&e, Some(T0 + SEC), &[], BY)
        .await
        .expect("update"));
    let work = occs(&e, &[T0 + HOUR, T0 + 2 * HOUR]);
    let missed = [(
        occ(&e, T0 - HOUR),
        "older than the catch-up window".to_string(),
    )];
    let x = Expansion {
        gen: stale_gen,
        occurrences: &work,
        missed: &missed,
        next_fire_at: Some(T0 + 3 * HOUR),
        mark: None,
    };
    assert!(!s
        .save_expansion(e.id, &x, T0 + 2 * SEC)
        .await
        .expect("save"));
    assert_eq!(of_event(s, e.id).await.len(), 1, "nothing inserted");
    let ev = s.get_event(e.id).await.expect("get").expect("event");
    assert_eq!(ev.next_fire_at, Some(T0 + HOUR), "watermark unchanged");

    // A pause moves the generation too.
    let read = s.events_to_expand(T0 + 2 * HOUR, 10).await.expect("expand");
    let gen = read[0].1.gen;
    assert_ne!(gen, stale_gen);
    assert!(s
        .set_paused(e.id, true, None, &[], T0 + 3 * SEC, BY)
        .await
        .expect("pause"));
    assert!(s
        .set_paused(e.id, false, Some(T0 + HOUR), &[], T0 + 4 * SEC, BY)
        .await
        .expect("resume"));
    let x = Expansion { gen, ..x };
    assert!(!s
        .save_expansion(e.id, &x, T0 + 5 * SEC)
        .await
        .expect("save"));
    assert_eq!(of_event(s, e.id).await.len(), 1, "nothing inserted");

    // Read again, the work is current and written.
    let read = s.events_to_expand(T0 + 2 * HOUR, 10).await.expect("expand");
    let x = Expansion {
        gen: read[0].1.gen,
        mark: Some((T0 + 2 * HOUR, 3)),
        ..x
    };
    assert!(s
        .save_expansion(e.id, &x, T0 + 6 * SEC)
        .await
        .expect("save"));
    let ev = s.get_event(e.id).await.expect("get").expect("event");
    assert_eq!(ev.next_fire_at, Some(T0 + 3 * HOUR));
    assert_eq!(ev.status, EventStatus::Active);
    assert_eq!(at(s, e.id, T0 + HOUR).await.status, OccStatus::Pending);
    assert_eq!(at(s, e.id, T0 + 2 * HOUR).await.status, OccStatus::Pending);
    let m = at(s, e.id, T0 - HOUR).await;
    assert_eq!(m.status, OccStatus::Missed);
    assert_eq!(
        m.last_error.as_deref(),
        Some("older than the catch-up window")
    );
    let read = s.events_to_expand(T0 + 2 * HOUR, 10).await.expect("expand");
    assert!(read.is_empty(), "the watermark moved past `until`");
    let read = s.events_to_expand(T0 + 3 * HOUR, 10).await.expect("expand");
    assert_eq!(
        read[0].1.mark,
        Some((T0 + 2 * HOUR, 3)),
        "the count mark is kept"
    );
}
