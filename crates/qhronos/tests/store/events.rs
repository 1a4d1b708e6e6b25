//! Events: idempotent and batch creation, re-plans, pause and resume, deletion, paging.

use std::collections::HashSet;

use qhronos::domain::event::{Event, EventStatus};
use qhronos::domain::occurrence::OccStatus;
use qhronos::domain::occurrence::Occurrence;
use qhronos::store::*;
use serde_json::json;

use crate::fixtures::*;

/// Which events a listing filter must return.
type Keep = Box<dyn Fn(&Event) -> bool>;

crate::conformance!(
    an_idempotency_key_used_twice_returns_the_first_event_and_inserts_nothing,
    create_events_is_all_or_none,
    a_replan_cancels_only_unattempted_occurrences_after_its_time,
    pause_and_resume_revive_the_cancelled_instants,
    delete_event_hides_the_event_and_cancels_what_has_not_fired,
    list_events_pages_by_before_id_without_gaps_or_repeats,
    text_of_any_kind_is_stored_exactly_by_multi_row_writes,
);

/// Multi-row writes carry their rows as one parameter (JSON on SQLite, arrays on PostgreSQL):
/// quotes, backslashes, JSON-looking text, non-ASCII text and control characters come back
/// exactly, through the batch path (`create_events`) and the group-committed single create;
/// on SQLite a NUL character too (SQLite's JSON functions before 3.45 cut a string at one;
/// PostgreSQL's text type refuses it).
async fn text_of_any_kind_is_stored_exactly_by_multi_row_writes(s: &dyn Store) {
    let mut names = vec![
        r#"quote " and 'single' and \ backslash"#.to_string(),
        r#"["looks", {"like": "json"}]"#.to_string(),
        "grüße 日本語 🎉 tab\there\nnewline".to_string(),
        "\u{1}\u{1f} low controls".to_string(),
    ];
    if s.kind() == "sqlite" {
        names.push("before\u{0}after".to_string());
    }
    let mut batch = Vec::new();
    for n in &names {
        let mut b = body(T0 + HOUR);
        b["name"] = json!(n);
        b["description"] = json!(format!("d: {n}"));
        b["metadata"] = json!({ "k": n });
        let e = event(b);
        batch.push((e.clone(), vec![occ(&e, T0 + HOUR)]));
    }
    s.create_events(&batch, BY).await.expect("create_events");
    let single = batch[0].0.clone();
    let mut one = single.clone();
    one.id = uuid::Uuid::now_v7();
    one.name = names.last().cloned().unwrap_or_default();
    create(s, &one, &[occ(&one, T0 + HOUR)]).await;
    for (e, _) in batch.iter().chain(std::iter::once(&(one.clone(), vec![]))) {
        let got = s.get_event(e.id).await.expect("get").expect("stored");
        assert_eq!(got.name, e.name);
        assert_eq!(got.description, e.description);
        assert_eq!(got.metadata, e.metadata);
        assert_eq!(of_event(s, e.id).await.len(), 1, "{}", e.name);
    }
}

async fn an_idempotency_key_used_twice_returns_the_first_event_and_inserts_nothing(s: &dyn Store) {
    let first = one_time(T0 + HOUR);
    let key = Some(("caller:key-1", "hash-1"));
    let c = s
        .create_event(&first, &[occ(&first, T0 + HOUR)], key, BY)
        .await
        .expect("create");
    assert!(matches!(c, Created::New), "{c:?}");

    // The retry: another id (the API makes a new one per request), the same key.
    let retry = one_time(T0 + HOUR);
    let c = s
        .create_event(&retry, &[occ(&retry, T0 + HOUR)], key, BY)
        .await
        .expect("create");
    match c {
        Created::Existing {
            event,
            request_hash,
        } => {
            assert_eq!(event.id, first.id);
            assert_eq!(request_hash.as_deref(), Some("hash-1"));
        }
        Created::New => panic!("the same key created a second event"),
    }
    assert!(s.get_event(retry.id).await.expect("get").is_none());
    assert!(of_event(s, retry.id).await.is_empty());
    assert_eq!(of_event(s, first.id).await.len(), 1);

    // Another key is another event.
    let other = one_time(T0 + HOUR);
    let c = s
        .create_event(&other, &[], Some(("caller:key-2", "hash-1")), BY)
        .await
        .expect("create");
    assert!(matches!(c, Created::New));
}

