//! The test harness: the real application on port 0 with its own temporary database, a real
//! HTTP receiver on 127.0.0.1, and typed helpers.
//!
//! The backend: `TEST_STORE=sqlite|postgres`, else the test target's `DEFAULT_STORE` (the `api`
//! target runs on SQLite, `api_postgres` on PostgreSQL). On PostgreSQL each test gets a fresh
//! database on the server at `POSTGRES_TEST_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped when the test ends. When that server
//! cannot be reached and `POSTGRES_TEST_URL` is not set, a PostgreSQL test says so and runs on
//! SQLite instead; with `POSTGRES_TEST_URL` set (CI sets it), it fails.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::any;
use axum::Router;
use qhronos::config::Config;
use qhronos::domain::duration::Dur;
use qhronos::startup::Application;
use serde_json::{json, Value};

pub const TOKEN: &str = "test-master-token-0123456789";
/// The JWT signing key of test servers, so tests can forge expired or badly signed tokens.
pub const JWT_KEY: &str = "test-jwt-signing-key-0123456789-abcdefghij";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub _dir: tempfile::TempDir,
    /// The PostgreSQL database of this test (dropped with it); `None` on SQLite.
    pub db: Option<TestDb>,
    pub retention: qhronos::engine::retention::Retention,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A configuration for tests: a temp data dir, a fixed master token, a quick engine.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config {
        port: 0,
        data_dir: dir.to_path_buf(),
        master_token: Some(TOKEN.to_string()),
        ..Default::default()
    };
    c.engine.poll_interval = Dur::from_millis(50);
    // The receivers of these tests listen on loopback.
    c.delivery.allowed_networks = vec!["127.0.0.0/8".parse().expect("cidr")];
    // Tests poll quickly; the rate-limit test turns it back on.
    c.rate_limit.enabled = false;
    c.auth.jwt_secret = Some(JWT_KEY.to_string());
    c.engine.expander_interval = Dur::from_millis(200);
    c
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(dir.path());
    let db = TestDb::for_test().await;
    if let Some(db) = &db {
        config.database_url = Some(db.url.clone());
        // Tests run in parallel against one server with max_connections = 100.
        config.database.pool_size = 4;
    }
    tweak(&mut config);
    let app = Application::build(config).await.expect("app builds");
    let addr = app.addr();
    let retention = app.retention();
    let task = tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    TestApp {
        addr,
        client: reqwest::Client::new(),
        _dir: dir,
        db,
        retention,
        task,
    }
}

/// The store the tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn backend() -> Backend {
    let name = std::env::var("TEST_STORE").unwrap_or_else(|_| crate::DEFAULT_STORE.to_string());
    match name.as_str() {
        "postgres" => Backend::Postgres,
        "sqlite" => Backend::Sqlite,
        other => panic!("TEST_STORE={other}: use sqlite or postgres"),
    }
}

/// For tests of what only the embedded store has (its file, backups, restore): true, after
/// saying why, when the suite runs on PostgreSQL.
pub fn sqlite_only(why: &str) -> bool {
    if backend() == Backend::Postgres {
        eprintln!("skipped on PostgreSQL: {why}");
        return true;
    }
    false
}

/// A fresh PostgreSQL database, dropped (best effort) with this value.
pub struct TestDb {
    pub url: String,
    admin: String,
    name: String,
}

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

