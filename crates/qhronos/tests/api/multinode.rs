//! Several `qhronosd` processes on one PostgreSQL database, a real receiver counting deliveries
//! by occurrence id (the `webhook-id` header). PostgreSQL only: the embedded store is one
//! process by construction.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{Receiver, TestDb, TOKEN};
use crate::private_pg::PrivatePg;

/// Lease of the nodes in these tests (the default): a dead node's work must come back within it.
const LEASE_MS: u64 = 4_000;

pub struct Node {
    child: Child,
    pub base: String,
    /// The dispatcher's lease owner (`node-…`), as logged at start.
    pub owner: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// `kill -9`.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The multi-node tests each run several debug-build nodes; on a small machine two of them at
/// once starve each other of CPU. They take turns (each test has its own runtime; tokio's
/// mutex works across them).
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts `qhronosd` on `url` (port 0) and waits until it listens; stderr is drained for good.
pub fn start_node(url: &str, extra: &[(&str, &str)]) -> Node {
    let dir = std::env::temp_dir();
    let lease = extra
        .iter()
        .find(|(k, _)| *k == "QHRONOS_ENGINE__LEASE")
        .map_or(format!("{LEASE_MS}ms"), |(_, v)| v.to_string());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_qhronosd"));
    cmd.args(["--port", "0", "--log-format", "json", "--database-url", url])
        .arg("--data-dir")
        .arg(&dir)
        .env("QHRONOS_MASTER_TOKEN", TOKEN)
        .env("QHRONOS_ENGINE__POLL_INTERVAL", "50ms")
        .env("QHRONOS_ENGINE__LEASE", &lease)
        .env("QHRONOS_RETRY__TIMEOUT", "1s")
        .env("QHRONOS_WEBSOCKET__ACK_TIMEOUT", "1s")
        .env("QHRONOS_DATABASE__POOL_SIZE", "6")
        .env("QHRONOS_RATE_LIMIT__ENABLED", "false")
        .env("QHRONOS_DELIVERY__ALLOWED_NETWORKS", "[127.0.0.0/8]")
        .env("QHRONOS_LOG_LEVEL", "info")
        .env_remove("RUST_LOG");
    for (k, v) in extra.iter().filter(|(k, _)| *k != "QHRONOS_ENGINE__LEASE") {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qhronosd starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // The address and the dispatcher's owner, in whichever order they are logged.
        let mut owner = None;
        let mut url = None;
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if sent {
                continue;
            }
            if let Some(i) = line.find("\"owner\":\"") {
                let rest = &line[i + 9..];
                owner = rest.split('"').next().map(str::to_string);
            }
            if let Some(i) = line.find("listening on http://") {
                let rest = &line[i + "listening on ".len()..];
                url = Some(
                    rest.chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect::<String>(),
                );
            }
            if let (Some(u), Some(o)) = (&url, &owner) {
                let _ = tx.send((u.clone(), o.clone()));
                sent = true;
            }
        }
    });
    let Ok((base, owner)) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("qhronosd did not print its address and dispatcher owner");
    };
    assert!(owner.starts_with("node-"), "no dispatcher owner logged");
    Node { child, base, owner }
}

/// One-time events with `per_event` instants each (the start and its rdates), spread evenly over
/// `[from_ms, from_ms + spread_ms)` from now; created round-robin through the nodes.
async fn create_burst(
    client: &reqwest::Client,
    nodes: &[Node],
    url: &str,
    events: usize,
    per_event: usize,
    from_ms: i64,
    spread_ms: i64,
) {
    let now = jiff::Timestamp::now().as_millisecond();
    let total = (events * per_event) as i64;
    for e in 0..events {
        let times: Vec<i64> = (0..per_event)
            .map(|k| now + from_ms + ((k * events + e) as i64 * spread_ms) / total)
            .collect();
        let ts = |ms: i64| jiff::Timestamp::from_millisecond(ms).unwrap().to_string();
        let body = json!({
            "name": format!("burst {e}"),
            "start_time": ts(times[0]),
            "rdates": times[1..].iter().map(|t| ts(*t)).collect::<Vec<_>>(),
            "webhook": url,
            "retry": {"initial_delay": "20ms", "max_delay": "200ms"},
        });
        let node = &nodes[e % nodes.len()];
        let r = client
            .post(format!("{}/events", node.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());
    }
}

/// Deliveries per occurrence id.
fn tally(rx: &Receiver) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in rx.received() {
        *m.entry(r.header("webhook-id").to_string()).or_insert(0) += 1;
    }
    m
}

