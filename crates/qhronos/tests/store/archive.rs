//! The archive: `purge` copies what it removes (occurrences, their attempts, events) into the
//! archive in the same transaction, reads find them there with the live routes' filters, a
//! snapshot never holds a secret, and archived rows go after `archive_before`.

use qhronos::domain::occurrence::OccStatus;
use qhronos::store::*;
use serde_json::json;

use crate::fixtures::*;

crate::conformance!(
    purge_moves_finished_work_into_the_archive,
    an_event_still_live_keeps_its_archived_occurrences_apart,
    archived_occurrences_filter_by_time_tags_and_event_and_page,
    archived_rows_expire_after_archive_for,
    purge_without_archive_keeps_no_copy,
);

fn cutoffs(now: Millis, archive: bool) -> PurgeCutoffs {
    PurgeCutoffs {
        done_before: now - DAY,
        failed_before: now - DAY,
        events_before: now - DAY,
        batch: 2,
        archive,
        archive_before: now - 400 * DAY,
    }
}

type Millis = i64;

/// A one-time apicall event at `at` with a secret header and tags.
fn secret_event(at: Millis, tags: &[&str]) -> qhronos::domain::event::Event {
    let mut b = body(at);
    b["action"] = json!({"type": "apicall", "params": {
        "method": "POST", "url": "https://example.com/api",
        "headers": {"Authorization": "Bearer s3cr3t"}}});
    b["hmac_secret"] = json!("whsec-very-secret");
    b["tags"] = json!(tags);
    event(b)
}

/// Claims everything due at `at` and completes it with a 200 attempt.
async fn complete_due(s: &dyn Store, token: i64, at: Millis) {
    let c = claim(s, Claim::at("node-a", token, at)).await;
    let outcomes: Vec<Outcome> = c
        .iter()
        .map(|c| attempted(c, 200, Next::Completed, at))
        .collect();
    record(s, "node-a", &outcomes, at).await;
}

async fn archived(s: &dyn Store, f: ArchiveFilter) -> Vec<ArchivedOccurrence> {
    s.list_archived(&ArchiveFilter { limit: 100, ..f })
        .await
        .expect("list_archived")
}

async fn purge_moves_finished_work_into_the_archive(s: &dyn Store) {
    let now = T0 + 30 * DAY;
    let e = secret_event(T0, &["billing"]);
    let o = occ(&e, T0);
    create(s, &e, &[o]).await;
    complete_due(s, 1, T0).await;
    let (live, attempts) = get(s, o.id).await;
    assert_eq!(live.status, OccStatus::Completed);

    let p = s.purge(now, &cutoffs(now, true)).await.expect("purge");
    assert_eq!((p.occurrences_done, p.events), (1, 1));
    // Gone from the hot tables…
    assert!(s.get_occurrence(o.id).await.expect("get").is_none());
    assert!(s.get_event(e.id).await.expect("get").is_none());
    // …and in the archive, as it was.
    let a = archived(s, ArchiveFilter::default()).await;
    assert_eq!(a.len(), 1);
    let a = &a[0];
    assert_eq!((a.id, a.event_id, a.scheduled_at), (o.id, e.id, T0));
    assert_eq!(a.status, OccStatus::Completed);
    assert_eq!(a.attempt_count, 1);
    assert_eq!(a.event_name.as_deref(), Some("conformance"));
    assert_eq!(a.tags, vec!["billing".to_string()]);
    assert_eq!(a.completed_at, live.completed_at);
    assert_eq!(a.archived_at, now);
    let at = s.archived_attempts(&[o.id]).await.expect("attempts");
    assert_eq!(at.len(), 1);
    assert_eq!(at[0].0, o.id);
    assert_eq!(at[0].1.status_code, attempts[0].status_code);
    assert_eq!(at[0].1.response, attempts[0].response);
    let (ev, sum) = s
        .get_archived_event(e.id)
        .await
        .expect("get_archived_event")
        .expect("archived event");
    assert_eq!(ev.removed_at, Some(now));
    assert_eq!(ev.status, "inactive");
    assert_eq!(ev.tags, vec!["billing".to_string()]);
    assert_eq!(sum.occurrences, 1);
    assert_eq!(sum.by_status.get("completed"), Some(&1));
    assert_eq!(sum.attempts, 1);
    assert_eq!(sum.first_scheduled_at, Some(T0));
    // Never a secret.
    let text = ev.snapshot.to_string();
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(!text.contains("whsec-very-secret"), "{text}");
    assert_eq!(
        ev.snapshot["action"]["params"]["headers"]["Authorization"],
        "***"
    );
    assert_eq!(ev.snapshot["hmac_secret_set"], true);
    // A second pass has nothing more to move.
    let p = s.purge(now, &cutoffs(now, true)).await.expect("purge");
    assert_eq!(p, Purged::default());
    assert_eq!(archived(s, ArchiveFilter::default()).await.len(), 1);
}

