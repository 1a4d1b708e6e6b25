use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{in_ms, spawn_app, spawn_app_with, webhook_event, Receiver, TOKEN};

#[tokio::test]
async fn a_scoped_token_sees_and_touches_only_its_tags() {
    let app = spawn_app().await;
    let mut b = webhook_event("http://127.0.0.1:9/h", 3_600_000);
    b["tags"] = json!(["team-b"]);
    let foreign = app.create(b).await;
    let t = app.token("read_write", &["team-a"]).await;

    // Created without tags: it gets the token's scope.
    let (s, mine) = app
        .req_as(
            Some(&t),
            "POST",
            "/events",
            Some(webhook_event("http://127.0.0.1:9/h", 3_600_000)),
        )
        .await;
    assert_eq!(s, 201, "{mine}");
    assert_eq!(mine["tags"], json!(["team-a"]));
    // Tags outside the scope: 403 naming the tag.
    let mut b = webhook_event("http://127.0.0.1:9/h", 3_600_000);
    b["tags"] = json!(["team-a", "team-b"]);
    let (s, v) = app.req_as(Some(&t), "POST", "/events", Some(b)).await;
    assert_eq!(s, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("team-b"));
    // Lists hold only its events; a foreign id is 404, not 403.
    let (_, list) = app.req_as(Some(&t), "GET", "/events", None).await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [mine["id"].as_str().unwrap()]);
    let (_, list) = app
        .req_as(Some(&t), "GET", "/events?tags=team-b", None)
        .await;
    assert!(list["data"].as_array().unwrap().is_empty());
    for (m, p) in [
        ("GET", format!("/events/{foreign}")),
        ("DELETE", format!("/events/{foreign}")),
        ("GET", format!("/events/{foreign}/occurrences")),
    ] {
        assert_eq!(app.req_as(Some(&t), m, &p, None).await.0, 404, "{m} {p}");
    }
    let (_, occs) = app.req_as(Some(&t), "GET", "/occurrences", None).await;
    assert_eq!(occs["data"].as_array().unwrap().len(), 1);
    let (_, all) = app.get(&format!("/events/{foreign}/occurrences")).await;
    let foreign_occ = all["data"][0]["id"].as_str().unwrap();
    assert_eq!(
        app.req_as(
            Some(&t),
            "GET",
            &format!("/occurrences/{foreign_occ}"),
            None
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn a_revoked_token_fails_on_the_next_request() {
    let app = spawn_app().await;
    let t = app.token("read", &[]).await;
    assert_eq!(app.req_as(Some(&t), "GET", "/events", None).await.0, 200);
    let (_, list) = app.get("/tokens").await;
    let jti = list["data"][0]["jti"].as_str().unwrap().to_string();
    assert!(
        list["data"][0].get("token").is_none(),
        "listing never shows the token"
    );
    assert_eq!(
        app.req("DELETE", &format!("/tokens/{jti}"), None).await.0,
        204
    );
    let (s, v) = app.req_as(Some(&t), "GET", "/events", None).await;
    assert_eq!(s, 401);
    assert!(v["error"].as_str().unwrap().contains("revoked"), "{v}");
    assert_eq!(app.req("DELETE", "/tokens/nope", None).await.0, 404);
}

#[tokio::test]
async fn rate_limits_answer_429_with_headers_per_token() {
    let app = spawn_app_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.burst = 3;
        c.rate_limit.per_second = 0.5;
        c.rate_limit.anonymous.burst = 3;
        c.rate_limit.anonymous.per_second = 0.5;
    })
    .await;
    let t = app.token("read", &[]).await;
    for i in 0..3 {
        let r = app
            .client
            .get(app.url("/events"))
            .bearer_auth(&t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-ratelimit-limit"], "3");
        assert_eq!(
            r.headers()["x-ratelimit-remaining"],
            (2 - i).to_string().as_str()
        );
        assert!(r.headers().contains_key("x-ratelimit-reset"));
    }
    let r = app
        .client
        .get(app.url("/events"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("rate limit"));
    // The master token is not limited (rate_limit.master: false); anonymous requests are
    // limited by IP.
    let r = app
        .client
        .get(app.url("/events"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for _ in 0..3 {
        app.client.get(app.url("/health")).send().await.unwrap();
    }
    assert_eq!(
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        429
    );
}

#[tokio::test]
async fn the_audit_log_records_changes_with_actor_and_ip_but_no_secret() {
    let app = spawn_app().await;
    let mut b = webhook_event("http://127.0.0.1:9/h", 3_600_000);
    b["hmac_secret"] = json!("super-secret-value-xyz");
    let id = app.create(b).await;
    app.req(
        "PUT",
        &format!("/events/{id}"),
        Some(json!({"name": "renamed", "hmac_secret": "another-secret-value-abc"})),
    )
    .await;
    app.post(&format!("/events/{id}/pause"), json!({})).await;
    let admin = app.token("admin", &[]).await;
    let (s, log) = app.req_as(Some(&admin), "GET", "/audit", None).await;
    assert_eq!(s, 200);
    let entries = log["data"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["token.issue", "event.pause", "event.update", "event.create"]
    );
    assert_eq!(entries[3]["actor"], "master");
    assert_eq!(entries[3]["ip"], "127.0.0.1");
    assert_eq!(entries[3]["target"], id.as_str());
    assert_eq!(
        entries[2]["summary"]["changed"],
        json!(["name", "hmac_secret"])
    );
    let text = log.to_string();
    assert!(
        !text.contains("super-secret") && !text.contains("another-secret"),
        "{text}"
    );
    let (_, filtered) = app
        .req_as(Some(&admin), "GET", "/audit?action=event.pause", None)
        .await;
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.req_as(
            Some(&app.token("read_write", &[]).await),
            "GET",
            "/audit",
            None
        )
        .await
        .0,
        403
    );
}

#[tokio::test]
async fn the_ssrf_guard_refuses_internal_targets_and_names_the_setting() {
    let app = spawn_app_with(|c| {
        c.delivery.allowed_networks = vec![];
        c.delivery.hosts = BTreeMap::from([
            (
                "internal.test".to_string(),
                vec!["10.0.0.5".parse().unwrap()],
            ),
            (
                "metadata.test".to_string(),
                vec!["169.254.169.254".parse().unwrap()],
            ),
            (
                "cgnat.test".to_string(),
                vec!["100.64.1.1".parse().unwrap()],
            ),
            ("ula.test".to_string(), vec!["fd00::1".parse().unwrap()]),
            (
                "public.test".to_string(),
                vec!["93.184.216.34".parse().unwrap()],
            ),
        ]);
    })
    .await;
    for url in [
        "http://127.0.0.1:9/h",
        "http://localhost:9/h",
        "http://0x7f.1/h",
        "http://2130706433/h",
        "http://[::ffff:127.0.0.1]/h",
        "http://[::1]/h",
        "http://internal.test/h",
        "http://metadata.test/latest/meta-data",
        "http://cgnat.test/",
        "http://ula.test/",
        "http://0.0.0.0/",
        "http://169.254.169.254/",
    ] {
        let (s, v) = app
            .post(
                "/events",
                json!({"name": "x", "start_time": in_ms(60_000), "webhook": url}),
            )
            .await;
        assert_eq!(s, 422, "{url}: {v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("delivery.allowed_networks"),
            "{url}: {v}"
        );
    }
    let (s, v) = app
        .post(
            "/events",
            json!({"name": "x", "start_time": in_ms(60_000), "webhook": "http://public.test/h"}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
}

#[tokio::test]
async fn a_changed_secret_keeps_the_old_one_signing_during_the_grace_period() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    let mut b = webhook_event(&rx.url(), 600_000);
    b["hmac_secret"] = json!("old-secret");
    let id = app.create(b).await;
    let (s, e) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"hmac_secret": "new-secret"})),
        )
        .await;
    assert_eq!(s, 200, "{e}");
    assert_eq!(e["hmac_secret_set"], true);
    app.post(&format!("/events/{id}/trigger"), json!({})).await;
    let r = &rx.wait_for(1, Duration::from_secs(5)).await[0];
    let mac = |key: &str, data: &[u8]| {
        let mut m = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        m.update(data);
        base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
    };
    let signed = [
        r.header("webhook-id").as_bytes(),
        b".",
        r.header("webhook-timestamp").as_bytes(),
        b".",
        &r.body,
    ]
    .concat();
    let sigs: Vec<&str> = r.header("webhook-signature").split(' ').collect();
    assert_eq!(
        sigs,
        [
            format!("v1,{}", mac("new-secret", &signed)),
            format!("v1,{}", mac("old-secret", &signed))
        ]
    );
}

