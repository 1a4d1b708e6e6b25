//! The conflict index kept per calendar (correct after this node's writes and after another
//! writer's), conflict checks of `POST /events/batch` and of imports, RECURRENCE-ID overrides
//! with their own length and title, and `GET /calendars` a page at a time.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp};
use qhronos::api::event_io::EventIn;
use qhronos::store::By;

const HOOK: &str = "http://127.0.0.1:9/x";

async fn calendar(app: &TestApp, mode: &str) -> String {
    let (s, v) = app
        .post("/calendars", json!({"name": mode, "mode": mode}))
        .await;
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// Tomorrow (UTC) at `hm`, a week of it: a daily series would collide every day.
fn tomorrow(hm: &str) -> String {
    let d = jiff::tz::TimeZone::UTC
        .to_datetime(jiff::Timestamp::now())
        .date()
        .tomorrow()
        .unwrap();
    format!("{d}T{hm}:00Z")
}

fn event(name: &str, cal: &str, hm: &str, duration: &str) -> Value {
    json!({
        "name": name, "start_time": tomorrow(hm), "schedule": "FREQ=DAILY;COUNT=7",
        "duration": duration, "calendar_id": cal,
        "action": {"type": "webhook", "params": {"url": HOOK}},
    })
}

async fn create(app: &TestApp, body: Value) -> (u16, Value) {
    app.post("/events", body).await
}

#[tokio::test]
async fn the_kept_index_follows_every_write_of_this_node() {
    let app = spawn_app().await;
    let cal = calendar(&app, "auto_plan").await;
    let (s, a) = create(&app, event("a", &cal, "09:00", "1h")).await;
    assert_eq!(s, 201, "{a}");
    let (s, v) = create(&app, event("b", &cal, "09:30", "1h")).await;
    assert_eq!(s, 409, "{v}");
    // A deleted event no longer collides.
    let (s, _) = app
        .req(
            "DELETE",
            &format!("/events/{}", a["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, b) = create(&app, event("b", &cal, "09:30", "1h")).await;
    assert_eq!(s, 201, "{b}");
    // A moved event collides where it is now, not where it was.
    let id = b["id"].as_str().unwrap();
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"start_time": tomorrow("15:00")})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = create(&app, event("c", &cal, "09:30", "1h")).await;
    assert_eq!(s, 201, "the old place is free: {v}");
    let (s, v) = create(&app, event("d", &cal, "15:30", "1h")).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["conflicts"][0]["event_id"], b["id"]);
    // Moved out of the calendar: no longer in its index.
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"calendar_id": null})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = create(&app, event("d", &cal, "15:30", "1h")).await;
    assert_eq!(s, 201, "{v}");
}

/// The database of `app`, as another node would open it.
fn db_url(app: &TestApp) -> String {
    match &app.db {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}", app._dir.path().join("qhronos.db").display()),
    }
}

#[tokio::test]
async fn a_write_by_another_node_makes_the_kept_index_stale() {
    let app = spawn_app().await;
    let cal = calendar(&app, "auto_plan").await;
    let (s, v) = create(&app, event("a", &cal, "09:00", "1h")).await;
    assert_eq!(s, 201, "{v}");
    // The index is built and kept by now; another writer adds 12:00–13:00 behind its back.
    let other = qhronos::store::connect(&db_url(&app), &Default::default())
        .await
        .unwrap();
    let now = jiff::Timestamp::now().as_millisecond();
    let input: EventIn = serde_json::from_value(event("elsewhere", &cal, "12:00", "1h")).unwrap();
    let e = input.validate(Uuid::now_v7(), now, now).unwrap();
    other
        .create_event(&e, &[], None, By::actor("other node"))
        .await
        .unwrap();
    let (s, v) = create(&app, event("b", &cal, "12:30", "1h")).await;
    assert_eq!(s, 409, "the other node's event collides: {v}");
    assert_eq!(v["conflicts"][0]["event_id"], json!(e.id));
}

