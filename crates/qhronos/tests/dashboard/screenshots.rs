//! Screenshots of every page for docs/dashboard.md, from a store with a few events of each
//! kind: `cargo test -p qhronos --test dashboard -- --ignored screenshots`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{spawn_app, webhook_event, Receiver};
use crate::Browser;

fn out(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs/dashboard")
        .join(name)
}

#[tokio::test]
#[ignore = "writes docs/dashboard/*.png; run when the pages change"]
async fn screenshots() {
    let app = spawn_app().await;
    let ok = Receiver::start(vec![200]).await;
    let bad = Receiver::start(vec![500]).await;
    // Series start at the next whole hour, so that their rules read without seconds.
    let hour = jiff::Timestamp::now()
        .round(
            jiff::TimestampRound::new()
                .smallest(jiff::Unit::Hour)
                .mode(jiff::RoundMode::Ceil),
        )
        .expect("an hour");
    let mut first = None;
    for (name, rule, zone, tags) in [
        (
            "Payroll reminder",
            "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0",
            "Europe/Berlin",
            vec!["billing"],
        ),
        (
            "Month-end report",
            "FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17;BYMINUTE=0",
            "America/New_York",
            vec!["reports"],
        ),
        (
            "Cache warm-up",
            "FREQ=MINUTELY;INTERVAL=15",
            "UTC",
            vec!["ops"],
        ),
        (
            "Standup ping",
            "FREQ=DAILY;BYHOUR=10;BYMINUTE=0",
            "Asia/Tokyo",
            vec!["team-a"],
        ),
    ] {
        let mut e = webhook_event(&ok.url(), 60_000);
        e["name"] = json!(name);
        e["start_time"] = json!(hour.to_string());
        e["schedule"] = json!(rule);
        e["timezone"] = json!(zone);
        e["tags"] = json!(tags);
        let id = app.create(e).await;
        first.get_or_insert(id);
    }
    for i in 0..3 {
        let mut e = webhook_event(&ok.url(), 200 + i * 100);
        e["name"] = json!(format!("Welcome email #{i}"));
        e["tags"] = json!(["onboarding"]);
        app.create(e).await;
    }
    let mut e = webhook_event(&bad.url(), 200);
    e["name"] = json!("Invoice sync (receiver down)");
    e["tags"] = json!(["billing"]);
    e["retry"] = json!({"max_attempts": 2, "initial_delay": "50ms", "max_delay": "100ms"});
    let failing = app.create(e).await;
    let mut p = webhook_event(&ok.url(), 300_000);
    p["name"] = json!("Nightly export");
    p["action"] = json!({"type": "pull", "params": {"queue": "exports"}});
    app.create(p).await;
    let mut q = webhook_event(&ok.url(), -1_000);
    q["name"] = json!("Thumbnail job");
    q["action"] = json!({"type": "pull", "params": {"queue": "thumbnails"}});
    app.create(q).await;
    app.token("read", &["team-a"]).await;
    // A WebSocket client and a tag listener, connected while the pages are taken.
    let mut sockets = Vec::new();
    for hello in [
        json!({"type": "client-hook", "client_name": "billing-worker", "token": crate::helpers::TOKEN}),
        json!({"type": "tag-listener", "tags": ["billing", "ops"], "token": crate::helpers::TOKEN}),
    ] {
        use futures::SinkExt;
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.addr))
            .await
            .expect("websocket");
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            hello.to_string().into(),
        ))
        .await
        .expect("hello");
        sockets.push(ws);
    }
    app.wait_occurrences(&failing, Duration::from_secs(10), |l| {
        l.iter().any(|o| o["status"] == "failed")
    })
    .await;
    ok.wait_for(3, Duration::from_secs(10)).await;

    let Some(b) = Browser::open_sized(&app, 1200, 820).await else {
        return;
    };
    std::fs::create_dir_all(out("")).expect("docs/dashboard");
    b.visit("/ui/").await;
    b.s.find("#signin").await;
    std::fs::write(out("signin.png"), b.s.screenshot().await).expect("png");
    b.sign_in_master().await;
    let id = first.expect("an event");
    for (file, path, ready) in [
        ("overview.png", "/ui/".to_string(), "#counts"),
        (
            "events.png",
            "/ui/events".to_string(),
            "#events tr[data-event]",
        ),
        ("event.png", format!("/ui/events/{id}"), "ol.versions"),
        ("edit.png", "/ui/events/new".to_string(), "#preview li"),
        (
            "calendar.png",
            "/ui/calendar".to_string(),
            "#calendar a.item",
        ),
        (
            "deliveries.png",
            "/ui/deliveries?status=failed".to_string(),
            "#deliveries tr[data-occurrence]",
        ),
        ("channels.png", "/ui/channels".to_string(), "#queues"),
        ("admin.png", "/ui/admin".to_string(), "#tokens tr[data-jti]"),
    ] {
        b.visit(&path).await;
        b.s.find(ready).await;
        if file == "deliveries.png" {
            b.s.press("2 attempts").await;
            b.s.find("#deliveries .attempts").await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        std::fs::write(out(file), b.s.screenshot().await).expect("png");
    }
    // prefers-color-scheme: dark.
    b.s.cdp(
        "Emulation.setEmulatedMedia",
        json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
    )
    .await;
    b.visit(&format!("/ui/events/{id}")).await;
    b.s.find("ol.versions").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(out("event-dark.png"), b.s.screenshot().await).expect("png");
    drop(b);
    let Some(b) = Browser::open_sized(&app, 375, 800).await else {
        return;
    };
    b.sign_in_master().await;
    b.visit("/ui/events").await;
    b.s.find("#events tr[data-event]").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(out("events-375.png"), b.s.screenshot().await).expect("png");
}
