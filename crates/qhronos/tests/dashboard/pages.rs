//! What a person does on the dashboard, in the browser.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, webhook_event, Receiver, TestApp, TOKEN};
use crate::Browser;

/// A failing webhook event: `max_attempts` quick tries at a receiver that answers 500.
fn failing(url: &str, name: &str, tags: &[&str], max_attempts: u32) -> Value {
    let mut e = webhook_event(url, 100);
    e["name"] = json!(name);
    e["tags"] = json!(tags);
    e["retry"] =
        json!({"max_attempts": max_attempts, "initial_delay": "50ms", "max_delay": "100ms"});
    e
}

async fn wait_status(app: &TestApp, event_id: &str, status: &str) -> Vec<Value> {
    let want = status.to_string();
    app.wait_occurrences(event_id, Duration::from_secs(10), move |l| {
        !l.is_empty() && l.iter().all(|o| o["status"] == want.as_str())
    })
    .await
}

#[tokio::test]
async fn signs_in_with_a_token_kept_in_session_storage_and_signs_out() {
    let app = spawn_app().await;
    let Some(b) = Browser::open(&app).await else {
        return;
    };
    b.visit("/ui/events").await;
    // By keyboard: the field has the focus when the form shows; Enter submits.
    b.s.find("#token").await;
    let focused = b.s.exec("return document.activeElement.id", vec![]).await;
    assert_eq!(focused, json!("token"));
    b.s.type_into("#token", "not-a-token").await;
    b.s.keys("#token", "\u{E007}").await;
    b.s.wait_text("#signin .err", "not valid").await;

    b.s.type_into("#token", TOKEN).await;
    b.s.click_on("#signin button[type=submit]").await;
    b.s.wait_text("#who", "master token").await;
    // The page asked for was kept; the token is in sessionStorage, not in the URL.
    assert_eq!(b.s.path().await, "/ui/events");
    b.s.find("#events").await;
    let stored =
        b.s.exec("return sessionStorage.getItem('qhronos.token')", vec![])
            .await;
    assert_eq!(stored, json!(TOKEN));
    let url = b.s.exec("return location.href", vec![]).await;
    assert!(!url.to_string().contains(TOKEN));

    b.s.click_on("#signout").await;
    b.s.find("#signin").await;
    let stored =
        b.s.exec("return sessionStorage.getItem('qhronos.token')", vec![])
            .await;
    assert_eq!(stored, Value::Null);
}

