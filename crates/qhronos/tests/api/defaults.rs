//! Defaults that must not trap a user: an empty schedule, the master token's rate limit.

use serde_json::json;

use crate::helpers::{in_ms, spawn_app, spawn_app_with, webhook_event, TOKEN};

#[tokio::test]
async fn an_empty_schedule_is_a_400_naming_schedule_not_a_one_time_event() {
    let app = spawn_app().await;
    for empty in ["", "   ", "\t"] {
        let mut b = webhook_event("http://127.0.0.1:9/h", 60_000);
        b["schedule"] = json!(empty);
        let (s, v) = app.post("/events", b).await;
        assert_eq!(s, 400, "{empty:?}: {v}");
        assert!(v["error"].as_str().unwrap().starts_with("schedule:"), "{v}");
        let (s, v) = app
            .post(
                "/schedules/preview",
                json!({"start_time": in_ms(0), "schedule": empty}),
            )
            .await;
        assert_eq!(s, 400, "preview {empty:?}: {v}");
    }
    let mut b = webhook_event("http://127.0.0.1:9/h", 60_000);
    b["schedule"] = json!("FREQ=DAILY");
    let id = app.create(b).await;
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"schedule": ""})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    // null still clears the rule.
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"schedule": null})),
        )
        .await;
    assert_eq!((s, &v["schedule"]), (200, &json!(null)), "{v}");
}

#[tokio::test]
async fn a_script_creating_events_one_by_one_with_the_master_token_is_not_rate_limited() {
    let app = spawn_app_with(|c| {
        c.rate_limit = Default::default();
    })
    .await;
    // The old default (burst 100, then 10/s) refused this after the first hundred.
    for i in 0..300 {
        let r = app
            .client
            .post(app.url("/events"))
            .bearer_auth(TOKEN)
            .json(&webhook_event("http://127.0.0.1:9/h", 3_600_000))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "request {i}");
    }
    // Issued tokens keep a limit: high enough for an import.
    let t = app.token("write", &[]).await;
    let r = app
        .client
        .get(app.url("/events"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-ratelimit-limit"], "1000");
}
