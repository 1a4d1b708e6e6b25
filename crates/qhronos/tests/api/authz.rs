//! Authorisation over every route and method the server answers (not only the permission
//! table's), unknown methods, and the HTTP metrics' labels.

use std::collections::BTreeSet;

use jsonwebtoken::{encode, EncodingKey, Header};
use qhronos::auth::permissions::{self, Need, PUBLIC, TABLE};
use serde_json::{json, Value};

use crate::helpers::{in_ms, spawn_app, spawn_app_with, webhook_event, JWT_KEY, TOKEN};

fn forge(key: &str, exp_offset_s: i64, access: &str) -> String {
    let now = jiff::Timestamp::now().as_second();
    let claims = json!({"sub": "forged", "access": access, "scope": [], "exp": now + exp_offset_s, "iat": now, "jti": "01900000-0000-7000-8000-00000000abcd"});
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

/// Every method a client can send (CONNECT aside: it names a host, not a path), and two
/// invented ones.
const METHODS: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "OPTIONS",
    "TRACE",
    "PURGE",
    "X-INVENTED",
];

/// The route templates the server has: those of the generated OpenAPI document (built from
/// the handlers the routers mount), the public ones, and the table's.
fn templates() -> BTreeSet<String> {
    let doc: Value = serde_json::from_str(&qhronos::api::openapi::document_json()).unwrap();
    let mut t: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    t.extend(PUBLIC.iter().map(|p| p.to_string()));
    t.extend(TABLE.iter().map(|(_, r, _)| r.to_string()));
    t
}

