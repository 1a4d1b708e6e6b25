//! Conflicts in `auto_plan` and `free` calendars, and free slots, around the next DST change
//! in Berlin (whenever the suite runs).

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp};
use qhronos::domain::duration::Dur;

const ZONE: &str = "Europe/Berlin";

/// The local date of the next DST change in Berlin.
fn dst_day() -> Date {
    let tz = TimeZone::get(ZONE).unwrap();
    let t = tz
        .following(jiff::Timestamp::now())
        .next()
        .unwrap()
        .timestamp();
    tz.to_datetime(t).date()
}

/// `day` at `hm` in Berlin, as the UTC instant the server answers with.
fn at(day: Date, hm: &str) -> String {
    let dt: DateTime = format!("{day}T{hm}:00").parse().unwrap();
    TimeZone::get(ZONE)
        .unwrap()
        .to_ambiguous_timestamp(dt)
        .compatible()
        .unwrap()
        .to_string()
}

fn local(day: Date, hm: &str) -> String {
    format!("{day}T{hm}:00")
}

async fn calendar(app: &TestApp, mode: &str) -> String {
    let (s, v) = app
        .post("/calendars", json!({"name": mode, "mode": mode}))
        .await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

fn event(name: &str, cal: &str, start: String, extra: Value) -> Value {
    let mut b = json!({
        "name": name, "start_time": start, "timezone": ZONE, "calendar_id": cal,
        "action": {"type": "webhook", "params": {"url": "http://127.0.0.1:9/x"}},
    });
    for (k, v) in extra.as_object().unwrap() {
        b[k] = v.clone();
    }
    b
}

#[tokio::test]
async fn auto_plan_refuses_an_overlap_across_dst_with_the_nearest_free_slots() {
    let app = spawn_app_with(|c| c.planning.horizon = Dur::from_secs(400 * 86_400)).await;
    let d = dst_day();
    let before = d.yesterday().unwrap().yesterday().unwrap();
    let cal = calendar(&app, "auto_plan").await;
    // Daily 09:00–10:00 local, across the change.
    let (s, daily) = app
        .post(
            "/events",
            event(
                "daily",
                &cal,
                local(before, "09:00"),
                json!({"schedule": "FREQ=DAILY;COUNT=10", "duration": "1h"}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{daily}");
    assert_eq!(daily["conflicts"], json!([]));
    // 09:30 on the DST day overlaps that day's 09:00 (whose UTC time differs from the day
    // before): 409 naming it, with the nearest free slots (10:00, then 08:30).
    let (s, v) = app
        .post(
            "/events",
            event("clash", &cal, local(d, "09:30"), json!({"duration": "30m"})),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["conflicts"][0]["event_id"], daily["id"]);
    assert_eq!(v["conflicts"][0]["other_at"], at(d, "09:00"));
    assert_eq!(v["conflicts"][0]["other_ends_at"], at(d, "10:00"));
    assert_eq!(v["proposals"][0]["start"], at(d, "10:00"));
    assert_eq!(v["proposals"][1]["start"], at(d, "08:30"));
    assert_eq!(v["proposals"][1]["end"], at(d, "09:00"));
    let (_, list) = app.get("/events").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "nothing saved");
    // The proposal is free.
    let (s, v) = app
        .post(
            "/events",
            event("moved", &cal, local(d, "10:00"), json!({"duration": "30m"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    // An update into a collision is refused too, and leaves the event as it was.
    let id = v["id"].as_str().unwrap();
    let (s, _) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"start_time": local(d, "09:45")})),
        )
        .await;
    assert_eq!(s, 409);
    let (_, e) = app.get(&format!("/events/{id}")).await;
    assert_eq!(e["start_time"], at(d, "10:00"));

    // Free slots that day, 08:00–12:00 local: 08:00–09:00 and 10:30–12:00.
    let (s, v) = app
        .post(
            &format!("/calendars/{cal}/free-slots"),
            json!({
                "duration": "1h", "from": at(d, "00:00"), "to": at(d.tomorrow().unwrap(), "00:00"),
                "working_hours": {"days": ["MO", "TU", "WE", "TH", "FR", "SA", "SU"], "start": "08:00", "end": "12:00", "timezone": ZONE},
            }),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["slots"],
        json!([
            {"start": at(d, "08:00"), "end": at(d, "09:00")},
            {"start": at(d, "10:30"), "end": at(d, "12:00")},
        ])
    );
    // Without working hours the whole span counts; bad input names the field.
    for (body, field) in [
        (
            json!({"duration": "soon", "from": at(d, "00:00"), "to": at(d, "12:00")}),
            "duration:",
        ),
        (
            json!({"duration": "1h", "from": at(d, "12:00"), "to": at(d, "00:00")}),
            "to:",
        ),
        (
            json!({"duration": "1h", "from": at(d, "00:00"), "to": at(d, "12:00"), "working_hours": {"days": ["XX"], "start": "08:00", "end": "12:00", "timezone": ZONE}}),
            "working_hours.days:",
        ),
        (
            json!({"duration": "1h", "from": at(d, "00:00"), "to": at(d, "12:00"), "working_hours": {"start": "08:00", "end": "12:00", "timezone": "Mars/Olympus"}}),
            "working_hours.timezone:",
        ),
    ] {
        let (s, v) = app
            .post(&format!("/calendars/{cal}/free-slots"), body)
            .await;
        assert_eq!(s, 400, "{v}");
        assert!(v["error"].as_str().unwrap().starts_with(field), "{v}");
    }
}

#[tokio::test]
async fn free_mode_saves_an_overlap_and_reports_it() {
    let app = spawn_app_with(|c| c.planning.horizon = Dur::from_secs(400 * 86_400)).await;
    let d = dst_day();
    let cal = calendar(&app, "free").await;
    let (s, a) = app
        .post(
            "/events",
            event("a", &cal, local(d, "09:00"), json!({"duration": "1h"})),
        )
        .await;
    assert_eq!(s, 201, "{a}");
    let (s, b) = app
        .post(
            "/events",
            event("b", &cal, local(d, "09:30"), json!({"duration": "1h"})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["conflicts"][0]["event_id"], a["id"]);
    assert_eq!(b["conflicts"][0]["at"], at(d, "09:30"));
    // Without a duration nothing is checked; an unknown calendar is a 400 naming the field.
    let (s, v) = app
        .post("/events", event("c", &cal, local(d, "09:30"), json!({})))
        .await;
    assert_eq!(s, 201, "{v}");
    assert!(v.get("conflicts").is_none(), "{v}");
    let (s, v) = app
        .post(
            "/events",
            event(
                "d",
                "0194f3c0-0000-7000-8000-000000000000",
                local(d, "09:30"),
                json!({"duration": "1h"}),
            ),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().starts_with("calendar_id:"),
        "{v}"
    );
}
