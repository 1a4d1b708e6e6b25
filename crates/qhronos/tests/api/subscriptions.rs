//! Subscriptions: a calendar kept in step with a feed served by a local HTTP server that
//! changes its file, answers 304 to its validators, and then fails.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use crate::calendars::{data, defaults};
use crate::helpers::{spawn_app, TestApp};

#[derive(Clone, Default)]
struct Feed {
    /// (status, etag, body)
    now: Arc<Mutex<(u16, String, String)>>,
    /// The If-None-Match of each request.
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

async fn serve_feed(State(f): State<Feed>, headers: HeaderMap) -> (StatusCode, HeaderMap, String) {
    let inm = headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    f.seen.lock().unwrap().push(inm.clone());
    let (status, etag, body) = f.now.lock().unwrap().clone();
    let mut h = HeaderMap::new();
    h.insert("etag", etag.parse().unwrap());
    h.insert("content-type", "text/calendar".parse().unwrap());
    if status == 200 && inm.as_deref() == Some(etag.as_str()) {
        return (StatusCode::NOT_MODIFIED, h, String::new());
    }
    (StatusCode::from_u16(status).unwrap(), h, body)
}

async fn start_feed(body: String) -> (Feed, String) {
    let f = Feed::default();
    *f.now.lock().unwrap() = (200, "\"v1\"".into(), body);
    let app = Router::new()
        .route("/team.ics", get(serve_feed))
        .with_state(f.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (f, format!("http://{addr}/team.ics"))
}

async fn refresh(app: &TestApp, id: &str) -> Value {
    let (s, v) = app
        .post(&format!("/calendars/{id}/refresh"), json!({}))
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn events(app: &TestApp, id: &str) -> u64 {
    app.get(&format!("/calendars/{id}")).await.1["events"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn a_subscription_follows_its_feed_and_keeps_its_events_when_the_feed_fails() {
    let app = spawn_app().await;
    let text = data("google.ics");
    let (feed, url) = start_feed(text.clone()).await;
    let (s, c) = app
        .post(
            "/calendars",
            json!({"name": "team", "url": url, "refresh": "1m", "defaults": defaults()}),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["refresh"], "1m");
    let id = c["id"].as_str().unwrap().to_string();
    let v = refresh(&app, &id).await;
    assert!(
        v["last_result"]
            .as_str()
            .unwrap()
            .starts_with("ok: 4 created"),
        "{v}"
    );
    assert_eq!(v["counts"]["created"], 4);
    assert!(
        v["last_fetch_at"].is_string() && v["next_fetch_at"].is_string(),
        "{v}"
    );
    // The validators go back: 304, nothing changes.
    let v = refresh(&app, &id).await;
    assert_eq!(v["last_result"], "not modified");
    assert_eq!(
        feed.seen.lock().unwrap().last().unwrap().as_deref(),
        Some("\"v1\"")
    );
    // The file changes: a renamed series, one event gone.
    let changed = text
        .replace("SUMMARY:Monthly report", "SUMMARY:Monthly report (v2)")
        .replace(
            "UID:1m2n3b4v5c6x7z8l9k0j@google.com",
            "UID:1m2n3b4v5c6x7z8l9k0j-new@google.com",
        );
    *feed.now.lock().unwrap() = (200, "\"v2\"".into(), changed);
    let v = refresh(&app, &id).await;
    assert!(
        v["last_result"]
            .as_str()
            .unwrap()
            .starts_with("ok: 1 created, 1 updated, 1 removed"),
        "{v}"
    );
    assert_eq!(events(&app, &id).await, 4);
    // The feed fails, then serves a truncated file: the events stay, the result says why.
    *feed.now.lock().unwrap() = (500, "\"v3\"".into(), "oops".into());
    let v = refresh(&app, &id).await;
    assert!(
        v["last_result"]
            .as_str()
            .unwrap()
            .starts_with("failed: the feed answered 500"),
        "{v}"
    );
    assert_eq!(events(&app, &id).await, 4);
    *feed.now.lock().unwrap() = (200, "\"v4\"".into(), text[..text.len() / 2].to_string());
    let v = refresh(&app, &id).await;
    assert!(
        v["last_result"].as_str().unwrap().contains("truncated"),
        "{v}"
    );
    assert_eq!(events(&app, &id).await, 4);
    let (_, list) = app.get("/calendars").await;
    assert_eq!(list["data"][0]["last_result"], v["last_result"]);
    // The upkeep loop fetches a new subscription by itself.
    let (_, c2) = app
        .post(
            "/calendars",
            json!({"name": "loop", "url": url, "defaults": defaults()}),
        )
        .await;
    *feed.now.lock().unwrap() = (200, "\"v5\"".into(), text.clone());
    let id2 = c2["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, c) = app.get(&format!("/calendars/{id2}")).await;
        if c["last_result"]
            .as_str()
            .is_some_and(|r| r.starts_with("ok"))
        {
            assert_eq!(c["events"], 4);
            break;
        }
        assert!(Instant::now() < deadline, "never fetched: {c}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_subscription_url_is_checked_like_a_webhook_target() {
    let app = spawn_app().await;
    for (url, code) in [
        ("http://169.254.169.254/latest", 422),
        ("ftp://example.com/x.ics", 400),
        ("not a url", 400),
    ] {
        let (s, v) = app
            .post(
                "/calendars",
                json!({"name": "x", "url": url, "defaults": defaults()}),
            )
            .await;
        assert_eq!(s, code, "{url}: {v}");
        assert!(v["error"].as_str().unwrap().starts_with("url:"), "{v}");
    }
    let (s, v) = app
        .post("/calendars", json!({"name": "x", "url": "http://127.0.0.1:9/x.ics", "refresh": "10s", "defaults": defaults()}))
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("refresh:"), "{v}");
    let (s, v) = app
        .post(
            "/calendars",
            json!({"name": "x", "url": "http://127.0.0.1:9/x.ics"}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    // A calendar without a feed has nothing to refresh.
    let (_, c) = app.post("/calendars", json!({"name": "plain"})).await;
    let (s, _) = app
        .post(
            &format!("/calendars/{}/refresh", c["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(s, 400);
}