#[tokio::test]
async fn the_rule_builder_preview_matches_the_api_and_its_modes_stay_in_step() {
    let app = spawn_app().await;
    let Some(b) = Browser::open(&app).await else {
        return;
    };
    b.sign_in_master().await;
    b.visit("/ui/events/new").await;
    b.s.find("#builder").await;
    b.s.type_into("#f-timezone", "Europe/Berlin").await;
    // A weekly rule on Mondays and Wednesdays at 09:00 across the spring DST change.
    b.s.exec(
        "const s = document.getElementById('f-start_time'); s.value = '2030-03-20T09:00'; \
         s.dispatchEvent(new Event('input', {bubbles: true}));",
        vec![],
    )
    .await;
    b.s.exec("document.getElementById('b-frequency').value = 'weekly'; document.getElementById('b-frequency').dispatchEvent(new Event('change', {bubbles: true}))", vec![]).await;
    for d in ["MO", "TU", "WE", "TH", "FR"] {
        let on =
            b.s.exec(
                &format!("return document.getElementById('b-day-{d}').checked"),
                vec![],
            )
            .await;
        if on != json!(d == "MO" || d == "WE") {
            b.s.click_on(&format!("#b-day-{d}")).await;
        }
    }
    b.s.type_into("#b-hours", "9").await;
    b.s.type_into("#b-minutes", "0").await;
    let rrule =
        b.s.wait("the RRULE in step", || async {
            let v =
                b.s.exec("return document.getElementById('f-rrule').value", vec![])
                    .await;
            let v = v.as_str().unwrap_or_default().to_string();
            (v == "FREQ=WEEKLY;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0").then_some(v)
        })
        .await;
    let (s, api) = app
        .post(
            "/schedules/preview",
            json!({"start_time": "2030-03-20T09:00:00+01:00", "timezone": "Europe/Berlin", "schedule": rrule, "limit": 10}),
        )
        .await;
    assert_eq!(s, 200, "{api}");
    let want: Vec<Value> = api["occurrences"].as_array().unwrap().clone();
    let shown =
        b.s.wait("the preview", || async {
            let v =
                b.s.exec(
                    "return [...document.querySelectorAll('#preview li')].map(l => l.dataset.utc)",
                    vec![],
                )
                .await;
            let v = v.as_array().cloned().unwrap_or_default();
            (v.len() == want.len()).then_some(v)
        })
        .await;
    assert_eq!(shown, want);
    let text = b.s.text_of("#preview").await;
    assert!(
        text.contains(api["schedule_text"].as_str().unwrap()),
        "{text}"
    );
    assert!(
        text.contains("DST +02:00"),
        "the DST change is marked: {text}"
    );

    // RRULE mode → builder: the boxes follow.
    b.s.click_on("#mode-rrule").await;
    b.s.type_into("#f-rrule", "FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17")
        .await;
    b.s.click_on("#mode-builder").await;
    let (freq, ord, hours) = (
        b.s.exec(
            "return document.getElementById('b-frequency').value",
            vec![],
        )
        .await,
        b.s.exec("return document.getElementById('b-ordinals').value", vec![])
            .await,
        b.s.exec("return document.getElementById('b-hours').value", vec![])
            .await,
    );
    assert_eq!(
        (freq, ord, hours),
        (json!("monthly"), json!("-1FR"), json!("17"))
    );
    b.s.click_on("#mode-json").await;
    let j =
        b.s.exec(
            "return JSON.parse(document.getElementById('f-json').value)",
            vec![],
        )
        .await;
    assert_eq!(
        j,
        json!({"frequency": "monthly", "by_day": ["-1FR"], "by_hour": [17]})
    );

    // An error of the API is shown at its field; then the event is created.
    b.s.click_on("#mode-builder").await;
    b.s.type_into("#f-name", "Month end report").await;
    b.s.type_into("#f-action-params-url", "http://127.0.0.1:9/hook")
        .await;
    b.s.type_into("#f-retry-max_attempts", "0").await;
    b.s.click_on("#save").await;
    b.s.wait_text("[data-err-for='retry.max_attempts']", "at least 1")
        .await;
    b.s.type_into("#f-retry-max_attempts", "3").await;
    b.s.click_on("#save").await;
    b.s.wait_text("h1", "Month end report").await;
    let path = b.s.path().await;
    let id = path.trim_start_matches("/ui/events/");
    let (_, ev) = app.get(&format!("/events/{id}")).await;
    assert_eq!(ev["schedule"], "FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17");
    assert_eq!(ev["timezone"], "Europe/Berlin");
    assert_eq!(ev["retry"]["max_attempts"], 3);
}

#[tokio::test]
async fn a_delivery_arrives_and_shows_as_completed() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![200]).await;
    let Some(b) = Browser::open(&app).await else {
        return;
    };
    b.sign_in_master().await;
    let mut e = webhook_event(&receiver.url(), 1_500);
    e["name"] = json!("hello receiver");
    let id = app.create(e).await;
    b.visit(&format!("/ui/events/{id}")).await;
    b.s.find("#occurrences tr[data-occurrence]").await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    // The page refreshes itself.
    b.s.wait_text("#occurrences", "completed").await;
    b.s.wait_text("#event-actions", "Pause").await;
    let facts = b.s.text_of("dl.facts").await;
    assert!(facts.contains("completed"), "last outcome: {facts}");
}

#[tokio::test]
async fn a_failing_targets_attempts_are_shown_and_retried() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![500]).await;
    let id = app
        .create(failing(&receiver.url(), "always 500", &[], 2))
        .await;
    wait_status(&app, &id, "failed").await;
    let Some(b) = Browser::open(&app).await else {
        return;
    };
    b.sign_in_master().await;
    b.visit("/ui/deliveries?status=failed").await;
    b.s.wait_text("#deliveries", "always 500").await;
    b.s.press("2 attempts").await;
    let attempts = b.s.wait_text("#deliveries .attempts", "500").await;
    assert_eq!(
        b.s.all("#deliveries tr.attempt").await.len(),
        2,
        "{attempts}"
    );
    assert_eq!(receiver.received().len(), 2);
    b.s.press("Retry").await;
    b.s.wait_text("#notice", "Retry queued").await;
    receiver.wait_for(3, Duration::from_secs(10)).await;
    // A re-drive grants the event's attempts again: two more, both failing.
    receiver.wait_for(4, Duration::from_secs(10)).await;
    let occ = wait_status(&app, &id, "failed").await;
    assert_eq!(occ[0]["attempt_count"], 4, "{occ:?}");
}