/// Every (method, route) pair the server answers × every kind of caller: each answer is what
/// the permission table says, HEAD needs what GET needs, a pair the table does not list is 405
/// for every valid caller, an unknown method is 405 for everyone, and no pair the router takes
/// (anything but 404 / 405 for the master token) is missing from the table.
#[tokio::test]
async fn every_route_and_method_the_router_answers_is_authorised_by_the_table() {
    let app = spawn_app().await;
    let mut ev = webhook_event("http://127.0.0.1:9/h", 600_000);
    ev["tags"] = json!(["team-a"]);
    let event_id = app.create(ev).await;
    let (_, occs) = app.get(&format!("/events/{event_id}/occurrences")).await;
    let occ_id = occs["data"][0]["id"].as_str().unwrap().to_string();
    let workflow = json!({"name": "w", "when": {"event_id": event_id, "on": ["completed"]}, "then": {"create": {"name": "f", "webhook": "http://127.0.0.1:9/h", "tags": ["team-a"]}}});
    let (_, w) = app.post("/workflows", workflow.clone()).await;
    let workflow_id = w["id"].as_str().unwrap().to_string();

    let read = app.token("read", &[]).await;
    let write = app.token("write", &[]).await;
    let read_write = app.token("read_write", &[]).await;
    let admin = app.token("admin", &[]).await;
    let wrong_scope = app.token("read_write", &["team-b"]).await;
    let revoked = app.token("admin", &[]).await;
    let (_, list) = app.get("/tokens").await;
    let revoked_jti = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["sub"] == "admin-user")
        .unwrap()["jti"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app.req("DELETE", &format!("/tokens/{revoked_jti}"), None)
            .await
            .0,
        204
    );
    let expired = forge(JWT_KEY, -5, "admin");
    let bad_sig = forge("another-key-another-key-another-key-1234", 3600, "admin");

    // (name, token, role it acts as)
    let callers: Vec<(&str, Option<String>, Option<&str>)> = vec![
        ("none", None, None),
        ("malformed", Some("not.a.jwt".into()), None),
        ("bad signature", Some(bad_sig), None),
        ("expired", Some(expired), None),
        ("revoked", Some(revoked), None),
        ("read", Some(read), Some("read")),
        ("write", Some(write), Some("write")),
        ("read_write", Some(read_write), Some("read_write")),
        ("admin", Some(admin), Some("admin")),
        ("master", Some(TOKEN.to_string()), Some("master")),
        ("wrong scope", Some(wrong_scope), Some("read_write")),
    ];
    let mut failures = Vec::new();
    let mut checked = 0;
    for route in templates() {
        let path = route
            .replace(
                "{id}",
                if route.starts_with("/events") {
                    &event_id
                } else if route.starts_with("/workflows") {
                    &workflow_id
                } else {
                    &occ_id
                },
            )
            .replace("{jti}", "01900000-0000-7000-8000-000000000000")
            .replace("{queue}", "q");
        for method in METHODS {
            let standard = qhronos::auth::gate::method_label(
                &reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            ) != "other";
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let need = permissions::need(&m, &route);
            let body = match (*method, route.as_str()) {
                ("POST", "/events") => Some(
                    json!({"name": "m", "start_time": in_ms(3_600_000), "webhook": "http://127.0.0.1:9/h", "tags": ["team-a"]}),
                ),
                ("POST", "/workflows") | ("PUT", "/workflows/{id}") => Some(workflow.clone()),
                ("PUT", _) => Some(json!({"description": "changed"})),
                ("PATCH", _) => Some(json!({"scheduled_at": in_ms(7_200_000)})),
                ("POST", "/tokens") => {
                    Some(json!({"sub": "x", "access": "read", "expires_at": in_ms(60_000)}))
                }
                ("POST", "/schedules/preview") => {
                    Some(json!({"start_time": "2030-01-01T00:00:00Z", "schedule": "FREQ=DAILY"}))
                }
                ("POST", _) => Some(json!({})),
                _ => None,
            };
            for (name, token, role) in &callers {
                if route == "/ws" && *method == "GET" {
                    // The upgrade: covered by the WebSocket tests.
                    continue;
                }
                checked += 1;
                let (status, v) = app
                    .req_as(token.as_deref(), method, &path, body.clone())
                    .await;
                let public = PUBLIC.contains(&route.as_str());
                let ok = if !standard {
                    // Before authentication, rate limiting and routing.
                    status == 405
                } else if public {
                    status != 401 && status != 403 && status < 500
                } else if role.is_none() {
                    status == 401
                } else if let Some(need) = need {
                    let allowed = match (role.unwrap(), need) {
                        ("master", _) => true,
                        (_, Need::Master) => false,
                        ("admin", _) => true,
                        ("read_write", Need::Read | Need::Write) => true,
                        ("read", Need::Read) => true,
                        ("write", Need::Write) => true,
                        _ => false,
                    };
                    match allowed {
                        false => status == 403,
                        // A scope that does not cover the event: its ids are not found;
                        // creating it is 403.
                        true if *name == "wrong scope" && route.contains("{id}") => status == 404,
                        true if *name == "wrong scope"
                            && *method == "POST"
                            && route == "/events" =>
                        {
                            status == 403
                        }
                        true => status < 500 && status != 401 && status != 403 && status != 405,
                    }
                } else {
                    status == 405
                };
                if !ok {
                    failures.push(format!("{method} {route} as {name}: {status} {v}"));
                }
                // What the router takes must be in the table (or public).
                if *name == "master" && !public && status != 404 && status != 405 && need.is_none()
                {
                    failures.push(format!(
                        "{method} {route} answers {status} but has no permission rule"
                    ));
                }
            }
        }
    }
    assert!(checked > 2000, "{checked} requests");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn head_needs_what_get_needs() {
    let app = spawn_app().await;
    let read = app.token("read", &[]).await;
    for route in ["/audit", "/tokens"] {
        let r = app
            .client
            .head(app.url(route))
            .bearer_auth(&read)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "HEAD {route} with a read token");
    }
    let admin = app.token("admin", &[]).await;
    let r = app
        .client
        .head(app.url("/audit"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A method the table does not give a route: 405 naming what it has.
    let r = app
        .client
        .put(app.url("/audit"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
}

#[tokio::test]
async fn invented_methods_answer_405_before_the_rate_limit_and_create_no_metric_series() {
    let app = spawn_app_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.anonymous.burst = 5;
        c.rate_limit.anonymous.per_second = 0.1;
    })
    .await;
    for i in 0..50 {
        let m = reqwest::Method::from_bytes(format!("INVENTED{i}").as_bytes()).unwrap();
        let r = app
            .client
            .request(m, app.url("/events"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "request {i}");
    }
    // The anonymous bucket is untouched: the metrics scrape itself is allowed.
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(!text.contains("INVENTED"), "{text}");
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("qhronos_http_requests_total{")
                && l.contains("method=\"other\"")
                && l.contains("route=\"/events\"")
                && l.contains("status=\"405\"")
        })
        .unwrap_or_else(|| panic!("no series for method=other: {text}"));
    assert!(line.ends_with(" 50"), "{line}");
    // Raw paths never become labels either.
    for i in 0..5 {
        app.client
            .get(app.url(&format!("/nothing-here-{i}")))
            .send()
            .await
            .unwrap();
    }
    let text = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("nothing-here"), "{text}");
}

#[tokio::test]
async fn status_counts_are_read_from_the_store_at_most_once_a_second() {
    let app = spawn_app().await;
    let (_, before) = app.get("/status").await;
    app.create(webhook_event("http://127.0.0.1:9/h", 3_600_000))
        .await;
    let (_, soon) = app.get("/status").await;
    assert_eq!(
        soon["occurrences"], before["occurrences"],
        "within a second: the cached counts"
    );
    // Older than a second: the next request starts a read behind it, and a later one gets it.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let want = before["occurrences"]["pending"].as_i64().unwrap() + 1;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let (_, later) = app.get("/status").await;
        if later["occurrences"]["pending"].as_i64() == Some(want) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{later}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
