//! The engine's behaviour towards receivers: 410 Gone, Retry-After, isolation of a dead target.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{in_ms, spawn_app, spawn_app_with, webhook_event, Receiver};

#[tokio::test]
async fn gone_ends_retries_at_once_and_pauses_a_recurring_event_with_the_reason() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![410]).await;
    let mut body = webhook_event(&rx.url(), 100);
    body["schedule"] = json!("FREQ=SECONDLY;INTERVAL=1");
    body["retry"] = json!({"max_attempts": 5, "initial_delay": "20ms"});
    let id = app.create(body).await;
    rx.wait_for(1, Duration::from_secs(5)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let failed = loop {
        let (_, v) = app
            .get(&format!("/events/{id}/occurrences?status=failed"))
            .await;
        if let Some(f) = v["data"].as_array().and_then(|a| a.first()) {
            break f.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failed occurrence: {v} {:?}",
            app.get("/status").await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        failed["attempt_count"], 1,
        "410 ends retries at once: {failed}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, e) = app.get(&format!("/events/{id}")).await;
        if e["status"] == "paused" {
            assert!(
                e["paused_reason"]
                    .as_str()
                    .unwrap_or("")
                    .contains("410 Gone"),
                "{e}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not paused: {e}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nothing more is sent to the receiver once it said it is gone...
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(rx.received().len(), 1);
    // ...and resuming clears the reason.
    let (s, e) = app.post(&format!("/events/{id}/resume"), json!({})).await;
    assert_eq!(s, 200, "{e}");
    assert!(e.get("paused_reason").is_none(), "{e}");
}

#[tokio::test]
async fn gone_fails_a_one_time_event_without_pausing_it() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![410]).await;
    let id = app.create(webhook_event(&rx.url(), 50)).await;
    app.wait_occurrences(&id, Duration::from_secs(5), |o| {
        o.first()
            .is_some_and(|o| o["status"] == "failed" && o["attempt_count"] == 1)
    })
    .await;
    let (_, e) = app.get(&format!("/events/{id}")).await;
    assert!(e.get("paused_reason").is_none(), "{e}");
}

#[tokio::test]
async fn retry_after_on_503_sets_the_next_attempt() {
    let app = spawn_app().await;
    let rx = Receiver::start_with_headers(vec![503, 200], vec![("retry-after", "1")]).await;
    let mut body = webhook_event(&rx.url(), 50);
    body["retry"] = json!({"max_attempts": 3, "initial_delay": "10ms", "max_delay": "10s"});
    app.create(body).await;
    let got = rx.wait_for(2, Duration::from_secs(5)).await;
    let gap = got[1].at.as_millisecond() - got[0].at.as_millisecond();
    // The policy alone would retry after ~10 ms; the receiver asked for 1 s.
    assert!(gap >= 1_000, "retried after {gap} ms");
    assert!(gap < 3_000, "retried after {gap} ms");
}

/// A target that accepts connections and never answers.
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    format!("http://{addr}/hook")
}

#[tokio::test]
async fn a_dead_target_does_not_delay_a_healthy_one() {
    let app = spawn_app_with(|c| {
        c.delivery.concurrency = 16;
        c.delivery.per_target_concurrency = 4;
    })
    .await;
    let dead = black_hole().await;
    let healthy = Receiver::start(vec![]).await;
    // 60 deliveries to the dead target first, each hanging until its 5 s timeout...
    for i in 0..60 {
        let mut b = webhook_event(&dead, 200 + i);
        b["retry"] = json!({"timeout": "5s", "max_attempts": 1});
        app.create(b).await;
    }
    // ...then 40 to the healthy one, due a little later.
    let mut due = Vec::new();
    for i in 0..40 {
        let b = json!({
            "name": format!("healthy {i}"),
            "start_time": in_ms(500 + i * 10),
            "webhook": format!("{}?i={i}", healthy.url()),
        });
        let (s, v) = app.post("/events", b).await;
        assert_eq!(s, 201, "{v}");
        due.push(v["start_time"].as_str().unwrap().to_string());
    }
    let got = healthy.wait_for(40, Duration::from_secs(4)).await;
    let mut late: Vec<i64> = got
        .iter()
        .map(|r| {
            let body = r.json();
            let scheduled: jiff::Timestamp =
                body["scheduled_at"].as_str().unwrap().parse().unwrap();
            r.at.as_millisecond() - scheduled.as_millisecond()
        })
        .collect();
    late.sort();
    assert!(late[0] >= 0, "early: {late:?}");
    // Generous for a debug build on a busy machine; before the per-target cap was taken ahead
    // of the global slot, these waited the dead target's whole 5 s timeout.
    assert!(
        *late.last().unwrap() < 500,
        "healthy target delayed: {late:?}"
    );
}

#[tokio::test]
async fn a_batch_is_created_whole_and_its_events_fire() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    let events: Vec<_> = (0..300)
        .map(|i| {
            let mut e = webhook_event(&format!("{}?i={i}", rx.url()), 200 + i);
            e["name"] = json!(format!("batch {i}"));
            e
        })
        .collect();
    let (s, v) = app.post("/events/batch", json!({ "events": events })).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["count"], 300);
    let ids = v["ids"].as_array().unwrap();
    assert_eq!(ids.len(), 300);
    // In the order of the request.
    let (_, first) = app
        .get(&format!("/events/{}", ids[0].as_str().unwrap()))
        .await;
    assert_eq!(first["name"], "batch 0");
    let (_, last) = app
        .get(&format!("/events/{}", ids[299].as_str().unwrap()))
        .await;
    assert_eq!(last["name"], "batch 299");
    rx.wait_for(300, Duration::from_secs(10)).await;
    let (_, audit) = app.get("/audit?action=event.create_batch").await;
    assert_eq!(audit["data"][0]["summary"]["count"], 300, "{audit}");
}