#[tokio::test]
async fn pauses_and_resumes_an_event() {
    let app = spawn_app().await;
    let mut e = webhook_event("http://127.0.0.1:9/hook", 3_600_000);
    e["schedule"] = json!("FREQ=DAILY");
    e["name"] = json!("daily");
    let id = app.create(e).await;
    let Some(b) = Browser::open(&app).await else {
        return;
    };
    b.sign_in_master().await;
    b.visit(&format!("/ui/events/{id}")).await;
    b.s.press("Pause").await;
    b.s.wait_text("#notice", "Paused").await;
    b.s.wait_text("#event-actions", "Resume").await;
    assert_eq!(
        app.get(&format!("/events/{id}")).await.1["status"],
        "paused"
    );
    b.s.press("Resume").await;
    b.s.wait_text("#event-actions", "Pause").await;
    assert_eq!(
        app.get(&format!("/events/{id}")).await.1["status"],
        "active"
    );
    // The history shows both changes.
    b.visit(&format!("/ui/events/{id}")).await;
    let history = b.s.wait_text("ol.versions", "resume").await;
    assert!(history.contains("pause"), "{history}");
}

#[tokio::test]
async fn a_read_token_sees_no_write_control_and_a_scoped_token_no_foreign_event() {
    let app = spawn_app().await;
    let mut a = webhook_event("http://127.0.0.1:9/hook", 3_600_000);
    a["name"] = json!("team a event");
    a["tags"] = json!(["team-a"]);
    let a_id = app.create(a).await;
    let mut other = webhook_event("http://127.0.0.1:9/hook", 3_600_000);
    other["name"] = json!("team b event");
    other["tags"] = json!(["team-b"]);
    let b_id = app.create(other).await;
    let read = app.token("read", &[]).await;
    let scoped = app.token("read_write", &["team-a"]).await;
    let Some(b) = Browser::open(&app).await else {
        return;
    };

    b.sign_in(&read).await;
    b.visit("/ui/events").await;
    b.s.wait_text("#events", "team b event").await;
    let write_controls =
        "#new-event, #events input[type=checkbox], .bulk, #event-actions, #retry-all";
    assert!(b.s.all(write_controls).await.is_empty());
    assert!(!b.s.text_of("#nav").await.contains("Admin"));
    b.visit(&format!("/ui/events/{a_id}")).await;
    b.s.wait_text("h1", "team a event").await;
    b.s.find("#occurrences").await;
    assert!(b.s.all(write_controls).await.is_empty());
    for label in ["Pause", "Trigger now", "Delete", "Edit", "Cancel"] {
        let found = b
            .s
            .exec(
                "return [...document.querySelectorAll('button, a.button')].some(e => e.textContent.trim() === arguments[0])",
                vec![json!(label)],
            )
            .await;
        assert_eq!(found, json!(false), "a read token is offered '{label}'");
    }
    b.visit("/ui/deliveries").await;
    b.s.find("#deliveries").await;
    assert!(b.s.all(write_controls).await.is_empty());

    b.s.click_on("#signout").await;
    b.sign_in(&scoped).await;
    b.visit("/ui/events").await;
    b.s.wait_text("#events", "team a event").await;
    assert!(!b.s.text_of("#events").await.contains("team b event"));
    b.s.find("#new-event").await;
    b.visit(&format!("/ui/events/{b_id}")).await;
    b.s.wait_text("main", "not found").await;
    // The overview's counts are the scope's own.
    b.visit("/ui/").await;
    b.s.find("#counts").await;
}

