//! Pull claims are settled only with their receipt: not by another token in scope, not by the
//! same consumer after its claim expired and the occurrence was claimed again.

use qhronos::domain::duration::Dur;
use serde_json::{json, Value};

use crate::helpers::{in_ms, spawn_app_with, TestApp};

async fn claim_one(app: &TestApp, token: Option<&str>, query: &str) -> Value {
    let path = format!("/queues/{query}");
    let (s, v) = match token {
        Some(t) => app.req_as(Some(t), "POST", &path, None).await,
        None => app.req("POST", &path, None).await,
    };
    assert_eq!(s, 200, "{v}");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{v}");
    data[0].clone()
}

#[tokio::test]
async fn ack_and_nack_need_the_receipt_of_the_current_claim() {
    let app = spawn_app_with(|c| {
        c.pull.sweep_interval = Dur::from_millis(50);
        c.pull.poll_interval = Dur::from_millis(20);
    })
    .await;
    app.create(json!({
        "name": "job",
        "start_time": in_ms(0),
        "tags": ["jobs"],
        "action": {"type": "pull", "params": {"queue": "work"}},
        "retry": {"max_attempts": 5},
    }))
    .await;
    let consumer_a = app.token("read_write", &["jobs"]).await;
    let bystander = app.token("read_write", &["jobs"]).await;

    let first = claim_one(&app, Some(&consumer_a), "work/claim?wait=3s&visibility=1s").await;
    let occ = first["occurrence_id"].as_str().unwrap().to_string();
    let receipt_a = first["receipt"].as_str().unwrap().to_string();
    assert!(receipt_a.len() >= 32, "{first}");
    let ack = format!("/occurrences/{occ}/ack");
    let nack = format!("/occurrences/{occ}/nack");

    // No receipt: refused before anything changes.
    for body in [None, Some(json!({}))] {
        let (s, v) = app.req_as(Some(&bystander), "POST", &ack, body).await;
        assert_eq!(s, 400, "{v}");
        assert!(v["error"].as_str().unwrap().contains("receipt"), "{v}");
    }
    // Another token in scope, guessing: 409 for ack and nack, and the claim stands.
    for path in [&ack, &nack] {
        let (s, v) = app
            .req_as(
                Some(&bystander),
                "POST",
                path,
                Some(json!({"receipt": "0".repeat(32)})),
            )
            .await;
        assert_eq!(s, 409, "{path}: {v}");
        assert!(v["error"].as_str().unwrap().contains("receipt"), "{v}");
    }
    let (_, o) = app.get(&format!("/occurrences/{occ}")).await;
    assert_eq!(o["status"], "dispatched");

    // Consumer A is late: its claim expires and consumer B claims the occurrence again (the
    // long poll returns once the claim has expired).
    let second = claim_one(&app, None, "work/claim?wait=5s").await;
    assert_eq!(second["occurrence_id"], occ.as_str());
    let receipt_b = second["receipt"].as_str().unwrap().to_string();
    assert_ne!(receipt_a, receipt_b, "each claim has its own receipt");
    for path in [&ack, &nack] {
        let (s, v) = app
            .req_as(
                Some(&consumer_a),
                "POST",
                path,
                Some(json!({"receipt": receipt_a})),
            )
            .await;
        assert_eq!(s, 409, "a stale receipt settles nothing: {v}");
    }
    // B's receipt settles B's claim, once.
    let (s, o) = app.post(&ack, json!({"receipt": receipt_b})).await;
    assert_eq!(s, 200, "{o}");
    assert_eq!(o["status"], "completed");
    let (s, _) = app.post(&ack, json!({"receipt": receipt_b})).await;
    assert_eq!(s, 409, "a settled claim is not settled twice");
}
