//! The archive, end to end: a retention pass moves finished work into it; the archive routes
//! read it with the live routes' scopes; the export is gzipped JSON Lines without secrets.

use std::io::Read;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, webhook_event, Receiver, TestApp, TOKEN};

const DAY: i64 = 86_400_000;

fn now() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// An apicall event to `url` with a secret header and `tags`, due now, completed once; the
/// ids of the event and its occurrence.
async fn completed_event(app: &TestApp, rx: &Receiver, tags: &[&str]) -> (String, String) {
    let mut b = webhook_event(&rx.url(), 0);
    b["action"] = json!({"type": "apicall", "params": {"method": "POST", "url": rx.url(),
        "headers": {"Authorization": "Bearer s3cr3t-header"}}});
    b["tags"] = json!(tags);
    let id = app.create(b).await;
    let occ = app
        .wait_occurrences(&id, Duration::from_secs(5), |l| {
            l.first().is_some_and(|o| o["status"] == "completed")
        })
        .await[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    (id, occ)
}

/// `GET /archive/export` as `token`: the status and the decompressed lines.
async fn export(app: &TestApp, token: &str, query: &str) -> (u16, Vec<Value>) {
    let r = app
        .client
        .get(app.url(&format!("/archive/export{query}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("sent");
    let status = r.status().as_u16();
    if status != 200 {
        return (status, Vec::new());
    }
    assert_eq!(r.headers()["content-type"], "application/gzip");
    let gz = r.bytes().await.expect("body");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .expect("a complete gzip stream");
    assert!(!text.contains("s3cr3t"), "a secret was exported: {text}");
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    (status, lines)
}

#[tokio::test]
async fn retention_moves_finished_work_into_the_archive_that_the_api_reads_and_exports() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    let (event, occ) = completed_event(&app, &rx, &["billing"]).await;
    let (other, _) = completed_event(&app, &rx, &["ops"]).await;

    let r = app
        .retention
        .run_once(now() + 31 * DAY)
        .await
        .expect("pass");
    assert_eq!((r.occurrences_done, r.events), (2, 2));
    // Out of the hot tables…
    assert_eq!(app.get(&format!("/occurrences/{occ}")).await.0, 404);
    assert_eq!(app.get(&format!("/events/{event}")).await.0, 404);
    // …and in the archive.
    let (s, page) = app
        .get(&format!("/archive/occurrences?event_id={event}"))
        .await;
    assert_eq!(s, 200, "{page}");
    let data = page["data"].as_array().expect("data");
    assert_eq!(data.len(), 1, "{page}");
    assert_eq!(data[0]["id"], occ.as_str());
    assert_eq!(data[0]["status"], "completed");
    assert_eq!(data[0]["attempt_count"], 1);
    assert_eq!(data[0]["event_name"], "test event");
    assert_eq!(data[0]["tags"], json!(["billing"]));
    assert_eq!(page["next_before"], Value::Null);
    let (s, ev) = app.get(&format!("/archive/events/{event}")).await;
    assert_eq!(s, 200, "{ev}");
    assert_eq!(ev["summary"]["occurrences"], 1);
    assert_eq!(ev["summary"]["attempts"], 1);
    assert_eq!(ev["summary"]["by_status"]["completed"], 1);
    assert!(ev["event"]["removed_at"].is_string(), "{ev}");
    assert_eq!(
        ev["event"]["snapshot"]["action"]["params"]["headers"]["Authorization"],
        "***"
    );
    assert!(!ev.to_string().contains("s3cr3t"), "{ev}");

    // Scoped like the live routes.
    let billing = app.token("read", &["billing"]).await;
    let (s, page) = app
        .req_as(Some(&billing), "GET", "/archive/occurrences", None)
        .await;
    assert_eq!(s, 200);
    let seen: Vec<&Value> = page["data"].as_array().expect("data").iter().collect();
    assert_eq!(seen.len(), 1, "{page}");
    assert_eq!(seen[0]["event_id"], event.as_str());
    let path = format!("/archive/events/{other}");
    assert_eq!(app.req_as(Some(&billing), "GET", &path, None).await.0, 404);
    let path = format!("/archive/events/{event}");
    assert_eq!(app.req_as(Some(&billing), "GET", &path, None).await.0, 200);

    // The export: everything, one line each with its attempts; admin only.
    let (s, lines) = export(&app, TOKEN, "").await;
    assert_eq!(s, 200);
    assert_eq!(lines.len(), 2);
    let mine = lines
        .iter()
        .find(|l| l["id"] == occ.as_str())
        .expect("exported");
    assert_eq!(mine["attempts"].as_array().expect("attempts").len(), 1);
    assert_eq!(mine["attempts"][0]["status_code"], 200);
    assert_eq!(export(&app, &billing, "").await.0, 403);
    let scoped_admin = app.token("admin", &["ops"]).await;
    let (s, lines) = export(&app, &scoped_admin, "").await;
    assert_eq!(s, 200);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["event_id"], other.as_str());
    // A time window with nothing in it.
    let (_, lines) = export(&app, TOKEN, "?to=2001-01-01T00:00:00Z").await;
    assert!(lines.is_empty());
    // Audited.
    let (_, audit) = app.get("/audit?action=archive.export").await;
    assert_eq!(audit["data"].as_array().expect("data").len(), 3, "{audit}");
}

#[tokio::test]
async fn archived_occurrences_page_with_before_and_refuse_bad_filters() {
    // Batches of two: the export below reads three pages.
    let app = spawn_app_with(|c| c.retention.batch = 2).await;
    let rx = Receiver::start(vec![]).await;
    for _ in 0..3 {
        completed_event(&app, &rx, &[]).await;
    }
    app.retention
        .run_once(now() + 31 * DAY)
        .await
        .expect("pass");
    let mut seen = Vec::new();
    let mut path = "/archive/occurrences?limit=2".to_string();
    loop {
        let (s, page) = app.get(&path).await;
        assert_eq!(s, 200, "{page}");
        for o in page["data"].as_array().expect("data") {
            seen.push(o["id"].as_str().expect("id").to_string());
        }
        match page["next_before"].as_str() {
            Some(c) => path = format!("/archive/occurrences?limit=2&before={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3);
    let (_, lines) = export(&app, TOKEN, "").await;
    let exported: Vec<String> = lines
        .iter()
        .map(|l| l["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(
        exported, seen,
        "the export pages like the list, newest first"
    );
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3);
    for bad in [
        "before=nope",
        "event_id=x",
        "from=yesterday",
        "limit=0",
        "status=failed",
    ] {
        let (s, v) = app.get(&format!("/archive/occurrences?{bad}")).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    assert_eq!(app.get("/archive/events/not-a-uuid").await.0, 404);
}

#[tokio::test]
async fn retention_without_archive_keeps_no_copy() {
    let app = spawn_app_with(|c| c.retention.archive = false).await;
    let rx = Receiver::start(vec![]).await;
    let (event, _) = completed_event(&app, &rx, &[]).await;
    let r = app
        .retention
        .run_once(now() + 31 * DAY)
        .await
        .expect("pass");
    assert_eq!(r.occurrences_done, 1);
    let (_, page) = app.get("/archive/occurrences").await;
    assert_eq!(page["data"], json!([]));
    assert_eq!(app.get(&format!("/archive/events/{event}")).await.0, 404);
}

#[tokio::test]
async fn archived_rows_go_after_archive_for() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    let (event, _) = completed_event(&app, &rx, &[]).await;
    app.retention
        .run_once(now() + 31 * DAY)
        .await
        .expect("pass");
    assert_eq!(app.get(&format!("/archive/events/{event}")).await.0, 200);
    let r = app
        .retention
        .run_once(now() + 31 * DAY + 401 * DAY)
        .await
        .expect("pass");
    assert_eq!(
        (r.archive_occurrences_expired, r.archive_events_expired),
        (1, 1)
    );
    assert_eq!(app.get(&format!("/archive/events/{event}")).await.0, 404);
}
