//! What a person changes on the dashboard, in the browser: edit and restore, one occurrence,
//! tokens, bulk actions on events.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{spawn_app, webhook_event};
use crate::Browser;

#[tokio::test]
async fn edits_an_event_and_restores_an_earlier_version() {
    let app = spawn_app().await;
    let mut e = webhook_event("http://127.0.0.1:9/hook", 3_600_000);
    e["name"] = json!("before");
    e["schedule"] = json!("FREQ=DAILY;BYHOUR=9;BYMINUTE=0");
    let id = app.create(e).await;
    let Some(b) = Browser::open(&app).await else {
        return;
    };
    b.sign_in_master().await;
    b.visit(&format!("/ui/events/{id}")).await;
    b.s.press("Edit").await;
    b.s.wait_text("h1", "Edit before").await;
    // The builder shows the stored rule.
    let hours =
        b.s.exec("return document.getElementById('b-hours').value", vec![])
            .await;
    assert_eq!(hours, json!("9"));
    b.s.type_into("#f-name", "after").await;
    b.s.click_on("#mode-rrule").await;
    b.s.type_into("#f-rrule", "FREQ=WEEKLY;BYDAY=FR;BYHOUR=9;BYMINUTE=0")
        .await;
    b.s.click_on("#save").await;
    b.s.wait_text("h1", "after").await;
    let (_, ev) = app.get(&format!("/events/{id}")).await;
    assert_eq!(ev["schedule"], "FREQ=WEEKLY;BYDAY=FR;BYHOUR=9;BYMINUTE=0");
    b.s.wait_text("ol.versions", "update").await;
    b.s.press("Restore v1").await;
    b.s.wait_text("#notice", "Restored v1").await;
    b.s.wait_text("h1", "before").await;
    let (_, ev) = app.get(&format!("/events/{id}")).await;
    assert_eq!(ev["name"], "before");
    assert_eq!(ev["schedule"], "FREQ=DAILY;BYHOUR=9;BYMINUTE=0");
}

#[tokio::test]
async fn cancels_and_moves_one_occurrence_of_a_series() {
    let app = spawn_app().await;
    let mut e = webhook_event("http://127.0.0.1:9/hook", 20 * 60_000);
    e["schedule"] = json!("FREQ=MINUTELY;INTERVAL=10");
    let id = app.create(e).await;
    let occs = app
        .wait_occurrences(&id, Duration::from_secs(5), |l| l.len() >= 3)
        .await;
    let Some(b) = Browser::open(&app).await else {
        return;
    };
    b.sign_in_master().await;
    b.visit(&format!("/ui/events/{id}")).await;
    // Newest first: move the first row's occurrence two hours later.
    let first = occs[0]["id"].as_str().unwrap().to_string();
    let target = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(2))
        .round(jiff::Unit::Minute)
        .unwrap();
    let wall = target.strftime("%Y-%m-%dT%H:%M").to_string();
    let row = format!("#occurrences tr[data-occurrence='{first}']");
    b.s.click_on(&format!("{row} details.move summary")).await;
    b.s.exec(
        "const i = document.querySelector(arguments[0] + ' details.move input'); i.value = arguments[1];",
        vec![json!(row), json!(wall)],
    )
    .await;
    b.s.click_on(&format!("{row} details.move button")).await;
    b.s.wait_text("#notice", "Occurrence moved").await;
    let (_, o) = app.get(&format!("/occurrences/{first}")).await;
    assert_eq!(
        o["scheduled_at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap(),
        target,
        "{o}"
    );
    // Cancel another one.
    let second = occs[1]["id"].as_str().unwrap().to_string();
    b.s.wait_text(
        &format!("#occurrences tr[data-occurrence='{second}']"),
        "Cancel",
    )
    .await;
    let cancel =
        b.s.all(&format!(
            "#occurrences tr[data-occurrence='{second}'] button"
        ))
        .await;
    let mut clicked = false;
    for c in cancel {
        if b.s.text(&c).await == "Cancel" {
            b.s.click(&c).await;
            clicked = true;
            break;
        }
    }
    assert!(clicked);
    b.s.wait_text("#notice", "Occurrence cancelled").await;
    let (_, o) = app.get(&format!("/occurrences/{second}")).await;
    assert_eq!(o["status"], "cancelled", "{o}");
}

