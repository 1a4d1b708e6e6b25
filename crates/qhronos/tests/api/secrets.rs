//! Secrets at rest, in logs and in transit: backups, the database URL, SSRF corners, apicall
//! headers, per-event signing secrets.

use serde_json::json;

use crate::helpers::{in_ms, spawn_app, spawn_app_with, sqlite_only};

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