async fn wait_distinct(rx: &Receiver, n: usize, within: Duration) -> HashMap<String, usize> {
    let deadline = Instant::now() + within;
    loop {
        let t = tally(rx);
        if t.len() >= n {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} occurrences delivered",
            t.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `(id, scheduled_at)` of the occurrences leased to `owner` and not finished.
async fn held_by(url: &str, owner: &str) -> Vec<(String, i64)> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT id, scheduled_at FROM occurrences WHERE status = 'scheduled' AND lease_owner = $1",
    )
    .bind(owner)
    .fetch_all(&mut c)
    .await
    .unwrap();
    let _ = c.close().await;
    rows
}

/// When each occurrence was last delivered (ms), by id.
fn last_delivery(rx: &Receiver) -> HashMap<String, i64> {
    let mut m = HashMap::new();
    for r in rx.received() {
        let at = r.at.as_millisecond();
        let e = m.entry(r.header("webhook-id").to_string()).or_insert(at);
        *e = (*e).max(at);
    }
    m
}

async fn db_count(url: &str, sql: &str, owner: Option<&str>) -> i64 {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()));
    if let Some(o) = owner {
        q = q.bind(o.to_string());
    }
    let n: i64 = q.fetch_one(&mut c).await.unwrap();
    let _ = c.close().await;
    n
}