async fn create_events_is_all_or_none(s: &dyn Store) {
    let existing = one_time(T0);
    create(s, &existing, &[occ(&existing, T0)]).await;
    let a = one_time(T0);
    let b = one_time(T0);
    // The third repeats an event that exists: the batch fails as a whole.
    let batch = vec![
        (a.clone(), occs(&a, &[T0, T0 + MIN])),
        (b.clone(), occs(&b, &[T0])),
        (existing.clone(), occs(&existing, &[T0 + HOUR])),
    ];
    assert!(s.create_events(&batch, BY).await.is_err());
    for e in [&a, &b] {
        assert!(s.get_event(e.id).await.expect("get").is_none());
        assert!(of_event(s, e.id).await.is_empty());
    }
    assert_eq!(of_event(s, existing.id).await.len(), 1);

    let batch = vec![
        (a.clone(), occs(&a, &[T0, T0 + MIN])),
        (b.clone(), occs(&b, &[T0])),
    ];
    s.create_events(&batch, BY).await.expect("create_events");
    let got = s.get_event(a.id).await.expect("get").expect("a");
    assert_eq!(got.name, a.name);
    assert_eq!(of_event(s, a.id).await.len(), 2);
    assert_eq!(of_event(s, b.id).await.len(), 1);
}

/// `update_event` with `replan_after`: attempted occurrences and those at or before that time
/// stay; the rest are cancelled, and the new plan is materialised (an instant of the new plan
/// that was just cancelled is revived, keeping its id).
async fn a_replan_cancels_only_unattempted_occurrences_after_its_time(s: &dyn Store) {
    let now = T0;
    let mut e = hourly(T0 - HOUR, T0 + 4 * HOUR);
    let times = [T0 - HOUR, T0, T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR];
    create(s, &e, &occs(&e, &times)).await;
    // Everything up to T0 + 2 h is claimed (early, for the test): the first completes, T0 + 1 h
    // fails once (a retry), the rest are released unattempted.
    let c = claim(s, Claim::at("node-a", 1, T0 + 2 * HOUR).lease(MIN)).await;
    assert_eq!(c.len(), 4);
    let by_time = |t| {
        c.iter()
            .find(|c| c.occ.scheduled_at == t)
            .expect("claimed")
            .clone()
    };
    let done = by_time(T0 - HOUR);
    let retried = by_time(T0 + HOUR);
    let outcomes = [
        attempted(&done, 200, Next::Completed, now),
        attempted(&retried, 500, Next::Retry(T0 + 5 * HOUR), now),
    ];
    record(s, "node-a", &outcomes, now).await;
    let released = [(by_time(T0).occ.id, 1), (by_time(T0 + 2 * HOUR).occ.id, 1)];
    assert_eq!(
        s.release_claims("node-a", &released, now)
            .await
            .expect("release"),
        2
    );
    let before: Vec<_> = of_event(s, e.id).await;

    // The new plan: every 30 minutes from T0 + 30 min; T0 + 3 h is in both plans.
    e.schedule = Some("FREQ=MINUTELY;INTERVAL=30".into());
    e.next_fire_at = Some(T0 + 4 * HOUR);
    e.updated_at = now;
    let new_times = [T0 + 30 * MIN, T0 + 90 * MIN, T0 + 3 * HOUR];
    assert!(s
        .update_event(&e, Some(now), &occs(&e, &new_times), BY)
        .await
        .expect("update"));

    let after = of_event(s, e.id).await;
    let find = |t| after.iter().find(|o| o.scheduled_at == t).expect("row");
    let old_id = |t| {
        before
            .iter()
            .find(|o: &&Occurrence| o.scheduled_at == t)
            .expect("row")
            .id
    };
    assert_eq!(find(T0 - HOUR).status, OccStatus::Completed);
    assert_eq!(
        find(T0).status,
        OccStatus::Pending,
        "not after the re-plan time"
    );
    let r = find(T0 + HOUR);
    assert_eq!(
        (r.status, r.attempts),
        (OccStatus::Pending, 1),
        "attempted: kept"
    );
    assert_eq!(r.next_attempt_at, Some(T0 + 5 * HOUR));
    assert_eq!(find(T0 + 2 * HOUR).status, OccStatus::Cancelled);
    let revived = find(T0 + 3 * HOUR);
    assert_eq!(revived.status, OccStatus::Pending);
    assert_eq!(revived.id, old_id(T0 + 3 * HOUR), "one row per instant");
    assert_eq!(find(T0 + 30 * MIN).status, OccStatus::Pending);
    assert_eq!(find(T0 + 90 * MIN).status, OccStatus::Pending);
    assert_eq!(after.len(), 7);
    let ev = s.get_event(e.id).await.expect("get").expect("event");
    assert_eq!(ev.schedule.as_deref(), Some("FREQ=MINUTELY;INTERVAL=30"));

    // Without `replan_after` nothing is cancelled or inserted.
    e.name = "renamed".into();
    assert!(s
        .update_event(&e, None, &occs(&e, &[T0 + 10 * HOUR]), BY)
        .await
        .expect("update"));
    let again = of_event(s, e.id).await;
    assert_eq!(again.len(), 7);
    assert_eq!(
        again
            .iter()
            .filter(|o| o.status == OccStatus::Cancelled)
            .count(),
        1
    );
}

