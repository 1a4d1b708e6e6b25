use serde_json::json;

use crate::helpers::{spawn_app, TOKEN};

/// Each bad input: the body, the status expected and a piece of the message.
#[tokio::test]
async fn bad_input_gets_a_clear_error_never_a_500() {
    let app = spawn_app().await;
    let ok = json!({"name": "x", "start_time": "2030-01-01T00:00:00Z", "webhook": "https://example.com/h"});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = ok.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases: Vec<(serde_json::Value, u16, &str)> = vec![
        (without("name"), 400, "name is required"),
        (with("name", json!("  ")), 400, "name is required"),
        (without("start_time"), 400, "start_time is required"),
        (
            with("start_time", json!("tomorrow at 9")),
            400,
            "not an RFC 3339 time",
        ),
        (
            with("start_time", json!("2030-01-01 09:00")),
            400,
            "has no offset",
        ),
        (without("webhook"), 400, "action is required"),
        (
            json!({"name": "x", "start_time": "2030-01-01T00:00:00Z", "action": {"type": "carrier-pigeon", "params": {}}}),
            400,
            "action.type 'carrier-pigeon' is unknown",
        ),
        (
            json!({"name": "x", "start_time": "2030-01-01T00:00:00Z", "action": {"type": "webhook", "params": {"url": "ftp://h/x"}}}),
            400,
            "scheme 'ftp' is not allowed",
        ),
        (
            json!({"name": "x", "start_time": "2030-01-01T00:00:00Z", "action": {"type": "webhook", "params": {}}}),
            400,
            "action.params.url is required",
        ),
        (with("webhook", json!("not a url")), 400, "not a valid URL"),
        (
            with("webhook", json!("file:///etc/passwd")),
            400,
            "scheme 'file' is not allowed",
        ),
        (
            with("schedule", json!("FREQ=FORTNIGHTLY")),
            400,
            "FORTNIGHTLY",
        ),
        (
            with("schedule", json!("FREQ=DAILY;INTERVAL=0")),
            400,
            "INTERVAL",
        ),
        (
            with("schedule", json!("FREQ=YEARLY;BYMONTH=13")),
            400,
            "BYMONTH",
        ),
        (
            with("schedule", json!({"frequency": "daily", "interval": 0})),
            400,
            "nterval",
        ),
        (
            with("schedule", json!({"frequency": "daily", "every": 2})),
            400,
            "every",
        ),
        (with("timezone", json!("Mars/Olympus")), 400, "Mars/Olympus"),
        (with("colour", json!("blue")), 400, "unknown field `colour`"),
        (
            with("metadata", json!([1, 2])),
            400,
            "metadata: expected a JSON object",
        ),
        (with("tags", json!("a")), 400, "invalid type"),
        (
            with("retry", json!({"max_attempts": 0})),
            400,
            "retry.max_attempts",
        ),
        (
            with("retry", json!({"timeout": "5 minutes"})),
            400,
            "not a duration",
        ),
        (
            with("retry", json!({"timeout": "5m"})),
            400,
            "retry.timeout",
        ),
        (
            with("misfire", json!({"policy": "sometimes"})),
            400,
            "unknown variant",
        ),
        (with("status", json!("sleeping")), 400, "status 'sleeping'"),
        (with("hmac_secret", json!("")), 400, "hmac_secret"),
    ];
    for (body, status, msg) in cases {
        let (s, v) = app.post("/events", body.clone()).await;
        let err = v["error"].as_str().unwrap_or_default();
        assert_eq!(s, status, "{body} -> {v}");
        assert!(err.contains(msg), "{body}: expected '{msg}' in '{err}'");
    }
}

#[tokio::test]
async fn malformed_json_empty_bodies_and_huge_bodies_are_refused_plainly() {
    let app = spawn_app().await;
    let post = |b: Vec<u8>| {
        app.client
            .post(app.url("/events"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(b)
            .send()
    };
    let r = post(b"{\"name\": ".to_vec()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("malformed JSON"));
    let r = post(Vec::new()).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = post(b"[1,2]".to_vec()).await.unwrap();
    assert_eq!(r.status(), 400);
    let mut big = b"{\"name\": \"".to_vec();
    big.extend(std::iter::repeat_n(b'a', 1_100_000));
    big.extend(b"\"}");
    let r = post(big).await.unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("1 MiB"));
}

#[tokio::test]
async fn unknown_ids_are_404_on_every_verb() {
    let app = spawn_app().await;
    let ghost = "01900000-0000-7000-8000-000000000000";
    for (m, p) in [
        ("GET", format!("/events/{ghost}")),
        ("PUT", format!("/events/{ghost}")),
        ("DELETE", format!("/events/{ghost}")),
        ("POST", format!("/events/{ghost}/pause")),
        ("POST", format!("/events/{ghost}/resume")),
        ("POST", format!("/events/{ghost}/trigger")),
        ("GET", format!("/events/{ghost}/occurrences")),
        ("GET", format!("/occurrences/{ghost}")),
        ("POST", format!("/occurrences/{ghost}/retry")),
        ("GET", "/events/not-a-uuid".to_string()),
        ("DELETE", "/events/not-a-uuid".to_string()),
    ] {
        let body = (m == "PUT").then(|| json!({"name": "x"}));
        let (s, v) = app.req(m, &p, body).await;
        assert_eq!(s, 404, "{m} {p}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains("not found"),
            "{m} {p}: {v}"
        );
    }
}

#[tokio::test]
async fn bad_query_parameters_are_named() {
    let app = spawn_app().await;
    for (p, msg) in [
        ("/events?limit=0", "limit"),
        ("/events?limit=5000", "limit"),
        ("/events?status=bogus", "status 'bogus'"),
        ("/events?colour=blue", "unknown query parameter 'colour'"),
        ("/occurrences?from=yesterday", "from"),
        ("/occurrences?cursor=xyz", "cursor"),
    ] {
        let (s, v) = app.get(p).await;
        assert_eq!(s, 400, "{p}: {v}");
        assert!(v["error"].as_str().unwrap().contains(msg), "{p}: {v}");
    }
}

/// PostgreSQL cannot store U+0000 in text or JSONB: every backend refuses it with a 400 that
/// names where it is, instead of a 500 from the store (found by tests/api/schema_fuzz.rs).
#[tokio::test]
async fn a_nul_character_in_a_body_is_a_400_naming_where() {
    let app = spawn_app().await;
    let mut e = crate::helpers::webhook_event("http://127.0.0.1:9/h", 600_000);
    e["name"] = json!("wake\u{0}me");
    let (s, v) = app.post("/events", e.clone()).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("$.name:"), "{v}");
    e["name"] = json!("ok");
    e["metadata"] = json!({"list": ["a", "b\u{0}"]});
    let (s, v) = app.post("/events/batch", json!({"events": [e]})).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("$.events[0].metadata.list[1]:"),
        "{v}"
    );
    // An escaped backslash before "u0000" is text, not a NUL.
    e["metadata"] = json!({"path": "C:\\u0000"});
    let (s, v) = app.post("/events", e).await;
    assert_eq!(s, 201, "{v}");
}