async fn status(client: &reqwest::Client, node: &Node) -> Value {
    client
        .get(format!("{}/status", node.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The test's database, or `None` (after saying why) when the suite runs without PostgreSQL.
async fn database() -> Option<TestDb> {
    let db = TestDb::for_test().await;
    if db.is_none() {
        eprintln!("skipped: several nodes need the PostgreSQL store");
    }
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_deliver_20000_occurrences_exactly_once() {
    let Some(db) = database().await else { return };
    let _turn = TURN.lock().await;
    let rx = Receiver::start(vec![]).await;
    let client = reqwest::Client::new();
    // Exactly once needs every attempt to finish, and its outcome to be written, inside the
    // lease that covers it: a debug build on a busy 2-core machine needs more than the 6 s of
    // the kill test (the default is 2 min).
    let nodes: Vec<Node> = (0..3)
        .map(|_| start_node(&db.url, &[("QHRONOS_ENGINE__LEASE", "30s")]))
        .collect();
    const EVENTS: usize = 20;
    const PER_EVENT: usize = 1_000;
    const N: usize = EVENTS * PER_EVENT;
    create_burst(&client, &nodes, &rx.url(), EVENTS, PER_EVENT, 3_000, 3_000).await;
    let t = wait_distinct(&rx, N, Duration::from_secs(90)).await;
    // Settle: anything delivered twice would arrive within moments.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t2 = tally(&rx);
    let twice: Vec<_> = t2.iter().filter(|(_, n)| **n > 1).collect();
    // The attempt numbers of the repeated ones tell a retry (the first attempt timed out at the
    // node while the receiver had it) from a claim taken twice (both attempt 1).
    let attempts: Vec<(String, i64)> = rx
        .received()
        .iter()
        .filter(|r| {
            twice
                .iter()
                .any(|(id, _)| id.as_str() == r.header("webhook-id"))
        })
        .take(6)
        .map(|r| {
            (
                r.header("webhook-id").to_string(),
                r.json()["attempt"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert!(
        twice.is_empty(),
        "{} occurrences delivered more than once, e.g. {:?} (attempts: {attempts:?})",
        twice.len(),
        twice.iter().take(3).collect::<Vec<_>>()
    );
    assert_eq!(t.len(), N);
    assert_eq!(rx.received().len(), N);
    // Every node took a share of the work, and the store agrees.
    let shares = db_count(
        &db.url,
        "SELECT count(DISTINCT o.id) FROM occurrences o WHERE o.status = 'completed'",
        None,
    )
    .await;
    assert_eq!(shares, N as i64);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = status(&client, &nodes[0]).await;
        if s["occurrences"]["completed"] == N as i64 && s["occurrences"]["scheduled"] == 0 {
            assert_eq!(s["store"], "postgres");
            break;
        }
        assert!(Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_node_loses_nothing_and_what_it_held_is_delivered_within_5_s_of_due() {
    let Some(db) = database().await else { return };
    let _turn = TURN.lock().await;
    // A slow receiver, so that the kill lands while deliveries are in flight.
    let rx = Receiver::start_with_delay(vec![], Duration::from_millis(30)).await;
    let client = reqwest::Client::new();
    let mut nodes: Vec<Node> = (0..3).map(|_| start_node(&db.url, &[])).collect();
    const EVENTS: usize = 6;
    const PER_EVENT: usize = 1_000;
    const N: usize = EVENTS * PER_EVENT;
    create_burst(&client, &nodes, &rx.url(), EVENTS, PER_EVENT, 2_000, 3_000).await;
    rx.wait_for(N / 4, Duration::from_secs(60)).await;
    let dead = nodes[0].owner.clone();
    nodes[0].kill();
    let killed_at = jiff::Timestamp::now().as_millisecond();
    // What the dead node held (claimed, outcome not written): the most it can have delivered
    // without the store knowing, so the most that can be delivered twice.
    let held = held_by(&db.url, &dead).await;
    let in_flight = held.len() as i64;
    // Its leases are taken over by the others within one lease period (plus a claim poll).
    loop {
        let left = held_by(&db.url, &dead).await.len();
        let waited = jiff::Timestamp::now().as_millisecond() - killed_at;
        if left == 0 {
            eprintln!("the dead node's leases were taken over {waited} ms after the kill");
            break;
        }
        assert!(
            waited <= LEASE_MS as i64 + 1_500,
            "{left} occurrences still leased to the dead node {waited} ms after the kill"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t = wait_distinct(&rx, N, Duration::from_secs(60)).await;
    assert_eq!(t.len(), N);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total = rx.received().len();
    let duplicates = total - N;
    // Every occurrence the dead node held was delivered (again, by another node, where the dead
    // one had sent it) at most 5 s after its due time.
    let last = last_delivery(&rx);
    let late: Vec<i64> = held
        .iter()
        .map(|(id, due)| last.get(id).copied().unwrap_or(i64::MAX) - due)
        .collect();
    let worst = late.iter().copied().max().unwrap_or(0);
    let mut sorted = late.clone();
    sorted.sort();
    let pct = |p: usize| {
        sorted
            .get(sorted.len().saturating_sub(1) * p / 100)
            .copied()
            .unwrap_or(0)
    };
    let before_kill = held.iter().filter(|(_, due)| *due < killed_at).count();
    eprintln!(
        "lateness of what the killed node held: p50 {} ms, p90 {} ms, p99 {} ms; {before_kill} were due before the kill",
        pct(50),
        pct(90),
        pct(99)
    );
    eprintln!(
        "held by the killed node: {in_flight}; duplicates: {duplicates}; worst lateness of what \
         it held: {worst} ms"
    );
    assert!(
        duplicates as i64 <= in_flight,
        "{duplicates} duplicates, but the killed node held only {in_flight}"
    );
    // The goal (5 s after due) is measured by `qhronos-bench failover` on a release build; a
    // debug build on a busy machine may run behind before the kill, so here the bound is taken
    // from the later of its due time and the kill: one lease for the takeover, plus slack.
    let worst_after_kill = held
        .iter()
        .map(|(id, due)| last.get(id).copied().unwrap_or(i64::MAX) - (*due).max(killed_at))
        .max()
        .unwrap_or(0);
    eprintln!("worst delivery after the later of due time and kill: {worst_after_kill} ms");
    assert!(
        worst_after_kill <= LEASE_MS as i64 + 3_000,
        "an occurrence the killed node held was delivered {worst_after_kill} ms after the later \
         of its due time and the kill"
    );
    assert_eq!(
        db_count(
            &db.url,
            "SELECT count(*) FROM occurrences WHERE lease_owner = $1",
            Some(&dead)
        )
        .await,
        0
    );
}

async fn health(client: &reqwest::Client, node: &Node) -> u16 {
    match client
        .get(format!("{}/health", node.base))
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_run_loses_nothing_and_repeats_only_what_was_in_flight() {
    if crate::helpers::backend() != crate::helpers::Backend::Postgres {
        eprintln!("skipped: restarts a PostgreSQL server");
        return;
    }
    let pg = match PrivatePg::start_new() {
        Some(pg) => pg,
        None if std::env::var("POSTGRES_TEST_URL").is_err() => {
            eprintln!("skipped: no PostgreSQL binaries under /usr/lib/postgresql");
            return;
        }
        None => {
            panic!("cannot start a private PostgreSQL (initdb/pg_ctl under /usr/lib/postgresql)")
        }
    };
    let rx = Receiver::start(vec![]).await;
    let client = reqwest::Client::new();
    let extra = [("QHRONOS_DATABASE__CONNECT_TIMEOUT", "1s")];
    let nodes: Vec<Node> = (0..2).map(|_| start_node(&pg.url(), &extra)).collect();
    const EVENTS: usize = 4;
    const PER_EVENT: usize = 1_000;
    const N: usize = EVENTS * PER_EVENT;
    create_burst(&client, &nodes, &rx.url(), EVENTS, PER_EVENT, 1_000, 4_000).await;
    rx.wait_for(N / 5, Duration::from_secs(60)).await;
    // Claimed and not recorded when the database goes away...
    let scheduled: std::collections::HashSet<String> = {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&pg.url()).await.unwrap();
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM occurrences WHERE status = 'scheduled'")
                .fetch_all(&mut c)
                .await
                .unwrap();
        let _ = c.close().await;
        ids.into_iter().collect()
    };
    let stopping = Instant::now();
    pg.stop();
    // ...and already delivered: the deliveries in flight at the restart, whose outcomes the
    // nodes hold in memory. Only these may be delivered twice.
    let in_flight = tally(&rx)
        .keys()
        .filter(|id| scheduled.contains(*id))
        .count();
    // While the database is away, /health says so.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if health(&client, &nodes[0]).await == 503 && health(&client, &nodes[1]).await == 503 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/health stayed 200 without a database"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    pg.start();
    let outage = stopping.elapsed();
    // The nodes reconnect by themselves and deliver everything.
    let t = wait_distinct(&rx, N, Duration::from_secs(60)).await;
    assert_eq!(t.len(), N);
    let deadline = Instant::now() + Duration::from_secs(15);
    for node in &nodes {
        loop {
            if health(&client, node).await == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "/health stayed unhealthy");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = status(&client, &nodes[1]).await;
        if s["occurrences"]["completed"] == N as i64 {
            break;
        }
        assert!(Instant::now() < deadline, "not all recorded: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let duplicates = rx.received().len() - N;
    eprintln!(
        "database away {} ms; deliveries: {}; in flight at the restart: {in_flight}; \
         duplicates: {duplicates}",
        outage.as_millis(),
        rx.received().len(),
    );
    assert!(
        duplicates <= in_flight,
        "{duplicates} duplicates, but only {in_flight} deliveries were in flight at the restart"
    );
}

/// A request to one node as the master.
async fn call(
    client: &reqwest::Client,
    node: &Node,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = client
        .request(method, format!("{}{path}", node.base))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

/// A one-time event with an instant every 100 ms from `from_ms` for `count` instants.
fn ticking_event(url: &str, from_ms: i64, count: i64) -> Value {
    let now = jiff::Timestamp::now().as_millisecond();
    let ts = |ms: i64| jiff::Timestamp::from_millisecond(ms).unwrap().to_string();
    json!({
        "name": "ticking",
        "start_time": ts(now + from_ms),
        "rdates": (1..count).map(|k| ts(now + from_ms + k * 100)).collect::<Vec<_>>(),
        "webhook": url,
    })
}

fn event_id_of(r: &crate::helpers::Received) -> String {
    r.json()["event_id"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The claim horizon of the nodes: an occurrence can be held in a node's timer this long before
/// it fires, which is what a stale node would fire after a change elsewhere.
const HORIZON_MS: i64 = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_or_delete_through_one_node_holds_on_the_other_within_a_second() {
    let Some(db) = database().await else { return };
    let _turn = TURN.lock().await;
    let rx = Receiver::start(vec![]).await;
    let client = reqwest::Client::new();
    let nodes: Vec<Node> = (0..2).map(|_| start_node(&db.url, &[])).collect();
    let (s, p) = call(
        &client,
        &nodes[0],
        reqwest::Method::POST,
        "/events",
        Some(ticking_event(&rx.url(), 500, 80)),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    let (s, d) = call(
        &client,
        &nodes[0],
        reqwest::Method::POST,
        "/events",
        Some(ticking_event(&rx.url(), 500, 80)),
    )
    .await;
    assert_eq!(s, 201, "{d}");
    let (p, d) = (
        p["id"].as_str().unwrap().to_string(),
        d["id"].as_str().unwrap().to_string(),
    );
    // Both nodes are firing both events.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = rx.received();
        if got.iter().filter(|r| event_id_of(r) == p).count() >= 5
            && got.iter().filter(|r| event_id_of(r) == d).count() >= 5
        {
            break;
        }
        assert!(Instant::now() < deadline, "the events did not start firing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (s, _) = call(
        &client,
        &nodes[0],
        reqwest::Method::POST,
        &format!("/events/{p}/pause"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(
        &client,
        &nodes[0],
        reqwest::Method::DELETE,
        &format!("/events/{d}"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let changed = jiff::Timestamp::now();
    // Whatever either node held could fire up to the claim horizon later, were it not dropped.
    tokio::time::sleep(Duration::from_millis(HORIZON_MS as u64 + 300)).await;
    let late: Vec<_> = rx
        .received()
        .into_iter()
        .filter(|r| {
            let e = event_id_of(r);
            (e == p || e == d) && r.at.duration_since(changed).as_millis() > 1_000
        })
        .collect();
    assert!(
        late.is_empty(),
        "{} deliveries more than 1 s after the pause/delete",
        late.len()
    );
    // Nothing stays leased: what was dropped went back, then was cancelled.
    assert_eq!(
        db_count(
            &db.url,
            "SELECT count(*) FROM occurrences WHERE status = 'scheduled'",
            None
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_or_secret_change_through_one_node_holds_on_the_other_within_a_second() {
    let Some(db) = database().await else { return };
    let _turn = TURN.lock().await;
    let rx = Receiver::start(vec![]).await;
    let client = reqwest::Client::new();
    let nodes: Vec<Node> = (0..2).map(|_| start_node(&db.url, &[])).collect();

    // Revocation: a token issued through A works on B until A revokes it.
    let (s, v) = call(&client, &nodes[0], reqwest::Method::POST, "/tokens", Some(json!({"sub": "x", "access": "read", "scope": [], "expires_at": crate::helpers::in_ms(600_000)}))).await;
    assert_eq!(s, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    let get_b = || {
        client
            .get(format!("{}/events", nodes[1].base))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(get_b().await.unwrap().status(), 200);
    let (_, list) = call(&client, &nodes[0], reqwest::Method::GET, "/tokens", None).await;
    let jti = list["data"][0]["jti"].as_str().unwrap().to_string();
    let (s, _) = call(
        &client,
        &nodes[0],
        reqwest::Method::DELETE,
        &format!("/tokens/{jti}"),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let revoked = Instant::now();
    loop {
        if get_b().await.unwrap().status() == 401 {
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "node B still accepts a revoked token"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Secret change: deliveries from either node carry the new signature within a second.
    let old = "first-secret-0123456789abcdef";
    let new = "second-secret-0123456789abcdef";
    let mut body = ticking_event(&rx.url(), 500, 60);
    body["hmac_secret"] = json!(old);
    let (s, v) = call(
        &client,
        &nodes[0],
        reqwest::Method::POST,
        "/events",
        Some(body),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    rx.wait_for(5, Duration::from_secs(10)).await;
    let (s, v) = call(
        &client,
        &nodes[0],
        reqwest::Method::PUT,
        &format!("/events/{id}"),
        Some(json!({"hmac_secret": new})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let changed = jiff::Timestamp::now();
    tokio::time::sleep(Duration::from_millis(HORIZON_MS as u64 + 300)).await;
    let sign = |secret: &str, body: &[u8]| {
        use hmac::Mac;
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        m.update(body);
        hex::encode(m.finalize().into_bytes())
    };
    let after: Vec<_> = rx
        .received()
        .into_iter()
        .filter(|r| event_id_of(r) == id && r.at.duration_since(changed).as_millis() > 1_000)
        .collect();
    assert!(
        after.len() >= 5,
        "too few deliveries after the change to judge"
    );
    for r in &after {
        assert_eq!(
            r.header("x-qhronos-signature"),
            sign(new, &r.body),
            "a delivery more than 1 s after the change is signed with the old secret"
        );
    }
}

#[tokio::test]
async fn changes_published_by_one_node_reach_the_others_and_upkeep_has_one_holder() {
    let Some(db) = database().await else { return };
    let settings = qhronos::config::DatabaseConfig {
        pool_size: 2,
        ..Default::default()
    };
    let a = qhronos::store::connect(&db.url, &settings).await.unwrap();
    let b = qhronos::store::connect(&db.url, &settings).await.unwrap();
    let mut on_b = b.changes().expect("PostgreSQL has a change feed");
    // The LISTEN connection is set up in the background: publish until it is there.
    let msg = qhronos::store::Change::Message("occurrence fired: 42".into());
    let deadline = Instant::now() + Duration::from_secs(5);
    let got = loop {
        a.publish(&msg).await.unwrap();
        match tokio::time::timeout(Duration::from_millis(200), on_b.recv()).await {
            Ok(Ok(c)) => break c,
            _ => assert!(Instant::now() < deadline, "node B never heard node A"),
        }
    };
    assert_eq!(got, msg);
    // A revocation made through A is announced to B by the store itself.
    let now = jiff::Timestamp::now().as_millisecond();
    let t = qhronos::store::TokenRecord {
        jti: "jti-1".into(),
        sub: "s".into(),
        access: qhronos::auth::Access::parse("read").unwrap(),
        scope: vec![],
        expires_at: now + 60_000,
        created_at: now,
        revoked_at: None,
    };
    a.create_token(&t).await.unwrap();
    assert!(a.revoke_token("jti-1", now).await.unwrap());
    let c = tokio::time::timeout(Duration::from_secs(2), on_b.recv())
        .await
        .expect("the revocation was announced")
        .unwrap();
    assert_eq!(c, qhronos::store::Change::Tokens);

    // Upkeep: one holder at a time; a holder that stops renewing loses it when its lease ends.
    assert!(a
        .try_upkeep_lease("expander", "a", now + 300, now)
        .await
        .unwrap());
    assert!(!b
        .try_upkeep_lease("expander", "b", now + 300, now)
        .await
        .unwrap());
    assert!(a
        .try_upkeep_lease("expander", "a", now + 400, now + 100)
        .await
        .unwrap());
    assert!(!b
        .try_upkeep_lease("expander", "b", now + 500, now + 399)
        .await
        .unwrap());
    assert!(b
        .try_upkeep_lease("expander", "b", now + 900, now + 401)
        .await
        .unwrap());
    assert!(!a
        .try_upkeep_lease("expander", "a", now + 900, now + 402)
        .await
        .unwrap());
}

/// Two nodes deliver a stream of causes between them; each cause's follow-up (written in its
/// outcome's transaction, on whichever node recorded it) is delivered exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_fire_one_follow_up_per_cause() {
    let Some(db) = database().await else { return };
    let _turn = TURN.lock().await;
    let rx_a = Receiver::start(vec![]).await;
    let rx_b = Receiver::start(vec![]).await;
    let client = reqwest::Client::new();
    let nodes: Vec<Node> = (0..2)
        .map(|_| start_node(&db.url, &[("QHRONOS_ENGINE__LEASE", "30s")]))
        .collect();
    const CAUSES: i64 = 40;
    let mut b = json!({"name": "follow-up", "start_time": jiff::Timestamp::from_millisecond(jiff::Timestamp::now().as_millisecond() + 86_400_000).unwrap().to_string(),
        "action": {"type": "webhook", "params": {"url": rx_b.url(), "body": {"cause": "{{ cause.occurrence.id }}"}}}});
    let (s, v) = call(
        &client,
        &nodes[1],
        reqwest::Method::POST,
        "/events",
        Some(b.take()),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let b_id = v["id"].as_str().unwrap().to_string();
    // Created before the causes' event: every one of its occurrences is a cause.
    let (s, v) = call(
        &client,
        &nodes[0],
        reqwest::Method::POST,
        "/workflows",
        Some(json!({"name": "chain",
        "when": {"tags": ["wf-multinode"], "on": ["completed"]}, "then": {"trigger": b_id}})),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let mut a = ticking_event(&rx_a.url(), 1_500, CAUSES);
    a["tags"] = json!(["wf-multinode"]);
    let (s, v) = call(
        &client,
        &nodes[0],
        reqwest::Method::POST,
        "/events",
        Some(a),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    wait_distinct(&rx_a, CAUSES as usize, Duration::from_secs(60)).await;
    let t = wait_distinct(&rx_b, CAUSES as usize, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t2 = tally(&rx_b);
    assert_eq!(t2.len(), CAUSES as usize, "{t:?}");
    assert!(
        t2.values().all(|n| *n == 1),
        "a follow-up delivered twice: {t2:?}"
    );
    let causes: std::collections::HashSet<String> = rx_b
        .received()
        .iter()
        .map(|r| r.json()["cause"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(causes.len(), CAUSES as usize, "one follow-up per cause");
    let followups = db_count(
        &db.url,
        "SELECT count(*) FROM occurrences WHERE caused_by_workflow IS NOT NULL",
        None,
    )
    .await;
    assert_eq!(followups, CAUSES);
}
