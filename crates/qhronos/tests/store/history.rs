//! History: every event write stores a version in its own transaction, with its author and
//! kind, never a secret; a write that changes nothing stores none; versions outlive a delete and
//! go with the event when retention removes it.

use qhronos::domain::event::EventStatus;
use qhronos::store::*;
use serde_json::json;

use crate::fixtures::*;

crate::conformance!(
    a_create_is_version_one_with_its_author_and_no_secret,
    each_change_is_the_next_version_with_its_kind_and_state,
    a_write_that_changes_nothing_stores_no_version,
    a_restore_is_recorded_as_such,
    a_batch_create_gives_every_event_its_first_version,
    the_gone_pause_is_a_version_by_the_system,
    retention_removes_the_versions_with_their_event,
);

async fn versions(s: &dyn Store, e: uuid::Uuid) -> Vec<EventVersion> {
    s.event_versions(e, 0, 1000).await.expect("event_versions")
}

async fn a_create_is_version_one_with_its_author_and_no_secret(s: &dyn Store) {
    let mut b = body(T0 + HOUR);
    b["hmac_secret"] = json!("whsec_c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1sZWFr");
    b["action"] = json!({"type": "apicall", "params": {"url": "https://example.com/api",
        "headers": {"Authorization": "Bearer header-secret-value"}}});
    let e = event(b);
    s.create_event(&e, &[occ(&e, T0 + HOUR)], None, By::actor("sub:alice"))
        .await
        .expect("create");
    let v = versions(s, e.id).await;
    assert_eq!(v.len(), 1);
    assert_eq!(
        (
            v[0].version,
            v[0].at,
            v[0].actor.as_str(),
            v[0].change.as_str()
        ),
        (1, T0, "sub:alice", "create")
    );
    assert_eq!(v[0].snapshot["name"], json!("conformance"));
    assert_eq!(v[0].snapshot["hmac_secret_set"], json!(true));
    let text = v[0].snapshot.to_string();
    assert!(!text.contains("c2VjcmV0"), "the secret leaked: {text}");
    assert!(
        !text.contains("header-secret-value"),
        "a header leaked: {text}"
    );
    assert_eq!(
        s.event_version(e.id, 1).await.expect("event_version"),
        Some(v[0].clone())
    );
    assert_eq!(s.event_version(e.id, 2).await.expect("event_version"), None);
}