/// Pausing cancels what has not fired; resuming (or `insert_occurrences`) revives those
/// instants in place, but not one a user cancelled, and never makes a second row.
async fn pause_and_resume_revive_the_cancelled_instants(s: &dyn Store) {
    let e = hourly(T0 + HOUR, T0 + 4 * HOUR);
    let times = [T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR];
    create(s, &e, &occs(&e, &times)).await;
    let user_cancelled = at(s, e.id, T0 + 3 * HOUR).await.id;
    assert_eq!(
        s.cancel_occurrence(user_cancelled, T0)
            .await
            .expect("cancel"),
        OccChange::Done
    );
    let ids_before: HashSet<_> = of_event(s, e.id).await.iter().map(|o| o.id).collect();

    assert!(s
        .set_paused(e.id, true, None, &[], T0, BY)
        .await
        .expect("pause"));
    let ev = s.get_event(e.id).await.expect("get").expect("event");
    assert_eq!(ev.status, EventStatus::Paused);
    for o in of_event(s, e.id).await {
        assert_eq!(o.status, OccStatus::Cancelled, "{o:?}");
    }

    // Resume with a fresh plan of the same instants (new ids, as the API plans them).
    let plan = occs(&e, &times);
    assert!(s
        .set_paused(e.id, false, Some(T0 + 4 * HOUR), &plan[..1], T0 + MIN, BY)
        .await
        .expect("resume"));
    let ev = s.get_event(e.id).await.expect("get").expect("event");
    assert_eq!(ev.status, EventStatus::Active);
    assert_eq!(ev.next_fire_at, Some(T0 + 4 * HOUR));
    assert_eq!(at(s, e.id, T0 + HOUR).await.status, OccStatus::Pending);
    assert_eq!(
        at(s, e.id, T0 + 2 * HOUR).await.status,
        OccStatus::Cancelled
    );

    // insert_occurrences revives the one the pause cancelled, not the user's cancellation,
    // and inserts nothing for an instant that is pending already.
    let n = s
        .insert_occurrences(&plan, T0 + 2 * MIN)
        .await
        .expect("insert");
    assert_eq!(n, 1, "only T0 + 2 h comes back");
    assert_eq!(at(s, e.id, T0 + 2 * HOUR).await.status, OccStatus::Pending);
    assert_eq!(status(s, user_cancelled).await, OccStatus::Cancelled);
    let ids_after: HashSet<_> = of_event(s, e.id).await.iter().map(|o| o.id).collect();
    assert_eq!(
        ids_after, ids_before,
        "revived in place: no second row per instant"
    );
    assert_eq!(
        s.insert_occurrences(&plan, T0 + 3 * MIN)
            .await
            .expect("insert"),
        0
    );
}

