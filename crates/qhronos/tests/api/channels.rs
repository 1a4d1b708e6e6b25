//! Payload templates, the email channel (against a real SMTP server on 127.0.0.1) and the pull
//! queue (a real HTTP poller).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qhronos::config::SmtpTls;
use qhronos::domain::duration::Dur;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::helpers::{in_ms, spawn_app, spawn_app_with, Receiver, TestApp};

#[tokio::test]
async fn webhook_and_apicall_bodies_are_rendered_per_occurrence() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    let mut hook = json!({
        "name": "nightly report",
        "start_time": in_ms(0),
        "metadata": {"customer": "acme", "n": 3},
        "tags": ["ops"],
        "action": {"type": "webhook", "params": {"url": rx.url(), "body": {
            "text": "{{ event.name }} for {{ metadata.customer | upper }} at {{ occurrence.scheduled_at }}",
            "n": "{{ metadata.n * 2 }}",
            "attempt": "{{ occurrence.attempt }}",
            "tags": "{{ event.tags | join(',') }}",
            "fixed": 7
        }}},
    });
    let id = app.create(hook.clone()).await;
    hook["action"] = json!({"type": "apicall", "params": {"method": "PUT", "url": rx.url(),
        "headers": {"Content-Type": "text/plain"}, "body": "hello {{ metadata.customer }}"}});
    app.create(hook).await;
    let got = rx.wait_for(2, Duration::from_secs(5)).await;
    let webhook = got
        .iter()
        .find(|r| r.header("content-type") == "application/json")
        .expect("the webhook");
    let v = webhook.json();
    let (_, occs) = app.get(&format!("/events/{id}/occurrences")).await;
    let scheduled = occs["data"][0]["scheduled_at"].as_str().unwrap();
    assert_eq!(v["text"], format!("nightly report for ACME at {scheduled}"));
    assert_eq!(v["n"], "6");
    assert_eq!(v["attempt"], "1");
    assert_eq!(v["tags"], "ops");
    assert_eq!(v["fixed"], 7);
    // A templated webhook body is signed like any other.
    assert_eq!(webhook.header("x-qhronos-signature").len(), 64);
    let call = got
        .iter()
        .find(|r| r.header("content-type") == "text/plain")
        .expect("the API call");
    assert_eq!(&call.body[..], b"hello acme");
}

#[tokio::test]
async fn an_invalid_template_is_a_400_at_creation_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"type": "webhook", "params": {"url": "https://example.com/", "body": {"x": "{{ event.name "}}}),
            "action.params.body.x",
        ),
        (
            json!({"type": "apicall", "params": {"url": "https://example.com/", "body": "{{ 1 | no_such_filter }}"}}),
            "action.params.body",
        ),
        (
            json!({"type": "email", "params": {"to": ["a@example.com"], "subject": "{% if %}", "text": "t"}}),
            "action.params.subject",
        ),
        (
            json!({"type": "email", "params": {"to": ["a@example.com"], "subject": "s", "html": "{% for x in range(100000) %}{% for y in range(100000) %}.{% endfor %}{% endfor %}"}}),
            "action.params.html",
        ),
    ];
    for (i, (action, field)) in cases.into_iter().enumerate() {
        let says = if i == 3 { "budget" } else { "template error" };
        let (s, v) = app
            .post(
                "/events",
                json!({"name": "t", "start_time": in_ms(60_000), "action": action}),
            )
            .await;
        assert_eq!(s, 400, "{action}: {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(
            msg.starts_with(field) && msg.contains(says),
            "{field}: {msg}"
        );
    }
}

/// Recipients and DATA of each message received.
pub(crate) type Mails = Arc<Mutex<Vec<(Vec<String>, String)>>>;

/// A real SMTP server on 127.0.0.1 that accepts every message and keeps its DATA.
pub(crate) struct SmtpSink {
    pub(crate) port: u16,
    pub(crate) got: Mails,
}

