//! The email channel is not an open relay: recipients must be allowed by the operator, and
//! each token has an hourly cap.

use std::time::Duration;

use qhronos::config::SmtpTls;
use serde_json::{json, Value};

use crate::channels::SmtpSink;
use crate::helpers::{in_ms, spawn_app_with, TestApp};

async fn mail_app(sink: &SmtpSink, allowed: &[&str], cap: u32) -> TestApp {
    let (port, allowed): (u16, Vec<String>) =
        (sink.port, allowed.iter().map(|s| s.to_string()).collect());
    spawn_app_with(move |c| {
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.port = port;
        c.smtp.tls = SmtpTls::None;
        c.smtp.allowed_recipients = allowed;
        c.smtp.max_per_token_per_hour = cap;
    })
    .await
}

fn mail(to: Value, due_ms: i64) -> Value {
    json!({
        "name": "mail", "start_time": in_ms(due_ms),
        "action": {"type": "email", "params": {"to": to, "subject": "s", "text": "t"}},
    })
}

#[tokio::test]
async fn recipients_outside_smtp_allowed_recipients_are_a_422_naming_the_setting() {
    let sink = SmtpSink::start().await;
    // Nothing listed: nobody may be mailed.
    let closed = mail_app(&sink, &[], 100).await;
    let (s, v) = closed
        .post("/events", mail(json!(["ops@example.com"]), 60_000))
        .await;
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("smtp.allowed_recipients"),
        "{v}"
    );

    let app = mail_app(&sink, &["ops@example.com", "@partner.org"], 100).await;
    for to in [
        json!(["OPS@example.com"]),
        json!(["x@partner.org", "Ann <ann@Partner.org>"]),
    ] {
        let (s, v) = app.post("/events", mail(to.clone(), 60_000)).await;
        assert_eq!(s, 201, "{to}: {v}");
    }
    for (to, refused) in [
        (
            json!(["ops@example.com", "bob@example.com"]),
            "bob@example.com",
        ),
        (json!(["x@sub.partner.org"]), "x@sub.partner.org"),
        (json!(["Eve <eve@evil.test>"]), "eve@evil.test"),
    ] {
        let (s, v) = app.post("/events", mail(to.clone(), 60_000)).await;
        assert_eq!(s, 422, "{to}: {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(
            msg.contains(refused) && msg.contains("smtp.allowed_recipients"),
            "{msg}"
        );
    }
    // A change that adds a recipient outside the list, and a batch item, are refused too.
    let id = app.create(mail(json!(["ops@example.com"]), 60_000)).await;
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"action": {"type": "email", "params": {"to": ["eve@evil.test"], "subject": "s", "text": "t"}}})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    let (s, v) = app
        .post(
            "/events/batch",
            json!({"events": [mail(json!(["ops@example.com"]), 60_000), mail(json!(["eve@evil.test"]), 60_000)]}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["items"][0]["index"], 1, "{v}");
    assert_eq!(v["items"][0]["status"], 422, "{v}");
}

#[tokio::test]
async fn a_token_past_its_hourly_email_cap_is_held_back_while_others_still_send() {
    let sink = SmtpSink::start().await;
    let app = mail_app(&sink, &["@example.com"], 2).await;
    let (s, v) = app
        .post(
            "/tokens",
            json!({"sub": "mailer", "access": "read_write", "expires_at": in_ms(3_600_000)}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let (token, jti) = (v["token"].as_str().unwrap(), v["jti"].as_str().unwrap());
    let other = app.token("read_write", &[]).await;
    let create = |token: String| {
        let app = &app;
        async move {
            let (s, v) = app
                .req_as(
                    Some(&token),
                    "POST",
                    "/events",
                    Some(mail(json!(["ops@example.com"]), 0)),
                )
                .await;
            assert_eq!(s, 201, "{v}");
            v
        }
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        let e = create(token.to_string()).await;
        // The server records whom the event sends for; a client cannot choose it.
        assert_eq!(e["action"]["params"]["sender"], jti, "{e}");
        ids.push(e["id"].as_str().unwrap().to_string());
    }
    // Two of the three are sent; the third waits for the hour to have room.
    sink.wait_for(2).await;
    let mut held = Vec::new();
    for id in &ids {
        let occs = app
            .wait_occurrences(id, Duration::from_secs(5), |l| {
                l.first().is_some_and(|o| o["attempt_count"] == 1)
            })
            .await;
        if occs[0]["status"] == "pending" {
            held.push(occs[0].clone());
        }
    }
    assert_eq!(held.len(), 1, "{held:?}");
    let err = held[0]["last_error"].as_str().unwrap();
    assert!(err.contains("smtp.max_per_token_per_hour"), "{err}");
    // Another token, and the master token, are not held back by this one's count.
    create(other).await;
    app.create(mail(json!(["ops@example.com"]), 0)).await;
    app.create(mail(json!(["ops@example.com"]), 0)).await;
    sink.wait_for(5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        sink.got.lock().unwrap().len(),
        5,
        "the held one was not sent"
    );
}