#[tokio::test]
async fn an_admin_issues_a_token_shown_once_and_revokes_it() {
    let app = spawn_app().await;
    let Some(b) = Browser::open(&app).await else {
        return;
    };
    b.sign_in_master().await;
    b.visit("/ui/admin").await;
    b.s.type_into("#t-sub", "reporting").await;
    b.s.type_into("#t-scope", "billing").await;
    b.s.click_on("#issue button[type=submit]").await;
    let token = b.s.wait_text("#new-token", ".").await;
    let (s, me) = app.req_as(Some(&token), "GET", "/me", None).await;
    assert_eq!(s, 200, "{me}");
    assert_eq!(me["sub"], "reporting");
    assert_eq!(me["scope"], json!(["billing"]));
    b.s.find("#issued button").await;
    b.s.press("Done").await;
    assert!(b.s.all("#new-token").await.is_empty(), "shown once");
    b.s.wait_text("#tokens", "reporting").await;
    b.s.press("Revoke").await;
    b.s.press("Confirm").await;
    b.s.wait_text("#tokens", "revoked").await;
    let (s, _) = app.req_as(Some(&token), "GET", "/me", None).await;
    assert_eq!(s, 401);
    b.s.wait_text("#audit", "token.revoke").await;
    // The audit log's filters.
    b.s.type_into("#a-action", "token.issue").await;
    b.s.click_on("#a-action").await;
    b.s.exec(
        "document.getElementById('a-action').form.requestSubmit()",
        vec![],
    )
    .await;
    b.s.wait("only token.issue entries", || async {
        let t = b.s.text_of("#audit tbody").await;
        (t.contains("token.issue") && !t.contains("token.revoke")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn bulk_pauses_a_selection_and_deletes_exactly_the_filtered_events() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for name in ["alpha one", "alpha two", "beta"] {
        let mut e = webhook_event("http://127.0.0.1:9/hook", 3_600_000);
        e["name"] = json!(name);
        e["schedule"] = json!("FREQ=DAILY");
        ids.push(app.create(e).await);
    }
    let Some(b) = Browser::open(&app).await else {
        return;
    };
    b.sign_in_master().await;
    b.visit("/ui/events").await;
    b.s.wait_text("#events", "beta").await;
    for id in &ids[..2] {
        b.s.click_on(&format!(
            "#events tr[data-event='{id}'] input[type=checkbox]"
        ))
        .await;
    }
    b.s.wait_text(".bulk", "2 selected").await;
    b.s.press("Pause selected").await;
    b.s.wait_text("#notice", "Pause: 2 of 2 changed").await;
    let status = |i: usize| {
        let app = &app;
        let id = ids[i].clone();
        async move { app.get(&format!("/events/{id}")).await.1["status"].clone() }
    };
    assert_eq!(
        (status(0).await, status(1).await, status(2).await),
        (json!("paused"), json!("paused"), json!("active"))
    );

    b.s.type_into("#ev-q", "alpha").await;
    b.s.click_on("form.filters button[type=submit]").await;
    b.s.wait("the filtered rows", || async {
        (b.s.all("#events tr[data-event]").await.len() == 2).then_some(())
    })
    .await;
    b.s.press("Delete all matching").await;
    b.s.wait_text(".bulk-confirm", "Delete 2 events matching the filter?")
        .await;
    b.s.press("Confirm").await;
    b.s.wait_text("#notice", "Delete: 2 of 2 changed").await;
    for (i, want) in [(0, 404), (1, 404), (2, 200)] {
        let (s, _) = app.get(&format!("/events/{}", ids[i])).await;
        assert_eq!(s, want, "event {i}");
    }
}