impl SmtpSink {
    pub(crate) async fn start() -> SmtpSink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Mails = Default::default();
        let store = got.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let (r, mut w) = sock.into_split();
                    let mut lines = BufReader::new(r).lines();
                    w.write_all(b"220 sink ESMTP ready\r\n").await.unwrap();
                    let mut rcpt = Vec::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let cmd = line.to_ascii_uppercase();
                        let reply: &[u8] = if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                            b"250-sink\r\n250 8BITMIME\r\n"
                        } else if cmd.starts_with("RCPT TO:") {
                            rcpt.push(line[8..].trim().to_string());
                            b"250 ok\r\n"
                        } else if cmd == "DATA" {
                            w.write_all(b"354 go ahead\r\n").await.unwrap();
                            let mut data = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                data.push_str(&l);
                                data.push('\n');
                            }
                            store
                                .lock()
                                .unwrap()
                                .push((std::mem::take(&mut rcpt), data));
                            b"250 2.0.0 queued as 42\r\n"
                        } else if cmd == "QUIT" {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            break;
                        } else {
                            b"250 ok\r\n"
                        };
                        w.write_all(reply).await.unwrap();
                    }
                });
            }
        });
        SmtpSink { port, got }
    }

    pub(crate) async fn wait_for(&self, n: usize) -> Vec<(Vec<String>, String)> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "the sink got {} mails",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn an_email_action_sends_text_and_html_over_smtp_and_records_the_reply() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(|c| {
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.allowed_recipients = vec!["@example.com".into()];
        c.smtp.port = sink.port;
        c.smtp.tls = SmtpTls::None;
        c.smtp.from = "Qhronos <qhronos@example.com>".into();
    })
    .await;
    let id = app
        .create(json!({
            "name": "invoice run",
            "start_time": in_ms(0),
            "metadata": {"customer": "acme"},
            "action": {"type": "email", "params": {
                "to": ["ops@example.com", "Bob <bob@example.com>"],
                "subject": "Report: {{ event.name }}",
                "text": "Hello {{ metadata.customer }}, plain part.",
                "html": "<p>Hello <b>{{ metadata.customer }}</b>, html part.</p>"
            }},
        }))
        .await;
    let mails = sink.wait_for(1).await;
    let (rcpt, data) = &mails[0];
    assert_eq!(rcpt, &["<ops@example.com>", "<bob@example.com>"]);
    assert!(data.contains("Subject: Report: invoice run"), "{data}");
    assert!(
        data.contains("From: Qhronos <qhronos@example.com>"),
        "{data}"
    );
    assert!(data.contains("multipart/alternative"), "{data}");
    let plain = data.find("Content-Type: text/plain").expect("a text part");
    let html = data.find("Content-Type: text/html").expect("an html part");
    assert!(plain < html, "text first, then html: {data}");
    assert!(data.contains("Hello acme, plain part."), "{data}");
    assert!(
        data.contains("<p>Hello <b>acme</b>, html part.</p>"),
        "{data}"
    );
    let occs = app
        .wait_occurrences(&id, Duration::from_secs(3), |l| {
            l.first().is_some_and(|o| o["status"] == "completed")
        })
        .await;
    let (_, d) = app
        .get(&format!("/occurrences/{}", occs[0]["id"].as_str().unwrap()))
        .await;
    assert!(
        data.contains(&format!(
            "Message-ID: <{}@qhronos>",
            occs[0]["id"].as_str().unwrap()
        )),
        "{data}"
    );
    assert_eq!(d["attempts"][0]["status_code"], 250);
    assert_eq!(d["attempts"][0]["response"], "2.0.0 queued as 42");
}

