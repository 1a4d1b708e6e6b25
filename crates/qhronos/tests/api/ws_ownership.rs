//! WebSocket client names belong to identities, and a connection lives no longer than its
//! token (revocation, expiry).

use std::time::{Duration, Instant};

use futures::SinkExt;
use qhronos::domain::duration::Dur;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{in_ms, spawn_app_with, TestApp};
use crate::websocket::{next_json, open, subscribe, ws_app, ws_event, Ws};

/// Issues a token; returns (token, jti).
async fn issue(app: &TestApp, body: Value) -> (String, String) {
    let (s, v) = app.post("/tokens", body).await;
    assert_eq!(s, 201, "{v}");
    (
        v["token"].as_str().unwrap().to_string(),
        v["jti"].as_str().unwrap().to_string(),
    )
}

fn hook(name: &str, token: &str) -> Value {
    json!({"type": "client-hook", "client_name": name, "token": token})
}

/// Waits for the server to end the connection: the error frame it sends, and when it came.
async fn closed_by_server(ws: &mut Ws, within: Duration) -> (Value, Instant) {
    let frame = next_json(ws, within)
        .await
        .expect("an error frame before the close");
    let at = Instant::now();
    assert!(
        next_json(ws, Duration::from_secs(1)).await.is_none(),
        "then closed"
    );
    (frame, at)
}

#[tokio::test]
async fn a_token_registers_only_the_client_names_it_owns() {
    let app = ws_app().await;
    let (reader, _) = issue(
        &app,
        json!({"sub": "reader", "access": "read", "expires_at": in_ms(3_600_000)}),
    )
    .await;
    let (agent, _) = issue(
        &app,
        json!({"sub": "agent-host", "access": "read", "clients": ["laptop"], "expires_at": in_ms(3_600_000)}),
    )
    .await;
    // Another read token cannot register as the laptop (to take a share of its deliveries).
    let (mut ws, answer) = open(&app, hook("laptop", &reader)).await;
    assert_eq!(answer["type"], "error", "{answer}");
    let msg = answer["message"].as_str().unwrap();
    assert!(
        msg.contains("client_name 'laptop' is not this token's"),
        "{msg}"
    );
    assert!(
        next_json(&mut ws, Duration::from_secs(1)).await.is_none(),
        "closed"
    );
    // Its own name (its sub) it may.
    let _own = subscribe(&app, hook("reader", &reader)).await;
    // The owner: the name is in its clients claim.
    let mut laptop = subscribe(&app, hook("laptop", &agent)).await;

    // Anyone with write access may address the laptop; only the owner receives.
    let writer = app.token("write", &[]).await;
    let (s, e) = app
        .req_as(
            Some(&writer),
            "POST",
            "/events",
            Some(ws_event("laptop", json!({"max_attempts": 1}))),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    let frame = next_json(&mut laptop, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(frame["event_id"], e["id"]);
    laptop
        .send(Message::Text(
            json!({"type": "ack", "occurrence_id": frame["occurrence_id"]})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let id = e["id"].as_str().unwrap();
    app.wait_occurrences(id, Duration::from_secs(3), |l| {
        l.first().is_some_and(|o| o["status"] == "completed")
    })
    .await;

    // The clients claim is checked when the token is issued.
    let (s, v) = app
        .post("/tokens", json!({"sub": "x", "access": "read", "clients": ["bad name"], "expires_at": in_ms(60_000)}))
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("clients:"), "{v}");
}

#[tokio::test]
async fn revoking_a_token_closes_its_sockets_within_a_second_on_every_node() {
    let app = ws_app().await;
    let (token, jti) = issue(
        &app,
        json!({"sub": "laptop", "access": "read", "expires_at": in_ms(3_600_000)}),
    )
    .await;
    let mut hook_ws = subscribe(&app, hook("laptop", &token)).await;
    let mut listener = subscribe(
        &app,
        json!({"type": "tag-listener", "tags": ["agents"], "token": token}),
    )
    .await;
    // Several nodes on PostgreSQL: a socket on another node closes too.
    let mut other_node = match app.db.as_ref() {
        Some(db) => {
            let url = db.url.clone();
            let b = spawn_app_with(move |c| {
                c.websocket.ack_timeout = Dur::from_millis(300);
                c.database_url = Some(url);
            })
            .await;
            let ws = subscribe(&b, hook("laptop", &token)).await;
            Some((b, ws))
        }
        None => None,
    };
    let revoked = Instant::now();
    let (s, _) = app.req("DELETE", &format!("/tokens/{jti}"), None).await;
    assert_eq!(s, 204);
    for ws in [&mut hook_ws, &mut listener] {
        let (frame, at) = closed_by_server(ws, Duration::from_secs(3)).await;
        assert_eq!(frame, json!({"type": "error", "message": "token revoked"}));
        let took = at - revoked;
        eprintln!("measured: closed {took:?} after the revocation (same node)");
        assert!(took < Duration::from_secs(1), "closed after {took:?}");
    }
    if let Some((_b, ws)) = other_node.as_mut() {
        let (frame, at) = closed_by_server(ws, Duration::from_secs(3)).await;
        assert_eq!(frame["message"], "token revoked");
        let took = at - revoked;
        eprintln!("measured: closed {took:?} after the revocation (other node)");
        assert!(
            took < Duration::from_secs(1),
            "other node closed after {took:?}"
        );
    }
    // And it cannot come back.
    let (_, answer) = open(&app, hook("laptop", &token)).await;
    assert!(
        answer["message"].as_str().unwrap().contains("revoked"),
        "{answer}"
    );
}

#[tokio::test]
async fn an_expiring_token_closes_its_socket_when_it_expires() {
    let app = ws_app().await;
    // `exp` has whole seconds: the token ends at the last whole second before this.
    let expires_ms = in_ms(2_000);
    let expires: jiff::Timestamp = expires_ms.parse().unwrap();
    let (token, _) = issue(
        &app,
        json!({"sub": "laptop", "access": "read", "expires_at": expires_ms}),
    )
    .await;
    let mut ws = subscribe(&app, hook("laptop", &token)).await;
    let (frame, _) = closed_by_server(&mut ws, Duration::from_secs(4)).await;
    assert_eq!(frame, json!({"type": "error", "message": "token expired"}));
    let late = jiff::Timestamp::now().as_millisecond() - expires.as_millisecond();
    eprintln!("measured: closed {late} ms from the token's expires_at (exp is in whole seconds)");
    assert!(
        (-1_000..1_000).contains(&late),
        "closed {late} ms from the expiry"
    );
}
