//! Local times without an offset (read in the event's zone by the DST policy), durations and
//! `ends_at`, all-day events.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{in_ms, spawn_app, Receiver};

fn hook() -> Value {
    json!({"type": "webhook", "params": {"url": "http://127.0.0.1:9/x"}})
}

#[tokio::test]
async fn a_local_start_time_is_read_in_the_zone_with_the_gap_forward_and_the_fold_first() {
    let app = spawn_app().await;
    // 02:30 does not exist in Berlin on 2026-03-29 (02:00 → 03:00): it moves forward by the
    // gap, to 03:30 CEST.
    let (s, v) = app
        .post("/events", json!({"name": "gap", "start_time": "2026-03-29T02:30:00", "timezone": "Europe/Berlin", "action": hook()}))
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["start_time"], "2026-03-29T01:30:00Z");
    // 02:30 happens twice on 2026-10-25: the first (CEST) is taken.
    let (s, v) = app
        .post("/events", json!({"name": "fold", "start_time": "2026-10-25T02:30", "timezone": "Europe/Berlin", "action": hook()}))
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["start_time"], "2026-10-25T00:30:00Z");
    // An offset still wins over the zone.
    let (s, v) = app
        .post("/events", json!({"name": "offset", "start_time": "2026-10-25T02:30:00+01:00", "timezone": "Europe/Berlin", "action": hook()}))
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["start_time"], "2026-10-25T01:30:00Z");
}

#[tokio::test]
async fn a_local_time_without_a_timezone_is_a_400_naming_the_field() {
    let app = spawn_app().await;
    let (s, v) = app
        .post(
            "/events",
            json!({"name": "x", "start_time": "2026-03-29T02:30:00", "action": hook()}),
        )
        .await;
    assert_eq!(s, 400);
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.starts_with("start_time:") && msg.contains("timezone"),
        "{msg}"
    );
    let (s, v) = app
        .post("/events", json!({"name": "x", "start_time": "2026-03-29T02:30:00Z", "schedule": "FREQ=DAILY", "exdates": ["2026-03-30T02:30:00"], "action": hook()}))
        .await;
    assert_eq!(s, 400);
    assert!(
        v["error"].as_str().unwrap().starts_with("exdates[0]:"),
        "{v}"
    );
    let (s, v) = app
        .post(
            "/schedules/preview",
            json!({"start_time": "2026-03-29T02:30:00"}),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        v["error"].as_str().unwrap().starts_with("start_time:"),
        "{v}"
    );
    let (s, v) = app
        .post("/events", json!({"name": "x", "start_time": "2026-03-29T02:30:00", "timezone": "Mars/Olympus", "action": hook()}))
        .await;
    assert_eq!(s, 400);
    assert!(v["error"].as_str().unwrap().contains("Mars/Olympus"), "{v}");
}

#[tokio::test]
async fn preview_reads_local_start_exdates_and_rdates_in_its_zone() {
    let app = spawn_app().await;
    let (s, v) = app
        .post(
            "/schedules/preview",
            json!({
                "start_time": "2026-03-27T02:30:00", "timezone": "Europe/Berlin",
                "schedule": "FREQ=DAILY;COUNT=4",
                "exdates": ["2026-03-28T02:30:00"],
                "rdates": ["2026-03-28T12:00:00"],
            }),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["occurrences"],
        json!([
            "2026-03-27T01:30:00Z",
            "2026-03-28T11:00:00Z",
            // The 29th's 02:30 falls in the gap: 03:30 CEST.
            "2026-03-29T01:30:00Z",
            "2026-03-30T00:30:00Z",
        ])
    );
}

