//! iCalendar import: files as Google Calendar, Outlook/Exchange, Apple Calendar and Thunderbird
//! write them (tests/data/ics, see its README), checked against the instants Python's
//! `icalendar` + `recurring-ical-events` computed (`expected.json`); idempotence, update,
//! removal, dry run and bad files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, TOKEN};

pub fn data(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/ics")
        .join(name);
    std::fs::read_to_string(p).expect("test file")
}

fn expected() -> Value {
    serde_json::from_str(&data("expected.json")).expect("expected.json")
}

pub fn defaults() -> Value {
    json!({"action": {"type": "webhook", "params": {"url": "http://127.0.0.1:9/hook"}}, "tags": ["cal"]})
}

/// `POST /calendars/import` with a JSON body.
pub async fn import(app: &TestApp, body: Value) -> (u16, Value) {
    app.post("/calendars/import", body).await
}

/// `POST /calendars/import` with a text/calendar body.
async fn import_text(app: &TestApp, text: &str, query: &str) -> (u16, Value) {
    let r = app
        .client
        .post(app.url(&format!("/calendars/import{query}")))
        .bearer_auth(TOKEN)
        .header("content-type", "text/calendar; charset=utf-8")
        .body(text.to_string())
        .send()
        .await
        .expect("sent");
    let s = r.status().as_u16();
    let t = r.text().await.expect("body");
    (s, serde_json::from_str(&t).unwrap_or(Value::String(t)))
}

/// The 1-based line of the `n`-th `BEGIN:VEVENT` of a file whose UID line follows it.
fn line_of(text: &str, uid: &str) -> usize {
    let mut begin = 0;
    for (i, l) in text.lines().enumerate() {
        if l.trim_end() == "BEGIN:VEVENT" {
            begin = i + 1;
        }
        if l.trim_end() == format!("UID:{uid}") {
            return begin;
        }
    }
    panic!("no UID {uid}");
}

/// Every start of an event in 2026 (UTC, or local dates for an all-day event), by the same
/// preview the engine's planning uses, from the event as stored.
async fn starts_2026(app: &TestApp, id: &str) -> Vec<String> {
    let (_, e) = app.get(&format!("/events/{id}")).await;
    let mut body = json!({
        "start_time": e["start_time"], "timezone": e["timezone"], "schedule": e["schedule"],
        "exdates": e["exdates"], "rdates": e["rdates"], "after": "2025-12-31T23:59:59Z", "limit": 1000,
    });
    if body["schedule"].is_null() {
        body.as_object_mut().unwrap().remove("schedule");
    }
    let (s, v) = app.post("/schedules/preview", body).await;
    assert_eq!(s, 200, "{v}");
    let all_day = !e["start_date"].is_null();
    let utc = v["occurrences"].as_array().unwrap();
    let local = v["occurrences_local"].as_array().unwrap();
    utc.iter()
        .zip(local)
        .filter(|(u, _)| u.as_str().unwrap() < "2027-01-01")
        .map(|(u, l)| {
            if all_day {
                l.as_str().unwrap()[..10].to_string()
            } else {
                u.as_str().unwrap().to_string()
            }
        })
        .collect()
}

