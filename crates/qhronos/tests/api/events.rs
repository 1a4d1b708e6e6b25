use serde_json::json;

use crate::helpers::{spawn_app, webhook_event, TOKEN};

#[tokio::test]
async fn every_route_but_health_and_status_needs_the_master_token() {
    let app = spawn_app().await;
    for path in ["/events", "/occurrences"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let r = app
            .client
            .get(app.url(path))
            .bearer_auth("wrong-token-wrong-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["error"].as_str().unwrap().contains("Bearer"));
    }
    for path in ["/health", "/status"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = app
        .client
        .get(app.url("/events"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn status_reports_version_heartbeat_and_counts_but_no_secret() {
    let app = spawn_app().await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let v: serde_json::Value = app
        .client
        .get(app.url("/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["scheduler"]["healthy"], true);
    assert!(v["occurrences"]["pending"].is_i64());
    let text = v.to_string();
    assert!(!text.contains(TOKEN) && !text.contains("whsec_"), "{text}");
}

#[tokio::test]
async fn create_get_update_list_and_delete_an_event() {
    let app = spawn_app().await;
    let mut body = webhook_event("http://127.0.0.1:9/hook", 3_600_000);
    body["tags"] = json!(["a", "b"]);
    body["description"] = json!("first");
    let id = app.create(body).await;
    let (s, e) = app.get(&format!("/events/{id}")).await;
    assert_eq!(s, 200);
    assert_eq!(e["name"], "test event");
    assert_eq!(e["status"], "active");
    assert_eq!(e["timezone"], "UTC");
    assert_eq!(
        e["action"],
        json!({"type": "webhook", "params": {"url": "http://127.0.0.1:9/hook"}})
    );

    // PUT is a partial update: untouched fields stay; null clears a field.
    let (s, e) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"name": "renamed", "description": null})),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["name"], "renamed");
    assert_eq!(e["description"], serde_json::Value::Null);
    assert_eq!(e["tags"], json!(["a", "b"]));

    let (_, list) = app.get("/events?tags=b").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (_, list) = app.get("/events?tags=zzz").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    let (_, list) = app.get("/events?q=renam").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (_, list) = app.get("/events?status=paused").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);

    assert_eq!(
        app.req("DELETE", &format!("/events/{id}"), None).await.0,
        204
    );
    assert_eq!(app.get(&format!("/events/{id}")).await.0, 404);
    assert_eq!(
        app.req("DELETE", &format!("/events/{id}"), None).await.0,
        404
    );
}

#[tokio::test]
async fn lists_are_cursor_paginated_newest_first() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut b = webhook_event("http://127.0.0.1:9/hook", 3_600_000);
        b["name"] = json!(format!("e{i}"));
        ids.push(app.create(b).await);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/events?limit=2&cursor={c}"),
            None => "/events?limit=2".to_string(),
        };
        let (s, page) = app.get(&path).await;
        assert_eq!(s, 200);
        for e in page["data"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);

    let (_, occ) = app.get("/occurrences?limit=2").await;
    assert_eq!(occ["data"].as_array().unwrap().len(), 2);
    let c = occ["next_cursor"].as_str().unwrap();
    let (_, occ2) = app.get(&format!("/occurrences?limit=10&cursor={c}")).await;
    assert_eq!(occ2["data"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn the_idempotency_key_returns_the_same_event() {
    let app = spawn_app().await;
    let body = webhook_event("http://127.0.0.1:9/hook", 3_600_000);
    let send = |b: serde_json::Value, key: &'static str| {
        app.client
            .post(app.url("/events"))
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", key)
            .json(&b)
            .send()
    };
    let r1 = send(body.clone(), "k-1").await.unwrap();
    assert_eq!(r1.status(), 201);
    let e1: serde_json::Value = r1.json().await.unwrap();
    let r2 = send(body.clone(), "k-1").await.unwrap();
    assert_eq!(r2.status(), 200);
    let e2: serde_json::Value = r2.json().await.unwrap();
    assert_eq!(e1["id"], e2["id"]);
    let (_, list) = app.get("/events").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    // The same key with another body is a conflict, not a silent reuse.
    let mut other = body.clone();
    other["name"] = json!("other");
    let r3 = send(other, "k-1").await.unwrap();
    assert_eq!(r3.status(), 409);
    // A new key is a new event.
    assert_eq!(send(body, "k-2").await.unwrap().status(), 201);
}

#[tokio::test]
async fn the_legacy_webhook_fields_map_to_a_webhook_action() {
    let app = spawn_app().await;
    for field in ["webhook", "webhook_url"] {
        let (s, e) = app
            .post("/events", json!({"name": "legacy", "start_time": "2030-01-01T00:00:00Z", field: "https://example.com/hook"}))
            .await;
        assert_eq!(s, 201, "{e}");
        assert_eq!(
            e["action"],
            json!({"type": "webhook", "params": {"url": "https://example.com/hook"}})
        );
    }
}

#[tokio::test]
async fn events_and_previews_say_their_schedule_in_words_with_the_zone() {
    let app = spawn_app().await;
    let (s, e) = app
        .post(
            "/events",
            json!({
                "name": "standup",
                "start_time": "2030-03-04T09:00:00+01:00",
                "timezone": "Europe/Berlin",
                "schedule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
                "action": {"type": "webhook", "params": {"url": "http://127.0.0.1:9/x"}},
            }),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["schedule_text"], "every weekday at 09:00, Europe/Berlin");
    let (_, one) = app
        .post(
            "/events",
            json!({
                "name": "once",
                "start_time": "2030-03-04T18:30:00Z",
                "timezone": "America/New_York",
                "action": {"type": "webhook", "params": {"url": "http://127.0.0.1:9/x"}},
            }),
        )
        .await;
    assert_eq!(
        one["schedule_text"],
        "once, at 2030-03-04 13:30, America/New_York"
    );
    let (s, p) = app
        .post(
            "/schedules/preview",
            json!({
                "start_time": "2030-03-29T02:30:00+01:00",
                "timezone": "Europe/Berlin",
                "schedule": "FREQ=DAILY;COUNT=3",
            }),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        p["schedule_text"],
        "every day at 02:30, 3 times, Europe/Berlin"
    );
    // 2030-03-31 is the spring-forward day in Berlin: 02:30 does not exist and shifts to 03:30.
    assert_eq!(
        p["occurrences_local"],
        json!([
            "2030-03-29T02:30:00+01:00",
            "2030-03-30T02:30:00+01:00",
            "2030-03-31T03:30:00+02:00"
        ])
    );
    assert_eq!(p["occurrences"][2], "2030-03-31T01:30:00Z");
}

#[tokio::test]
async fn start_in_fires_after_a_delay_from_now_and_is_stored_as_the_instant() {
    let app = spawn_app().await;
    let rx = crate::helpers::Receiver::start(vec![]).await;
    let url = format!("http://{}/hook", rx.addr);
    let before = jiff::Timestamp::now();
    let (s, e) = app
        .post(
            "/events",
            json!({"name": "soon", "start_in": "300ms", "action": {"type": "webhook", "params": {"url": url}}}),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    let at: jiff::Timestamp = e["start_time"].as_str().unwrap().parse().unwrap();
    let delay = at.duration_since(before).as_millis();
    assert!(
        (300..5_000).contains(&delay),
        "start_time {at} is {delay} ms after the request"
    );
    let got = rx.wait_for(1, std::time::Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);

    let (s, e) = app
        .post(
            "/events",
            json!({"name": "x", "start_in": "20m", "start_time": "2030-01-01T00:00:00Z", "action": {"type": "webhook", "params": {"url": "http://127.0.0.1:9/x"}}}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(e["error"].as_str().unwrap().contains("start_in"), "{e}");
    let (s, e) = app
        .post(
            "/events",
            json!({"name": "x", "start_in": "20 minutes", "action": {"type": "webhook", "params": {"url": "http://127.0.0.1:9/x"}}}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(e["error"].as_str().unwrap().starts_with("start_in:"), "{e}");
}

#[tokio::test]
async fn lists_show_each_events_next_run_and_last_outcome() {
    let app = spawn_app().await;
    let rx = crate::helpers::Receiver::start(vec![]).await;
    let done = app
        .create(json!({"name": "done", "start_in": "100ms", "action": {"type": "webhook", "params": {"url": rx.url()}}}))
        .await;
    rx.wait_for(1, std::time::Duration::from_secs(10)).await;
    let later = app
        .create(webhook_event("http://127.0.0.1:9/x", 3_600_000))
        .await;
    // The outcome is written a moment after the delivery: wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let list = loop {
        let (_, list) = app.get("/events").await;
        let d = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == done.as_str())
            .cloned();
        if d.as_ref().is_some_and(|d| !d["last_outcome"].is_null())
            || std::time::Instant::now() > deadline
        {
            break list;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let by_id = |id: &str| {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .cloned()
            .unwrap()
    };
    let d = by_id(&done);
    assert_eq!(d["last_outcome"]["status"], "completed", "{d}");
    assert!(d["next_run_at"].is_null(), "{d}");
    let l = by_id(&later);
    assert!(l["last_outcome"].is_null(), "{l}");
    assert_eq!(l["next_run_at"], l["start_time"], "{l}");
    let (_, one) = app.get(&format!("/events/{later}")).await;
    assert_eq!(one["next_run_at"], l["start_time"]);
    // Paused: nothing is coming until it is resumed.
    app.post(&format!("/events/{later}/pause"), json!({})).await;
    let (_, one) = app.get(&format!("/events/{later}")).await;
    assert!(one["next_run_at"].is_null(), "{one}");
}
