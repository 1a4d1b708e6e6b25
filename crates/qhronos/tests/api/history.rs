//! Event history end to end: every change is a version with its diff, never a secret; deleted
//! events keep their history; a restore is an update (validated, re-planned, audited); scoped
//! tokens see only their tags' histories.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{in_ms, spawn_app, webhook_event, Receiver, TestApp};

const SECRET: &str = "whsec_aGlzdG9yeS1tdXN0LW5ldmVyLWtlZXAtdGhpcw==";

async fn versions(app: &TestApp, id: &str) -> Vec<Value> {
    let (s, v) = app.get(&format!("/events/{id}/versions")).await;
    assert_eq!(s, 200, "{v}");
    v.as_array().cloned().expect("an array")
}

fn changes(v: &[Value]) -> Vec<&str> {
    v.iter().map(|v| v["change"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn every_change_is_a_version_with_its_diff_and_no_secret_even_after_delete() {
    let app = spawn_app().await;
    let mut body = webhook_event("https://example.com/hook", 3_600_000);
    body["schedule"] = json!("FREQ=HOURLY");
    body["hmac_secret"] = json!(SECRET);
    let id = app.create(body).await;
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // A PUT that changes nothing is no new version.
    let (s, _) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(s, 200);
    for step in ["pause", "resume"] {
        let (s, v) = app.post(&format!("/events/{id}/{step}"), json!({})).await;
        assert_eq!(s, 200, "{step}: {v}");
    }
    let (s, _) = app.req("DELETE", &format!("/events/{id}"), None).await;
    assert_eq!(s, 204);
    let (s, _) = app.get(&format!("/events/{id}")).await;
    assert_eq!(s, 404);

    let v = versions(&app, &id).await;
    assert_eq!(
        changes(&v),
        vec!["create", "update", "pause", "resume", "delete"],
        "{v:#?}"
    );
    let numbers: Vec<i64> = v.iter().map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(numbers, vec![1, 2, 3, 4, 5]);
    assert!(v.iter().all(|v| v["actor"] == "master"), "{v:#?}");
    assert_eq!(v[0]["diff"]["name"], json!([null, "test event"]));
    assert_eq!(v[0]["diff"]["hmac_secret_set"], json!([null, true]));
    assert_eq!(v[1]["diff"], json!({"name": ["test event", "renamed"]}));
    assert_eq!(v[2]["diff"], json!({"status": ["active", "paused"]}));
    assert_eq!(v[4]["diff"], json!({"status": ["active", "deleted"]}));
    let text = serde_json::to_string(&v).unwrap();
    assert!(
        !text.contains("aGlzdG9y"),
        "a secret in the history: {text}"
    );

    let (s, one) = app.get(&format!("/events/{id}/versions/2")).await;
    assert_eq!(s, 200, "{one}");
    assert_eq!(one["change"], "update");
    assert_eq!(one["event"]["name"], "renamed");
    assert_eq!(one["event"]["schedule"], "FREQ=HOURLY");
    assert!(!one.to_string().contains("aGlzdG9y"));
    // Paging: one version after the second, with its diff against the second.
    let (s, page) = app
        .get(&format!("/events/{id}/versions?after=2&limit=1"))
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page, json!([v[2].clone()]));
    for (path, want) in [
        (format!("/events/{id}/versions/9"), 404),
        (format!("/events/{id}/versions/x"), 404),
        ("/events/not-an-id/versions".to_string(), 404),
        (format!("/events/{id}/versions?after=-1"), 400),
        (format!("/events/{id}/versions?bogus=1"), 400),
    ] {
        assert_eq!(app.get(&path).await.0, want, "{path}");
    }
    // History is read-only once the event is deleted.
    let (s, e) = app
        .post(&format!("/events/{id}/versions/1/restore"), json!({}))
        .await;
    assert_eq!(s, 409, "{e}");
}

#[tokio::test]
async fn a_restore_makes_an_old_version_current_again_replanned_and_audited() {
    let app = spawn_app().await;
    let mut body = webhook_event("https://example.com/hook", 3_600_000);
    body["schedule"] = json!("FREQ=HOURLY");
    body["metadata"] = json!({"k": 1});
    let id = app.create(body).await;
    let (_, first) = app.get(&format!("/events/{id}/occurrences")).await;
    let first_times: Vec<Value> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["scheduled_at"].clone())
        .collect();
    assert!(!first_times.is_empty(), "{first}");
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(
                json!({"name": "daily", "schedule": "FREQ=DAILY", "metadata": {"k": 2},
                "start_time": in_ms(2 * 86_400_000)}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let pending = |v: &Value| -> Vec<Value> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["scheduled_at"].clone())
            .collect()
    };
    let (_, occ) = app
        .get(&format!("/events/{id}/occurrences?status=pending"))
        .await;
    assert!(pending(&occ).is_empty(), "moved two days out: {occ}");

    let (s, e) = app
        .post(&format!("/events/{id}/versions/1/restore"), json!({}))
        .await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["name"], "test event");
    assert_eq!(e["schedule"], "FREQ=HOURLY");
    assert_eq!(e["metadata"], json!({"k": 1}));
    assert_eq!(e["hmac_secret_set"], true, "the secret stays: {e}");
    // Re-planned as an update: the first hourly instance is pending again.
    let (_, occ) = app
        .get(&format!("/events/{id}/occurrences?status=pending"))
        .await;
    assert_eq!(pending(&occ), first_times, "the hourly plan is back: {occ}");

    let v = versions(&app, &id).await;
    assert_eq!(changes(&v), vec!["create", "update", "restore"]);
    assert_eq!(v[2]["restored_from"], 1);
    assert_eq!(
        v[2]["diff"]["schedule"],
        json!(["FREQ=DAILY", "FREQ=HOURLY"])
    );
    let (_, audit) = app.get("/audit?action=event.restore").await;
    let entry = &audit["data"][0];
    assert_eq!(entry["target"], id.as_str(), "{audit}");
    assert_eq!(entry["summary"]["version"], 1, "{audit}");

    // A read token may read the history, not restore it.
    let reader = app.token("read", &[]).await;
    let path = format!("/events/{id}/versions");
    assert_eq!(app.req_as(Some(&reader), "GET", &path, None).await.0, 200);
    let restore = format!("/events/{id}/versions/2/restore");
    assert_eq!(
        app.req_as(Some(&reader), "POST", &restore, Some(json!({})))
            .await
            .0,
        403
    );
    let (s, _) = app
        .post(&format!("/events/{id}/versions/7/restore"), json!({}))
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn a_restore_refuses_a_header_whose_value_history_never_kept() {
    let app = spawn_app().await;
    let id = app
        .create(json!({
            "name": "api",
            "start_time": in_ms(3_600_000),
            "action": {"type": "apicall", "params": {"url": "https://example.com/api",
                "headers": {"X-Key": "header-value-never-in-history"}}},
        }))
        .await;
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"action": {"type": "apicall", "params": {"url": "https://example.com/api", "headers": {}}}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, e) = app
        .post(&format!("/events/{id}/versions/1/restore"), json!({}))
        .await;
    assert_eq!(s, 409, "{e}");
    assert!(e["error"].as_str().unwrap().contains("X-Key"), "{e}");
    let text = serde_json::to_string(&versions(&app, &id).await).unwrap();
    assert!(!text.contains("header-value-never"), "{text}");
}

