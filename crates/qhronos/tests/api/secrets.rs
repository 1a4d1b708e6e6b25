//! Secrets at rest, in logs and in transit: backups, the database URL, SSRF corners, apicall
//! headers, per-event signing secrets.

use serde_json::json;

use crate::helpers::{in_ms, spawn_app, spawn_app_with, sqlite_only, webhook_event, Receiver};

#[tokio::test]
async fn backups_are_readable_by_their_owner_only_and_only_an_unscoped_admin_takes_one() {
    if sqlite_only("backups are files of the embedded store") {
        return;
    }
    let app = spawn_app().await;
    let (s, v) = app.post("/admin/backup", json!({})).await;
    assert_eq!(s, 201, "{v}");
    let path = v["path"].as_str().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{path}: {mode:o}");
        let dir = std::path::Path::new(path).parent().unwrap();
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}: {mode:o}", dir.display());
    }
    let scoped = app.token("admin", &["team-a"]).await;
    let (s, v) = app
        .req_as(Some(&scoped), "POST", "/admin/backup", Some(json!({})))
        .await;
    assert_eq!(s, 403, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("without a scope"),
        "{v}"
    );
}

#[tokio::test]
async fn six_to_four_teredo_and_site_local_targets_are_refused() {
    let app = spawn_app_with(|c| c.delivery.allowed_networks = vec![]).await;
    for url in [
        // 6to4 of 169.254.169.254, of 10.0.0.1, of 127.0.0.1
        "http://[2002:a9fe:a9fe::1]/h",
        "http://[2002:a00:1::]/h",
        "http://[2002:7f00:1::]/h",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/h",
        "http://[fec0::1]/h",
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
}

#[tokio::test]
async fn an_apicall_may_not_set_the_host_header() {
    let app = spawn_app().await;
    for name in ["Host", "host", "HOST"] {
        let (s, v) = app
            .post("/events", json!({"name": "x", "start_time": in_ms(60_000), "action": {"type": "apicall", "params": {"url": "http://127.0.0.1:9/", "headers": {name: "metadata.internal"}}}}))
            .await;
        assert_eq!(s, 400, "{v}");
        let e = v["error"].as_str().unwrap();
        assert!(
            e.contains(&format!("action.params.headers.{name}")) && e.contains("Host"),
            "{e}"
        );
    }
}

/// Runs one statement on the test app's own database (either backend), returning the first
/// column of the first row as text, if any.
async fn sql(app: &crate::helpers::TestApp, q: &str) -> Option<String> {
    use sqlx::{Connection, Row};
    match &app.db {
        Some(db) => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let row = sqlx::query(sqlx::AssertSqlSafe(q))
                .fetch_optional(&mut c)
                .await
                .unwrap();
            row.and_then(|r| r.try_get::<String, _>(0).ok())
        }
        None => {
            let url = format!("sqlite://{}", app._dir.path().join("qhronos.db").display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let row = sqlx::query(sqlx::AssertSqlSafe(q))
                .fetch_optional(&mut c)
                .await
                .unwrap();
            row.and_then(|r| r.try_get::<String, _>(0).ok())
        }
    }
}

/// The Standard Webhooks signatures of a received request, checked against `secret`.
fn signed_by(r: &crate::helpers::Received, secret: &str) -> bool {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = match secret.strip_prefix("whsec_") {
        Some(k) => b64.decode(k).unwrap(),
        None => secret.as_bytes().to_vec(),
    };
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    m.update(
        format!(
            "{}.{}.",
            r.header("webhook-id"),
            r.header("webhook-timestamp")
        )
        .as_bytes(),
    );
    m.update(&r.body);
    let expected = format!("v1,{}", b64.encode(m.finalize().into_bytes()));
    r.header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

#[tokio::test]
async fn apicall_header_values_are_write_only_and_kept_by_updates_that_omit_or_mask_them() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    let body = json!({"name": "call", "start_time": in_ms(3_600_000), "action": {"type": "apicall", "params": {"method": "POST", "url": rx.url(), "headers": {"Authorization": "Bearer downstream-s3cret", "X-Trace": "1"}}}});
    let (s, created) = app.post("/events", body).await;
    assert_eq!(s, 201, "{created}");
    let masked = json!({"Authorization": "***", "X-Trace": "***"});
    assert_eq!(created["action"]["params"]["headers"], masked);
    let id = created["id"].as_str().unwrap().to_string();
    let read = app.token("read", &[]).await;
    let (_, one) = app
        .req_as(Some(&read), "GET", &format!("/events/{id}"), None)
        .await;
    let (_, list) = app.req_as(Some(&read), "GET", "/events", None).await;
    assert_eq!(one["action"]["params"]["headers"], masked);
    assert!(!format!("{one}{list}").contains("downstream-s3cret"));

    // An update without headers keeps them; the masked action sent back keeps each value.
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"action": {"type": "apicall", "params": {"method": "PUT", "url": rx.url()}}})),
        )
        .await;
    assert_eq!(
        (s, &v["action"]["params"]["headers"]),
        (200, &masked),
        "{v}"
    );
    let mut action = v["action"].clone();
    action["params"]["headers"]["X-Trace"] = json!("2");
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({ "action": action })),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    app.post(&format!("/events/{id}/trigger"), json!({})).await;
    let got = &rx.wait_for(1, std::time::Duration::from_secs(5)).await[0];
    assert_eq!(got.header("authorization"), "Bearer downstream-s3cret");
    assert_eq!(got.header("x-trace"), "2");

    // A mask with no stored value behind it is refused, naming the header.
    let (s, v) = app
        .post("/events", json!({"name": "x", "start_time": in_ms(60_000), "action": {"type": "apicall", "params": {"url": rx.url(), "headers": {"X-New": "***"}}}}))
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("headers.X-New"),
        "{v}"
    );

    let admin = app.token("admin", &[]).await;
    let (_, log) = app.req_as(Some(&admin), "GET", "/audit", None).await;
    assert!(!log.to_string().contains("downstream-s3cret"), "{log}");
    let update = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "event.update")
        .unwrap();
    assert_eq!(update["summary"]["changed"], json!(["action"]), "{update}");
}