#[tokio::test]
async fn an_unreachable_smtp_server_is_a_failed_attempt_that_is_retried() {
    // A port that refuses connections: bind, then close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = spawn_app_with(|c| {
        c.smtp.host = Some("127.0.0.1".into());
        c.smtp.allowed_recipients = vec!["@example.com".into()];
        c.smtp.port = port;
        c.smtp.tls = SmtpTls::None;
    })
    .await;
    let id = app
        .create(json!({
            "name": "mail", "start_time": in_ms(0),
            "retry": {"max_attempts": 2, "initial_delay": "20ms"},
            "action": {"type": "email", "params": {"to": "a@example.com", "subject": "s", "text": "t"}},
        }))
        .await;
    let occs = app
        .wait_occurrences(&id, Duration::from_secs(5), |l| {
            l.first().is_some_and(|o| o["status"] == "failed")
        })
        .await;
    let (_, d) = app
        .get(&format!("/occurrences/{}", occs[0]["id"].as_str().unwrap()))
        .await;
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts[0]["error"].as_str().unwrap().starts_with("smtp:"),
        "{d}"
    );
}

#[tokio::test]
async fn email_actions_need_an_smtp_server_and_valid_addresses() {
    let app = spawn_app().await;
    let body = |params: Value| json!({"name": "m", "start_time": in_ms(60_000), "action": {"type": "email", "params": params}});
    let (s, v) = app
        .post(
            "/events",
            body(json!({"to": ["a@example.com"], "subject": "s", "text": "t"})),
        )
        .await;
    assert_eq!(s, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("smtp.host"), "{v}");
    for (params, says) in [
        (
            json!({"to": ["not an address"], "subject": "s", "text": "t"}),
            "not an email address",
        ),
        (
            json!({"to": [], "subject": "s", "text": "t"}),
            "1 to 50 addresses",
        ),
        (
            json!({"to": ["a@example.com"], "subject": "s"}),
            "'text', 'html' or both",
        ),
        (
            json!({"to": ["a@example.com"], "text": "t"}),
            "action.params.subject is required",
        ),
    ] {
        let (s, v) = app.post("/events", body(params.clone())).await;
        assert_eq!(s, 400, "{params}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{params}: {v}");
    }
}

async fn pull_app() -> TestApp {
    spawn_app_with(|c| {
        c.pull.sweep_interval = Dur::from_millis(50);
        c.pull.poll_interval = Dur::from_millis(20);
    })
    .await
}

fn pull_event(queue: &str, attempts: u32) -> Value {
    json!({
        "name": "pull me",
        "start_time": in_ms(0),
        "metadata": {"job": 7},
        "tags": ["jobs"],
        "action": {"type": "pull", "params": {"queue": queue}},
        "retry": {"max_attempts": attempts, "initial_delay": "20ms", "max_delay": "50ms"},
    })
}