#[tokio::test]
async fn imported_files_fire_at_the_instants_an_independent_implementation_computes() {
    let app = spawn_app().await;
    let exp = expected();
    for file in ["google.ics", "outlook.ics", "apple.ics", "thunderbird.ics"] {
        let text = data(file);
        let (s, v) = import(&app, json!({"ics": text, "defaults": defaults()})).await;
        assert_eq!(s, 200, "{file}: {v}");
        let created: BTreeMap<String, String> = v["created"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["uid"].as_str().unwrap().to_string(),
                    c["id"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for (uid, want) in exp[file].as_object().unwrap() {
            let want: Vec<String> = serde_json::from_value(want["starts"].clone()).unwrap();
            match created.get(uid) {
                Some(id) => {
                    // An override with its own title or length is an event of its own
                    // (`UID#RECURRENCE-ID`): its instant belongs to the series.
                    let mut got = starts_2026(&app, id).await;
                    for (key, own) in &created {
                        if key.starts_with(&format!("{uid}#")) {
                            got.extend(starts_2026(&app, own).await);
                        }
                    }
                    got.sort();
                    assert_eq!(got, want, "{file} {uid}");
                    let (_, e) = app.get(&format!("/events/{id}")).await;
                    assert_eq!(e["external_id"], uid.as_str());
                    assert_eq!(e["calendar_id"], v["calendar_id"]);
                    assert_eq!(!e["start_date"].is_null(), want_all_day(&exp, file, uid));
                }
                // Only a cancelled series is not created: it has no instants.
                None => {
                    assert!(want.is_empty(), "{file} {uid} was not imported: {v}");
                    let skip = v["skipped"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|s| s["uid"] == uid.as_str())
                        .unwrap_or_else(|| panic!("{uid} neither created nor skipped: {v}"));
                    assert_eq!(skip["reason"], "STATUS:CANCELLED");
                    assert_eq!(skip["line"], line_of(&text, uid));
                }
            }
        }
    }
    // Names, descriptions and durations come from the file.
    let (_, list) = app.get("/events?limit=100").await;
    let standup = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "Standup")
        .expect("standup");
    assert_eq!(standup["duration"], "15m");
    assert_eq!(standup["timezone"], "Europe/Berlin");
    assert!(standup["description"]
        .as_str()
        .unwrap()
        .ends_with("abc-defg-hij"));
    let outlook = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "New York office sync")
        .expect("custom zone event");
    assert_eq!(outlook["timezone"], "America/New_York");
    let seattle = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "Call with Seattle")
        .expect("windows zone event");
    assert_eq!(seattle["timezone"], "America/Los_Angeles");
}

fn want_all_day(exp: &Value, file: &str, uid: &str) -> bool {
    exp[file][uid]["all_day"].as_bool().unwrap()
}