#[tokio::test]
async fn an_event_named_like_markup_shows_as_those_characters() {
    let app = spawn_app().await;
    let name = "<img src=x onerror=alert(1)>";
    let mut e = webhook_event("http://127.0.0.1:9/hook", 3_600_000);
    e["name"] = json!(name);
    e["description"] = json!("<script>alert(2)</script>");
    e["tags"] = json!(["<b>bold</b>"]);
    let id = app.create(e).await;
    let Some(b) = Browser::open(&app).await else {
        return;
    };
    b.sign_in_master().await;
    for path in [
        "/ui/events".to_string(),
        format!("/ui/events/{id}"),
        "/ui/calendar".to_string(),
    ] {
        b.visit(&path).await;
        b.s.wait_text("main", name).await;
        let (imgs, scripts, bolds) = (
            b.s.all("main img").await.len(),
            b.s.all("main script").await.len(),
            b.s.all("main b").await.len(),
        );
        assert_eq!(
            (imgs, scripts, bolds),
            (0, 0, 0),
            "{path}: markup was parsed"
        );
    }
    b.visit(&format!("/ui/events/{id}")).await;
    b.s.wait_text("main", "<script>alert(2)</script>").await;
    b.s.wait_text("main", "<b>bold</b>").await;
}

#[tokio::test]
async fn the_bulk_retry_retries_exactly_the_filtered_set() {
    let app = spawn_app().await;
    let ra = Receiver::start(vec![500]).await;
    let rb = Receiver::start(vec![500]).await;
    let mut a_ids = Vec::new();
    for i in 0..3 {
        a_ids.push(
            app.create(failing(&ra.url(), &format!("a{i}"), &["a"], 1))
                .await,
        );
    }
    let b_id = app.create(failing(&rb.url(), "b0", &["b"], 1)).await;
    for id in a_ids.iter().chain([&b_id]) {
        wait_status(&app, id, "failed").await;
    }
    let before_b = rb.received().len();
    let Some(b) = Browser::open(&app).await else {
        return;
    };
    b.sign_in_master().await;
    b.visit("/ui/deliveries").await;
    b.s.find("#dl-status").await;
    b.s.exec(
        "const s = document.getElementById('dl-status'); s.value = 'failed';",
        vec![],
    )
    .await;
    b.s.type_into("#dl-tags", "a").await;
    b.s.click_on("form.filters button[type=submit]").await;
    b.s.wait("only the tag's rows", || async {
        let rows = b.s.all("#deliveries tr[data-occurrence]").await.len();
        (rows == 3).then_some(())
    })
    .await;
    b.s.click_on("#retry-all").await;
    b.s.wait_text(".bulk-confirm", "Retry 3 failed occurrences")
        .await;
    b.s.press("Confirm").await;
    b.s.wait_text("#notice", "Retried 3 of 3").await;
    ra.wait_for(6, Duration::from_secs(10)).await;
    for id in &a_ids {
        let occ = wait_status(&app, id, "failed").await;
        assert_eq!(occ[0]["attempt_count"], 2, "retried once: {occ:?}");
    }
    let (_, occ) = app.get(&format!("/events/{b_id}/occurrences")).await;
    assert_eq!(
        occ["data"][0]["attempt_count"], 1,
        "not in the filter: {occ}"
    );
    assert_eq!(rb.received().len(), before_b);
}

#[tokio::test]
async fn the_pages_fit_a_375_pixel_wide_screen() {
    let app = spawn_app().await;
    let id = app
        .create(webhook_event("http://127.0.0.1:9/hook", 3_600_000))
        .await;
    let Some(b) = Browser::open_sized(&app, 375, 800).await else {
        return;
    };
    b.sign_in_master().await;
    for path in [
        "/ui/".to_string(),
        "/ui/events".into(),
        format!("/ui/events/{id}"),
        "/ui/events/new".into(),
        "/ui/calendar".into(),
        "/ui/deliveries".into(),
        "/ui/channels".into(),
        "/ui/admin".into(),
    ] {
        b.visit(&path).await;
        b.s.find("main h1").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let wide =
            b.s.exec("return document.documentElement.scrollWidth", vec![])
                .await;
        assert!(
            wide.as_i64().unwrap_or(9999) <= 375,
            "{path} is {wide} px wide"
        );
    }
}
