//! The form's less common fields (named templates, rdates, a webhook's signing secret, an
//! email's HTML part), the calendar across many events (GET /agenda), and the deliveries page
//! naming its events in one request.

use serde_json::{json, Value};

use crate::helpers::{in_ms, spawn_app, spawn_app_with};
use crate::Browser;

const HOUR: i64 = 3_600_000;

/// Sets an input's value as typing would and fires its events.
async fn set(b: &Browser, id: &str, value: &str) {
    b.s.exec(
        "const e = document.getElementById(arguments[0]); e.value = arguments[1]; \
         e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true}));",
        vec![json!(id), json!(value)],
    )
    .await;
}

#[tokio::test]
async fn the_form_sets_a_named_template_rdates_and_a_signing_secret_with_errors_at_their_fields() {
    let app = spawn_app().await;
    let (s, v) = app
        .post(
            "/templates",
            json!({"name": "greeting", "kind": "body", "body": {"hello": "{{ event.name }}"}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let Some(b) = Browser::open(&app).await else {
        return;
    };
    b.sign_in_master().await;
    b.visit("/ui/events/new").await;
    b.s.find("#builder").await;
    b.s.click_on("#mode-once").await;
    b.s.type_into("#f-name", "Templated").await;
    set(&b, "f-timezone", "UTC").await;
    set(&b, "f-start_time", "2031-05-01T08:00").await;
    b.s.type_into("#f-action-params-url", "http://127.0.0.1:9/hook")
        .await;
    // An extra instant: the preview shows it.
    set(&b, "f-rdates", "2031-05-03T10:00:00").await;
    b.s.wait_text("#preview", "2031-05-03 10:00:00").await;
    // An unknown template: the API's error under the template field.
    b.s.type_into("#f-action-params-template", "nope").await;
    b.s.click_on("#save").await;
    b.s.wait_text("[data-err-for='action.params.template']", "nope")
        .await;
    // A version that is not one: under the version field.
    b.s.type_into("#f-action-params-template", "greeting").await;
    b.s.type_into("#f-action-params-template_version", "newest")
        .await;
    b.s.click_on("#save").await;
    b.s.wait_text(
        "[data-err-for='action.params.template_version']",
        "version number",
    )
    .await;
    b.s.type_into("#f-action-params-template_version", "latest")
        .await;
    b.s.type_into("#f-hmac_secret", "whsec_dGhlIHNlY3JldCBvZiB0aGUgdGVzdA==")
        .await;
    b.s.click_on("#save").await;
    b.s.wait_text("h1", "Templated").await;
    let id =
        b.s.path()
            .await
            .trim_start_matches("/ui/events/")
            .to_string();
    let (_, ev) = app.get(&format!("/events/{id}")).await;
    assert_eq!(ev["action"]["params"]["template"], "greeting", "{ev}");
    assert_eq!(ev["action"]["params"]["template_version"], "latest", "{ev}");
    assert_eq!(ev["rdates"], json!(["2031-05-03T10:00:00Z"]), "{ev}");
    let (_, secret) = app.get(&format!("/events/{id}/secret")).await;
    assert_eq!(
        secret["hmac_secret"], "whsec_dGhlIHNlY3JldCBvZiB0aGUgdGVzdA==",
        "{secret}"
    );

    // Editing: the fields come back filled; "generate a new secret" replaces it and the new
    // one is shown once.
    b.visit(&format!("/ui/events/{id}/edit")).await;
    b.s.find("#f-new-secret").await;
    let shown =
        b.s.exec(
            "return [document.getElementById('f-action-params-template').value, \
             document.getElementById('f-action-params-template_version').value, \
             document.getElementById('f-rdates').value]",
            vec![],
        )
        .await;
    assert_eq!(shown, json!(["greeting", "latest", "2031-05-03T10:00:00Z"]));
    b.s.click_on("#f-new-secret").await;
    b.s.click_on("#save").await;
    let note = b.s.wait_text("#notice", "signing secret").await;
    let (_, secret) = app.get(&format!("/events/{id}/secret")).await;
    let new = secret["hmac_secret"].as_str().unwrap();
    assert_ne!(new, "whsec_dGhlIHNlY3JldCBvZiB0aGUgdGVzdA==");
    assert!(note.contains(new), "{note}");
}

#[tokio::test]
async fn the_form_sends_an_emails_html_part() {
    let app = spawn_app_with(|c| {
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.allowed_recipients = vec!["@example.com".into()];
    })
    .await;
    let Some(b) = Browser::open(&app).await else {
        return;
    };
    b.sign_in_master().await;
    b.visit("/ui/events/new").await;
    b.s.find("#builder").await;
    b.s.click_on("#mode-once").await;
    b.s.type_into("#f-name", "Newsletter").await;
    set(&b, "f-start_time", "2031-05-01T08:00").await;
    set(&b, "f-action-type", "email").await;
    b.s.type_into("#f-action-params-to", "team@example.com")
        .await;
    // Neither text nor html: the API says so.
    b.s.type_into("#f-action-params-subject", "News").await;
    b.s.click_on("#save").await;
    b.s.wait_text(".form-err, [data-err-for^='action']", "html")
        .await;
    b.s.type_into("#f-action-params-html", "<p>Hello <b>team</b></p>")
        .await;
    b.s.click_on("#save").await;
    b.s.wait_text("h1", "Newsletter").await;
    let id =
        b.s.path()
            .await
            .trim_start_matches("/ui/events/")
            .to_string();
    let (_, ev) = app.get(&format!("/events/{id}")).await;
    assert_eq!(
        ev["action"]["params"]["html"], "<p>Hello <b>team</b></p>",
        "{ev}"
    );
    assert_eq!(ev["action"]["params"].get("text"), None, "{ev}");
}

/// The local date (YYYY-MM-DD) of an instant in the browser, whose zone is the machine's.
async fn local_date(b: &Browser, iso: &str) -> String {
    b.s.exec(
        "const d = new Date(arguments[0]); const p = (n) => String(n).padStart(2, '0'); \
         return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;",
        vec![json!(iso)],
    )
    .await
    .as_str()
    .unwrap()
    .to_string()
}

#[tokio::test]
async fn the_calendar_shows_stored_and_projected_instants_of_more_than_a_hundred_events() {
    let app = spawn_app().await;
    // The oldest event first: a page of the newest 100 events would not hold it.
    let first_at = in_ms(30 * HOUR);
    let oldest = app
        .create(json!({"name": "Oldest of many", "start_time": first_at, "webhook": "http://127.0.0.1:9/h"}))
        .await;
    let events: Vec<Value> = (0..110)
        .map(|i| json!({"name": format!("filler {i}"), "start_time": in_ms(80 * HOUR), "webhook": "http://127.0.0.1:9/h"}))
        .collect();
    let (s, v) = app.post("/events/batch", json!({ "events": events })).await;
    assert_eq!(s, 201, "{v}");
    // A series from 20 minutes on: stored inside the look-ahead hour, projected after it.
    let soon = in_ms(20 * 60_000);
    app.create(json!({"name": "Every two hours", "start_time": soon, "schedule": "FREQ=HOURLY;INTERVAL=2", "webhook": "http://127.0.0.1:9/h"}))
        .await;
    let Some(b) = Browser::open(&app).await else {
        return;
    };
    b.sign_in_master().await;
    let day = local_date(&b, &first_at).await;
    b.visit(&format!("/ui/calendar?view=week&date={day}")).await;
    let cell = format!("#calendar [data-day='{day}']");
    let text = b.s.wait_text(&cell, "Oldest of many").await;
    assert!(text.contains("Every two hours"), "{text}");
    let link = format!("{cell} a.item[href='/ui/events/{oldest}']");
    assert!(b.s.text_of(&link).await.contains("Oldest of many"));
    assert_eq!(
        b.s.exec(
            "return document.querySelector(arguments[0]).dataset.status",
            vec![json!(link)]
        )
        .await,
        "projected"
    );
    // Today: the series' first instant is stored (pending).
    let today = local_date(&b, &soon).await;
    b.visit(&format!("/ui/calendar?view=week&date={today}"))
        .await;
    b.s.find(&format!(
        "#calendar [data-day='{today}'] a.item[data-status='pending']"
    ))
    .await;
}

#[tokio::test]
async fn the_deliveries_page_names_its_events_in_one_request() {
    let app = spawn_app().await;
    for i in 0..12 {
        app.create(json!({"name": format!("named {i}"), "start_time": in_ms(40 * 60_000), "webhook": "http://127.0.0.1:9/h"}))
            .await;
    }
    let Some(b) = Browser::open(&app).await else {
        return;
    };
    b.sign_in_master().await;
    b.visit("/ui/deliveries").await;
    let table = b.s.wait_text("#deliveries", "named 11").await;
    for i in 0..12 {
        assert!(table.contains(&format!("named {i}")), "{table}");
    }
    let urls =
        b.s.exec(
            "return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname + new URL(e.name).search)",
            vec![],
        )
        .await;
    let urls: Vec<&str> = urls
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let single = urls.iter().filter(|u| u.starts_with("/events/")).count();
    let by_ids = urls
        .iter()
        .filter(|u| u.starts_with("/events?ids="))
        .count();
    assert_eq!((single, by_ids), (0, 1), "{urls:#?}");
}
