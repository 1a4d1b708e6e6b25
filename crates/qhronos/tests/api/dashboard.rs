//! What the dashboard needs from the server: its files at `/ui` with the security headers, and
//! the routes added for it (`GET /me`, `GET /channels`, `GET /admin/config`), which the CLI and
//! the MCP tools get too.

use std::io::Write;

use qhronos::ui::{ASSETS, CSP};
use serde_json::{json, Value};

use crate::helpers::{in_ms, spawn_app, spawn_app_with, TOKEN};
use crate::websocket::subscribe;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_root_redirects_to_the_dashboard_which_needs_no_token() {
    let app = spawn_app().await;
    let r = no_redirects().get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/ui/");
    for path in [
        "/ui",
        "/ui/",
        "/ui/events",
        "/ui/events/0190a1b2-0000-7000-8000-000000000000/edit",
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            r.headers()["content-type"],
            "text/html; charset=utf-8",
            "{path}"
        );
        let html = r.text().await.unwrap();
        assert!(
            html.contains("<script type=\"module\" src=\"/ui/app.js\">"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn every_dashboard_answer_has_a_strict_csp_and_cannot_be_framed() {
    let app = spawn_app().await;
    for path in ["/ui/", "/ui/app.js", "/ui/style.css", "/ui/nothing.js", "/"] {
        let r = no_redirects().get(app.url(path)).send().await.unwrap();
        let h = r.headers();
        assert_eq!(h["content-security-policy"], CSP, "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
    }
    assert!(CSP.contains("script-src 'self';") && !CSP.contains("unsafe"));
    assert!(CSP.contains("frame-ancestors 'none'"));
}

#[tokio::test]
async fn files_are_served_with_their_types_and_revalidated_by_etag() {
    let app = spawn_app().await;
    for a in ASSETS {
        let r = app
            .client
            .get(app.url(&format!("/ui/{}", a.path)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", a.path);
        assert_eq!(r.headers()["content-type"], a.content_type, "{}", a.path);
        assert_eq!(r.headers()["cache-control"], "no-cache");
        let etag = r.headers()["etag"].to_str().unwrap().to_string();
        assert_eq!(r.bytes().await.unwrap(), a.body);
        let again = app
            .client
            .get(app.url(&format!("/ui/{}", a.path)))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{}", a.path);
    }
    let r = app
        .client
        .get(app.url("/ui/missing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// No external source, no inline script or style, no `innerHTML` in the page's own files.
#[test]
fn the_files_load_nothing_from_elsewhere_and_never_parse_markup() {
    for a in ASSETS {
        // The SVG namespace is a name, not a source.
        let text = String::from_utf8_lossy(a.body).replace("http://www.w3.org/2000/svg", "");
        for bad in [
            "http://",
            "https://",
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!text.contains(bad), "{}: {bad}", a.path);
        }
        if a.path.ends_with(".html") {
            assert!(
                !text.contains("<script>") && !text.contains(" style="),
                "{}",
                a.path
            );
            assert!(
                !text.contains("onclick=") && !text.contains("onload="),
                "{}",
                a.path
            );
        }
    }
}

/// The budget: every file of the dashboard together at most 300 KB gzipped.
#[test]
fn all_assets_together_are_under_300_kb_gzipped() {
    let mut total = 0;
    let mut raw = 0;
    for a in ASSETS {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(a.body).unwrap();
        total += gz.finish().unwrap().len();
        raw += a.body.len();
    }
    eprintln!("dashboard assets: {raw} bytes, {total} bytes gzipped");
    assert!(total <= 300 * 1024, "{total} bytes gzipped");
}

#[tokio::test]
async fn me_says_who_the_token_is_and_what_it_may_do() {
    let app = spawn_app().await;
    let (s, v) = app.get("/me").await;
    assert_eq!(s, 200);
    assert_eq!(
        v,
        json!({"kind": "master", "sub": null, "jti": null, "access": "master", "scope": null,
               "can": {"read": true, "write": true, "admin": true, "issue_tokens": true, "operate": true}})
    );
    let read = app.token("read", &["team-a"]).await;
    let (s, v) = app.req_as(Some(&read), "GET", "/me", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["kind"], "token");
    assert_eq!(v["sub"], "read-user");
    assert_eq!(v["access"], "read");
    assert_eq!(v["scope"], json!(["team-a"]));
    assert_eq!(
        v["can"],
        json!({"read": true, "write": false, "admin": false, "issue_tokens": false, "operate": false})
    );
    assert!(!v.to_string().contains(&read), "never the token itself");
    let admin = app.token("admin", &["team-a"]).await;
    let (_, v) = app.req_as(Some(&admin), "GET", "/me", None).await;
    assert_eq!(v["can"]["admin"], true);
    assert_eq!(v["can"]["operate"], false, "a scoped admin takes no backup");
    let (s, _) = app.req_as(None, "GET", "/me", None).await;
    assert_eq!(s, 401);
}

#[tokio::test]
async fn channels_lists_connected_clients_listeners_and_queue_depths_within_the_scope() {
    let app = spawn_app().await;
    let token_a = app.token("read_write", &["a"]).await;
    let _client = subscribe(
        &app,
        json!({"type": "client-hook", "client_name": "laptop", "token": TOKEN}),
    )
    .await;
    let _listener = subscribe(
        &app,
        json!({"type": "tag-listener", "tags": ["a", "b"], "token": TOKEN}),
    )
    .await;
    let pull = |queue: &str, tag: &str, ms: i64| {
        json!({"name": "p", "start_time": in_ms(ms), "tags": [tag],
               "action": {"type": "pull", "params": {"queue": queue}}})
    };
    app.create(pull("jobs", "a", -1_000)).await;
    app.create(pull("jobs", "a", -500)).await;
    app.create(pull("jobs", "a", 600_000)).await;
    app.create(pull("mail", "b", -1_000)).await;
    let (s, claimed) = app.post("/queues/jobs/claim?max=1", json!({})).await;
    assert_eq!(s, 200, "{claimed}");

    let (s, v) = app.get("/channels").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["websocket"]["clients"],
        json!([{"name": "laptop", "connections": 1, "awaiting_ack": 0}])
    );
    assert_eq!(v["websocket"]["listeners"], json!([{"tags": ["a", "b"]}]));
    let q: Vec<Value> = v["queues"].as_array().unwrap().clone();
    assert_eq!(q.len(), 2, "{v}");
    assert_eq!(
        (
            &q[0]["queue"],
            &q[0]["events"],
            &q[0]["ready"],
            &q[0]["claimed"],
            &q[0]["waiting"]
        ),
        (&json!("jobs"), &json!(3), &json!(1), &json!(1), &json!(1)),
        "{v}"
    );
    assert!(q[0]["oldest_ready_at"].is_string());
    assert_eq!(q[1]["queue"], "mail");

    // A scoped token: its queues, the listener's tags inside its scope, no client of the
    // master token.
    let (s, v) = app.req_as(Some(&token_a), "GET", "/channels", None).await;
    assert_eq!(s, 200);
    assert_eq!(v["websocket"]["clients"], json!([]));
    assert_eq!(v["websocket"]["listeners"], json!([{"tags": ["a"]}]));
    let names: Vec<&str> = v["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["jobs"]);
    let (s, v) = app.get("/channels?tags=b").await;
    assert_eq!(s, 200);
    assert_eq!(v["queues"].as_array().unwrap().len(), 1);
    assert_eq!(v["queues"][0]["queue"], "mail");
    let (s, v) = app.get("/channels?nope=1").await;
    assert_eq!(s, 400, "{v}");
}

#[tokio::test]
async fn the_config_summary_holds_no_secret_and_is_for_unscoped_admins() {
    let app = spawn_app_with(|c| {
        c.smtp.password = Some("smtp-password-secret".into());
    })
    .await;
    let (s, v) = app.get("/admin/config").await;
    assert_eq!(s, 200, "{v}");
    let store = if app.db.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(v["store"], store);
    assert!(v["version"].is_string());
    let text = v.to_string();
    for secret in [TOKEN, crate::helpers::JWT_KEY, "smtp-password-secret"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert_eq!(v["config"]["master_token"], "***");
    assert_eq!(v["config"]["auth"]["jwt_secret"], "***");
    assert_eq!(v["config"]["smtp"]["password"], "***");
    assert_eq!(v["config"]["smtp"]["host"], Value::Null);
    assert_eq!(v["config"]["engine"]["poll_interval"], "50ms");
    let scoped = app.token("admin", &["a"]).await;
    let (s, v) = app
        .req_as(Some(&scoped), "GET", "/admin/config", None)
        .await;
    assert_eq!(s, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("without a scope"));
    let read = app.token("read", &[]).await;
    let (s, _) = app.req_as(Some(&read), "GET", "/admin/config", None).await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn occurrence_counts_are_those_of_the_callers_scope() {
    let app = spawn_app().await;
    for (tag, n) in [("a", 2), ("b", 1)] {
        for _ in 0..n {
            let mut e = crate::helpers::webhook_event("http://127.0.0.1:9/hook", 3_600_000);
            e["tags"] = json!([tag]);
            app.create(e).await;
        }
    }
    let (s, v) = app.get("/occurrences/counts").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["pending"], 3);
    let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "cancelled",
            "completed",
            "failed",
            "missed",
            "pending",
            "scheduled"
        ]
    );
    let (_, v) = app.get("/occurrences/counts?tags=b").await;
    assert_eq!(v["pending"], 1);
    let scoped = app.token("read", &["a"]).await;
    let (_, v) = app
        .req_as(Some(&scoped), "GET", "/occurrences/counts", None)
        .await;
    assert_eq!(v["pending"], 2, "{v}");
    let (_, v) = app
        .req_as(Some(&scoped), "GET", "/occurrences/counts?tags=b", None)
        .await;
    assert_eq!(
        v["pending"], 0,
        "a tag outside the scope matches nothing: {v}"
    );
}