async fn each_change_is_the_next_version_with_its_kind_and_state(s: &dyn Store) {
    let e = hourly(T0, T0 + 2 * HOUR);
    create(s, &e, &occs(&e, &[T0, T0 + HOUR])).await;
    let mut renamed = e.clone();
    renamed.name = "renamed".into();
    renamed.updated_at = T0 + SEC;
    assert!(s
        .update_event(&renamed, None, &[], By::actor("sub:bob"))
        .await
        .expect("update"));
    assert!(s
        .set_paused(e.id, true, None, &[], T0 + 2 * SEC, BY)
        .await
        .expect("pause"));
    assert!(s
        .set_paused(e.id, false, Some(T0 + 2 * HOUR), &[], T0 + 3 * SEC, BY)
        .await
        .expect("resume"));
    assert!(s
        .delete_event(e.id, T0 + 4 * SEC, By::actor("sub:carol"))
        .await
        .expect("delete"));

    let v = versions(s, e.id).await;
    let got: Vec<(i64, i64, &str, &str, &str)> = v
        .iter()
        .map(|v| {
            (
                v.version,
                v.at,
                v.actor.as_str(),
                v.change.as_str(),
                v.snapshot["status"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, T0, "master", "create", "active"),
            (2, T0 + SEC, "sub:bob", "update", "active"),
            (3, T0 + 2 * SEC, "master", "pause", "paused"),
            (4, T0 + 3 * SEC, "master", "resume", "active"),
            (5, T0 + 4 * SEC, "sub:carol", "delete", "deleted"),
        ]
    );
    assert_eq!(v[0].snapshot["name"], json!("conformance"));
    assert_eq!(v[1].snapshot["name"], json!("renamed"));
    // The event is gone from the live reads; its history is not.
    assert!(s.get_event(e.id).await.expect("get").is_none());
    // Paging: versions after 3.
    let page = s.event_versions(e.id, 3, 1).await.expect("page");
    assert_eq!(page.iter().map(|v| v.version).collect::<Vec<_>>(), vec![4]);
}

async fn a_write_that_changes_nothing_stores_no_version(s: &dyn Store) {
    let e = one_time(T0 + HOUR);
    create(s, &e, &[occ(&e, T0 + HOUR)]).await;
    assert!(s
        .set_paused(e.id, true, None, &[], T0 + SEC, BY)
        .await
        .expect("pause"));
    // Paused already: the write succeeds, the state is the same.
    assert!(s
        .set_paused(e.id, true, None, &[], T0 + 2 * SEC, BY)
        .await
        .expect("pause again"));
    let mut same = s.get_event(e.id).await.expect("get").expect("event");
    same.updated_at = T0 + 3 * SEC;
    assert!(s.update_event(&same, None, &[], BY).await.expect("update"));
    let kinds: Vec<String> = versions(s, e.id)
        .await
        .into_iter()
        .map(|v| v.change)
        .collect();
    assert_eq!(kinds, vec!["create", "pause"]);
}

async fn a_restore_is_recorded_as_such(s: &dyn Store) {
    let e = one_time(T0 + HOUR);
    create(s, &e, &[occ(&e, T0 + HOUR)]).await;
    let mut changed = e.clone();
    changed.name = "changed".into();
    assert!(s
        .update_event(&changed, None, &[], BY)
        .await
        .expect("update"));
    let restore = By {
        actor: "sub:dana",
        restores: Some(1),
    };
    assert!(s
        .update_event(&e, None, &[], restore)
        .await
        .expect("restore"));
    let v = versions(s, e.id).await;
    assert_eq!(v.len(), 3);
    assert_eq!(
        (
            v[2].change.as_str(),
            v[2].restored_from,
            v[2].actor.as_str()
        ),
        ("restore", Some(1), "sub:dana")
    );
    assert_eq!(v[2].snapshot, v[0].snapshot);
}

async fn a_batch_create_gives_every_event_its_first_version(s: &dyn Store) {
    let batch: Vec<_> = (0..3)
        .map(|i| {
            let e = one_time(T0 + HOUR + i);
            let o = vec![occ(&e, T0 + HOUR + i)];
            (e, o)
        })
        .collect();
    s.create_events(&batch, By::actor("sub:eve"))
        .await
        .expect("create_events");
    for (e, _) in &batch {
        let v = versions(s, e.id).await;
        assert_eq!(v.len(), 1, "event {}", e.id);
        assert_eq!(
            (v[0].change.as_str(), v[0].actor.as_str()),
            ("create", "sub:eve")
        );
    }
}

async fn the_gone_pause_is_a_version_by_the_system(s: &dyn Store) {
    let e = hourly(T0, T0 + 2 * HOUR);
    create(s, &e, &occs(&e, &[T0, T0 + HOUR])).await;
    let c = claim(s, Claim::at("node-a", 1, T0)).await;
    assert_eq!(c.len(), 1);
    let mut gone = attempted(&c[0], 410, Next::Failed, T0);
    if let Outcome::Attempted { pause_event, .. } = &mut gone {
        *pause_event = Some("the receiver answered 410 Gone".into());
    }
    record(s, "node-a", &[gone], T0 + SEC).await;
    let v = versions(s, e.id).await;
    assert_eq!(v.len(), 2);
    assert_eq!(
        (v[1].actor.as_str(), v[1].change.as_str(), v[1].at),
        ("system", "pause_gone", T0 + SEC)
    );
    assert_eq!(v[1].snapshot["status"], json!("paused"));
    assert_eq!(
        v[1].snapshot["paused_reason"],
        json!("the receiver answered 410 Gone")
    );
}

async fn retention_removes_the_versions_with_their_event(s: &dyn Store) {
    let kept = one_time(T0 + HOUR);
    create(s, &kept, &[occ(&kept, T0 + HOUR)]).await;
    let old = one_time(T0 + HOUR);
    create(s, &old, &[]).await;
    assert!(s.delete_event(old.id, T0 + SEC, BY).await.expect("delete"));
    assert_eq!(versions(s, old.id).await.len(), 2);
    let now = T0 + 30 * DAY;
    let cut = PurgeCutoffs {
        done_before: now - DAY,
        failed_before: now - DAY,
        events_before: now - DAY,
        batch: 100,
        archive: false,
        archive_before: now - 400 * DAY,
    };
    let p = s.purge(now, &cut).await.expect("purge");
    assert_eq!(p.events, 1);
    assert!(versions(s, old.id).await.is_empty());
    assert_eq!(versions(s, kept.id).await.len(), 1);
    let ev = s.get_event(kept.id).await.expect("get").expect("kept");
    assert_eq!(ev.status, EventStatus::Active);
}
