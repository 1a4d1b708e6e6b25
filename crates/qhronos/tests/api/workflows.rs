//! Workflows end to end: a cause delivered to a real receiver fires its follow-up, whose
//! payload renders the cause; loops are refused at save and cut at run time; scopes and audit.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, webhook_event, Receiver, TestApp};

const WAIT: Duration = Duration::from_secs(15);

/// An event far in the future (it fires only when triggered or caused), aimed at `url`.
fn later(name: &str, url: &str) -> Value {
    let mut e = webhook_event(url, 86_400_000);
    e["name"] = json!(name);
    e
}

async fn workflow(app: &TestApp, body: Value) -> String {
    let (s, v) = app.post("/workflows", body).await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().expect("id").to_string()
}

/// Polls `GET path` until `f` accepts the answer, or panics after `WAIT`.
async fn poll(app: &TestApp, path: &str, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, v) = app.get(path).await;
        if f(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out on {path}: {v:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_completed_occurrence_fires_its_follow_up_with_the_cause_rendered() {
    let app = spawn_app().await;
    let rx_a = Receiver::start(vec![201]).await;
    let rx_b = Receiver::start(vec![]).await;
    let mut a = later("nightly backup", &rx_a.url());
    a["metadata"] = json!({"x": "seven"});
    let a = app.create(a).await;
    let mut b = later("report", &rx_b.url());
    b["action"]["params"]["body"] = json!({
        "after": "{{ cause.event.name }}",
        "status": "{{ cause.occurrence.status }}",
        "code": "{{ cause.attempt.status_code }}",
        "x": "{{ cause.metadata.x }}",
        "own": "{{ event.name }}",
    });
    let b = app.create(b).await;
    let w = workflow(
        &app,
        json!({"name": "report after backup", "when": {"event_id": a, "on": ["completed"]},
               "then": {"trigger": b, "delay": "100ms"}}),
    )
    .await;
    // A failure of A would fire nothing through this one.
    workflow(
        &app,
        json!({"name": "on failure", "when": {"event_id": a, "on": ["failed"]}, "then": {"trigger": b}}),
    )
    .await;

    let (s, v) = app.post(&format!("/events/{a}/trigger"), json!({})).await;
    assert_eq!(s, 201, "{v}");
    let cause = v["id"].as_str().expect("id").to_string();
    let got = rx_b.wait_for(1, WAIT).await;
    let body = got[0].json();
    assert_eq!(
        body,
        json!({"after": "nightly backup", "status": "completed", "code": "201", "x": "seven", "own": "report"})
    );
    // The cause lists what it caused; the follow-up names its cause.
    let v = poll(&app, &format!("/occurrences/{cause}"), |v| {
        v["caused"].is_array()
    })
    .await;
    let caused = v["caused"].as_array().expect("caused").clone();
    assert_eq!(caused.len(), 1, "{v}");
    let f = caused[0].as_str().expect("id");
    let v = poll(&app, &format!("/occurrences/{f}"), |v| {
        v["status"] == "completed"
    })
    .await;
    assert_eq!(v["event_id"], json!(b));
    assert_eq!(
        v["caused_by"],
        json!({"workflow_id": w, "occurrence_id": cause})
    );
    // Exactly one follow-up was delivered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx_b.received().len(), 1);
}

#[tokio::test]
async fn a_failed_occurrence_creates_a_one_time_event_that_alerts() {
    let app = spawn_app().await;
    let rx_a = Receiver::start(vec![500]).await;
    let rx_alert = Receiver::start(vec![]).await;
    let mut a = later("payroll export", &rx_a.url());
    a["tags"] = json!(["payroll"]);
    a["retry"] = json!({"max_attempts": 2, "initial_delay": "20ms", "max_delay": "50ms"});
    let a = app.create(a).await;
    let w = workflow(
        &app,
        json!({"name": "alert on payroll failure", "when": {"tags": ["payroll"], "on": ["failed"]},
               "then": {"create": {"name": "alert", "tags": ["alerts"],
                   "action": {"type": "webhook", "params": {"url": rx_alert.url(),
                       "body": {"text": "{{ cause.event.name }} failed: {{ cause.occurrence.last_error }} ({{ cause.attempt.status_code }})"}}}}}}),
    )
    .await;
    let (s, v) = app.get(&format!("/workflows/{w}")).await;
    assert_eq!(s, 200);
    assert_eq!(v["then"]["create"]["name"], "alert");
    assert_eq!(v["tags"], json!(["payroll", "alerts"]));

    let (s, _) = app.post(&format!("/events/{a}/trigger"), json!({})).await;
    assert_eq!(s, 201);
    let got = rx_alert.wait_for(1, WAIT).await;
    assert_eq!(
        got[0].json(),
        json!({"text": "payroll export failed: HTTP 500 (500)"})
    );
    assert_eq!(rx_a.received().len(), 2, "two attempts, then failed");
    let (_, v) = app.get("/events?tags=alerts").await;
    let created = v["data"].as_array().expect("data");
    assert_eq!(created.len(), 1, "{v}");
    assert!(created[0]["schedule"].is_null());
}

#[tokio::test]
async fn loops_are_refused_at_save_naming_the_cycle() {
    let app = spawn_app().await;
    let url = "https://example.com/hook";
    let a = app.create(later("A", url)).await;
    let b = app.create(later("B", url)).await;
    workflow(
        &app,
        json!({"name": "a-then-b", "when": {"event_id": a, "on": ["completed"]}, "then": {"trigger": b}}),
    )
    .await;
    let (s, v) = app
        .post("/workflows", json!({"name": "b-then-a", "when": {"event_id": b, "on": ["failed"]}, "then": {"trigger": a}}))
        .await;
    assert_eq!(s, 400, "{v}");
    let msg = v["error"].as_str().expect("error");
    assert!(
        msg.contains("loop") && msg.contains("b-then-a ⇒ a-then-b ⇒ b-then-a"),
        "{msg}"
    );
    // Itself.
    let (s, v) = app
        .post("/workflows", json!({"name": "self", "when": {"event_id": a, "on": ["missed"]}, "then": {"trigger": a}}))
        .await;
    assert_eq!(s, 400, "{v}");
    // Through tags: the created event carries the tags the workflow watches.
    let (s, v) = app
        .post("/workflows", json!({"name": "tagged", "when": {"tags": ["t"], "on": ["completed"]},
               "then": {"create": {"name": "again", "tags": ["t", "u"], "action": {"type": "webhook", "params": {"url": url}}}}}))
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("tagged ⇒ tagged"),
        "{v}"
    );
    // A disabled one saves (it fires nothing); enabling it re-checks.
    let (s, v) = app
        .post("/workflows", json!({"name": "b-then-a", "when": {"event_id": b, "on": ["failed"]}, "then": {"trigger": a}, "enabled": false}))
        .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().expect("id");
    let (s, v) = app
        .req("PUT", &format!("/workflows/{id}"), Some(json!({"name": "b-then-a", "when": {"event_id": b, "on": ["failed"]}, "then": {"trigger": a}, "enabled": true})))
        .await;
    assert_eq!(s, 400, "{v}");
    // Bad bodies name the field.
    for (body, needle) in [
        (
            json!({"name": "x", "when": {"event_id": a, "on": []}, "then": {"trigger": b}}),
            "when.on",
        ),
        (
            json!({"name": "x", "when": {"on": ["completed"]}, "then": {"trigger": b}}),
            "when:",
        ),
        (
            json!({"name": "x", "when": {"event_id": a, "on": ["completed"]}, "then": {}}),
            "then:",
        ),
        (
            json!({"name": "x", "when": {"event_id": a, "on": ["completed"]}, "then": {"trigger": b, "delay": "soon"}}),
            "then.delay",
        ),
        (
            json!({"name": "x", "when": {"event_id": a, "on": ["completed"]}, "then": {"trigger": "nope"}}),
            "then.trigger",
        ),
        (
            json!({"name": "x", "when": {"event_id": a, "on": ["completed"]}, "then": {"create": {"name": "s", "schedule": "FREQ=DAILY", "action": {"type": "webhook", "params": {"url": url}}}}}),
            "schedule",
        ),
        (
            json!({"name": "x", "when": {"event_id": a, "on": ["completed"]}, "then": {"create": {"name": "s"}}}),
            "then.create: action",
        ),
    ] {
        let (s, v) = app.post("/workflows", body).await;
        assert_eq!(s, 400, "{v}");
        assert!(
            v["error"].as_str().unwrap_or_default().contains(needle),
            "{needle}: {v}"
        );
    }
}

#[tokio::test]
async fn a_loop_made_after_save_is_cut_at_the_depth_limit() {
    let app = spawn_app_with(|c| c.workflows.max_depth = 2).await;
    let rx = Receiver::start(vec![]).await;
    let a = app.create(later("A", &rx.url())).await;
    let b = app.create(later("B", &rx.url())).await;
    workflow(
        &app,
        json!({"name": "a-then-b", "when": {"event_id": a, "on": ["completed"]}, "then": {"trigger": b}}),
    )
    .await;
    workflow(
        &app,
        json!({"name": "loop-then-a", "when": {"tags": ["loop"], "on": ["completed"]}, "then": {"trigger": a}}),
    )
    .await;
    // B gets the tag afterwards: A ⇒ B ⇒ A ⇒ B …, which no save saw.
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{b}"),
            Some(json!({"tags": ["loop"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = app.post(&format!("/events/{a}/trigger"), json!({})).await;
    assert_eq!(s, 201);
    // A (depth 0), B (1), A (2) are delivered; the next B (3) is missed with the reason.
    let occs = app
        .wait_occurrences(&b, WAIT, |l| l.iter().any(|o| o["status"] == "missed"))
        .await;
    let missed = occs
        .iter()
        .find(|o| o["status"] == "missed")
        .expect("missed");
    let why = missed["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("depth limit 2"), "{why}");
    assert_eq!(rx.wait_for(3, WAIT).await.len(), 3);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 3, "the chain stopped");
}

#[tokio::test]
async fn workflows_are_scoped_audited_and_editable() {
    let app = spawn_app().await;
    let url = "https://example.com/hook";
    let mut ea = later("team a job", url);
    ea["tags"] = json!(["team-a"]);
    let ea = app.create(ea).await;
    let mut eb = later("team b job", url);
    eb["tags"] = json!(["team-b"]);
    let eb = app.create(eb).await;
    let ta = app.token("read_write", &["team-a"]).await;
    let tb = app.token("read_write", &["team-b"]).await;
    let reader = app.token("read", &[]).await;

    // Out of scope: another team's event is not found, another team's tags are refused.
    let (s, v) = app
        .req_as(Some(&ta), "POST", "/workflows", Some(json!({"name": "x", "when": {"event_id": ea, "on": ["completed"]}, "then": {"trigger": eb}})))
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = app
        .req_as(Some(&ta), "POST", "/workflows", Some(json!({"name": "x", "when": {"tags": ["team-b"], "on": ["completed"]}, "then": {"trigger": ea}})))
        .await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = app
        .req_as(Some(&reader), "POST", "/workflows", Some(json!({"name": "x", "when": {"event_id": ea, "on": ["completed"]}, "then": {"trigger": ea}})))
        .await;
    assert_eq!(s, 403, "{v}");
    // Within scope.
    let (s, v) = app
        .req_as(Some(&ta), "POST", "/workflows", Some(json!({"name": "team a", "when": {"event_id": ea, "on": ["failed"]},
                "then": {"create": {"name": "page", "action": {"type": "webhook", "params": {"url": url}}}}})))
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["tags"], json!(["team-a"]), "{v}");
    let id = v["id"].as_str().expect("id").to_string();
    let (s, v) = app
        .req_as(Some(&tb), "GET", &format!("/workflows/{id}"), None)
        .await;
    assert_eq!(s, 404, "{v}");
    let (_, v) = app.req_as(Some(&tb), "GET", "/workflows", None).await;
    assert_eq!(v["data"], json!([]));
    let (_, v) = app.req_as(Some(&ta), "GET", "/workflows", None).await;
    assert_eq!(v["data"].as_array().map(Vec::len), Some(1));
    let (s, _) = app
        .req_as(Some(&tb), "DELETE", &format!("/workflows/{id}"), None)
        .await;
    assert_eq!(s, 404);

    // Replace (disable), page, delete.
    let (s, v) = app
        .req_as(
            Some(&ta),
            "PUT",
            &format!("/workflows/{id}"),
            Some(
                json!({"name": "team a (off)", "when": {"event_id": ea, "on": ["failed", "missed"]},
                "then": {"trigger": ea, "delay": "90s"}, "enabled": false}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["enabled"], false);
    assert_eq!(v["then"], json!({"trigger": ea, "delay": "90s"}));
    let second = workflow(
        &app,
        json!({"name": "second", "when": {"event_id": eb, "on": ["completed"]}, "then": {"trigger": ea}}),
    )
    .await;
    let (_, v) = app.get("/workflows?limit=1").await;
    assert_eq!(v["data"][0]["id"], json!(id));
    let cursor = v["next_cursor"].as_str().expect("cursor").to_string();
    let (_, v) = app
        .get(&format!("/workflows?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(v["data"][0]["id"], json!(second));
    assert!(v["next_cursor"].is_null());
    let (s, _) = app
        .req_as(Some(&ta), "DELETE", &format!("/workflows/{id}"), None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = app.get(&format!("/workflows/{id}")).await;
    assert_eq!(s, 404);

    let (_, v) = app.get("/audit?limit=100").await;
    let actions: Vec<&str> = v["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("workflow."))
        .collect();
    assert_eq!(
        actions,
        [
            "workflow.delete",
            "workflow.create",
            "workflow.update",
            "workflow.create"
        ]
    );
}