#[tokio::test]
async fn an_occurrence_moves_to_a_local_time_in_its_events_zone() {
    let app = spawn_app().await;
    let id = app
        .create(json!({"name": "m", "start_time": in_ms(3_600_000), "timezone": "America/New_York", "duration": "30m", "action": hook()}))
        .await;
    let list = app
        .wait_occurrences(&id, Duration::from_secs(5), |l| !l.is_empty())
        .await;
    let occ = list[0]["id"].as_str().unwrap();
    let (s, v) = app
        .req(
            "PATCH",
            &format!("/occurrences/{occ}"),
            Some(json!({"scheduled_at": "2030-07-01T09:00:00"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["scheduled_at"], "2030-07-01T13:00:00Z");
    // The end moves with it.
    assert_eq!(v["ends_at"], "2030-07-01T13:30:00Z");
}

#[tokio::test]
async fn a_duration_gives_every_occurrence_and_the_webhook_an_end() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    let (s, v) = app
        .post(
            "/events",
            json!({
                "name": "meeting", "start_time": in_ms(300), "duration": "45m",
                "action": {"type": "webhook", "params": {"url": rx.url()}},
            }),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["duration"], "45m");
    let start: jiff::Timestamp = v["start_time"].as_str().unwrap().parse().unwrap();
    let end: jiff::Timestamp = v["end_time"].as_str().unwrap().parse().unwrap();
    assert_eq!(end.as_millisecond() - start.as_millisecond(), 45 * 60_000);
    let got = rx.wait_for(1, Duration::from_secs(5)).await;
    let body = got[0].json();
    assert_eq!(body["scheduled_at"], v["start_time"]);
    assert_eq!(body["ends_at"], v["end_time"]);
    let id = v["id"].as_str().unwrap();
    let (_, occs) = app.get(&format!("/events/{id}/occurrences")).await;
    assert_eq!(occs["data"][0]["ends_at"], v["end_time"]);
}

#[tokio::test]
async fn templates_see_the_end_and_end_time_becomes_a_duration() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    let (s, v) = app
        .post(
            "/events",
            json!({
                "name": "t", "start_time": "2030-01-01T10:00:00", "timezone": "Europe/Paris",
                "end_time": "2030-01-01T11:30:00",
                "action": {"type": "webhook", "params": {"url": rx.url(), "body": "{{ occurrence.scheduled_at }}|{{ occurrence.ends_at }}"}},
            }),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["duration"], "90m");
    assert_eq!(v["end_time"], "2030-01-01T10:30:00Z");
    let id = v["id"].as_str().unwrap();
    let (s, _) = app.post(&format!("/events/{id}/trigger"), json!({})).await;
    assert!(s == 200 || s == 201 || s == 202, "{s}");
    let got = rx.wait_for(1, Duration::from_secs(5)).await;
    let text = String::from_utf8(got[0].body.to_vec()).unwrap();
    let (a, b) = text.split_once("|").unwrap();
    let a: jiff::Timestamp = a.parse().unwrap();
    let b: jiff::Timestamp = b.parse().unwrap();
    assert_eq!(b.as_millisecond() - a.as_millisecond(), 90 * 60_000);
    // Bad ends name their field.
    for (body, field) in [
        (json!({"end_time": "2030-01-01T09:00:00"}), "end_time:"),
        (json!({"duration": "0s"}), "duration:"),
        (json!({"duration": "soon"}), "duration:"),
        (
            json!({"duration": "1h", "end_time": "2030-01-01T12:00:00"}),
            "duration and end_time",
        ),
    ] {
        let (s, v) = app.req("PUT", &format!("/events/{id}"), Some(body)).await;
        assert_eq!(s, 400, "{v}");
        assert!(v["error"].as_str().unwrap().starts_with(field), "{v}");
    }
    // null clears it.
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"duration": null})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["duration"], Value::Null);
    assert_eq!(v["end_time"], Value::Null);
}

#[tokio::test]
async fn an_all_day_event_fires_at_its_local_time_and_spans_local_days() {
    let app = spawn_app().await;
    // 2026-03-28 + 2 days in Berlin spans the spring-forward day (23 hours).
    let (s, v) = app
        .post(
            "/events",
            json!({
                "name": "holiday", "start_date": "2026-03-28", "timezone": "Europe/Berlin",
                "duration": "2d", "action": hook(),
            }),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["start_date"], "2026-03-28");
    assert_eq!(v["fire_time"], "00:00:00");
    assert_eq!(v["start_time"], "2026-03-27T23:00:00Z");
    assert_eq!(v["end_time"], "2026-03-29T22:00:00Z");
    // A configured fire time, a yearly rule and an all-day EXDATE given as a date.
    let (s, v) = app
        .post(
            "/events",
            json!({
                "name": "birthday", "start_date": "2026-07-04", "fire_time": "09:00",
                "timezone": "America/New_York", "schedule": "FREQ=YEARLY",
                "exdates": ["2027-07-04"], "action": hook(),
            }),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["start_time"], "2026-07-04T13:00:00Z");
    assert_eq!(v["exdates"], json!(["2027-07-04T13:00:00Z"]));
    // One day by default.
    assert_eq!(v["end_time"], "2026-07-05T04:00:00Z");
    let id = v["id"].as_str().unwrap();
    // Moving it to a timed start drops the all-day date.
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"start_time": "2026-07-04T10:00:00"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["start_date"], Value::Null);
    assert_eq!(v["start_time"], "2026-07-04T14:00:00Z");
    for (body, field) in [
        (
            json!({"name": "x", "start_date": "2026-07-04", "action": hook()}),
            "start_date:",
        ),
        (
            json!({"name": "x", "start_date": "04/07/2026", "timezone": "UTC", "action": hook()}),
            "start_date:",
        ),
        (
            json!({"name": "x", "start_date": "2026-07-04", "start_time": "2026-07-04T00:00:00Z", "timezone": "UTC", "action": hook()}),
            "start_date:",
        ),
        (
            json!({"name": "x", "start_date": "2026-07-04", "timezone": "UTC", "duration": "36h", "action": hook()}),
            "duration:",
        ),
        (
            json!({"name": "x", "start_date": "2026-07-04", "timezone": "UTC", "fire_time": "25:00", "action": hook()}),
            "fire_time:",
        ),
        (
            json!({"name": "x", "start_time": "2026-07-04T00:00:00Z", "fire_time": "09:00", "action": hook()}),
            "fire_time:",
        ),
    ] {
        let (s, v) = app.post("/events", body).await;
        assert_eq!(s, 400, "{v}");
        assert!(v["error"].as_str().unwrap().starts_with(field), "{v}");
    }
}
