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