async fn delete_event_hides_the_event_and_cancels_what_has_not_fired(s: &dyn Store) {
    let mut b = body(T0);
    b["schedule"] = json!("FREQ=HOURLY");
    b["tags"] = json!(["red"]);
    let mut e = event(b);
    e.next_fire_at = Some(T0 + 2 * HOUR);
    create(s, &e, &occs(&e, &[T0, T0 + HOUR])).await;
    let c = claim(s, Claim::at("node-a", 1, T0)).await;
    record(
        s,
        "node-a",
        &[attempted(&c[0], 200, Next::Completed, T0)],
        T0,
    )
    .await;

    assert!(s.delete_event(e.id, T0 + MIN, BY).await.expect("delete"));
    assert!(s.get_event(e.id).await.expect("get").is_none());
    let listed = s
        .list_events(&EventFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list");
    assert!(listed.iter().all(|x| x.id != e.id));
    assert_eq!(at(s, e.id, T0).await.status, OccStatus::Completed);
    assert_eq!(at(s, e.id, T0 + HOUR).await.status, OccStatus::Cancelled);
    // The tags stay readable for scope checks on its old occurrences.
    assert_eq!(
        s.event_tags(e.id).await.expect("tags"),
        Some(vec!["red".to_string()])
    );
    assert!(!s
        .delete_event(e.id, T0 + 2 * MIN, BY)
        .await
        .expect("delete"));
    assert!(s
        .events_to_expand(T0 + DAY, 10)
        .await
        .expect("expand")
        .is_empty());
    // A deleted event's pause or update finds nothing.
    assert!(!s
        .set_paused(e.id, true, None, &[], T0 + 3 * MIN, BY)
        .await
        .expect("pause"));
    assert!(!s.update_event(&e, None, &[], BY).await.expect("update"));
}

async fn list_events_pages_by_before_id_without_gaps_or_repeats(s: &dyn Store) {
    let mut batch = Vec::new();
    for i in 0..23 {
        let mut b = body(T0 + i * MIN);
        b["name"] = json!(format!("event {i}"));
        if i % 3 == 0 {
            b["tags"] = json!(["red", "x"]);
        } else if i % 3 == 1 {
            b["tags"] = json!(["blue"]);
        }
        if i % 4 == 0 {
            b["status"] = json!("paused");
        }
        let e = event(b);
        let o = if e.status == EventStatus::Active {
            occs(&e, &[T0 + i * MIN])
        } else {
            Vec::new()
        };
        batch.push((e, o));
    }
    s.create_events(&batch, BY).await.expect("create_events");
    let all: Vec<_> = batch.iter().map(|(e, _)| e.clone()).collect();

    let cases: Vec<(&str, EventFilter, Keep)> = vec![
        ("all", EventFilter::default(), Box::new(|_| true)),
        (
            "tag red",
            EventFilter {
                tags: vec!["red".into()],
                ..Default::default()
            },
            Box::new(|e| e.tags.contains(&"red".to_string())),
        ),
        (
            "tags red or blue",
            EventFilter {
                tags: vec!["red".into(), "blue".into()],
                ..Default::default()
            },
            Box::new(|e| !e.tags.is_empty()),
        ),
        (
            "paused",
            EventFilter {
                status: Some(EventStatus::Paused),
                ..Default::default()
            },
            Box::new(|e| e.status == EventStatus::Paused),
        ),
        (
            "paused and red",
            EventFilter {
                status: Some(EventStatus::Paused),
                tags: vec!["red".into()],
                ..Default::default()
            },
            Box::new(|e| e.status == EventStatus::Paused && e.tags.contains(&"red".to_string())),
        ),
    ];
    for (what, filter, keep) in cases {
        let expected: HashSet<_> = all.iter().filter(|e| keep(e)).map(|e| e.id).collect();
        assert!(!expected.is_empty(), "{what}: the fixture has such events");
        for limit in [1, 4, 50] {
            let mut seen = Vec::new();
            let mut f = EventFilter {
                limit,
                ..filter.clone()
            };
            loop {
                let page = s.list_events(&f).await.expect("list");
                assert!(page.len() as i64 <= limit);
                seen.extend(page.iter().map(|e| e.id));
                match page.last() {
                    Some(last) if page.len() as i64 == limit => f.before_id = Some(last.id),
                    _ => break,
                }
            }
            assert!(
                seen.windows(2).all(|w| w[0] > w[1]),
                "{what}: newest (highest id) first"
            );
            assert_each_once(&seen, &expected, &format!("{what}, pages of {limit}"));
        }
    }
}
