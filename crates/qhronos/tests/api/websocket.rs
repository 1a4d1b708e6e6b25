//! The WebSocket channel with real clients (tokio-tungstenite): acks, missing acks,
//! disconnects, and tag listeners with different scopes.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use qhronos::domain::duration::Dur;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{in_ms, spawn_app_with, webhook_event, Receiver, TestApp, TOKEN};

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn ws_app() -> TestApp {
    spawn_app_with(|c| {
        c.websocket.ack_timeout = Dur::from_millis(300);
    })
    .await
}

pub(crate) async fn open(app: &TestApp, hello: Value) -> (Ws, Value) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", app.addr))
        .await
        .expect("websocket connects");
    ws.send(Message::Text(hello.to_string().into()))
        .await
        .unwrap();
    let answer = next_json(&mut ws, Duration::from_secs(3))
        .await
        .expect("an answer to the subscription");
    (ws, answer)
}

/// Subscribes and checks the server's ack.
pub(crate) async fn subscribe(app: &TestApp, hello: Value) -> Ws {
    let (ws, answer) = open(app, hello).await;
    assert_eq!(
        answer,
        json!({"type": "ack", "message": "subscription registered"})
    );
    ws
}

/// The next text frame as JSON; `None` when nothing comes within `within` or the socket ends.
pub(crate) async fn next_json(ws: &mut Ws, within: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()??;
        match msg.ok()? {
            Message::Text(t) => return Some(serde_json::from_str(t.as_str()).expect("json")),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

pub(crate) fn ws_event(client: &str, retry: Value) -> Value {
    json!({
        "name": "to the laptop",
        "start_time": in_ms(0),
        "metadata": {"k": "v"},
        "tags": ["agents"],
        "action": {"type": "websocket", "params": {"client_name": client}},
        "retry": retry,
    })
}

async fn attempts(app: &TestApp, occ: &str) -> Vec<Value> {
    let (_, d) = app.get(&format!("/occurrences/{occ}")).await;
    d["attempts"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_client_that_acks_completes_the_occurrence() {
    let app = ws_app().await;
    let mut ws = subscribe(
        &app,
        json!({"type": "client-hook", "client_name": "laptop", "token": TOKEN}),
    )
    .await;
    let (_, status) = app.get("/status").await;
    assert_eq!(
        status["websocket"],
        json!({"clients": 1, "tag_listeners": 0})
    );
    let id = app
        .create(ws_event("laptop", json!({"initial_delay": "20ms"})))
        .await;
    let ev = next_json(&mut ws, Duration::from_secs(5))
        .await
        .expect("event");
    assert_eq!(ev["type"], "event");
    assert_eq!(ev["event_id"], id);
    assert_eq!(ev["name"], "to the laptop");
    assert_eq!(ev["payload"], json!({"k": "v"}));
    assert_eq!(ev["tags"], json!(["agents"]));
    assert!(ev["scheduled_at"].is_string());
    let occ = ev["occurrence_id"].as_str().unwrap();
    ws.send(Message::Text(
        json!({"type": "ack", "occurrence_id": occ})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    app.wait_occurrences(&id, Duration::from_secs(3), |l| {
        l.first().is_some_and(|o| o["status"] == "completed")
    })
    .await;
    let a = attempts(&app, occ).await;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0]["response"], "acknowledged");
    // Nothing more arrives.
    assert!(next_json(&mut ws, Duration::from_millis(300))
        .await
        .is_none());
}

#[tokio::test]
async fn a_client_that_never_acks_gets_every_retry_then_the_occurrence_fails() {
    let app = ws_app().await;
    // The legacy field form: "q:<client>".
    let mut ws = subscribe(
        &app,
        json!({"type": "client-hook", "client_name": "mute", "token": TOKEN}),
    )
    .await;
    let id = app
        .create(json!({
            "name": "legacy", "start_time": in_ms(0), "webhook": "q:mute",
            "retry": {"max_attempts": 2, "initial_delay": "20ms"},
        }))
        .await;
    let first = next_json(&mut ws, Duration::from_secs(5))
        .await
        .expect("1st");
    let second = next_json(&mut ws, Duration::from_secs(5))
        .await
        .expect("2nd");
    assert_eq!(first["occurrence_id"], second["occurrence_id"]);
    app.wait_occurrences(&id, Duration::from_secs(5), |l| {
        l.first().is_some_and(|o| o["status"] == "failed")
    })
    .await;
    let a = attempts(&app, first["occurrence_id"].as_str().unwrap()).await;
    assert_eq!(a.len(), 2);
    for x in &a {
        assert!(
            x["error"]
                .as_str()
                .unwrap()
                .contains("did not acknowledge within 300ms"),
            "{x}"
        );
    }
    let (_, e) = app.get(&format!("/events/{id}")).await;
    assert_eq!(
        e["action"],
        json!({"type": "websocket", "params": {"client_name": "mute"}})
    );
}

#[tokio::test]
async fn a_client_that_disconnects_mid_delivery_gets_it_again_on_reconnect() {
    let app = ws_app().await;
    let ws = subscribe(
        &app,
        json!({"type": "client-hook", "client_name": "flaky", "token": TOKEN}),
    )
    .await;
    let mut ws = ws;
    let id = app
        .create(ws_event(
            "flaky",
            // Far longer than the test: the redelivery comes from the reconnect itself.
            json!({"max_attempts": 20, "initial_delay": "1m", "max_delay": "1m"}),
        ))
        .await;
    let ev = next_json(&mut ws, Duration::from_secs(5))
        .await
        .expect("event");
    let occ = ev["occurrence_id"].as_str().unwrap().to_string();
    // Gone before acknowledging.
    drop(ws);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ws = subscribe(
        &app,
        json!({"type": "client-hook", "client_name": "flaky", "token": TOKEN}),
    )
    .await;
    let again = next_json(&mut ws, Duration::from_secs(5))
        .await
        .expect("redelivered");
    assert_eq!(again["occurrence_id"], occ.as_str());
    ws.send(Message::Text(
        json!({"type": "ack", "occurrence_id": occ})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    app.wait_occurrences(&id, Duration::from_secs(3), |l| {
        l.first().is_some_and(|o| o["status"] == "completed")
    })
    .await;
    let a = attempts(&app, &occ).await;
    let first = a[0]["error"].as_str().unwrap();
    assert!(
        first.contains("disconnected before acknowledging"),
        "{first}"
    );
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(a[1]["response"], "acknowledged");
}

#[tokio::test]
async fn tag_listeners_see_only_events_inside_their_scope() {
    let app = ws_app().await;
    let rx = Receiver::start(vec![]).await;
    let token_a = app.token("read", &["a"]).await;
    let token_b = app.token("read", &["b"]).await;
    // Both ask for both tags; each token narrows it to its own.
    let mut la = subscribe(
        &app,
        json!({"type": "tag-listener", "tags": ["a", "b"], "token": token_a}),
    )
    .await;
    // The token in the Authorization header instead of the frame.
    let mut req = format!("ws://{}/ws", app.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token_b}").parse().unwrap(),
    );
    let (mut lb, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    lb.send(Message::Text(
        json!({"type": "tag-listener", "tags": ["a", "b"]})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(
        next_json(&mut lb, Duration::from_secs(3)).await.unwrap()["type"],
        "ack"
    );
    let mut ea = webhook_event(&rx.url(), 0);
    ea["tags"] = json!(["a"]);
    let id_a = app.create(ea).await;
    let mut eb = webhook_event(&rx.url(), 0);
    eb["tags"] = json!(["b", "c"]);
    let id_b = app.create(eb).await;
    rx.wait_for(2, Duration::from_secs(5)).await;
    let got_a = next_json(&mut la, Duration::from_secs(3)).await.unwrap();
    assert_eq!(got_a["event_id"], id_a);
    let got_b = next_json(&mut lb, Duration::from_secs(3)).await.unwrap();
    assert_eq!(got_b["event_id"], id_b);
    assert!(next_json(&mut la, Duration::from_millis(300))
        .await
        .is_none());
    assert!(next_json(&mut lb, Duration::from_millis(100))
        .await
        .is_none());
}

#[tokio::test]
async fn bad_subscriptions_get_an_error_frame_and_are_closed() {
    let app = ws_app().await;
    let scoped = app.token("read", &["a"]).await;
    let writer = app.token("write", &[]).await;
    for (hello, says) in [
        (
            json!({"type": "client-hook", "client_name": "x"}),
            "missing token",
        ),
        (
            json!({"type": "client-hook", "client_name": "x", "token": "nope"}),
            "invalid token",
        ),
        (
            json!({"type": "client-hook", "client_name": "x", "token": writer}),
            "no read access",
        ),
        (
            json!({"type": "client-hook", "client_name": "bad name", "token": TOKEN}),
            "client_name",
        ),
        (
            json!({"type": "tag-listener", "tags": ["z"], "token": scoped}),
            "scope",
        ),
        (
            json!({"type": "tag-listener", "tags": [], "token": TOKEN}),
            "at least one tag",
        ),
        (json!({"type": "subscribe"}), "first frame"),
    ] {
        let (mut ws, answer) = open(&app, hello.clone()).await;
        assert_eq!(answer["type"], "error", "{hello}");
        assert!(
            answer["message"].as_str().unwrap().contains(says),
            "{hello}: {answer}"
        );
        assert!(
            next_json(&mut ws, Duration::from_secs(2)).await.is_none(),
            "closed"
        );
    }
}

#[tokio::test]
async fn an_occurrence_due_while_no_client_is_connected_is_delivered_when_one_connects() {
    let app = ws_app().await;
    let id = app
        .create(ws_event(
            "late-riser",
            json!({"max_attempts": 5, "initial_delay": "1m", "max_delay": "1m"}),
        ))
        .await;
    let occs = app
        .wait_occurrences(&id, Duration::from_secs(5), |l| {
            l.first()
                .is_some_and(|o| o["attempt_count"] == 1 && o["status"] == "pending")
        })
        .await;
    assert!(
        occs[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("no WebSocket client 'late-riser' is connected"),
        "{occs:?}"
    );
    // Its retry is a minute away; connecting brings it forward.
    let mut ws = subscribe(
        &app,
        json!({"type": "client-hook", "client_name": "late-riser", "token": TOKEN}),
    )
    .await;
    let ev = next_json(&mut ws, Duration::from_secs(5))
        .await
        .expect("delivered on connect");
    assert_eq!(ev["event_id"], id);
    ws.send(Message::Text(
        json!({"type": "ack", "occurrence_id": ev["occurrence_id"]})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    app.wait_occurrences(&id, Duration::from_secs(3), |l| {
        l.first().is_some_and(|o| o["status"] == "completed")
    })
    .await;
}

#[tokio::test]
async fn a_client_on_one_node_gets_and_acks_what_another_node_fires() {
    let slow_acks = |c: &mut qhronos::config::Config| {
        c.websocket.ack_timeout = Dur::from_millis(3_000);
    };
    let a = spawn_app_with(slow_acks).await;
    let Some(db) = a.db.as_ref() else {
        eprintln!("skipped: several nodes share a PostgreSQL store; this run is on SQLite");
        return;
    };
    let url = db.url.clone();
    let b = spawn_app_with(move |c| {
        slow_acks(c);
        c.database_url = Some(url);
    })
    .await;
    let mut client = subscribe(
        &b,
        json!({"type": "client-hook", "client_name": "laptop", "token": TOKEN}),
    )
    .await;
    let mut listener = subscribe(
        &b,
        json!({"type": "tag-listener", "tags": ["agents"], "token": TOKEN}),
    )
    .await;
    // Created through node A and due now: A holds it and fires it; the client is on B.
    let id = a
        .create(ws_event("laptop", json!({"max_attempts": 1})))
        .await;
    let frame = next_json(&mut client, Duration::from_secs(5))
        .await
        .expect("the client on node B gets the occurrence node A fired");
    assert_eq!(frame["event_id"], id.as_str());
    let occ = frame["occurrence_id"].as_str().unwrap().to_string();
    client
        .send(Message::Text(
            json!({"type": "ack", "occurrence_id": occ})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let copy = next_json(&mut listener, Duration::from_secs(5))
        .await
        .expect("the tag listener on node B gets a copy");
    assert_eq!(copy["occurrence_id"], occ.as_str());
    // The ack went back to node A, which records the attempt as a success.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, o) = a.get(&format!("/occurrences/{occ}")).await;
        if o["status"] == "completed" {
            let att = attempts(&a, &occ).await;
            assert_eq!(att.len(), 1, "{att:?}");
            assert_eq!(att[0]["response"], "acknowledged (through another node)");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not completed: {o}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