#[tokio::test]
async fn a_scoped_token_reads_and_restores_only_histories_of_its_tags() {
    let app = spawn_app().await;
    let mut a = webhook_event("https://example.com/hook", 3_600_000);
    a["tags"] = json!(["team-a"]);
    let mut b = a.clone();
    b["tags"] = json!(["team-b"]);
    let a = app.create(a).await;
    let b = app.create(b).await;
    let (s, v) = app
        .post(
            "/tokens",
            json!({"sub": "ann", "access": "read_write", "scope": ["team-a"], "expires_at": in_ms(3_600_000)}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let ann = v["token"].as_str().unwrap().to_string();
    let (s, _) = app
        .req_as(
            Some(&ann),
            "PUT",
            &format!("/events/{a}"),
            Some(json!({"name": "ann's"})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, v) = app
        .req_as(Some(&ann), "GET", &format!("/events/{a}/versions"), None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v[1]["actor"], "sub:ann", "{v}");
    for path in [
        format!("/events/{b}/versions"),
        format!("/events/{b}/versions/1"),
    ] {
        assert_eq!(
            app.req_as(Some(&ann), "GET", &path, None).await.0,
            404,
            "{path}"
        );
    }
    let restore = format!("/events/{b}/versions/1/restore");
    assert_eq!(
        app.req_as(Some(&ann), "POST", &restore, Some(json!({})))
            .await
            .0,
        404
    );
    let restore = format!("/events/{a}/versions/1/restore");
    assert_eq!(
        app.req_as(Some(&ann), "POST", &restore, Some(json!({})))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn a_receiver_that_is_gone_pauses_the_event_as_a_version_by_the_system() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![410]).await;
    let mut body = webhook_event(&rx.url(), 100);
    body["schedule"] = json!("FREQ=SECONDLY;INTERVAL=1");
    let id = app.create(body).await;
    rx.wait_for(1, Duration::from_secs(5)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let v = loop {
        let v = versions(&app, &id).await;
        if v.len() >= 2 {
            break v;
        }
        assert!(Instant::now() < deadline, "no 410 version: {v:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(changes(&v), vec!["create", "pause_gone"]);
    assert_eq!(v[1]["actor"], "system");
    assert_eq!(v[1]["diff"]["status"], json!(["active", "paused"]));
    assert!(v[1]["diff"]["paused_reason"][1].is_string(), "{v:#?}");
}
