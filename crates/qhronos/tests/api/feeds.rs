//! iCalendar feeds: export parsed back by the import gives the same instants (round trip),
//! moved and cancelled instances travel as RECURRENCE-ID overrides, and feed tokens read one
//! feed, in their scope, until revoked.

use std::time::Duration;

use serde_json::{json, Value};

use crate::calendars::{data, defaults, import};
use crate::helpers::{in_ms, spawn_app, TestApp, TOKEN};

/// GET a feed with its URL's token and no Authorization header.
async fn fetch(app: &TestApp, url: &str) -> (u16, String, String) {
    let r = app.client.get(app.url(url)).send().await.expect("sent");
    let s = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (s, ct, r.text().await.expect("body"))
}

/// The instants of a stored event in [2026-01-01, 2028-01-01), by the planner's preview.
async fn instants(app: &TestApp, e: &Value) -> Vec<String> {
    let mut body = json!({
        "start_time": e["start_time"], "timezone": e["timezone"], "schedule": e["schedule"],
        "exdates": e["exdates"], "rdates": e["rdates"], "after": "2025-12-31T23:59:59Z", "limit": 1000,
    });
    if body["schedule"].is_null() {
        body.as_object_mut().unwrap().remove("schedule");
    }
    let (s, v) = app.post("/schedules/preview", body).await;
    assert_eq!(s, 200, "{v}");
    v["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .filter(|t| t.as_str() < "2028-01-01")
        .collect()
}

fn whole_seconds(t: String) -> String {
    let t: jiff::Timestamp = t.parse().unwrap();
    jiff::Timestamp::from_second(t.as_second())
        .unwrap()
        .to_string()
}

fn hook() -> Value {
    json!({"type": "webhook", "params": {"url": "http://127.0.0.1:9/x"}})
}

async fn events_by_name(app: &TestApp, tag: &str) -> Vec<Value> {
    let (_, v) = app.get(&format!("/events?tags={tag}&limit=100")).await;
    v["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_exported_feed_imported_again_fires_at_the_same_instants() {
    let app = spawn_app().await;
    let bodies = [
        json!({"name": "weekly berlin", "start_time": "2026-03-02T09:00:00", "timezone": "Europe/Berlin",
               "schedule": "FREQ=WEEKLY;BYDAY=MO,TH", "duration": "30m",
               "exdates": ["2026-03-05T09:00:00"], "rdates": ["2026-03-07T10:00:00"]}),
        json!({"name": "gap new york", "start_time": "2026-03-01T02:30:00", "timezone": "America/New_York",
               "schedule": "FREQ=DAILY;COUNT=20", "duration": "1h"}),
        json!({"name": "all-day london", "start_date": "2026-05-04", "fire_time": "08:00",
               "timezone": "Europe/London", "schedule": "FREQ=YEARLY", "duration": "2d"}),
        json!({"name": "once utc", "start_time": "2027-02-01T12:00:00Z"}),
        json!({"name": "rent sydney", "start_time": "2026-01-30T10:00:00", "timezone": "Australia/Sydney",
               "schedule": "FREQ=MONTHLY;BYDAY=-1FR;UNTIL=20270601T000000Z"}),
        // iCalendar times have whole seconds.
        json!({"name": "soon", "start_time": whole_seconds(in_ms(600_000)), "schedule": "FREQ=MINUTELY;INTERVAL=10;COUNT=5",
               "duration": "5m"}),
    ];
    for mut b in bodies {
        b["action"] = hook();
        b["tags"] = json!(["rt"]);
        app.create(b).await;
    }
    // One instance cancelled and one moved by hand: they travel as RECURRENCE-ID overrides.
    let soon = events_by_name(&app, "rt")
        .await
        .into_iter()
        .find(|e| e["name"] == "soon")
        .unwrap();
    let sid = soon["id"].as_str().unwrap();
    let occs = app
        .wait_occurrences(sid, Duration::from_secs(5), |l| l.len() == 5)
        .await;
    let mut occs: Vec<Value> = occs;
    occs.sort_by_key(|o| o["scheduled_at"].as_str().unwrap().to_string());
    let cancelled = occs[1]["scheduled_at"].as_str().unwrap().to_string();
    let (s, _) = app
        .req(
            "DELETE",
            &format!("/occurrences/{}", occs[1]["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert!(s == 200 || s == 204, "{s}");
    let moved_from = occs[2]["scheduled_at"].as_str().unwrap().to_string();
    let from: jiff::Timestamp = moved_from.parse().unwrap();
    let moved_to = jiff::Timestamp::from_millisecond(from.as_millisecond() + 180_000)
        .unwrap()
        .to_string();
    let (s, v) = app
        .req(
            "PATCH",
            &format!("/occurrences/{}", occs[2]["id"].as_str().unwrap()),
            Some(json!({"scheduled_at": moved_to})),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    let (s, t) = app.post("/feed-tokens", json!({"tags": ["rt"]})).await;
    assert_eq!(s, 201, "{t}");
    let (s, ct, text) = fetch(&app, t["feed_url"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{text}");
    assert!(ct.starts_with("text/calendar"), "{ct}");
    for part in [
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin",
        "DTSTART;TZID=Europe/Berlin:20260302T090000",
        "RRULE:FREQ=WEEKLY;BYDAY=MO,TH",
        "EXDATE;TZID=Europe/Berlin:20260305T090000",
        "RDATE;TZID=Europe/Berlin:20260307T100000",
        "DTSTART;VALUE=DATE:20260504",
        "DURATION:P2D",
        "STATUS:CANCELLED",
    ] {
        assert!(text.contains(part), "{part} not in:\n{text}");
    }
    for l in text.split("\r\n") {
        assert!(l.len() <= 75, "{l}");
    }

    // Import it elsewhere (a new calendar, another tag).
    let mut d = defaults();
    d["tags"] = json!(["copy"]);
    let (s, v) = import(&app, json!({"ics": text, "defaults": d})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["created"].as_array().unwrap().len(), 6, "{v}");
    assert!(v["skipped"].as_array().unwrap().is_empty(), "{v}");
    let originals = events_by_name(&app, "rt").await;
    let copies = events_by_name(&app, "copy").await;
    for o in &originals {
        let name = o["name"].as_str().unwrap();
        let c = copies
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name}"));
        let mut want = instants(&app, o).await;
        if name == "soon" {
            want.retain(|t| *t != cancelled);
            let i = want.iter().position(|t| *t == moved_from).unwrap();
            want[i] = moved_to.clone();
            want.sort();
        }
        assert_eq!(instants(&app, c).await, want, "{name}");
        assert_eq!(c["timezone"], o["timezone"], "{name}");
        assert_eq!(c["duration"], o["duration"], "{name}");
        assert_eq!(c["fire_time"], o["fire_time"], "{name}");
    }
}

#[tokio::test]
async fn a_calendar_feed_parsed_back_means_what_the_original_file_meant() {
    let app = spawn_app().await;
    let (_, v) = import(
        &app,
        json!({"ics": data("outlook.ics"), "defaults": defaults()}),
    )
    .await;
    let cal = v["calendar_id"].as_str().unwrap();
    let (s, t) = app.post("/feed-tokens", json!({"calendar_id": cal})).await;
    assert_eq!(s, 201, "{t}");
    let (s, _, text) = fetch(&app, t["feed_url"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{text}");
    // Outlook's Windows zones come back as IANA zones with their VTIMEZONE.
    assert!(text.contains("TZID:America/Los_Angeles"), "{text}");
    assert!(text.contains("X-WR-CALNAME:Calendar"), "{text}");
    let mut d = defaults();
    d["tags"] = json!(["copy"]);
    let (s, v) = import(&app, json!({"ics": text, "defaults": d})).await;
    assert_eq!(s, 200, "{v}");
    let originals = events_by_name(&app, "cal").await;
    let copies = events_by_name(&app, "copy").await;
    assert_eq!(originals.len(), 5);
    assert_eq!(copies.len(), 5);
    for o in &originals {
        let c = copies
            .iter()
            .find(|c| c["external_id"] == o["external_id"])
            .unwrap();
        assert_eq!(
            instants(&app, c).await,
            instants(&app, o).await,
            "{}",
            o["name"]
        );
    }
}

#[tokio::test]
async fn a_feed_token_reads_its_feed_in_scope_and_nothing_else_until_revoked() {
    let app = spawn_app().await;
    for tag in ["a", "b"] {
        app.create(json!({"name": format!("event {tag}"), "start_time": "2030-01-01T00:00:00Z", "tags": [tag], "action": hook()}))
            .await;
    }
    let (_, v1) = import(
        &app,
        json!({"ics": data("apple.ics"), "defaults": defaults()}),
    )
    .await;
    let (_, v2) = import(
        &app,
        json!({"ics": data("thunderbird.ics"), "defaults": defaults()}),
    )
    .await;
    let (cal1, cal2) = (
        v1["calendar_id"].as_str().unwrap(),
        v2["calendar_id"].as_str().unwrap(),
    );
    // A scoped write token issues a feed token within its scope only.
    let scoped = app.token("read_write", &["a"]).await;
    let (s, _) = app
        .req_as(
            Some(&scoped),
            "POST",
            "/feed-tokens",
            Some(json!({"tags": ["b"]})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, t) = app
        .req_as(Some(&scoped), "POST", "/feed-tokens", Some(json!({})))
        .await;
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["scope"], json!(["a"]));
    let url = t["feed_url"].as_str().unwrap().to_string();
    let feed_token = t["token"].as_str().unwrap().to_string();
    let (s, _, text) = fetch(&app, &url).await;
    assert_eq!(s, 200);
    assert!(
        text.contains("SUMMARY:event a") && !text.contains("SUMMARY:event b"),
        "{text}"
    );
    // Read-only, this feed only: other routes and other feeds refuse it.
    let (s, _) = app.req_as(Some(&feed_token), "GET", "/events", None).await;
    assert_eq!(s, 403);
    let (s, _) = app
        .req_as(
            Some(&feed_token),
            "POST",
            "/events",
            Some(json!({"name": "x", "start_time": "2030-01-01T00:00:00Z", "action": hook()})),
        )
        .await;
    assert_eq!(s, 403);
    let (s, t) = app.post("/feed-tokens", json!({"calendar_id": cal1})).await;
    assert_eq!(s, 201);
    let cal_token = t["token"].as_str().unwrap().to_string();
    let (s, _, _) = fetch(
        &app,
        &format!("/calendars/{cal2}/feed.ics?token={cal_token}"),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _, _) = fetch(
        &app,
        &format!("/calendars/{cal1}/feed.ics?token={cal_token}"),
    )
    .await;
    assert_eq!(s, 200);
    // Nor may it listen on the WebSocket.
    let (_, answer) = crate::websocket::open(
        &app,
        json!({"type": "tag-listener", "tags": ["a"], "token": feed_token}),
    )
    .await;
    assert!(answer.to_string().contains("feed token"), "{answer}");
    // The token in the query works on feeds only; no token at all is a 401.
    let (s, _, _) = fetch(&app, &format!("/events?token={feed_token}")).await;
    assert_eq!(s, 401);
    let (s, _, _) = fetch(&app, "/events.ics").await;
    assert_eq!(s, 401);
    // An ordinary read token reads feeds with its header.
    let r = app
        .client
        .get(app.url("/events.ics?tags=b"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("SUMMARY:event b"));
    // Revoked: refused.
    let jti = app.get("/tokens").await.1["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["sub"] == "feed:events")
        .unwrap()["jti"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = app.req("DELETE", &format!("/tokens/{jti}"), None).await;
    assert!(s == 200 || s == 204, "{s}");
    let (s, _, _) = fetch(&app, &url).await;
    assert_eq!(s, 401);
}
