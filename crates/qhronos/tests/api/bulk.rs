//! Bulk operations end to end: re-drive every failed occurrence of a filter, pause, resume
//! and delete every event of a filter — scoped to the caller's tags, dry runs that only count,
//! one audit entry per request.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{in_ms, spawn_app, webhook_event, Receiver, TestApp};

async fn scoped(app: &TestApp, sub: &str, scope: &[&str]) -> String {
    let (s, v) = app
        .post(
            "/tokens",
            json!({"sub": sub, "access": "read_write", "scope": scope, "expires_at": in_ms(3_600_000)}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    v["token"].as_str().unwrap().to_string()
}

async fn audit(app: &TestApp, action: &str) -> Vec<Value> {
    let (s, v) = app.get(&format!("/audit?action={action}")).await;
    assert_eq!(s, 200, "{v}");
    v["data"].as_array().cloned().unwrap_or_default()
}

async fn status_of(app: &TestApp, id: &str) -> Value {
    let (_, e) = app.get(&format!("/events/{id}")).await;
    e["status"].clone()
}

#[tokio::test]
async fn retry_redrives_every_failed_occurrence_of_the_filter_in_one_audited_request() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![500, 500, 500, 200]).await;
    let mut ids = Vec::new();
    for tag in ["a", "a", "b"] {
        let mut body = webhook_event(&rx.url(), 50);
        body["tags"] = json!([tag]);
        body["retry"] = json!({"max_attempts": 1});
        ids.push(app.create(body).await);
    }
    for id in &ids {
        app.wait_occurrences(id, Duration::from_secs(10), |o| {
            o.first().is_some_and(|o| o["status"] == "failed")
        })
        .await;
    }
    let (s, v) = app
        .post(
            "/occurrences/retry",
            json!({"status": "failed", "tags": ["a"], "dry_run": true}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"matched": 2, "retried": 0}));
    assert!(
        audit(&app, "occurrence.retry_bulk").await.is_empty(),
        "a dry run is no write"
    );

    let (s, v) = app
        .post(
            "/occurrences/retry",
            json!({"status": "failed", "tags": ["a"]}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"matched": 2, "retried": 2}));
    for id in &ids[..2] {
        app.wait_occurrences(id, Duration::from_secs(10), |o| {
            o.first().is_some_and(|o| o["status"] == "completed")
        })
        .await;
    }
    let (_, b) = app.get(&format!("/events/{}/occurrences", ids[2])).await;
    assert_eq!(b["data"][0]["status"], "failed", "{b}");
    let entries = audit(&app, "occurrence.retry_bulk").await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["summary"]["matched"], 2);
    assert_eq!(entries[0]["summary"]["retried"], 2);
    assert_eq!(entries[0]["summary"]["filter"]["tags"], json!(["a"]));

    // A scoped token's filter without tags means "all my tags".
    let b_only = scoped(&app, "bea", &["b"]).await;
    let (s, v) = app
        .req_as(
            Some(&b_only),
            "POST",
            "/occurrences/retry",
            Some(json!({"status": "failed", "dry_run": true})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["matched"], 1);
    let (s, v) = app
        .req_as(
            Some(&b_only),
            "POST",
            "/occurrences/retry",
            Some(json!({"status": "failed", "tags": ["a"]})),
        )
        .await;
    assert_eq!((s, v), (200, json!({"matched": 0, "retried": 0})));
    for bad in [
        json!({"status": "completed"}),
        json!({"status": "failed", "from": "yesterday"}),
        json!({"status": "failed", "event_id": "nope"}),
        json!({"status": "failed", "bogus": 1}),
    ] {
        assert_eq!(
            app.post("/occurrences/retry", bad.clone()).await.0,
            400,
            "{bad}"
        );
    }
    let reader = app.token("read", &[]).await;
    let (s, _) = app
        .req_as(
            Some(&reader),
            "POST",
            "/occurrences/retry",
            Some(json!({"status": "failed"})),
        )
        .await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn bulk_pause_resume_and_delete_act_on_the_filter_inside_the_scope() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for (name, tag) in [("nightly backup", "a"), ("report", "a"), ("other", "b")] {
        let mut body = webhook_event("https://example.com/hook", 3_600_000);
        body["name"] = json!(name);
        body["schedule"] = json!("FREQ=HOURLY");
        body["tags"] = json!([tag]);
        ids.push(app.create(body).await);
    }
    let ann = scoped(&app, "ann", &["a"]).await;
    let call = |path: &'static str, body: Value| {
        let app = &app;
        let ann = ann.clone();
        async move { app.req_as(Some(&ann), "POST", path, Some(body)).await }
    };

    let (s, v) = call("/events/pause", json!({"status": "active"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"matched": 2, "changed": 2}));
    assert_eq!(status_of(&app, &ids[0]).await, "paused");
    assert_eq!(status_of(&app, &ids[1]).await, "paused");
    assert_eq!(
        status_of(&app, &ids[2]).await,
        "active",
        "outside ann's scope"
    );
    let (_, occ) = app
        .get(&format!("/events/{}/occurrences?status=pending", ids[0]))
        .await;
    assert_eq!(
        occ["data"],
        json!([]),
        "the pause cancelled what had not fired"
    );
    // Each event keeps its own version, by its author.
    let (_, v) = app.get(&format!("/events/{}/versions", ids[0])).await;
    assert_eq!(v[1]["change"], "pause");
    assert_eq!(v[1]["actor"], "sub:ann");

    // Paused already: matched, not changed.
    let (_, v) = call("/events/pause", json!({"tags": ["a"]})).await;
    assert_eq!(v, json!({"matched": 2, "changed": 0}));

    let (s, v) = call("/events/resume", json!({"q": "BACKUP"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"matched": 1, "changed": 1}));
    assert_eq!(status_of(&app, &ids[0]).await, "active");
    // Resumed as the single resume does: planned from now.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, occ) = app
            .get(&format!("/events/{}/occurrences?status=pending", ids[0]))
            .await;
        if !occ["data"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "not re-planned: {occ}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (_, v) = call("/events/delete", json!({"tags": ["a"], "dry_run": true})).await;
    assert_eq!(v, json!({"matched": 2, "changed": 0}));
    assert_eq!(status_of(&app, &ids[1]).await, "paused");
    let (s, v) = call(
        "/events/delete",
        json!({"ids": [ids[1].clone(), ids[2].clone()]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"matched": 1, "changed": 1}), "b is not ann's");
    assert_eq!(app.get(&format!("/events/{}", ids[1])).await.0, 404);
    assert_eq!(status_of(&app, &ids[2]).await, "active");

    for action in ["event.pause_bulk", "event.resume_bulk", "event.delete_bulk"] {
        let entries = audit(&app, action).await;
        let want = if action == "event.pause_bulk" { 2 } else { 1 };
        assert_eq!(entries.len(), want, "{action}: {entries:#?}");
        assert!(entries[0]["summary"]["filter"].is_object(), "{entries:#?}");
    }
    let entries = audit(&app, "event.delete_bulk").await;
    assert_eq!(entries[0]["summary"]["changed"], 1);

    for bad in [
        json!({}),
        json!({"dry_run": true}),
        json!({"status": "gone"}),
        json!({"ids": ["x"]}),
        json!({"tags": ["a"], "what": 1}),
    ] {
        assert_eq!(
            app.post("/events/delete", bad.clone()).await.0,
            400,
            "{bad}"
        );
    }
    // A scoped token naming only foreign tags touches nothing.
    let (_, v) = call("/events/pause", json!({"tags": ["b"]})).await;
    assert_eq!(v, json!({"matched": 0, "changed": 0}));
    assert_eq!(status_of(&app, &ids[2]).await, "active");
}

#[tokio::test]
async fn a_bulk_pause_pages_through_more_events_than_one_chunk() {
    let app = spawn_app().await;
    let events: Vec<Value> = (0..600)
        .map(|i| {
            let mut b = webhook_event("https://example.com/hook", 3_600_000 + i);
            b["tags"] = json!(["many"]);
            b
        })
        .collect();
    let (s, v) = app.post("/events/batch", json!({ "events": events })).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = app.post("/events/pause", json!({"tags": ["many"]})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"matched": 600, "changed": 600}));
    let (_, v) = app
        .post("/events/resume", json!({"tags": ["many"], "dry_run": true}))
        .await;
    assert_eq!(v, json!({"matched": 600, "changed": 0}));
    let (_, page) = app.get("/events?status=active&tags=many").await;
    assert_eq!(page["data"], json!([]));
}