#[tokio::test]
async fn an_event_without_a_secret_gets_its_own_shown_once_and_readable_by_write_tokens_in_scope() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    let mut b = webhook_event(&rx.url(), 3_600_000);
    b["tags"] = json!(["team-a"]);
    let (s, created) = app.post("/events", b.clone()).await;
    assert_eq!(s, 201, "{created}");
    let secret = created["hmac_secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(created["hmac_secret_set"], true);
    let id = created["id"].as_str().unwrap().to_string();
    let (_, other) = app.post("/events", b).await;
    assert_ne!(
        other["hmac_secret"], created["hmac_secret"],
        "one secret per event"
    );

    let (_, again) = app.get(&format!("/events/{id}")).await;
    assert!(again.get("hmac_secret").is_none(), "{again}");
    let path = format!("/events/{id}/secret");
    let write = app.token("write", &["team-a"]).await;
    let (s, v) = app.req_as(Some(&write), "GET", &path, None).await;
    assert_eq!(
        (s, v["hmac_secret"].as_str()),
        (200, Some(secret.as_str())),
        "{v}"
    );
    assert_eq!(v["server_default"], false);
    let read = app.token("read", &[]).await;
    assert_eq!(app.req_as(Some(&read), "GET", &path, None).await.0, 403);
    let elsewhere = app.token("write", &["team-b"]).await;
    assert_eq!(
        app.req_as(Some(&elsewhere), "GET", &path, None).await.0,
        404
    );

    app.post(&format!("/events/{id}/trigger"), json!({})).await;
    let got = &rx.wait_for(1, std::time::Duration::from_secs(5)).await[0];
    assert!(
        signed_by(got, &secret),
        "signed with the event's own secret"
    );
    let default = sql(
        &app,
        "SELECT value FROM settings WHERE key = 'default_hmac_secret'",
    )
    .await
    .unwrap();
    assert!(!signed_by(got, &default), "never with the shared default");

    // `null` on an update: a new secret, shown in that answer.
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"hmac_secret": null})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let rotated = v["hmac_secret"].as_str().unwrap();
    assert!(rotated.starts_with("whsec_") && rotated != secret);

    // A batch returns each generated secret, in order; null where the item gave its own.
    let mut own = webhook_event(&rx.url(), 3_600_000);
    own["hmac_secret"] = json!("mine-mine-mine");
    let (s, v) = app
        .post(
            "/events/batch",
            json!({"events": [webhook_event(&rx.url(), 3_600_000), own]}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let secrets = v["hmac_secrets"].as_array().unwrap();
    assert!(secrets[0].as_str().unwrap().starts_with("whsec_"), "{v}");
    assert!(secrets[1].is_null(), "{v}");
    let first = v["ids"][0].as_str().unwrap();
    let (_, s0) = app.get(&format!("/events/{first}/secret")).await;
    assert_eq!(s0["hmac_secret"], secrets[0]);
}

#[tokio::test]
async fn an_older_event_keeps_the_default_secret_until_its_target_changes() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    let id = app.create(webhook_event(&rx.url(), 3_600_000)).await;
    // As created before per-event secrets: no secret of its own.
    sql(
        &app,
        &format!("UPDATE events SET hmac_secret = NULL WHERE id = '{id}'"),
    )
    .await;
    let default = sql(
        &app,
        "SELECT value FROM settings WHERE key = 'default_hmac_secret'",
    )
    .await
    .unwrap();
    let (_, v) = app.get(&format!("/events/{id}/secret")).await;
    assert_eq!(
        (&v["hmac_secret"], &v["server_default"]),
        (&json!(null), &json!(true))
    );
    // Its receiver trusts the default secret: it keeps signing, also after an update that
    // leaves the target alone.
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(v.get("hmac_secret").is_none(), "{v}");
    app.post(&format!("/events/{id}/trigger"), json!({})).await;
    let got = rx.wait_for(1, std::time::Duration::from_secs(5)).await;
    assert!(signed_by(&got[0], &default));

    // A new target never trusted it: the event gets its own, and the default no longer signs.
    let rx2 = Receiver::start(vec![]).await;
    let (s, v) = app
        .req(
            "PUT",
            &format!("/events/{id}"),
            Some(json!({"action": {"type": "webhook", "params": {"url": rx2.url()}}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let own = v["hmac_secret"].as_str().unwrap().to_string();
    app.post(&format!("/events/{id}/trigger"), json!({})).await;
    let got = &rx2.wait_for(1, std::time::Duration::from_secs(5)).await[0];
    assert!(signed_by(got, &own));
    assert!(
        !signed_by(got, &default),
        "{:?}",
        got.header("webhook-signature")
    );
    assert_eq!(got.header("webhook-signature").split(' ').count(), 1);
}

#[tokio::test]
async fn the_legacy_signature_header_can_be_turned_off() {
    for (on, expect) in [(true, true), (false, false)] {
        let app = spawn_app_with(|c| c.delivery.legacy_signature = on).await;
        let rx = Receiver::start(vec![]).await;
        app.create(webhook_event(&rx.url(), 0)).await;
        let got = &rx.wait_for(1, std::time::Duration::from_secs(5)).await[0];
        assert_eq!(
            got.headers.contains_key("x-qhronos-signature"),
            expect,
            "legacy_signature: {on}"
        );
        assert!(got.headers.contains_key("webhook-signature"));
    }
}
