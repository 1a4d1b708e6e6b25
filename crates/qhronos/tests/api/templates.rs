//! Template budgets: one per action and one per batch request, spent off the async workers.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{in_ms, spawn_app};

/// 20,000 loops of 2,000 turns: each is a small fraction of the action budget, together they
/// are 200 times over it.
fn heavy_body() -> Value {
    let loops: Vec<Value> = (0..20_000)
        .map(|_| json!("{% for i in range(2000) %}{% endfor %}"))
        .collect();
    json!({ "items": loops })
}

#[tokio::test]
async fn an_action_with_very_many_templates_is_refused_quickly_while_the_server_answers_others() {
    let app = spawn_app().await;
    let event = json!({
        "name": "many templates",
        "start_time": in_ms(60_000),
        "action": {"type": "webhook", "params": {"url": "https://example.com/", "body": heavy_body()}},
    });
    let started = Instant::now();
    let creates: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, body) = (app.client.clone(), app.url("/events"), event.clone());
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .bearer_auth(crate::helpers::TOKEN)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    // The test's runtime has one thread, shared with the server: a render on it would hold
    // this request until every template was done.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let asked = Instant::now();
    let (s, _) = app.get("/health").await;
    assert_eq!(s, 200);
    let health = asked.elapsed();
    for c in creates {
        let (s, v) = c.await.unwrap();
        assert_eq!(s, 400, "{v}");
        let msg = v["error"].as_str().unwrap();
        assert!(msg.starts_with("action.params.body.items["), "{msg}");
        assert!(msg.contains("budget"), "{msg}");
    }
    let all = started.elapsed();
    assert!(health < Duration::from_secs(1), "/health took {health:?}");
    assert!(all < Duration::from_secs(5), "refusing took {all:?}");

    // A change to such a body is refused the same way.
    let id = app
        .create(json!({"name": "small", "start_time": in_ms(60_000), "action": {"type": "webhook", "params": {"url": "https://example.com/"}}}))
        .await;
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"action": {"type": "webhook", "params": {"url": "https://example.com/", "body": heavy_body()}}})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("budget"), "{v}");
}

#[tokio::test]
async fn a_batch_shares_one_template_budget_and_the_400_names_the_item() {
    let app = spawn_app().await;
    // 30,000 instructions each: fine alone, 3,000,000 together (the batch budget is 2,000,000).
    let item = json!({
        "name": "loop",
        "start_time": in_ms(60_000),
        "action": {"type": "webhook", "params": {"url": "https://example.com/", "body": "{% for i in range(10000) %}{% endfor %}"}},
    });
    let (s, v) = app.post("/events", item.clone()).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = app
        .post("/events/batch", json!({"events": vec![item.clone(); 100]}))
        .await;
    assert_eq!(s, 400, "{v}");
    let failed = &v["items"][0];
    let index = failed["index"].as_u64().unwrap();
    assert!((60..=70).contains(&index), "{v}");
    let msg = failed["error"].as_str().unwrap();
    assert!(
        msg.starts_with("action.params.body") && msg.contains("batch request"),
        "{msg}"
    );
    let (s, v) = app.get("/events?limit=1000").await;
    assert_eq!(s, 200);
    assert_eq!(
        v["data"].as_array().unwrap().len(),
        1,
        "nothing of the batch was created"
    );
    let (s, v) = app
        .post("/events/batch", json!({"events": vec![item; 10]}))
        .await;
    assert_eq!(s, 201, "{v}");
}