#[tokio::test]
async fn input_limits_name_the_limit() {
    let app = spawn_app().await;
    let mut b = webhook_event("http://127.0.0.1:9/h", 60_000);
    b["metadata"] = json!({"blob": "x".repeat(70_000)});
    let (s, v) = app.post("/events", b).await;
    assert_eq!(s, 400);
    assert!(v["error"].as_str().unwrap().contains("64 KiB"), "{v}");
    let headers: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("x-h{i}"), json!("v"))).collect();
    let (s, v) = app
        .post("/events", json!({"name": "x", "start_time": in_ms(60_000), "action": {"type": "apicall", "params": {"url": "http://127.0.0.1:9/", "headers": headers}}}))
        .await;
    assert_eq!(s, 400);
    assert!(
        v["error"].as_str().unwrap().contains("at most 32 headers"),
        "{v}"
    );
    let mut b = webhook_event("http://127.0.0.1:9/h", 60_000);
    b["tags"] = json!((0..65).map(|i| format!("t{i}")).collect::<Vec<_>>());
    assert_eq!(app.post("/events", b).await.0, 400);
    let mut b = webhook_event("http://127.0.0.1:9/h", 60_000);
    b["name"] = json!("n".repeat(257));
    assert_eq!(app.post("/events", b).await.0, 400);
}

#[tokio::test]
async fn a_redirect_to_an_internal_address_is_not_followed() {
    let app = spawn_app().await;
    let inside = Receiver::start(vec![]).await;
    // A receiver that answers 302 pointing at another (internal) address.
    let location = format!("{}/internal", inside.url());
    let redirector = axum::Router::new().fallback(move || {
        let location = location.clone();
        async move {
            (
                axum::http::StatusCode::FOUND,
                [(axum::http::header::LOCATION, location)],
                "moved",
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, redirector).await });
    let mut b = webhook_event(&format!("http://{addr}/hook"), 0);
    b["retry"]["max_attempts"] = json!(1);
    let id = app.create(b).await;
    let occs = app
        .wait_occurrences(&id, Duration::from_secs(5), |l| {
            l.first().is_some_and(|o| o["status"] == "failed")
        })
        .await;
    assert!(
        occs[0]["last_error"].as_str().unwrap().contains("HTTP 302"),
        "{}",
        occs[0]
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        inside.received().is_empty(),
        "the redirect must not be followed"
    );
}