#[tokio::test]
async fn a_reimport_changes_nothing_a_changed_file_updates_and_removes_and_dry_run_writes_nothing()
{
    let app = spawn_app().await;
    let text = data("google.ics");
    let (s, v) = import(&app, json!({"ics": text, "defaults": defaults()})).await;
    assert_eq!(s, 200, "{v}");
    let cal = v["calendar_id"].as_str().unwrap().to_string();
    assert_eq!(v["created"].as_array().unwrap().len(), 4);
    // The calendar took the file's name and remembers its defaults and counts.
    let (_, c) = app.get(&format!("/calendars/{cal}")).await;
    assert_eq!(c["name"], "Team");
    assert_eq!(c["events"], 4);
    assert_eq!(c["counts"]["created"], 4);

    // The same file again, as text/calendar with the stored defaults: nothing changes.
    let (s, v) = import_text(&app, &text, &format!("?calendar_id={cal}")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["unchanged"], 4, "{v}");
    assert!(v["created"].as_array().unwrap().is_empty());
    assert!(v["updated"].as_array().unwrap().is_empty());
    assert!(v["removed"].as_array().unwrap().is_empty());

    // A changed file: a renamed series, one event gone.
    let changed = text
        .replace("SUMMARY:Monthly report", "SUMMARY:Monthly report (v2)")
        .replace(
            &text[text
                .find("BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261224")
                .unwrap()..][..text[text
                .find("BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261224")
                .unwrap()..]
                .find("END:VEVENT\r\n")
                .unwrap()
                + "END:VEVENT\r\n".len()],
            "",
        );
    // A dry run says so and writes nothing.
    let (s, dry) = import(
        &app,
        json!({"ics": changed, "calendar_id": cal, "dry_run": true}),
    )
    .await;
    assert_eq!(s, 200, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["updated"][0]["name"], "Monthly report (v2)");
    assert_eq!(dry["removed"][0]["uid"], "1m2n3b4v5c6x7z8l9k0j@google.com");
    let (_, c) = app.get(&format!("/calendars/{cal}")).await;
    assert_eq!(c["events"], 4);
    let (s, v) = import(&app, json!({"ics": changed, "calendar_id": cal})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["updated"], dry["updated"]);
    assert_eq!(v["removed"], dry["removed"]);
    assert_eq!(v["unchanged"], 2);
    let id = v["updated"][0]["id"].as_str().unwrap();
    let (_, e) = app.get(&format!("/events/{id}")).await;
    assert_eq!(e["name"], "Monthly report (v2)");
    let removed = v["removed"][0]["id"].as_str().unwrap();
    let (s, _) = app.get(&format!("/events/{removed}")).await;
    assert_eq!(s, 404);
    let (_, c) = app.get(&format!("/calendars/{cal}")).await;
    assert_eq!(c["events"], 3);

    // Removal only touches this calendar: the same file into another calendar, then an
    // empty calendar file into the first, leaves the second alone.
    let (_, other) = import(&app, json!({"ics": text, "defaults": defaults()})).await;
    let empty = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nEND:VCALENDAR\r\n";
    let (s, v) = import(&app, json!({"ics": empty, "calendar_id": cal})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["removed"].as_array().unwrap().len(), 3);
    let (_, c) = app
        .get(&format!(
            "/calendars/{}",
            other["calendar_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(c["events"], 4);
}

#[tokio::test]
async fn bad_files_are_a_400_naming_the_problem_and_change_nothing() {
    let app = spawn_app().await;
    let text = data("google.ics");
    let (_, v) = import(&app, json!({"ics": text, "defaults": defaults()})).await;
    let cal = v["calendar_id"].as_str().unwrap().to_string();
    let (_, list) = app.get("/calendars").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let truncated = &text[..text.len() / 2];
    let misfolded = text.replace("\r\n -defg-hij", "\r\n-defg-hij");
    let huge = format!(
        "BEGIN:VCALENDAR\r\nX-PAD:{}\r\nEND:VCALENDAR\r\n",
        "x".repeat(10 * 1024 * 1024)
    );
    let mut many = String::from("BEGIN:VCALENDAR\r\n");
    for i in 0..10_001 {
        many.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:{i}\r\nDTSTART:20300101T000000Z\r\nEND:VEVENT\r\n"
        ));
    }
    many.push_str("END:VCALENDAR\r\n");
    for (body, says) in [
        (truncated.to_string(), "truncated"),
        (misfolded, "line 36"),
        ("hello, world".to_string(), "not an iCalendar object"),
        (huge, "at most 10485760"),
        (many, "at most 10000"),
    ] {
        let (s, v) = import(&app, json!({"ics": body, "calendar_id": cal})).await;
        assert_eq!(s, 400, "{v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{says}: {v}");
    }
    // An unknown zone skips the events that use it, by line, and imports the rest.
    let unknown = text.replace(
        "TZID=Europe/Berlin:20260301T180000",
        "TZID=Mars/Olympus:20260301T180000",
    );
    let (s, v) = import(
        &app,
        json!({"ics": unknown, "calendar_id": cal, "dry_run": true}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let skip = &v["skipped"][0];
    assert_eq!(skip["uid"], "0a9s8d7f6g5h4j3k2l1@google.com");
    assert!(
        skip["reason"].as_str().unwrap().contains("Mars/Olympus"),
        "{v}"
    );
    assert_eq!(
        skip["line"],
        line_of(&text, "0a9s8d7f6g5h4j3k2l1@google.com")
    );
    // No action anywhere: a 400 before anything is written; no new calendar either.
    let (s, v) = import(&app, json!({"ics": text})).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().starts_with("defaults.action"),
        "{v}"
    );
    // An action the guard refuses: nothing written.
    let (s, v) = import(&app, json!({"ics": text, "defaults": {"action": {"type": "webhook", "params": {"url": "http://169.254.169.254/x"}}}})).await;
    assert!(s == 400 || s == 422, "{s} {v}");
    let (_, list) = app.get("/calendars").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (_, c) = app.get(&format!("/calendars/{cal}")).await;
    assert_eq!(c["events"], 4);
    // A text/calendar body that is not UTF-8.
    let r = app
        .client
        .post(app.url("/calendars/import"))
        .bearer_auth(TOKEN)
        .header("content-type", "text/calendar")
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}
