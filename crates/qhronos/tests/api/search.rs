//! `GET /events?q=`: ranked full-text search end to end, paging by the rank cursor, hostile
//! input, scopes, and `/health` reporting the index.

use serde_json::{json, Value};

use crate::helpers::{in_ms, spawn_app};

fn ev(name: &str, tags: &[&str], description: Option<&str>) -> Value {
    json!({"name": name, "description": description, "tags": tags, "start_time": in_ms(600_000),
        "action": {"type": "webhook", "params": {"url": "http://127.0.0.1:9/"}}})
}

fn names(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn q_is_a_ranked_prefix_search_that_pages_and_takes_any_text() {
    let app = spawn_app().await;
    app.create(ev("Nightly backup", &["ops"], None)).await;
    app.create(ev("report", &["ops"], Some("runs after the backup")))
        .await;
    app.create(ev("unrelated", &["ops"], None)).await;
    let (s, v) = app.get("/events?q=back").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(names(&v), vec!["Nightly backup", "report"]);

    // Pages of one, by the rank cursor.
    let (_, p1) = app.get("/events?q=back&limit=1").await;
    assert_eq!(names(&p1), vec!["Nightly backup"]);
    let cursor = p1["next_cursor"].as_str().unwrap().to_string();
    assert!(cursor.starts_with('s'), "{cursor}");
    let (_, p2) = app
        .get(&format!(
            "/events?q=back&limit=1&cursor={}",
            urlencode(&cursor)
        ))
        .await;
    assert_eq!(names(&p2), vec!["report"]);
    assert_eq!(p2["next_cursor"], Value::Null);
    assert_eq!(app.get("/events?q=back&cursor=nonsense").await.0, 400);

    for q in [
        "%22",
        "OR",
        "*",
        "NEAR(",
        "%27%3B%20DROP",
        "%5C",
        "a%3Ab",
        "-",
        "%F0%9F%98%80",
    ] {
        let (s, v) = app.get(&format!("/events?q={q}")).await;
        assert_eq!(s, 200, "{q}: {v}");
    }

    let (s, v) = app.get("/health").await;
    assert_eq!((s, v["search"].clone()), (200, json!("ok")), "{v}");
}

#[tokio::test]
async fn a_scoped_token_finds_only_its_events() {
    let app = spawn_app().await;
    app.create(ev("deploy a", &["team-a"], None)).await;
    app.create(ev("deploy b", &["team-b"], None)).await;
    let a = app.token("read", &["team-a"]).await;
    let (s, v) = app.req_as(Some(&a), "GET", "/events?q=deploy", None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(names(&v), vec!["deploy a"]);
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B")
}