#[tokio::test]
async fn a_batch_is_checked_like_creates_one_by_one() {
    let app = spawn_app().await;
    let plan = calendar(&app, "auto_plan").await;
    let (s, first) = create(&app, event("first", &plan, "08:00", "1h")).await;
    assert_eq!(s, 201, "{first}");
    // Item 1 overlaps item 0, item 2 the calendar's event: refused, nothing created.
    let (s, v) = app
        .post(
            "/events/batch",
            json!({"events": [
                event("x", &plan, "10:00", "1h"),
                event("y", &plan, "10:30", "1h"),
                event("z", &plan, "08:30", "15m"),
                event("fine", &plan, "20:00", "1h"),
            ]}),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{v}");
    assert_eq!(items[0]["index"], 1);
    assert_eq!(items[0]["conflicts"][0]["name"], "x");
    assert_eq!(items[1]["index"], 2);
    assert_eq!(items[1]["conflicts"][0]["event_id"], first["id"]);
    assert!(!items[1]["proposals"].as_array().unwrap().is_empty(), "{v}");
    let (_, list) = app.get("/events").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "nothing created");
    // In a free calendar the batch is saved and the overlaps reported by index.
    let free = calendar(&app, "free").await;
    let (s, v) = app
        .post(
            "/events/batch",
            json!({"events": [
                event("x", &free, "10:00", "1h"),
                event("y", &free, "10:30", "1h"),
                event("w", &free, "20:00", "1h"),
            ]}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["conflicts"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["conflicts"][0]["index"], 1);
    assert_eq!(v["conflicts"][0]["conflicts"][0]["event_id"], v["ids"][0]);
    // An unknown calendar is the item's 400.
    let (s, v) = app
        .post(
            "/events/batch",
            json!({"events": [event("u", "0194f3c0-0000-7000-8000-000000000000", "10:00", "1h")]}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["items"][0]["error"]
            .as_str()
            .unwrap()
            .starts_with("calendar_id:"),
        "{v}"
    );
}

fn ics(events: &[(&str, &str, &str, &str)]) -> String {
    let mut s = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n");
    for (uid, summary, start, end) in events {
        s.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:{summary}\r\nDTSTART:{start}\r\nDTEND:{end}\r\nRRULE:FREQ=DAILY;COUNT=5\r\nEND:VEVENT\r\n"
        ));
    }
    s.push_str("END:VCALENDAR\r\n");
    s
}

/// Tomorrow at `hm` UTC in iCalendar form.
fn ical(hm: &str) -> String {
    tomorrow(hm).replace(['-', ':'], "")
}

#[tokio::test]
async fn an_import_is_checked_like_its_events_created_in_file_order() {
    let app = spawn_app().await;
    let file = ics(&[
        ("one@test", "One", &ical("09:00"), &ical("10:00")),
        ("two@test", "Two", &ical("09:30"), &ical("10:30")),
        ("three@test", "Three", &ical("12:00"), &ical("13:00")),
    ]);
    let defaults = json!({"action": {"type": "webhook", "params": {"url": HOOK}}});
    let plan = calendar(&app, "auto_plan").await;
    let (s, v) = app
        .post(
            "/calendars/import",
            json!({"ics": file, "calendar_id": plan, "defaults": defaults}),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["items"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["items"][0]["uid"], "two@test");
    assert_eq!(v["items"][0]["conflicts"][0]["name"], "One");
    assert!(v["items"][0]["line"].as_u64().is_some(), "{v}");
    let (_, c) = app.get(&format!("/calendars/{plan}")).await;
    assert_eq!(c["events"], 0, "nothing imported: {c}");
    // Free: imported, the overlap listed; re-importing the same file changes and lists nothing.
    let free = calendar(&app, "free").await;
    let body = json!({"ics": file, "calendar_id": free, "defaults": defaults});
    let (s, v) = app.post("/calendars/import", body.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["created"].as_array().unwrap().len(), 3);
    assert_eq!(v["conflicts"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["conflicts"][0]["uid"], "two@test");
    let (s, v) = app.post("/calendars/import", body).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["unchanged"], 3);
    assert_eq!(v["conflicts"], json!([]));
}

#[tokio::test]
async fn an_override_keeps_its_own_length_and_title() {
    let app = spawn_app().await;
    let file = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
        BEGIN:VEVENT\r\nUID:s@test\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Standup\r\n\
        DTSTART:20300107T090000Z\r\nDTEND:20300107T093000Z\r\nRRULE:FREQ=DAILY;COUNT=4\r\nEND:VEVENT\r\n\
        BEGIN:VEVENT\r\nUID:s@test\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20300108T090000Z\r\n\
        SUMMARY:Long review\r\nDTSTART:20300108T140000Z\r\nDURATION:PT2H30M\r\nEND:VEVENT\r\n\
        BEGIN:VEVENT\r\nUID:s@test\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20300109T090000Z\r\n\
        SUMMARY:Standup\r\nDTSTART:20300109T100000Z\r\nDTEND:20300109T103000Z\r\nEND:VEVENT\r\n\
        END:VCALENDAR\r\n";
    let (s, v) = app
        .post(
            "/calendars/import",
            json!({"ics": file, "defaults": {"action": {"type": "webhook", "params": {"url": HOOK}}}}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["created"].as_array().unwrap().len(), 2, "{v}");
    let (_, list) = app.get("/events").await;
    let by_name = |n: &str| {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == n)
            .unwrap_or_else(|| panic!("no {n} in {list}"))
            .clone()
    };
    // The series: the moved-only instance folded (EXDATE + RDATE), the other one cut out.
    let series = by_name("Standup");
    assert_eq!(
        series["exdates"],
        json!(["2030-01-08T09:00:00Z", "2030-01-09T09:00:00Z"])
    );
    assert_eq!(series["rdates"], json!(["2030-01-09T10:00:00Z"]));
    assert_eq!(series["duration"], "30m");
    // The instance with its own title and length: an event of its own.
    let own = by_name("Long review");
    assert_eq!(own["start_time"], "2030-01-08T14:00:00Z");
    assert_eq!(own["duration"], "150m");
    assert_eq!(own["schedule"], Value::Null);
    assert_eq!(own["external_id"], "s@test#2030-01-08T09:00:00Z");
    // Re-importing changes nothing.
    let (s, v) = app
        .post(
            "/calendars/import",
            json!({"ics": file, "calendar_id": series["calendar_id"], "defaults": {"action": {"type": "webhook", "params": {"url": HOOK}}}}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["unchanged"], 2, "{v}");
}

#[tokio::test]
async fn calendars_are_listed_a_page_at_a_time() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(calendar(&app, if n % 2 == 0 { "free" } else { "auto_plan" }).await);
    }
    let (s, p1) = app.get("/calendars?limit=2").await;
    assert_eq!(s, 200, "{p1}");
    let got: Vec<&str> = p1["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, [ids[0].as_str(), ids[1].as_str()]);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (s, p2) = app
        .get(&format!("/calendars?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(s, 200, "{p2}");
    assert_eq!(p2["data"][0]["id"], ids[2].as_str());
    assert_eq!(p2["data"].as_array().unwrap().len(), 1);
    assert_eq!(p2["next_cursor"], Value::Null);
    for (q, field) in [
        ("limit=0", "limit:"),
        ("cursor=nope", "cursor:"),
        ("sort=name", "unknown query parameter"),
    ] {
        let (s, v) = app.get(&format!("/calendars?{q}")).await;
        assert_eq!(s, 400, "{q}: {v}");
        assert!(v["error"].as_str().unwrap().starts_with(field), "{v}");
    }
}
