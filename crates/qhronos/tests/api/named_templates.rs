//! Named templates (`/templates`) end to end: versions, render with line and column, actions
//! that use a template by name (pinned or latest), the 400 for an unknown one, the 409 on
//! deleting one in use, roles and the audit log.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{in_ms, spawn_app, Receiver};

fn body_template(name: &str, msg: &str) -> Value {
    json!({"name": name, "kind": "body", "body": {"msg": msg, "who": "{{ event.name }}"}, "sample": {"event": {"name": "sampled"}}})
}

#[tokio::test]
async fn templates_are_versioned_and_render_with_errors_located() {
    let app = spawn_app().await;
    let (s, v) = app.post("/templates", body_template("report", "v1")).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["version"], 1);
    assert_eq!(v["kind"], "body");
    assert_eq!(v["body"]["msg"], "v1");
    let (s, v) = app
        .post("/templates", body_template("report", "again"))
        .await;
    assert_eq!(s, 409, "{v}");

    // A syntax error is a 400 naming the field, line and column; nothing is saved.
    let (s, v) = app
        .post(
            "/templates",
            json!({"name": "broken", "kind": "email", "subject": "ok", "text": "line one\n  {{ event.name | nope }}"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(msg.starts_with("text: template error"), "{msg}");
    assert!(msg.contains("line 2, column"), "{msg}");
    assert_eq!(app.get("/templates/broken").await.0, 404);
    // Fields of another kind, a missing part and unknown fields are refused.
    for bad in [
        json!({"name": "x", "kind": "body", "subject": "s", "body": {}}),
        json!({"name": "x", "kind": "email", "subject": "s"}),
        json!({"name": "x", "kind": "sms", "body": {}}),
        json!({"name": "x y", "kind": "body", "body": {}}),
        json!({"name": "x", "kind": "body", "body": {}, "extra": 1}),
    ] {
        let (s, v) = app.post("/templates", bad.clone()).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }

    let (s, v) = app
        .req(
            "PUT",
            "/templates/report",
            Some(json!({"kind": "body", "body": {"msg": "v2 {{ metadata.n }}"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["version"], 2);
    let (s, v) = app
        .req(
            "PUT",
            "/templates/report",
            Some(json!({"kind": "email", "subject": "s", "text": "t"})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("cannot change"),
        "{v}"
    );
    assert_eq!(
        app.req(
            "PUT",
            "/templates/nope",
            Some(json!({"kind": "body", "body": {}}))
        )
        .await
        .0,
        404
    );

    let (_, v) = app.get("/templates/report").await;
    assert_eq!(
        (v["version"].clone(), v["body"]["msg"].clone()),
        (json!(2), json!("v2 {{ metadata.n }}"))
    );
    let (_, v) = app.get("/templates/report?version=1").await;
    assert_eq!(v["body"]["msg"], "v1");
    assert_eq!(app.get("/templates/report?version=9").await.0, 404);
    let (_, v) = app.get("/templates/report/versions").await;
    let versions: Vec<i64> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![2, 1]);
    app.post("/templates", body_template("another", "a")).await;
    let (_, v) = app.get("/templates?limit=1").await;
    assert_eq!(v["data"][0]["name"], "another");
    let cursor = v["next_cursor"].as_str().unwrap().to_string();
    let (_, v) = app
        .get(&format!("/templates?limit=1&cursor={cursor}"))
        .await;
    assert_eq!(v["data"][0]["name"], "report");
    assert_eq!(v["data"][0]["version"], 2);
    assert_eq!(v["next_cursor"], Value::Null);

    // Render: the sample by default, a given context, an old version, a located error.
    let (s, v) = app
        .post("/templates/report/render?", json!({"version": 1}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!({"ok": true, "version": 1, "result": {"body": {"msg": "v1", "who": "sampled"}}})
    );
    let (s, v) = app
        .post(
            "/templates/report/render",
            json!({"context": {"metadata": {"n": 7}}}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"]["body"]["msg"], "v2 7");
    let (s, v) = app.req("POST", "/templates/report/render", None).await;
    assert_eq!((s, v["ok"].clone()), (200, json!(true)), "{v}");
    // An unclosed block is refused at save; so is a template that fails on its sample.
    let (s, v) = app
        .post(
            "/templates",
            json!({"name": "mail", "kind": "email", "subject": "{{ event.name }}", "html": "<p>{% if x %}</p>"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("html: "), "{v}");
    let mail = json!({"name": "mail", "kind": "email", "subject": "{{ event.name }}", "html": "<p>{{ 1 / x }}</p>", "sample": {"x": 0}});
    assert_eq!(app.post("/templates", mail.clone()).await.0, 400);
    let mut mail = mail;
    mail["sample"] = json!({"x": 1});
    let (s, v) = app.post("/templates", mail).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = app
        .post(
            "/templates/mail/render",
            json!({"context": {"x": 0, "event": {"name": "e"}}}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"]["field"], "html");
    assert_eq!(v["error"]["line"], 1);
    assert!(v["error"]["column"].as_u64().is_some_and(|c| c >= 4), "{v}");
    let (s, _) = app
        .post("/templates/mail/render", json!({"context": [1]}))
        .await;
    assert_eq!(s, 400);
    assert_eq!(app.post("/templates/nope/render", json!({})).await.0, 404);

    // Every write is audited.
    let (_, v) = app.get("/audit?action=template.update").await;
    let entries = v["data"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["target"] == "report"),
        "{entries:?}"
    );
}

#[tokio::test]
async fn actions_render_the_pinned_version_or_the_latest() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    assert_eq!(
        app.post("/templates", body_template("t", "v1")).await.0,
        201
    );
    let event = |name: &str, version: Option<Value>| {
        let mut params = json!({"url": rx.url(), "template": "t"});
        if let Some(v) = version {
            params["template_version"] = v;
        }
        json!({"name": name, "start_time": in_ms(1_500), "action": {"type": "webhook", "params": params}})
    };
    let (s, pinned) = app.post("/events", event("pinned", None)).await;
    assert_eq!(s, 201, "{pinned}");
    assert_eq!(
        pinned["action"]["params"]["template_version"], 1,
        "{pinned}"
    );
    assert!(pinned["action"]["params"].get("body").is_none(), "{pinned}");
    let (s, latest) = app
        .post("/events", event("latest", Some(json!("latest"))))
        .await;
    assert_eq!(s, 201, "{latest}");
    assert_eq!(latest["action"]["params"]["template_version"], "latest");

    // Unknown template, version or kind: 400 naming it.
    let (s, v) = app
        .post("/events", {
            let mut e = event("x", None);
            e["action"]["params"]["template"] = json!("missing");
            e
        })
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("'missing'"), "{v}");
    let (s, v) = app.post("/events", event("x", Some(json!(5)))).await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("no version 5"), "{v}");
    app.post(
        "/templates",
        json!({"name": "m", "kind": "email", "subject": "s", "text": "t"}),
    )
    .await;
    let (s, v) = app
        .post("/events", {
            let mut e = event("x", None);
            e["action"]["params"]["template"] = json!("m");
            e
        })
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("kind 'email'"), "{v}");
    let (s, v) = app
        .post("/events", {
            let mut e = event("x", None);
            e["action"]["params"]["body"] = json!({});
            e
        })
        .await;
    assert_eq!(s, 400, "{v}");

    // Version 2 is saved before either fires.
    let (s, v) = app
        .req(
            "PUT",
            "/templates/t",
            Some(json!({"kind": "body", "body": {"msg": "v2", "who": "{{ event.name }}"}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    let mut bodies: Vec<Value> = got.iter().map(|r| r.json()).collect();
    bodies.sort_by_key(|b| b["who"].as_str().unwrap_or("").to_string());
    assert_eq!(
        bodies,
        vec![
            json!({"msg": "v2", "who": "latest"}),
            json!({"msg": "v1", "who": "pinned"}),
        ]
    );

    // An update that gives the action again without a version pins the newest; one that
    // leaves the action alone keeps the pin.
    let id = pinned["id"].as_str().unwrap();
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"description": "d"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["action"]["params"]["template_version"], 1);
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"action": {"type": "webhook", "params": {"url": rx.url(), "template": "t"}}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["action"]["params"]["template_version"], 2);

    // Deleting a template that live events use: 409 naming them.
    let (s, v) = app.req("DELETE", "/templates/t", None).await;
    assert_eq!(s, 409, "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains(id) && msg.contains("(pinned)") && msg.contains("(latest)"),
        "{msg}"
    );
    for e in [id, latest["id"].as_str().unwrap()] {
        assert_eq!(
            app.req("DELETE", &format!("/events/{e}"), None).await.0,
            204
        );
    }
    assert_eq!(app.req("DELETE", "/templates/t", None).await.0, 204);
    assert_eq!(app.get("/templates/t").await.0, 404);
}

#[tokio::test]
async fn an_email_action_takes_its_parts_from_an_email_template() {
    let app = spawn_app().await;
    app.post(
        "/templates",
        json!({"name": "mail", "kind": "email", "subject": "{{ event.name }} ran", "text": "hi"}),
    )
    .await;
    // Without an SMTP server the event is refused for its target (422), after the template
    // was found; with `subject` beside `template` it is a 400.
    let (s, v) = app
        .post(
            "/events",
            json!({"name": "n", "start_time": in_ms(60_000), "action": {"type": "email", "params": {"to": ["a@example.com"], "template": "mail", "subject": "x"}}}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("'subject'"), "{v}");
    let (s, v) = app
        .post(
            "/events",
            json!({"name": "n", "start_time": in_ms(60_000), "action": {"type": "email", "params": {"to": ["a@example.com"], "template": "mail"}}}),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("smtp.host"), "{v}");
}

#[tokio::test]
async fn templates_are_shared_by_every_token_with_the_role() {
    let app = spawn_app().await;
    app.post("/templates", body_template("t", "v1")).await;
    let read = app.token("read", &["team-a"]).await;
    let write = app.token("write", &["team-b"]).await;
    assert_eq!(
        app.req_as(Some(&read), "GET", "/templates/t", None).await.0,
        200
    );
    assert_eq!(
        app.req_as(Some(&read), "GET", "/templates", None).await.0,
        200
    );
    assert_eq!(
        app.req_as(Some(&read), "POST", "/templates/t/render", Some(json!({})))
            .await
            .0,
        200
    );
    assert_eq!(
        app.req_as(
            Some(&read),
            "POST",
            "/templates",
            Some(body_template("r", "x"))
        )
        .await
        .0,
        403
    );
    let (s, v) = app
        .req_as(
            Some(&write),
            "POST",
            "/templates",
            Some(body_template("w", "x")),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        v["saved_by"].as_str().map(|a| a.contains("write-user")),
        Some(true),
        "{v}"
    );

    // A 409 names only the events the caller may see.
    let mut e = json!({"name": "secret name", "start_time": in_ms(600_000), "tags": ["team-a"],
        "action": {"type": "webhook", "params": {"url": "http://127.0.0.1:9/", "template": "w"}}});
    app.create(e.clone()).await;
    e["tags"] = json!(["team-b"]);
    e["name"] = json!("visible name");
    app.create(e).await;
    let (s, v) = app
        .req_as(Some(&write), "DELETE", "/templates/w", None)
        .await;
    assert_eq!(s, 409, "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("visible name") && !msg.contains("secret name"),
        "{msg}"
    );
    assert!(msg.contains("1 outside your scope"), "{msg}");
}
