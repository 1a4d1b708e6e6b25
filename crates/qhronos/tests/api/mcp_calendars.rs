//! The calendar tools of `/mcp`: list, import, free slots and conflict checks, through the same
//! gate and routes as REST.

use serde_json::json;

use crate::helpers::{spawn_app, TOKEN};
use crate::mcp::tool;

fn file(day: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nX-WR-CALNAME:Team\r\n\
         BEGIN:VEVENT\r\nUID:standup@test\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Standup\r\n\
         DTSTART:{day}T090000Z\r\nDTEND:{day}T093000Z\r\nRRULE:FREQ=DAILY;COUNT=3\r\nEND:VEVENT\r\n\
         END:VCALENDAR\r\n"
    )
}

#[tokio::test]
async fn an_agent_imports_a_calendar_finds_free_time_and_checks_conflicts() {
    let app = spawn_app().await;
    let d = jiff::tz::TimeZone::UTC
        .to_datetime(jiff::Timestamp::now())
        .date()
        .tomorrow()
        .unwrap();
    let day = d.strftime("%Y%m%d").to_string();
    // A dry run writes nothing; the import then makes the calendar.
    let dry = tool(
        &app,
        TOKEN,
        "import_calendar",
        json!({"ics": file(&day), "deliver": {"queue": "cal"}, "dry_run": true}),
    )
    .await
    .unwrap();
    assert_eq!(dry["created"].as_array().unwrap().len(), 1, "{dry}");
    let list = tool(&app, TOKEN, "list_calendars", json!({}))
        .await
        .unwrap();
    assert_eq!(list["data"], json!([]));
    let out = tool(
        &app,
        TOKEN,
        "import_calendar",
        json!({"ics": file(&day), "deliver": {"queue": "cal"}, "tags": ["team"]}),
    )
    .await
    .unwrap();
    let cal = out["calendar_id"].as_str().unwrap().to_string();
    let list = tool(&app, TOKEN, "list_calendars", json!({"limit": 10}))
        .await
        .unwrap();
    assert_eq!(list["data"][0]["id"], cal.as_str(), "{list}");
    assert_eq!(list["data"][0]["name"], "Team");
    // Free time that morning: around the standup.
    let slots = tool(
        &app,
        TOKEN,
        "free_slots",
        json!({"calendar_id": cal, "duration": "1h", "from": format!("{d}T08:00:00Z"), "to": format!("{d}T11:00:00Z")}),
    )
    .await
    .unwrap();
    assert_eq!(
        slots["slots"],
        json!([
            {"start": format!("{d}T08:00:00Z"), "end": format!("{d}T09:00:00Z")},
            {"start": format!("{d}T09:30:00Z"), "end": format!("{d}T11:00:00Z")},
        ])
    );
    // A check saves nothing and names the standup; a free time has no conflicts.
    let c = tool(
        &app,
        TOKEN,
        "check_conflicts",
        json!({"calendar_id": cal, "at": format!("{d}T09:15:00Z"), "duration": "30m"}),
    )
    .await
    .unwrap();
    assert_eq!(c["conflicts"][0]["name"], "Standup", "{c}");
    assert_eq!(c["mode"], "free");
    assert_eq!(c["proposals"][0]["start"], format!("{d}T09:30:00Z"));
    let c = tool(
        &app,
        TOKEN,
        "check_conflicts",
        json!({"calendar_id": cal, "rule": "FREQ=DAILY;COUNT=3", "start": format!("{d}T12:00:00Z"), "duration": "1h"}),
    )
    .await
    .unwrap();
    assert_eq!(c["conflicts"], json!([]), "{c}");
    let (_, events) = app.get("/events").await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1, "nothing saved");
    // The REST API's messages come through; a read-only token cannot import.
    let e = tool(
        &app,
        TOKEN,
        "check_conflicts",
        json!({"calendar_id": cal, "at": format!("{d}T09:15:00Z"), "duration": "soon"}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("duration") && e.contains("400"), "{e}");
    let reader = app.token("read", &[]).await;
    let e = tool(
        &app,
        &reader,
        "import_calendar",
        json!({"ics": file(&day), "deliver": {"queue": "cal"}}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("403"), "{e}");
    let list = tool(&app, &reader, "list_calendars", json!({}))
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}