#[tokio::test]
async fn a_batch_with_an_invalid_item_creates_nothing_and_names_each_bad_item() {
    let app = spawn_app().await;
    let good = webhook_event("http://127.0.0.1:9/hook", 60_000);
    let mut no_name = good.clone();
    no_name["name"] = json!("");
    let mut internal = good.clone();
    internal["action"] = json!({"type": "webhook", "params": {"url": "http://10.0.0.1/hook"}});
    let (s, v) = app
        .post(
            "/events/batch",
            json!({"events": [good, no_name, {"name": "x", "nonsense": 1}, internal]}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"], "3 of 4 events are invalid; nothing was created");
    let items = v["items"].as_array().unwrap();
    let indexes: Vec<i64> = items.iter().map(|i| i["index"].as_i64().unwrap()).collect();
    assert_eq!(indexes, [1, 2, 3]);
    assert_eq!(items[0]["status"], 400);
    assert!(
        items[1]["error"].as_str().unwrap().contains("nonsense"),
        "{v}"
    );
    assert_eq!(items[2]["status"], 422);
    let (_, list) = app.get("/events").await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        0,
        "nothing created: {list}"
    );

    let (s, v) = app.post("/events/batch", json!({"events": []})).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"], "events: expected 1 to 1000 events, got 0");
    let many: Vec<_> = (0..1001)
        .map(|_| webhook_event("http://127.0.0.1:9/", 60_000))
        .collect();
    let (s, v) = app.post("/events/batch", json!({ "events": many })).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"], "events: expected 1 to 1000 events, got 1001");
}

#[tokio::test]
async fn a_scoped_token_batch_gets_its_scope_and_cannot_leave_it() {
    let app = spawn_app().await;
    let token = app.token("write", &["team-a"]).await;
    let mut inside = webhook_event("http://127.0.0.1:9/hook", 60_000);
    inside["tags"] = json!(["team-a"]);
    let mut outside = inside.clone();
    outside["tags"] = json!(["team-b"]);
    let (s, v) = app
        .req_as(
            Some(&token),
            "POST",
            "/events/batch",
            Some(json!({"events": [inside.clone(), outside]})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["items"][0]["index"], 1);
    assert_eq!(v["items"][0]["status"], 403);
    let (s, v) = app
        .req_as(
            Some(&token),
            "POST",
            "/events/batch",
            Some(json!({"events": [inside]})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

#[tokio::test]
async fn a_changed_target_applies_to_an_occurrence_already_held_for_firing() {
    let app = spawn_app().await;
    let old = Receiver::start(vec![]).await;
    let new = Receiver::start(vec![]).await;
    // Due in 700 ms: inside the claim horizon, so held in the timer from the create on.
    let id = app.create(webhook_event(&old.url(), 700)).await;
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"action": {"type": "webhook", "params": {"url": new.url()}}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    new.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(old.received().len(), 0, "the old target must not be called");
    assert_eq!(new.received().len(), 1);
}

#[tokio::test]
async fn concurrent_creates_are_each_stored_with_their_audit_line() {
    let app = spawn_app().await;
    let bodies: Vec<_> = (0..60)
        .map(|i| {
            let mut b = webhook_event("http://127.0.0.1:9/hook", 3_600_000 + i);
            b["name"] = json!(format!("c{i}"));
            b
        })
        .collect();
    let calls = bodies.into_iter().map(|b| app.post("/events", b));
    let answers = futures::future::join_all(calls).await;
    let mut ids: Vec<String> = answers
        .iter()
        .map(|(s, v)| {
            assert_eq!(*s, 201, "{v}");
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 60);
    for id in &ids {
        assert_eq!(app.get(&format!("/events/{id}")).await.0, 200);
    }
    let (_, audit) = app.get("/audit?action=event.create&limit=100").await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 60, "{audit}");
}

/// One occurrence with its attempts.
async fn occurrence(app: &crate::helpers::TestApp, id: &str) -> serde_json::Value {
    let (s, o) = app.get(&format!("/occurrences/{id}")).await;
    assert_eq!(s, 200, "{o}");
    o
}

#[tokio::test]
async fn a_pause_holds_an_occurrence_waiting_to_retry_and_resume_continues_it() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![500, 200]).await;
    let mut body = webhook_event(&rx.url(), 50);
    body["retry"] = json!({"backoff": "fixed", "initial_delay": "1s", "max_attempts": 3});
    let id = app.create(body).await;
    // Waiting for its retry (already claimed into the timer, or not yet).
    let occ = app
        .wait_occurrences(&id, Duration::from_secs(5), |l| {
            l.first().is_some_and(|o| {
                o["attempt_count"] == 1 && (o["status"] == "pending" || o["status"] == "scheduled")
            })
        })
        .await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = app.post(&format!("/events/{id}/pause"), json!({})).await;
    assert_eq!(s, 200);
    // Past the retry's time: held, not cancelled, not delivered.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(rx.received().len(), 1, "a paused event must not retry");
    let o = occurrence(&app, &occ).await;
    assert_eq!(o["status"], "pending", "the retry is held: {o}");
    assert_eq!(o["attempt_count"], 1, "{o}");
    // Resume continues it, with its attempt count.
    let (s, _) = app.post(&format!("/events/{id}/resume"), json!({})).await;
    assert_eq!(s, 200);
    rx.wait_for(2, Duration::from_secs(5)).await;
    app.wait_occurrences(&id, Duration::from_secs(5), |l| {
        l.first()
            .is_some_and(|o| o["status"] == "completed" && o["attempt_count"] == 2)
    })
    .await;
}

#[tokio::test]
async fn the_pause_after_410_holds_the_series_retries_and_resume_delivers_them() {
    let app = spawn_app().await;
    // The first instance fails (retry in 2 s), the second answers 410 a second later.
    let rx = Receiver::start(vec![500, 410, 200]).await;
    let mut body = webhook_event(&rx.url(), 100);
    body["schedule"] = json!("FREQ=SECONDLY;INTERVAL=1");
    body["retry"] = json!({"backoff": "fixed", "initial_delay": "2s", "max_attempts": 3});
    let id = app.create(body).await;
    let first = rx.wait_for(1, Duration::from_secs(5)).await[0]
        .header("webhook-id")
        .to_string();
    rx.wait_for(2, Duration::from_secs(5)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, e) = app.get(&format!("/events/{id}")).await;
        if e["status"] == "paused" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not paused: {e}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Past the first instance's retry time: held while paused.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    assert_eq!(rx.received().len(), 2, "nothing is sent while paused");
    let o = occurrence(&app, &first).await;
    assert_eq!(
        (o["status"].as_str(), o["attempt_count"].as_i64()),
        (Some("pending"), Some(1)),
        "the automatic pause must hold the retry: {o}"
    );
    let (s, _) = app.post(&format!("/events/{id}/resume"), json!({})).await;
    assert_eq!(s, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let o = occurrence(&app, &first).await;
        if o["status"] == "completed" {
            assert_eq!(o["attempt_count"], 2, "{o}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not continued: {o}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.req("DELETE", &format!("/events/{id}"), None).await;
}

#[tokio::test]
async fn a_claim_is_renewed_through_an_attempt_longer_than_its_lease() {
    // A one-second lease, an attempt of two and a half: renewal keeps the claim, so the expired
    // lease is never taken over (which would deliver it a second time). (On the embedded store
    // claims last an hour: no other process can take them.)
    let app = spawn_app_with(|c| {
        c.engine.lease = qhronos::domain::duration::Dur::from_secs(1);
        c.engine.claim_horizon = qhronos::domain::duration::Dur::from_millis(500);
    })
    .await;
    let rx = Receiver::start_with_delay(vec![], Duration::from_millis(2_500)).await;
    let id = app.create(webhook_event(&rx.url(), 50)).await;
    app.wait_occurrences(&id, Duration::from_secs(10), |l| {
        l.first().is_some_and(|o| o["status"] == "completed")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 1, "delivered once");
    let (_, l) = app.get(&format!("/events/{id}/occurrences")).await;
    assert_eq!(l["data"][0]["attempt_count"], 1, "{l}");
}
