use std::time::Duration;

use serde_json::json;

use qhronos::domain::duration::Dur;

use crate::helpers::{in_ms, spawn_app, spawn_app_with, webhook_event, Receiver};

const DAY: i64 = 86_400_000;

fn now() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[tokio::test]
async fn retention_removes_finished_work_by_age_and_never_a_future_event() {
    let app = spawn_app().await;
    let ok = Receiver::start(vec![]).await;
    let bad = Receiver::start(vec![500]).await;
    let done = app.create(webhook_event(&ok.url(), 0)).await;
    let mut f = webhook_event(&bad.url(), 0);
    f["retry"]["max_attempts"] = json!(1);
    let failed = app.create(f).await;
    let done_occ = app
        .wait_occurrences(&done, Duration::from_secs(5), |l| {
            l.first().is_some_and(|o| o["status"] == "completed")
        })
        .await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let failed_occ = app
        .wait_occurrences(&failed, Duration::from_secs(5), |l| {
            l.first().is_some_and(|o| o["status"] == "failed")
        })
        .await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Future and unfinished work that must survive any pass.
    let future = app
        .create(webhook_event("http://127.0.0.1:9/f", 40 * DAY))
        .await;
    let mut s = webhook_event("http://127.0.0.1:9/s", 600_000);
    s["schedule"] = json!("FREQ=DAILY");
    let series = app.create(s).await;
    let paused = app
        .create(webhook_event("http://127.0.0.1:9/p", 600_000))
        .await;
    app.post(&format!("/events/{paused}/pause"), json!({}))
        .await;

    // Nothing is old enough yet.
    let r = app.retention.run_once(now()).await.unwrap();
    assert_eq!(
        (r.occurrences_done, r.occurrences_failed, r.events),
        (0, 0, 0)
    );
    // 8 days on: the completed occurrence and its attempts go; the failed one stays (30 d).
    let r = app.retention.run_once(now() + 8 * DAY).await.unwrap();
    assert_eq!(
        r.occurrences_done, 2,
        "the completed one and the paused event's cancelled one"
    );
    assert_eq!(app.get(&format!("/occurrences/{done_occ}")).await.0, 404);
    assert_eq!(app.get(&format!("/occurrences/{failed_occ}")).await.0, 200);
    // 31 days on: the failed occurrence and both finished events go.
    let r = app.retention.run_once(now() + 31 * DAY).await.unwrap();
    assert_eq!((r.occurrences_failed, r.events), (1, 2));
    assert_eq!(app.get(&format!("/events/{done}")).await.0, 404);
    assert_eq!(app.get(&format!("/events/{failed}")).await.0, 404);
    // Far on: an event with a future instance, a running series and a paused event are kept.
    app.retention.run_once(now() + 400 * DAY).await.unwrap();
    for id in [&future, &series, &paused] {
        assert_eq!(
            app.get(&format!("/events/{id}")).await.0,
            200,
            "{id} must survive retention"
        );
    }
    let (_, occs) = app
        .get(&format!("/events/{series}/occurrences?status=pending"))
        .await;
    assert!(
        !occs["data"].as_array().unwrap().is_empty(),
        "pending occurrences are never removed"
    );
}

#[tokio::test]
async fn retention_keeps_an_inactive_event_that_still_has_an_unfinished_occurrence() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![500]).await;
    // Fails its only attempt now; a later rdate is still pending.
    let mut b = webhook_event(&rx.url(), 0);
    b["rdates"] = json!([in_ms(300_000)]);
    b["retry"]["max_attempts"] = json!(1);
    let id = app.create(b).await;
    app.wait_occurrences(&id, Duration::from_secs(5), |l| {
        l.iter().any(|o| o["status"] == "failed")
    })
    .await;
    app.retention.run_once(now() + 60 * DAY).await.unwrap();
    assert_eq!(app.get(&format!("/events/{id}")).await.0, 200);
}

#[tokio::test]
async fn retention_keeps_an_event_until_its_last_dead_letter_expires() {
    // Dead letters are kept longer than finished events.
    let app = spawn_app_with(|c| {
        c.retention.events = Dur::from_secs(DAY as u64 / 1000);
        c.retention.failed = Dur::from_secs(10 * DAY as u64 / 1000);
    })
    .await;
    let rx = Receiver::start(vec![500]).await;
    let mut b = webhook_event(&rx.url(), 0);
    b["retry"]["max_attempts"] = json!(1);
    let id = app.create(b).await;
    let occ = app
        .wait_occurrences(&id, Duration::from_secs(5), |l| {
            l.first().is_some_and(|o| o["status"] == "failed")
        })
        .await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Past the events' age, within the dead letters': the event stays with its dead letter.
    let r = app.retention.run_once(now() + 3 * DAY).await.unwrap();
    assert_eq!((r.occurrences_failed, r.events), (0, 0));
    assert_eq!(app.get(&format!("/events/{id}")).await.0, 200);
    let (s, o) = app.get(&format!("/occurrences/{occ}")).await;
    assert_eq!((s, o["status"].as_str()), (200, Some("failed")), "{o}");
    // Once the dead letter expires, both go.
    let r = app.retention.run_once(now() + 11 * DAY).await.unwrap();
    assert_eq!((r.occurrences_failed, r.events), (1, 1));
    assert_eq!(app.get(&format!("/events/{id}")).await.0, 404);
    assert_eq!(app.get(&format!("/occurrences/{occ}")).await.0, 404);
}