async fn an_event_still_live_keeps_its_archived_occurrences_apart(s: &dyn Store) {
    let now = T0 + 30 * DAY;
    let series = hourly(T0, now + 2 * DAY);
    create(s, &series, &occs(&series, &[T0, now + DAY])).await;
    complete_due(s, 1, T0).await;
    let p = s.purge(now, &cutoffs(now, true)).await.expect("purge");
    assert_eq!((p.occurrences_done, p.events), (1, 0));
    // The live event and its future occurrence are untouched.
    assert!(s.get_event(series.id).await.expect("get").is_some());
    assert_eq!(of_event(s, series.id).await.len(), 1);
    let (ev, sum) = s
        .get_archived_event(series.id)
        .await
        .expect("get")
        .expect("snapshot");
    assert_eq!(ev.removed_at, None);
    assert_eq!(ev.status, "active");
    assert_eq!(sum.occurrences, 1);
    assert!(s
        .get_archived_event(uuid::Uuid::now_v7())
        .await
        .expect("get")
        .is_none());
}

async fn archived_occurrences_filter_by_time_tags_and_event_and_page(s: &dyn Store) {
    let now = T0 + 30 * DAY;
    let a = secret_event(T0, &["a"]);
    let b = secret_event(T0 + HOUR, &["b", "c"]);
    let series = hourly(T0, now + 2 * DAY);
    create(s, &a, &[occ(&a, T0)]).await;
    create(s, &b, &[occ(&b, T0 + HOUR)]).await;
    create(
        s,
        &series,
        &occs(&series, &[T0, T0 + 2 * HOUR, T0 + 3 * HOUR]),
    )
    .await;
    complete_due(s, 1, T0 + 3 * HOUR).await;
    let p = s.purge(now, &cutoffs(now, true)).await.expect("purge");
    assert_eq!(p.occurrences_done, 5);

    let all = archived(s, ArchiveFilter::default()).await;
    let times: Vec<Millis> = all.iter().map(|o| o.scheduled_at).collect();
    assert_eq!(times, vec![T0 + 3 * HOUR, T0 + 2 * HOUR, T0 + HOUR, T0, T0]);
    let by_tag = archived(
        s,
        ArchiveFilter {
            tags: vec!["c".into(), "a".into()],
            ..Default::default()
        },
    )
    .await;
    let mut got: Vec<_> = by_tag.iter().map(|o| o.event_id).collect();
    got.sort();
    let mut want = vec![a.id, b.id];
    want.sort();
    assert_eq!(got, want);
    let of_series = archived(
        s,
        ArchiveFilter {
            event_id: Some(series.id),
            from: Some(T0 + HOUR),
            to: Some(T0 + 2 * HOUR),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(of_series.len(), 1);
    assert_eq!(of_series[0].scheduled_at, T0 + 2 * HOUR);
    // Pages of two, through the two equal times, without gaps or repeats.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .list_archived(&ArchiveFilter {
                limit: 2,
                before,
                ..Default::default()
            })
            .await
            .expect("page");
        seen.extend(page.iter().map(|o| o.id));
        match page.last() {
            Some(l) if page.len() == 2 => before = Some((l.scheduled_at, l.id)),
            _ => break,
        }
    }
    assert_eq!(seen, all.iter().map(|o| o.id).collect::<Vec<_>>());
}

async fn archived_rows_expire_after_archive_for(s: &dyn Store) {
    let now = T0 + 30 * DAY;
    let e = one_time(T0);
    let o = occ(&e, T0);
    create(s, &e, &[o]).await;
    complete_due(s, 1, T0).await;
    s.purge(now, &cutoffs(now, true)).await.expect("purge");
    // Not yet: archived at `now`, the cut-off is just before it.
    let mut c = cutoffs(now + DAY, true);
    c.archive_before = now;
    let p = s.purge(now + DAY, &c).await.expect("purge");
    assert_eq!(p, Purged::default());
    assert_eq!(archived(s, ArchiveFilter::default()).await.len(), 1);
    c.archive_before = now + 1;
    let p = s.purge(now + DAY, &c).await.expect("purge");
    assert_eq!(
        (p.archive_occurrences_expired, p.archive_events_expired),
        (1, 1)
    );
    assert!(archived(s, ArchiveFilter::default()).await.is_empty());
    assert!(s
        .archived_attempts(&[o.id])
        .await
        .expect("attempts")
        .is_empty());
    assert!(s.get_archived_event(e.id).await.expect("get").is_none());
}

async fn purge_without_archive_keeps_no_copy(s: &dyn Store) {
    let now = T0 + 30 * DAY;
    let e = one_time(T0);
    create(s, &e, &[occ(&e, T0)]).await;
    complete_due(s, 1, T0).await;
    let p = s.purge(now, &cutoffs(now, false)).await.expect("purge");
    assert_eq!((p.occurrences_done, p.events), (1, 1));
    assert!(archived(s, ArchiveFilter::default()).await.is_empty());
    assert!(s.get_archived_event(e.id).await.expect("get").is_none());
}