impl TestDb {
    /// A database for this test when the suite runs on PostgreSQL; `None` on SQLite, and when
    /// PostgreSQL is unreachable and `POSTGRES_TEST_URL` is unset (the test then runs on SQLite,
    /// after saying so).
    pub async fn for_test() -> Option<TestDb> {
        if backend() != Backend::Postgres {
            return None;
        }
        let set = std::env::var("POSTGRES_TEST_URL").ok();
        let admin = set
            .clone()
            .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_string());
        match TestDb::create(&admin).await {
            Ok(db) => Some(db),
            Err(e) if set.is_none() => {
                eprintln!(
                    "PostgreSQL at {admin} is unreachable ({e}); POSTGRES_TEST_URL is unset, so \
                     this test runs on SQLite instead"
                );
                None
            }
            Err(e) => panic!("PostgreSQL at {admin} (POSTGRES_TEST_URL): {e}"),
        }
    }

    async fn create(admin: &str) -> Result<TestDb, sqlx::Error> {
        use sqlx::Connection;
        let name = format!("qhronos_test_{}", uuid::Uuid::now_v7().simple());
        let mut c =
            tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(admin))
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??;
        // CREATE DATABASE fails while another session uses the template; that passes quickly.
        let mut tries = 0;
        loop {
            match sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut c)
                .await
            {
                Ok(_) => break,
                Err(e) if tries < 20 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
        let _ = c.close().await;
        let mut url = url::Url::parse(admin).map_err(|e| sqlx::Error::Configuration(e.into()))?;
        url.set_path(&name);
        Ok(TestDb {
            url: url.to_string(),
            admin: admin.to_string(),
            name,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a thread with its own.
        let t = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                    let _ = c.close().await;
                }
            });
        });
        let _ = t.join();
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn req(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.req_as(Some(TOKEN), method, path, body).await
    }

    /// A request with another bearer token (`None`: no Authorization header).
    pub async fn req_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut r = self.client.request(m, self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.req("POST", path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.req("GET", path, None).await
    }

    /// Issues a token through the API and returns it.
    pub async fn token(&self, access: &str, scope: &[&str]) -> String {
        let (s, v) = self
            .post("/tokens", json!({"sub": format!("{access}-user"), "access": access, "scope": scope, "expires_at": in_ms(3_600_000)}))
            .await;
        assert_eq!(s, 201, "{v}");
        v["token"].as_str().expect("token").to_string()
    }

    /// Creates an event and returns its id.
    pub async fn create(&self, body: Value) -> String {
        let (status, v) = self.post("/events", body).await;
        assert_eq!(status, 201, "create failed: {v}");
        v["id"].as_str().expect("id").to_string()
    }

    /// Polls until `f` accepts the occurrence list of the event, or panics after `within`.
    pub async fn wait_occurrences(
        &self,
        event_id: &str,
        within: Duration,
        f: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let (_, v) = self.get(&format!("/events/{event_id}/occurrences")).await;
            let list = v["data"].as_array().cloned().unwrap_or_default();
            if f(&list) {
                return list;
            }
            assert!(
                Instant::now() < deadline,
                "timed out; occurrences: {list:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An RFC 3339 time `ms` milliseconds from now.
pub fn in_ms(ms: i64) -> String {
    let t = jiff::Timestamp::now().as_millisecond() + ms;
    jiff::Timestamp::from_millisecond(t)
        .expect("time")
        .to_string()
}

/// A request that reached the receiver.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: jiff::Timestamp,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
    pub fn header(&self, k: &str) -> &str {
        self.headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

#[derive(Clone, Default)]
struct ReceiverState {
    got: Arc<Mutex<Vec<Received>>>,
    /// Status codes to answer with, in order; the last one repeats. Empty: 200.
    script: Arc<Vec<u16>>,
    delay: Duration,
    /// Headers sent with every answer.
    headers: Arc<Vec<(&'static str, &'static str)>>,
}

/// A real HTTP server on 127.0.0.1 that records every request.
pub struct Receiver {
    pub addr: SocketAddr,
    state: ReceiverState,
}

async fn record(
    State(st): State<ReceiverState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, &'static str) {
    let n = {
        let mut got = st.got.lock().expect("lock");
        got.push(Received {
            headers,
            body,
            at: jiff::Timestamp::now(),
        });
        got.len()
    };
    if !st.delay.is_zero() {
        tokio::time::sleep(st.delay).await;
    }
    let code = st
        .script
        .get(n - 1)
        .or(st.script.last())
        .copied()
        .unwrap_or(200);
    let mut out = HeaderMap::new();
    for (k, v) in st.headers.iter() {
        out.insert(*k, v.parse().expect("header value"));
    }
    (
        StatusCode::from_u16(code).expect("status"),
        out,
        "receiver says hi",
    )
}

impl Receiver {
    pub async fn start(script: Vec<u16>) -> Receiver {
        Self::start_with_delay(script, Duration::ZERO).await
    }

    pub async fn start_with_delay(script: Vec<u16>, delay: Duration) -> Receiver {
        Self::serve(script, delay, vec![]).await
    }

    /// Answers with these headers on every response.
    pub async fn start_with_headers(
        script: Vec<u16>,
        headers: Vec<(&'static str, &'static str)>,
    ) -> Receiver {
        Self::serve(script, Duration::ZERO, headers).await
    }

    async fn serve(
        script: Vec<u16>,
        delay: Duration,
        headers: Vec<(&'static str, &'static str)>,
    ) -> Receiver {
        let state = ReceiverState {
            got: Default::default(),
            script: Arc::new(script),
            delay,
            headers: Arc::new(headers),
        };
        let app = Router::new()
            .route("/{*path}", any(record))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.got.lock().expect("lock").clone()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "receiver got {} of {n} requests",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A webhook event body aimed at `url`, due in `ms` milliseconds, with quick retries.
pub fn webhook_event(url: &str, ms: i64) -> Value {
    json!({
        "name": "test event",
        "start_time": in_ms(ms),
        "action": {"type": "webhook", "params": {"url": url}},
        "retry": {"initial_delay": "20ms", "max_delay": "200ms"},
    })
}
