//! The real binary, really stopped (`kill -9`) and started again on the same database.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{in_ms, Receiver, TestDb, TOKEN};

struct Node {
    child: Child,
    base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `qhronosd` on a free port and waits for its "listening on" line. With a PostgreSQL
/// database, on that (with short leases: a restarted node must wait out the old node's).
fn start_node(dir: &Path, db: Option<&TestDb>) -> Node {
    start_node_with(dir, db, &[]).0
}

/// Starts `qhronosd` with extra settings; also returns every line it writes to stderr.
fn start_node_with(
    dir: &Path,
    db: Option<&TestDb>,
    env: &[(&str, &str)],
) -> (Node, std::sync::mpsc::Receiver<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_qhronosd"));
    if let Some(db) = db {
        cmd.args(["--database-url", &db.url])
            .env("QHRONOS_DATABASE__POOL_SIZE", "4")
            .env("QHRONOS_ENGINE__LEASE", "5s")
            .env("QHRONOS_WEBSOCKET__ACK_TIMEOUT", "1s")
            .env("QHRONOS_RETRY__TIMEOUT", "1s");
    }
    cmd.args(["--port", "0", "--log-format", "json", "--data-dir"])
        .arg(dir)
        .env("QHRONOS_MASTER_TOKEN", TOKEN)
        .env("QHRONOS_ENGINE__POLL_INTERVAL", "50ms")
        .env("QHRONOS_DELIVERY__ALLOWED_NETWORKS", "[127.0.0.0/8]")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("qhronosd starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line.clone());
            if !sent {
                if let Some(i) = line.find("listening on http://") {
                    let rest = &line[i + "listening on ".len()..];
                    let url: String = rest
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                    let _ = tx.send(url);
                    sent = true;
                }
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("qhronosd printed its address");
    (Node { child, base }, lines_rx)
}

/// Sends SIGTERM and waits for the process to exit; returns how long it took.
fn terminate(node: &mut Node, within: Duration) -> Duration {
    let t = std::time::Instant::now();
    let ok = Command::new("kill")
        .args(["-TERM", &node.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(ok.success());
    loop {
        if let Some(status) = node.child.try_wait().expect("wait") {
            assert!(status.success(), "qhronosd exited with {status}");
            return t.elapsed();
        }
        assert!(
            t.elapsed() < within,
            "qhronosd did not stop within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

async fn occurrences(client: &reqwest::Client, node: &Node, event: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = client
        .get(format!(
            "{}/events/{event}/occurrences?limit=500",
            node.base
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["data"].as_array().cloned().unwrap_or_default()
}

// Multi-threaded: `terminate` blocks its thread while the test's receiver must go on answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_deliveries_in_flight_and_hands_back_held_work() {
    let dir = tempfile::tempdir().unwrap();
    // Each delivery takes 600 ms, so the signal lands while one is in flight.
    let rx = Receiver::start_with_delay(vec![], Duration::from_millis(600)).await;
    let client = reqwest::Client::new();
    let db = TestDb::for_test().await;
    let (mut node, lines) = start_node_with(dir.path(), db.as_ref(), &[]);
    let create = |name: &str, ms: i64| {
        client
            .post(format!("{}/events", node.base))
            .bearer_auth(TOKEN)
            .json(&json!({"name": name, "start_time": in_ms(ms), "webhook": rx.url()}))
            .send()
    };
    let now_one = create("now", 100).await.unwrap();
    assert_eq!(now_one.status(), 201);
    // Due in 1.5 s: inside the claim horizon, so held in the timer when the signal comes.
    let later = create("later", 1_500).await.unwrap();
    assert_eq!(later.status(), 201);
    let later: serde_json::Value = later.json().await.unwrap();
    rx.wait_for(1, Duration::from_secs(5)).await;
    let took = terminate(&mut node, Duration::from_secs(8));
    // The delivery in flight was allowed to finish (the receiver holds it 600 ms)...
    assert!(took >= Duration::from_millis(300), "stopped after {took:?}");
    let log: Vec<String> = lines.try_iter().collect();
    assert!(
        log.iter()
            .any(|l| l.contains("held occurrences returned to pending")),
        "{log:#?}"
    );
    assert_eq!(
        rx.received().len(),
        1,
        "the held occurrence must not fire during shutdown"
    );

    // ...and recorded: after the restart it is completed with one attempt, not delivered again;
    // the held one is delivered by the new process.
    let (node, _lines) = start_node_with(dir.path(), db.as_ref(), &[]);
    let later_id = later["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let occ = occurrences(&client, &node, &later_id).await;
        if occ.first().is_some_and(|o| o["status"] == "completed") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "later not delivered: {occ:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rx.received().len(), 2, "each delivered exactly once");
    let s = status(&client, &node).await;
    assert_eq!(s["occurrences"]["completed"], 2, "{s}");
}

#[tokio::test]
async fn misfire_policies_apply_to_what_came_due_while_the_server_was_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(vec![]).await;
    let client = reqwest::Client::new();
    let settings = [("QHRONOS_ENGINE__MISFIRE_THRESHOLD", "300ms")];
    let db = TestDb::for_test().await;
    let (mut node, _l) = start_node_with(dir.path(), db.as_ref(), &settings);
    // Three series, one instance per second from 3 s from now and a fourth at 9 s; the server
    // is stopped across the first three instances. (The fourth is well after the restart, so a
    // slow start on a loaded machine does not make it late too.)
    let mut ids = Vec::new();
    for policy in ["skip", "fire_once", "fire_all"] {
        let r = client
            .post(format!("{}/events", node.base))
            .bearer_auth(TOKEN)
            .json(&json!({
                "name": policy,
                "start_time": in_ms(3_000),
                "schedule": "FREQ=SECONDLY;COUNT=3",
                "rdates": [in_ms(9_000)],
                "webhook": format!("{}?policy={policy}", rx.url()),
                "misfire": {"policy": policy},
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: serde_json::Value = r.json().await.unwrap();
        ids.push((policy, v["id"].as_str().unwrap().to_string()));
    }
    terminate(&mut node, Duration::from_secs(8));
    // Down from ~0 s to ~5.5 s: instances at 3, 4 and 5 s come due while nothing runs.
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    let (node, _l) = start_node_with(dir.path(), db.as_ref(), &settings);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let statuses = loop {
        let mut all = Vec::new();
        for (policy, id) in &ids {
            let mut occ = occurrences(&client, &node, id).await;
            occ.sort_by_key(|o| o["scheduled_at"].as_str().unwrap_or("").to_string());
            let s: Vec<String> = occ
                .iter()
                .map(|o| o["status"].as_str().unwrap_or("").to_string())
                .collect();
            all.push((*policy, s));
        }
        let settled = all
            .iter()
            .all(|(_, s)| s.len() == 4 && s.iter().all(|x| x == "completed" || x == "missed"));
        if settled {
            break all;
        }
        assert!(std::time::Instant::now() < deadline, "not settled: {all:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let get = |p: &str| statuses.iter().find(|(q, _)| *q == p).unwrap().1.clone();
    // skip: every late instance missed; the one due after the restart (9 s) fires.
    assert_eq!(get("skip"), ["missed", "missed", "missed", "completed"]);
    // fire_once: of the late ones, only the newest fires.
    assert_eq!(
        get("fire_once"),
        ["missed", "missed", "completed", "completed"]
    );
    // fire_all: every one fires.
    assert_eq!(
        get("fire_all"),
        ["completed", "completed", "completed", "completed"]
    );
}

async fn status(client: &reqwest::Client, node: &Node) -> serde_json::Value {
    client
        .get(format!("{}/status", node.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn kill_9_and_restart_loses_nothing_and_leaves_nothing_stuck() {
    let dir = tempfile::tempdir().unwrap();
    // A slow receiver, so that the kill lands while deliveries are in flight.
    let rx = Receiver::start_with_delay(vec![], Duration::from_millis(150)).await;
    let client = reqwest::Client::new();
    let db = TestDb::for_test().await;
    let node = start_node(dir.path(), db.as_ref());
    const N: usize = 40;
    for i in 0..N {
        let r = client
            .post(format!("{}/events", node.base))
            .bearer_auth(TOKEN)
            .json(&json!({
                "name": format!("e{i}"),
                "start_time": in_ms(300 + (i as i64 % 10) * 60),
                "webhook": rx.url(),
                "retry": {"initial_delay": "20ms"},
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    rx.wait_for(5, Duration::from_secs(10)).await;
    drop(node); // SIGKILL: no graceful anything.
    let delivered_before = rx.received().len();

    let node = start_node(dir.path(), db.as_ref());
    // Every occurrence is delivered at least once...
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut ids: Vec<String> = rx
            .received()
            .iter()
            .map(|r| r.header("webhook-id").to_string())
            .collect();
        ids.sort();
        ids.dedup();
        if ids.len() == N {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {N} delivered",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...and nothing stays pending or scheduled.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = status(&client, &node).await;
        let occ = &s["occurrences"];
        if occ["completed"] == N as i64 && occ["pending"] == 0 && occ["scheduled"] == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "stuck: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let total = rx.received().len();
    eprintln!(
        "delivered before kill: {delivered_before}; total deliveries: {total}; duplicates: {}",
        total - N
    );
}

#[tokio::test]
async fn migrate_only_migrates_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::for_test().await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_qhronosd"));
    if let Some(db) = &db {
        cmd.args(["--database-url", &db.url]);
    }
    let out = cmd
        .args(["--migrate", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    match &db {
        None => assert!(dir.path().join("qhronos.db").exists()),
        Some(db) => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM occurrences")
                .fetch_one(&mut c)
                .await
                .unwrap();
            assert_eq!(n, 0);
            let _ = c.close().await;
        }
    }
}

#[tokio::test]
async fn a_generated_master_token_is_shown_once_and_only_its_hash_is_stored() {
    if crate::helpers::sqlite_only("reads the embedded database file for the plain token") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_qhronosd"))
        .args(["--reset-master-token", "--data-dir"])
        .arg(dir.path())
        .env_remove("QHRONOS_MASTER_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("qhm_") && token.len() > 40, "{token}");
    let db = std::fs::read(dir.path().join("qhronos.db")).unwrap_or_default();
    let wal = std::fs::read(dir.path().join("qhronos.db-wal")).unwrap_or_default();
    let needle = token.as_bytes();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the plain token must not be stored"
        );
    }
    // The token works against a node started on that data dir without a configured token.
    let mut child = Command::new(env!("CARGO_BIN_EXE_qhronosd"))
        .args(["--port", "0", "--data-dir"])
        .arg(dir.path())
        .env_remove("QHRONOS_MASTER_TOKEN")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut base = String::new();
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(i) = line.find("listening on http://") {
            base = line[i + "listening on ".len()..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            break;
        }
    }
    // Keep draining, so the server never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let client = reqwest::Client::new();
    let ok = client
        .get(format!("{base}/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let bad = client
        .get(format!("{base}/events"))
        .bearer_auth("qhm_nope")
        .send()
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(ok.status(), 200);
    assert_eq!(bad.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instants_skipped_after_a_downtime_longer_than_the_catch_up_window_are_missed_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(vec![]).await;
    let client = reqwest::Client::new();
    // A short look-ahead: what lies beyond it is not materialised when the server stops (the
    // expander runs often enough to keep up while the server is up).
    let settings = [
        ("QHRONOS_ENGINE__LOOK_AHEAD", "1s"),
        ("QHRONOS_ENGINE__EXPANDER_INTERVAL", "200ms"),
    ];
    let db = TestDb::for_test().await;
    let (mut node, _l) = start_node_with(dir.path(), db.as_ref(), &settings);
    let start = in_ms(1_000);
    let r = client
        .post(format!("{}/events", node.base))
        .bearer_auth(TOKEN)
        .json(&json!({
            "name": "every second",
            "start_time": start,
            "schedule": "FREQ=SECONDLY;COUNT=12",
            "webhook": rx.url(),
            "misfire": {"policy": "fire_all", "catch_up_window": "1s"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    terminate(&mut node, Duration::from_secs(8));
    // Down for ~5 s: instances 1 s to 6 s from the create came due, most of them more than the
    // catch-up window before the restart.
    tokio::time::sleep(Duration::from_millis(5_000)).await;
    let (node, _l) = start_node_with(dir.path(), db.as_ref(), &settings);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let occ = loop {
        let occ = occurrences(&client, &node, &id).await;
        let settled = occ.len() == 12
            && occ
                .iter()
                .all(|o| o["status"] == "completed" || o["status"] == "missed");
        if settled {
            break occ;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not every instant is accounted for: {occ:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let by_expander: Vec<&serde_json::Value> = occ
        .iter()
        .filter(|o| {
            o["status"] == "missed"
                && o["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("older than the catch-up window (1s)"))
        })
        .collect();
    assert!(
        !by_expander.is_empty(),
        "the expander skipped instants without recording them: {occ:?}"
    );
    // They are listed with the other missed occurrences.
    let v: serde_json::Value = client
        .get(format!("{}/occurrences?status=missed&limit=100", node.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = v["data"].as_array().map_or(0, |a| a.len());
    assert!(listed >= by_expander.len(), "{v}");
}

/// A `kill -9` while causes are being delivered: after the restart every cause has exactly one
/// follow-up (written with its outcome, or not at all and then with the re-delivery's).
#[tokio::test]
async fn kill_9_during_causes_leaves_exactly_one_follow_up_per_cause() {
    let dir = tempfile::tempdir().unwrap();
    let rx_a = Receiver::start_with_delay(vec![], Duration::from_millis(150)).await;
    let rx_b = Receiver::start(vec![]).await;
    let client = reqwest::Client::new();
    let db = TestDb::for_test().await;
    let node = start_node(dir.path(), db.as_ref());
    let post = |node: &Node, path: &str, body: serde_json::Value| {
        client
            .post(format!("{}{path}", node.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let r = post(
        &node,
        "/events",
        json!({"name": "b", "start_time": in_ms(86_400_000), "webhook": rx_b.url()}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let b: serde_json::Value = r.json().await.unwrap();
    let b = b["id"].as_str().unwrap().to_string();
    let r = post(&node, "/workflows", json!({"name": "w", "when": {"tags": ["wf-kill"], "on": ["completed"]}, "then": {"trigger": b}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    const N: usize = 30;
    for i in 0..N {
        let r = post(
            &node,
            "/events",
            json!({
                "name": format!("a{i}"), "tags": ["wf-kill"],
                "start_time": in_ms(300 + (i as i64 % 10) * 60),
                "webhook": rx_a.url(), "retry": {"initial_delay": "20ms"},
            }),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
    }
    rx_a.wait_for(5, Duration::from_secs(10)).await;
    drop(node); // SIGKILL
    let node = start_node(dir.path(), db.as_ref());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let follow_ups = loop {
        let occs = occurrences(&client, &node, &b).await;
        let caused: Vec<&serde_json::Value> =
            occs.iter().filter(|o| o["caused_by"].is_object()).collect();
        let done = caused.iter().filter(|o| o["status"] == "completed").count();
        if done == N {
            break caused
                .iter()
                .map(|o| {
                    o["caused_by"]["occurrence_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect::<Vec<_>>();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{done} of {N} follow-ups delivered ({} written)",
            caused.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut causes = follow_ups.clone();
    causes.sort();
    causes.dedup();
    assert_eq!(follow_ups.len(), N, "one follow-up per cause, no more");
    assert_eq!(causes.len(), N);
}
