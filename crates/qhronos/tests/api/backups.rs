//! Scheduled backups (embedded store): taken on schedule, checked, listed and rotated; a failure
//! is a metric; refused on PostgreSQL.

use std::time::{Duration, Instant};

use serde_json::Value;

use qhronos::domain::duration::Dur;

use crate::helpers::{spawn_app, spawn_app_with, sqlite_only, test_config, TestApp, TestDb};

/// Polls `GET /admin/backups` until `f` accepts its list, or panics after 10 s.
async fn wait_backups(app: &TestApp, f: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, v) = app.get("/admin/backups").await;
        assert_eq!(s, 200, "{v}");
        let list = v["data"].as_array().cloned().unwrap_or_default();
        if f(&list) {
            return list;
        }
        assert!(Instant::now() < deadline, "timed out; backups: {v:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metrics(app: &TestApp) -> String {
    app.client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("body")
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn scheduled_backups_are_taken_checked_listed_and_rotated() {
    if sqlite_only("scheduled backups copy the embedded file") {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let backups = dir.path().join("b");
    let app = spawn_app_with(|c| {
        c.backup.every = Some(Dur::from_millis(200));
        c.backup.dir = Some(backups.clone());
        // Only the newest of today survives rotation.
        c.backup.keep.daily = 1;
        c.backup.keep.weekly = 0;
        c.backup.keep.monthly = 0;
    })
    .await;
    let first = wait_backups(&app, |l| !l.is_empty()).await;
    let b = &first[0];
    assert_eq!(b["integrity"], "ok", "{b}");
    assert_eq!(b["scheduled"], true);
    assert!(b["bytes"].as_u64().expect("bytes") > 0);
    let file = backups.join(b["file"].as_str().expect("file"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // A later one replaces it: rotation keeps one a day here.
    let t0 = b["taken_at_ms"].as_i64().expect("time");
    let later = wait_backups(&app, |l| {
        l.first()
            .and_then(|b| b["taken_at_ms"].as_i64())
            .is_some_and(|t| t > t0)
    })
    .await;
    assert_eq!(later.len(), 1, "{later:#?}");
    assert!(!file.exists(), "the older backup was rotated out");
    let m = metrics(&app).await;
    assert!(
        metric(&m, "qhronos_backup_last_success_timestamp_seconds").unwrap_or(0.0) > 0.0,
        "{m}"
    );
    assert_eq!(metric(&m, "qhronos_backup_failures_total"), Some(0.0));
}

#[tokio::test]
async fn a_failing_scheduled_backup_is_counted() {
    if sqlite_only("scheduled backups copy the embedded file") {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    // A file where the folder should be: every backup fails.
    let blocked = dir.path().join("not-a-dir");
    std::fs::write(&blocked, b"x").expect("file");
    let app = spawn_app_with(|c| {
        c.backup.every = Some(Dur::from_millis(200));
        c.backup.dir = Some(blocked.clone());
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = metrics(&app).await;
        if metric(&m, "qhronos_backup_failures_total").unwrap_or(0.0) >= 1.0 {
            assert_eq!(
                metric(&m, "qhronos_backup_last_success_timestamp_seconds"),
                Some(0.0)
            );
            break;
        }
        assert!(Instant::now() < deadline, "no failure counted: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn backups_list_manual_ones_unchecked_and_only_for_unscoped_admins() {
    let app = spawn_app().await;
    if !sqlite_only("POST /admin/backup copies the embedded file") {
        let (s, v) = app.post("/admin/backup", serde_json::json!({})).await;
        assert_eq!(s, 201, "{v}");
        let list = wait_backups(&app, |l| !l.is_empty()).await;
        assert_eq!(list[0]["scheduled"], false);
        assert_eq!(list[0]["integrity"], Value::Null);
    }
    let scoped = app.token("admin", &["ops"]).await;
    assert_eq!(
        app.req_as(Some(&scoped), "GET", "/admin/backups", None)
            .await
            .0,
        403
    );
    let reader = app.token("read", &[]).await;
    assert_eq!(
        app.req_as(Some(&reader), "GET", "/admin/backups", None)
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn scheduled_backups_are_refused_on_postgresql_with_the_pg_dump_pointer() {
    let e = qhronos::startup::check_backup_supported("postgres").expect_err("refused");
    assert!(e.to_string().contains("pg_dump"), "{e}");
    qhronos::startup::check_backup_supported("sqlite").expect("the embedded store backs up");
    // And at start, on a real PostgreSQL database.
    let Some(db) = TestDb::for_test().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let mut c = test_config(dir.path());
    c.database_url = Some(db.url.clone());
    c.database.pool_size = 2;
    c.backup.every = Some(Dur::from_secs(3600));
    let err = match qhronos::startup::Application::build(c).await {
        Ok(_) => panic!("scheduled backups on PostgreSQL must be refused"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("docs/deployment.md"), "{err}");
}