#[tokio::test]
async fn metrics_count_deliveries_requests_and_queue_depth() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    let a = app.create(webhook_event(&rx.url(), 0)).await;
    let b = app.create(webhook_event(&rx.url(), 0)).await;
    for id in [&a, &b] {
        app.wait_occurrences(id, Duration::from_secs(5), |l| {
            l.first().is_some_and(|o| o["status"] == "completed")
        })
        .await;
    }
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let has = |line: &str| text.lines().any(|l| l == line);
    assert!(
        has(r#"qhronos_deliveries_total{outcome="completed",action="webhook"} 2"#),
        "{text}"
    );
    assert!(
        has(r#"qhronos_occurrences{status="completed"} 2"#),
        "{text}"
    );
    assert!(has("qhronos_fire_lateness_seconds_count 2"), "{text}");
    assert!(
        text.contains(
            r#"qhronos_http_requests_total{method="POST",route="/events",status="201"} 2"#
        ),
        "{text}"
    );
    assert!(
        text.contains("qhronos_attempt_duration_seconds_bucket"),
        "{text}"
    );
    let pool = if app.db.is_some() {
        "postgres"
    } else {
        "write"
    };
    assert!(
        text.contains(&format!(
            r#"qhronos_db_pool_connections{{pool="{pool}",state="idle"}}"#
        )),
        "{text}"
    );
    let (_, status) = app.get("/status").await;
    assert!(status["queue"]["fire_lag_ms"].is_number(), "{status}");
    assert!(
        status["queue"]["expander_lag_seconds"].is_number(),
        "{status}"
    );
}

#[tokio::test]
async fn a_method_a_route_does_not_have_is_405_not_403() {
    let app = spawn_app().await;
    let (s, _) = app
        .post("/events/01900000-0000-7000-8000-000000000000", json!({}))
        .await;
    assert_eq!(s, 405);
}

#[tokio::test]
async fn backup_while_firing_then_restore_loses_nothing_and_pending_work_fires() {
    if crate::helpers::sqlite_only(
        "backup and restore are the embedded store's (PostgreSQL: pg_dump)",
    ) {
        return;
    }
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    let mut s = webhook_event(&rx.url(), 0);
    s["schedule"] = json!("FREQ=SECONDLY;INTERVAL=1");
    let series = app.create(s).await;
    rx.wait_for(1, Duration::from_secs(5)).await;
    // A one-time event due after the restore.
    let later = app.create(webhook_event(&rx.url(), 4_000)).await;
    let (status, v) = app.post("/admin/backup", json!({})).await;
    assert_eq!(status, 201, "{v}");
    let file = std::path::PathBuf::from(v["path"].as_str().unwrap());
    assert!(file.exists() && v["bytes"].as_u64().unwrap() > 0);
    let copy = tempfile::tempdir().unwrap();
    let saved = copy.path().join("backup.db");
    std::fs::copy(&file, &saved).unwrap();
    drop(app);

    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qhronosd"))
        .args(["restore", "--from"])
        .arg(&saved)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A second restore onto a database refuses without --force.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_qhronosd"))
        .args(["restore", "--from"])
        .arg(&saved)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    let restored_dir = dir.path().to_path_buf();
    let app = crate::helpers::spawn_app_with(move |c| c.data_dir = restored_dir).await;
    assert_eq!(app.get(&format!("/events/{series}")).await.0, 200);
    assert_eq!(app.get(&format!("/events/{later}")).await.0, 200);
    app.wait_occurrences(&later, Duration::from_secs(8), |l| {
        l.first().is_some_and(|o| o["status"] == "completed")
    })
    .await;
}

#[tokio::test]
async fn qhronosd_backup_writes_a_copy_and_refuses_to_overwrite() {
    if crate::helpers::sqlite_only("backups are the embedded store's (PostgreSQL: pg_dump)") {
        return;
    }
    let app = spawn_app().await;
    app.create(webhook_event("http://127.0.0.1:9/x", 600_000))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("b.db");
    let data = app._dir.path().to_path_buf();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_qhronosd"))
            .args(["backup", "--to"])
            .arg(&to)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap()
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(to.exists());
    let out = run();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists already"));
}