async fn claim(app: &TestApp, query: &str) -> Vec<Value> {
    let (s, v) = app.req("POST", &format!("/queues/{query}"), None).await;
    assert_eq!(s, 200, "{v}");
    v["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_poller_claims_nacks_then_acks_and_every_claim_is_an_attempt() {
    let app = pull_app().await;
    let id = app.create(pull_event("jobs", 5)).await;
    let got = claim(&app, "jobs/claim?wait=3s&max=10").await;
    assert_eq!(got.len(), 1, "{got:?}");
    let c = &got[0];
    assert_eq!(c["event_id"], id);
    assert_eq!(c["attempt"], 1);
    assert_eq!(c["payload"], json!({"job": 7}));
    assert_eq!(c["tags"], json!(["jobs"]));
    let occ = c["occurrence_id"].as_str().unwrap().to_string();
    let receipt = c["receipt"].as_str().unwrap().to_string();
    let (_, o) = app.get(&format!("/occurrences/{occ}")).await;
    assert_eq!(o["status"], "dispatched");
    // Invisible while claimed; another queue never sees it.
    assert!(claim(&app, "jobs/claim").await.is_empty());
    assert!(claim(&app, "other/claim?wait=100ms").await.is_empty());

    // Timed from the nack: a slow machine may spend the whole 100 ms before the next claim
    // starts, and the claim must still not come back before the retry time.
    let nacked = Instant::now();
    let (s, o) = app
        .post(
            &format!("/occurrences/{occ}/nack"),
            json!({"receipt": receipt, "retry_after": "100ms", "error": "busy"}),
        )
        .await;
    assert_eq!(s, 200, "{o}");
    assert_eq!(o["status"], "pending");
    let (s, _) = app
        .post(
            &format!("/occurrences/{occ}/ack"),
            json!({"receipt": receipt}),
        )
        .await;
    assert_eq!(s, 409, "a returned occurrence is not claimed");

    let again = claim(&app, "jobs/claim?wait=3s").await;
    assert!(
        nacked.elapsed() >= Duration::from_millis(100),
        "retry_after is honoured"
    );
    assert_eq!(again[0]["occurrence_id"], occ.as_str());
    assert_eq!(again[0]["attempt"], 2);
    let (s, o) = app
        .post(
            &format!("/occurrences/{occ}/ack"),
            json!({"receipt": again[0]["receipt"]}),
        )
        .await;
    assert_eq!(s, 200, "{o}");
    assert_eq!(o["status"], "completed");
    let errors: Vec<Value> = o["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["error"].clone())
        .collect();
    assert_eq!(errors, [json!("busy"), Value::Null]);
    let (_, e) = app.get(&format!("/events/{id}")).await;
    assert_eq!(e["status"], "inactive");
}

#[tokio::test]
async fn an_expired_claim_returns_to_the_queue_and_the_last_one_fails() {
    let app = pull_app().await;
    let id = app.create(pull_event("q1", 2)).await;
    let first = claim(&app, "q1/claim?wait=3s&visibility=150ms").await;
    assert_eq!(first[0]["attempt"], 1);
    // Not acknowledged: back in the queue once the visibility timeout passes.
    let second = claim(&app, "q1/claim?wait=3s&visibility=150ms").await;
    assert_eq!(second[0]["occurrence_id"], first[0]["occurrence_id"]);
    assert_eq!(second[0]["attempt"], 2);
    // The last attempt expires too: failed (the dead-letter list), by the sweeper alone.
    let occs = app
        .wait_occurrences(&id, Duration::from_secs(3), |l| {
            l.first().is_some_and(|o| o["status"] == "failed")
        })
        .await;
    let (_, d) = app
        .get(&format!("/occurrences/{}", occs[0]["id"].as_str().unwrap()))
        .await;
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert!(attempts
        .iter()
        .all(|a| a["error"] == "visibility timeout expired"));
    assert!(claim(&app, "q1/claim").await.is_empty());
    // A failed pull occurrence is re-driven like any other.
    let (s, _) = app
        .post(
            &format!("/occurrences/{}/retry", occs[0]["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(claim(&app, "q1/claim?wait=2s").await.len(), 1);
}

#[tokio::test]
async fn the_last_nack_fails_the_occurrence_and_scopes_limit_what_a_token_claims() {
    let app = pull_app().await;
    app.create(pull_event("q2", 1)).await;
    let other = app.token("read_write", &["elsewhere"]).await;
    let (s, v) = app
        .req_as(Some(&other), "POST", "/queues/q2/claim?wait=200ms", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["data"], json!([]), "outside the token's scope");
    let reader = app.token("read", &[]).await;
    let (s, _) = app
        .req_as(Some(&reader), "POST", "/queues/q2/claim", None)
        .await;
    assert_eq!(s, 403, "claiming needs write access");

    let got = claim(&app, "q2/claim?wait=3s").await;
    let occ = got[0]["occurrence_id"].as_str().unwrap();
    let (s, o) = app
        .post(
            &format!("/occurrences/{occ}/nack"),
            json!({"receipt": got[0]["receipt"]}),
        )
        .await;
    assert_eq!(s, 200, "{o}");
    assert_eq!(o["status"], "failed");
    for (q, says) in [
        ("q2/claim?max=0", "max"),
        ("q2/claim?wait=soon", "wait"),
        ("bad%20name/claim", "queue"),
        ("q2/claim?what=1", "unknown query parameter"),
    ] {
        let (s, v) = app.req("POST", &format!("/queues/{q}"), None).await;
        assert_eq!(s, 400, "{q}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{q}: {v}");
    }
}
