//! The real `qhronos` binary against a real qhronosd, started in-process on port 0 with its own
//! temporary SQLite database.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use qhronos::config::Config;
use qhronos::startup::Application;
use serde_json::Value;

const TOKEN: &str = "cli-test-master-token-0123456789";

/// A running server: its own runtime (the tests themselves are synchronous, they run processes).
struct Server {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        Self::start_with(|_| {})
    }

    fn start_with(tweak: impl FnOnce(&mut Config)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            port: 0,
            data_dir: dir.path().to_path_buf(),
            master_token: Some(TOKEN.to_string()),
            ..Default::default()
        };
        config.delivery.allowed_networks = vec!["127.0.0.0/8".parse().expect("cidr")];
        config.rate_limit.enabled = false;
        tweak(&mut config);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let app = rt
            .block_on(Application::build(config))
            .expect("the server starts");
        let addr = app.addr();
        rt.spawn(async move {
            let _ = app.run_until_stopped().await;
        });
        Server {
            addr,
            _rt: rt,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `qhronos` pointed at this server with the master token.
    fn cli(&self) -> Command {
        let mut c = bare();
        c.env("QHRONOS_URL", self.url()).env("QHRONOS_TOKEN", TOKEN);
        c
    }
}

/// The binary without any QHRONOS_* variable from the test's environment.
fn bare() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_qhronos"));
    c.env_remove("QHRONOS_URL").env_remove("QHRONOS_TOKEN");
    c.stdin(Stdio::null());
    c
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

fn run(c: &mut Command, args: &[&str]) -> Out {
    let o = c.args(args).output().expect("qhronos runs");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Runs and expects exit 0.
fn ok(c: &mut Command, args: &[&str]) -> Out {
    let o = run(c, args);
    assert_eq!(
        o.code, 0,
        "qhronos {args:?} failed: {}\n{}",
        o.stderr, o.stdout
    );
    o
}

/// Within the server's look-ahead window (1 h), so the occurrence is planned at once.
fn in_half_an_hour() -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1800))
        .round(jiff::Unit::Second)
        .unwrap()
        .to_string()
}

/// An address where nothing listens (a port just released).
fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}")
}

#[test]
fn events_lifecycle() {
    let s = Server::start();
    let at = in_half_an_hour();

    // Create, human output.
    let o = ok(
        &mut s.cli(),
        &[
            "events",
            "create",
            "--name",
            "standup",
            "--at",
            &at,
            "--webhook",
            "http://127.0.0.1:9/hook",
            "--schedule",
            "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR",
            "--timezone",
            "Europe/Berlin",
            "--tag",
            "team",
            "--tag",
            "daily",
            "--metadata",
            r#"{"room": 4}"#,
            "--secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ],
    );
    assert!(o.stdout.starts_with("created event "), "{}", o.stdout);
    let human_id = o.stdout["created event ".len()..]
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_string();
    assert!(o.stdout.contains("FREQ=WEEKLY"), "{}", o.stdout);
    assert!(o.stdout.contains("hmac_secret_set:"), "{}", o.stdout);
    assert!(o.stdout.contains("team,daily"), "{}", o.stdout);

    // Create, --json: the server's answer.
    let o = ok(
        &mut s.cli(),
        &[
            "--json",
            "events",
            "create",
            "--name",
            "once",
            "--at",
            &at,
            "--webhook",
            "http://127.0.0.1:9/once",
        ],
    );
    let ev = o.json();
    let id = ev["id"].as_str().expect("id").to_string();
    assert_eq!(ev["name"], "once");
    // No --secret: the server generated one; `events secret` reads it again.
    let generated = ev["hmac_secret"]
        .as_str()
        .expect("generated secret")
        .to_string();
    assert!(generated.starts_with("whsec_"), "{generated}");
    let o = ok(&mut s.cli(), &["events", "secret", &id]);
    assert_eq!(o.stdout.trim(), generated);
    let o = ok(
        &mut s.cli(),
        &[
            "events",
            "create",
            "--name",
            "n",
            "--at",
            &at,
            "--webhook",
            "http://127.0.0.1:9/n",
        ],
    );
    assert!(o.stdout.contains("hmac_secret: whsec_"), "{}", o.stdout);
    assert!(o.stdout.contains("qhronos events secret"), "{}", o.stdout);
    let extra = o.stdout["created event ".len()..]
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_string();
    ok(&mut s.cli(), &["events", "delete", &extra]);
    assert_eq!(ev["action"]["params"]["url"], "http://127.0.0.1:9/once");
    assert_eq!(ev["status"], "active");

    // Create from a file on stdin.
    let mut child = s
        .cli()
        .args(["--json", "events", "create", "--file", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    write!(
        child.stdin.take().unwrap(),
        r#"{{"name": "from-stdin", "start_time": "{at}", "webhook": "http://127.0.0.1:9/s", "tags": ["stdin"]}}"#
    )
    .unwrap();
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["tags"], serde_json::json!(["stdin"]));

    // Create from a file on disk.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("event.json");
    std::fs::write(
        &file,
        format!(
            r#"{{"name": "from-file", "start_time": "{at}", "action": {{"type": "webhook", "params": {{"url": "http://127.0.0.1:9/f"}}}}}}"#
        ),
    )
    .unwrap();
    let o = ok(
        &mut s.cli(),
        &["events", "create", "-f", file.to_str().unwrap()],
    );
    assert!(o.stdout.contains("from-file"), "{}", o.stdout);

    // List: a table with the header and every event.
    let o = ok(&mut s.cli(), &["events", "list"]);
    let header = o.stdout.lines().next().unwrap();
    for col in ["ID", "NAME", "STATUS", "SCHEDULE", "START", "TAGS"] {
        assert!(header.contains(col), "{header}");
    }
    assert_eq!(o.stdout.lines().count(), 5, "{}", o.stdout);
    assert!(o.stdout.contains(&human_id) && o.stdout.contains(&id));
    // Columns are aligned: every row has its NAME where the header has it.
    let name_col = header.find("NAME").unwrap();
    for line in o.stdout.lines().skip(1) {
        assert_eq!(line.as_bytes()[name_col - 1], b' ', "{line}");
        assert_ne!(line.as_bytes()[name_col], b' ', "{line}");
    }

    // List by tag, --json.
    let v = ok(&mut s.cli(), &["--json", "events", "list", "--tag", "team"]).json();
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], human_id.as_str());

    // --all follows next_cursor: pages of one.
    let o = ok(&mut s.cli(), &["events", "list", "--limit", "1"]);
    assert!(o.stdout.contains("more results"), "{}", o.stdout);
    let v = ok(
        &mut s.cli(),
        &["--json", "events", "list", "--limit", "1", "--all"],
    )
    .json();
    assert_eq!(v["data"].as_array().unwrap().len(), 4);
    assert!(v["next_cursor"].is_null());

    // Get.
    let o = ok(&mut s.cli(), &["events", "get", &human_id]);
    assert!(o.stdout.contains("Europe/Berlin"), "{}", o.stdout);
    let v = ok(&mut s.cli(), &["--json", "events", "get", &id]).json();
    assert_eq!(v["id"], id.as_str());

    // Pause and resume.
    let o = ok(&mut s.cli(), &["events", "pause", &human_id]);
    assert!(o.stdout.contains("paused"), "{}", o.stdout);
    let v = ok(&mut s.cli(), &["--json", "events", "get", &human_id]).json();
    assert_eq!(v["status"], "paused");
    let v = ok(
        &mut s.cli(),
        &["--json", "events", "list", "--status", "paused"],
    )
    .json();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let o = ok(&mut s.cli(), &["events", "resume", &human_id]);
    assert!(o.stdout.contains("active"), "{}", o.stdout);

    // Trigger: a new occurrence now.
    let o = ok(&mut s.cli(), &["events", "trigger", &id]);
    assert!(
        o.stdout.starts_with("triggered occurrence "),
        "{}",
        o.stdout
    );
    let v = ok(&mut s.cli(), &["--json", "events", "trigger", &id]).json();
    assert_eq!(v["event_id"], id.as_str());

    // Delete, then get: not found, exit 3.
    let o = ok(&mut s.cli(), &["events", "delete", &id]);
    assert_eq!(o.stdout.trim(), format!("deleted event {id}"));
    let o = run(&mut s.cli(), &["events", "get", &id]);
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(o.stderr.contains("not found"), "{}", o.stderr);
    let o = run(&mut s.cli(), &["events", "delete", &id]);
    assert_eq!(o.code, 3, "{}", o.stderr);

    // A bad request from the server: exit 2 with its message.
    let o = run(
        &mut s.cli(),
        &[
            "events",
            "create",
            "--name",
            "bad",
            "--at",
            "tomorrow",
            "--webhook",
            "http://127.0.0.1:9/x",
        ],
    );
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("start_time"), "{}", o.stderr);
}

#[test]
fn occurrences() {
    let s = Server::start();
    let at = in_half_an_hour();
    let ev = ok(
        &mut s.cli(),
        &[
            "--json",
            "events",
            "create",
            "--name",
            "later",
            "--at",
            &at,
            "--webhook",
            "http://127.0.0.1:9/later",
            "--tag",
            "ops",
        ],
    )
    .json();
    let event_id = ev["id"].as_str().unwrap().to_string();

    // The one-time event's occurrence is planned at creation.
    let v = ok(
        &mut s.cli(),
        &["--json", "occurrences", "list", "--event", &event_id],
    )
    .json();
    let occs = v["data"].as_array().unwrap();
    assert_eq!(occs.len(), 1, "{v}");
    let occ_id = occs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(occs[0]["status"], "pending");

    let o = ok(&mut s.cli(), &["occurrences", "list"]);
    assert!(o.stdout.lines().next().unwrap().starts_with("ID"));
    assert!(o.stdout.contains(&occ_id) && o.stdout.contains(&event_id));
    let v = ok(
        &mut s.cli(),
        &[
            "--json",
            "occurrences",
            "list",
            "--status",
            "pending",
            "--tag",
            "ops",
        ],
    )
    .json();
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let v = ok(
        &mut s.cli(),
        &["--json", "occurrences", "list", "--status", "failed"],
    )
    .json();
    assert_eq!(v["data"].as_array().unwrap().len(), 0);

    // Get: the detail with its (empty) attempts.
    let o = ok(&mut s.cli(), &["occurrences", "get", &occ_id]);
    assert!(o.stdout.contains("pending"), "{}", o.stdout);
    assert!(o.stdout.contains("no attempts yet"), "{}", o.stdout);
    let v = ok(&mut s.cli(), &["--json", "occurrences", "get", &occ_id]).json();
    assert!(v["attempts"].is_array(), "{v}");

    // Retry of a pending occurrence: the server's 409 message, exit 2.
    let o = run(&mut s.cli(), &["occurrences", "retry", &occ_id]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("only failed or missed occurrences can be retried"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("409"), "{}", o.stderr);

    // Unknown occurrence: exit 3.
    let o = run(
        &mut s.cli(),
        &["occurrences", "get", "0190b7a5-0000-7000-8000-000000000000"],
    );
    assert_eq!(o.code, 3, "{}", o.stderr);
}

#[test]
fn tokens() {
    let s = Server::start();
    let o = ok(
        &mut s.cli(),
        &[
            "tokens",
            "create",
            "--sub",
            "billing",
            "--access",
            "read",
            "--scope",
            "billing",
            "--expires",
            "30d",
        ],
    );
    assert!(o.stdout.contains("shown only now"), "{}", o.stdout);
    let v = ok(
        &mut s.cli(),
        &[
            "--json",
            "tokens",
            "create",
            "--sub",
            "ops",
            "--access",
            "read_write",
            "--client",
            "laptop",
            "--client",
            "phone",
            "--expires",
            "2099-01-01T00:00:00Z",
        ],
    )
    .json();
    let token = v["token"].as_str().expect("token").to_string();
    let jti = v["jti"].as_str().expect("jti").to_string();
    assert_eq!(v["access"], "read_write");
    assert_eq!(v["clients"], serde_json::json!(["laptop", "phone"]));

    // List: both, as a table and as JSON.
    let o = ok(&mut s.cli(), &["tokens", "list"]);
    assert!(o.stdout.starts_with("JTI"), "{}", o.stdout);
    assert!(o.stdout.contains("billing") && o.stdout.contains(&jti));
    let v = ok(&mut s.cli(), &["--json", "tokens", "list"]).json();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert!(
        v["data"][0].get("token").is_none(),
        "lists never hold the token"
    );

    // The issued token works (by flag, overriding the environment).
    let o = ok(&mut s.cli(), &["--token", &token, "events", "list"]);
    assert!(o.stdout.starts_with("ID"));

    // A read token may not create: 403, exit 4, the server's reason.
    let read = ok(
        &mut s.cli(),
        &[
            "--json",
            "tokens",
            "create",
            "--sub",
            "r",
            "--access",
            "read",
            "--expires",
            "1h",
        ],
    )
    .json();
    let o = run(
        &mut s.cli(),
        &[
            "--token",
            read["token"].as_str().unwrap(),
            "events",
            "create",
            "--name",
            "x",
            "--at",
            &in_half_an_hour(),
            "--webhook",
            "http://127.0.0.1:9/x",
        ],
    );
    assert_eq!(o.code, 4, "{}", o.stderr);
    assert!(o.stderr.contains("needs write"), "{}", o.stderr);

    // Revoke: then the token is refused.
    let o = ok(&mut s.cli(), &["tokens", "revoke", &jti]);
    assert_eq!(o.stdout.trim(), format!("revoked token {jti}"));
    let o = run(&mut s.cli(), &["--token", &token, "events", "list"]);
    assert_eq!(o.code, 4, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("the server refused the token: set --token or QHRONOS_TOKEN"),
        "{}",
        o.stderr
    );

    // Bad input caught before any request: exit 1.
    let o = run(
        &mut s.cli(),
        &[
            "tokens",
            "create",
            "--sub",
            "x",
            "--access",
            "read",
            "--expires",
            "soon",
        ],
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("--expires"), "{}", o.stderr);
    let o = run(
        &mut s.cli(),
        &[
            "tokens",
            "create",
            "--sub",
            "x",
            "--access",
            "root",
            "--expires",
            "1d",
        ],
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
}

#[test]
fn preview_and_status() {
    let s = Server::start();
    let o = ok(
        &mut s.cli(),
        &[
            "preview",
            "FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0",
            "--start",
            "2030-03-28T09:00:00+01:00",
            "--timezone",
            "Europe/Berlin",
            "--count",
            "4",
        ],
    );
    // Across the DST change: 09:00 local is 08:00 UTC, then 07:00 UTC.
    assert!(o.stdout.contains("2030-03-28T08:00:00Z"), "{}", o.stdout);
    assert!(o.stdout.contains("2030-03-31T07:00:00Z"), "{}", o.stdout);
    assert!(
        o.stdout.contains("2030-03-31 09:00:00 +02:00"),
        "{}",
        o.stdout
    );
    let v = ok(
        &mut s.cli(),
        &[
            "--json",
            "preview",
            "RRULE:FREQ=HOURLY;COUNT=5",
            "--start",
            "2030-01-01T00:00:00Z",
        ],
    )
    .json();
    assert_eq!(v["occurrences"].as_array().unwrap().len(), 5);

    let o = run(&mut s.cli(), &["preview", "FREQ=SOMETIMES"]);
    assert_eq!(o.code, 2, "{}", o.stderr);

    // Status needs no token.
    let o = ok(bare().env("QHRONOS_URL", s.url()), &["status"]);
    assert!(o.stdout.contains("version:"), "{}", o.stdout);
    assert!(o.stdout.contains("sqlite"), "{}", o.stdout);
    let v = ok(&mut s.cli(), &["status", "--json"]).json();
    assert_eq!(v["store"], "sqlite");
}

#[test]
fn errors() {
    let s = Server::start();

    // A wrong token: exit 4 and the message.
    let o = run(
        &mut s.cli(),
        &["--token", "not-the-token-at-all", "events", "list"],
    );
    assert_eq!(o.code, 4, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("the server refused the token: set --token or QHRONOS_TOKEN"),
        "{}",
        o.stderr
    );
    // No token at all.
    let o = run(bare().env("QHRONOS_URL", s.url()), &["events", "list"]);
    assert_eq!(o.code, 4, "{}", o.stderr);
    assert!(o.stderr.contains("QHRONOS_TOKEN"), "{}", o.stderr);

    // Nothing listening: exit 6 and the message.
    let url = dead_url();
    let o = run(
        bare().env("QHRONOS_TOKEN", TOKEN),
        &["--url", &url, "events", "list"],
    );
    assert_eq!(o.code, 6, "{}", o.stderr);
    assert!(
        o.stderr.contains(&format!(
            "cannot reach qhronosd at {url}: is it running? (set --url or QHRONOS_URL)"
        )),
        "{}",
        o.stderr
    );

    // Usage errors: exit 1 (not clap's 2).
    let o = run(&mut s.cli(), &["events", "create", "--name", "x"]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    let o = run(&mut s.cli(), &["frobnicate"]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    let o = run(
        &mut s.cli(),
        &[
            "events",
            "create",
            "--name",
            "x",
            "--at",
            "2030-01-01T00:00:00Z",
            "--webhook",
            "http://127.0.0.1:9/x",
            "--metadata",
            "[1]",
        ],
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("--metadata"), "{}", o.stderr);
    let o = run(&mut s.cli(), &["--url", "not a url", "status"]);
    assert_eq!(o.code, 1, "{}", o.stderr);

    // --help and --version succeed.
    let o = ok(&mut bare(), &["--help"]);
    assert!(o.stdout.contains("Exit codes"), "{}", o.stdout);
    let o = ok(&mut bare(), &["--version"]);
    assert_eq!(
        o.stdout.trim(),
        format!("qhronos {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_rate_limited_command_waits_out_retry_after_and_says_so() {
    let s = Server::start_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.master = true;
        c.rate_limit.burst = 2;
        c.rate_limit.per_second = 1.0;
    });
    ok(&mut s.cli(), &["events", "list"]);
    ok(&mut s.cli(), &["events", "list"]);
    let started = std::time::Instant::now();
    let o = ok(&mut s.cli(), &["--json", "events", "list"]);
    assert!(
        o.stderr.contains("rate limited (HTTP 429): waiting 1 s"),
        "{}",
        o.stderr
    );
    assert!(o.json()["data"].is_array());
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
}

/// `qhronos mcp`: the same tools over stdio (newline-delimited JSON-RPC), acting as --token.
#[test]
fn mcp_over_stdio_schedules_and_lists_with_the_token() {
    use std::io::{BufRead, BufReader};
    let s = Server::start();
    let mut child = s
        .cli()
        .arg("mcp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("qhronos mcp starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut send = |v: Value| {
        writeln!(stdin, "{v}").expect("write");
        stdin.flush().expect("flush");
    };
    let mut answer = |id: i64| -> Value {
        loop {
            let line = lines.next().expect("an answer").expect("a line");
            let v: Value = serde_json::from_str(&line).expect("JSON-RPC");
            if v["id"] == id {
                return v;
            }
        }
    };
    send(
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    );
    assert_eq!(answer(1)["result"]["serverInfo"]["name"], "qhronos");
    send(serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    send(
        serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "schedule", "arguments": {"name": "from stdio", "in": "1h", "deliver": {"queue": "agent"}}}}),
    );
    let r = answer(2);
    assert_ne!(r["result"]["isError"], true, "{r}");
    assert_eq!(
        r["result"]["structuredContent"]["event"]["name"],
        "from stdio"
    );
    send(
        serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "get_event", "arguments": {"id": "01900000-0000-7000-8000-000000000000"}}}),
    );
    let r = answer(3);
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("404"),
        "{r}"
    );
    drop(stdin);
    let status = child.wait().expect("exits");
    assert!(status.success(), "{status:?}");
}

#[test]
fn archive_and_backups() {
    // Retention every 100 ms with no grace: a cancelled occurrence is archived at once.
    let s = Server::start_with(|c| {
        c.retention.interval = qhronos::domain::duration::Dur::from_millis(100);
        c.retention.completed = qhronos::domain::duration::Dur::from_millis(1);
    });
    let at = in_half_an_hour();
    let ev = ok(
        &mut s.cli(),
        &[
            "--json",
            "events",
            "create",
            "--name",
            "archived",
            "--at",
            &at,
            "--webhook",
            "http://127.0.0.1:9/a",
            "--tag",
            "ops",
        ],
    )
    .json();
    let id = ev["id"].as_str().unwrap().to_string();
    // Pausing cancels the planned occurrence: finished work for retention.
    ok(&mut s.cli(), &["events", "pause", &id]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let listed = loop {
        let v = ok(
            &mut s.cli(),
            &["--json", "archive", "occurrences", "--event", &id, "--all"],
        )
        .json();
        if !v["data"].as_array().unwrap().is_empty() {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing archived: {v}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(listed["data"][0]["status"], "cancelled");
    let table = ok(&mut s.cli(), &["archive", "occurrences", "--tag", "ops"]);
    assert!(table.stdout.contains("cancelled"), "{}", table.stdout);
    let e = ok(&mut s.cli(), &["archive", "event", &id]);
    assert!(e.stdout.contains("archived"), "{}", e.stdout);
    assert!(e.stdout.contains("occurrences"), "{}", e.stdout);
    let missing = run(
        &mut s.cli(),
        &["archive", "event", "0190f0f0-0000-7000-8000-000000000000"],
    );
    assert_eq!(missing.code, 3, "{}", missing.stderr);

    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("a.jsonl.gz");
    let out = out.to_str().unwrap();
    let o = ok(&mut s.cli(), &["archive", "export", "--out", out]);
    assert!(o.stdout.contains("wrote"), "{}", o.stdout);
    let bytes = std::fs::read(out).expect("file");
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a gzip file");
    // It never overwrites.
    assert_eq!(
        run(&mut s.cli(), &["archive", "export", "--out", out]).code,
        1
    );

    let b = ok(&mut s.cli(), &["--json", "admin", "backups"]).json();
    assert_eq!(b["data"], serde_json::json!([]), "{b}");
    let t = ok(&mut s.cli(), &["admin", "backups"]);
    assert!(t.stdout.contains("INTEGRITY"), "{}", t.stdout);
}

#[test]
fn workflows() {
    let s = Server::start();
    let at = in_half_an_hour();
    let mut ids = Vec::new();
    for name in ["cause", "effect"] {
        let o = ok(
            &mut s.cli(),
            &[
                "--json",
                "events",
                "create",
                "--name",
                name,
                "--at",
                &at,
                "--webhook",
                "https://example.com/hook",
            ],
        );
        ids.push(o.json()["id"].as_str().expect("id").to_string());
    }
    let o = ok(
        &mut s.cli(),
        &[
            "workflows",
            "create",
            "--name",
            "chain",
            "--when-event",
            &ids[0],
            "--on",
            "completed",
            "--on",
            "failed",
            "--trigger",
            &ids[1],
            "--delay",
            "30s",
        ],
    );
    assert!(o.stdout.starts_with("created workflow "), "{}", o.stdout);
    assert!(
        o.stdout.contains(&format!("trigger {} after 30s", ids[1])),
        "{}",
        o.stdout
    );
    let o = ok(&mut s.cli(), &["--json", "workflows", "list"]);
    let w = o.json()["data"][0].clone();
    assert_eq!(w["when"]["on"], serde_json::json!(["completed", "failed"]));
    let id = w["id"].as_str().expect("id").to_string();
    let o = ok(&mut s.cli(), &["workflows", "get", &id]);
    assert!(o.stdout.contains("chain"), "{}", o.stdout);
    // The loop back is refused by the API: exit code 2 with its message.
    let o = run(
        &mut s.cli(),
        &[
            "workflows",
            "create",
            "--name",
            "back",
            "--when-event",
            &ids[1],
            "--trigger",
            &ids[0],
        ],
    );
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("loop"), "{}", o.stderr);
    let o = ok(&mut s.cli(), &["workflows", "delete", &id]);
    assert!(o.stdout.contains("deleted workflow"), "{}", o.stdout);
    let o = run(&mut s.cli(), &["workflows", "get", &id]);
    assert_eq!(o.code, 3);
}

#[test]
fn history_restore_and_bulk_commands() {
    let s = Server::start();
    let at = in_half_an_hour();
    let create = |name: &str, tag: &str| -> String {
        let v = ok(
            &mut s.cli(),
            &[
                "--json",
                "events",
                "create",
                "--name",
                name,
                "--at",
                &at,
                "--webhook",
                "http://127.0.0.1:9/hook",
                "--tag",
                tag,
            ],
        )
        .json();
        v["id"].as_str().unwrap().to_string()
    };
    let id = create("first", "bulk");
    let other = create("second", "bulk");
    let kept = create("third", "elsewhere");

    // History and restore.
    ok(&mut s.cli(), &["events", "pause", &id]);
    let o = ok(&mut s.cli(), &["events", "history", &id]);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", o.stdout);
    assert!(
        lines[0].starts_with("v1 ") && lines[0].contains("create"),
        "{}",
        o.stdout
    );
    assert!(
        lines[1].contains("pause") && lines[1].contains("status"),
        "{}",
        o.stdout
    );
    let v = ok(&mut s.cli(), &["--json", "events", "history", &id]).json();
    assert_eq!(
        v[1]["diff"]["status"],
        serde_json::json!(["active", "paused"])
    );
    let o = ok(&mut s.cli(), &["events", "restore", &id, "1"]);
    assert!(o.stdout.contains("restored to version 1"), "{}", o.stdout);
    let v = ok(&mut s.cli(), &["--json", "events", "get", &id]).json();
    assert_eq!(v["status"], "active");

    // Bulk pause, resume and delete by tag.
    let o = ok(
        &mut s.cli(),
        &["events", "pause", "--tag", "bulk", "--dry-run"],
    );
    assert!(o.stdout.starts_with("2 matched, 0 changed"), "{}", o.stdout);
    let v = ok(
        &mut s.cli(),
        &["--json", "events", "pause", "--tag", "bulk"],
    )
    .json();
    assert_eq!(v, serde_json::json!({"matched": 2, "changed": 2}));
    let v = ok(&mut s.cli(), &["--json", "events", "get", &other]).json();
    assert_eq!(v["status"], "paused");
    let v = ok(&mut s.cli(), &["--json", "events", "get", &kept]).json();
    assert_eq!(v["status"], "active");
    let v = ok(
        &mut s.cli(),
        &["--json", "events", "resume", "--status", "paused"],
    )
    .json();
    assert_eq!(v["changed"], 2);
    let o = ok(&mut s.cli(), &["events", "delete", "-q", "second"]);
    assert!(o.stdout.starts_with("1 matched, 1 changed"), "{}", o.stdout);
    // History outlives the delete.
    let v = ok(&mut s.cli(), &["--json", "events", "history", &other]).json();
    assert_eq!(v.as_array().unwrap().last().unwrap()["change"], "delete");

    // Bulk retry: nothing failed yet.
    let v = ok(
        &mut s.cli(),
        &[
            "--json",
            "occurrences",
            "retry",
            "--status",
            "failed",
            "--tag",
            "bulk",
        ],
    )
    .json();
    assert_eq!(v, serde_json::json!({"matched": 0, "retried": 0}));

    // Usage errors: a filter and an id, no filter, retry with neither.
    for args in [
        vec!["events", "pause", id.as_str(), "--tag", "bulk"],
        vec!["events", "delete"],
        vec!["occurrences", "retry"],
    ] {
        let o = run(&mut s.cli(), &args);
        assert_eq!(o.code, 1, "{args:?}: {} {}", o.stdout, o.stderr);
        assert!(o.stderr.contains("give "), "{args:?}: {}", o.stderr);
    }
}

#[test]
fn templates_and_search() {
    let s = Server::start();
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("t.json");
    std::fs::write(
        &file,
        r#"{"kind": "body", "body": {"msg": "{{ event.name }}"}, "sample": {"event": {"name": "s"}}}"#,
    )
    .expect("write");
    let path = file.to_str().expect("path");
    let o = ok(
        &mut s.cli(),
        &["templates", "put", "report", "--file", path],
    );
    assert!(o.stdout.contains("version 1"), "{}", o.stdout);
    let v = ok(
        &mut s.cli(),
        &["--json", "templates", "put", "report", "--file", path],
    )
    .json();
    assert_eq!(v["version"], 2);
    let v = ok(
        &mut s.cli(),
        &["--json", "templates", "get", "report", "--version", "1"],
    )
    .json();
    assert_eq!(v["version"], 1);
    let v = ok(&mut s.cli(), &["templates", "get", "report", "--versions"]).json();
    assert_eq!(v["data"].as_array().map(Vec::len), Some(2));
    let o = ok(&mut s.cli(), &["templates", "list"]);
    assert!(o.stdout.contains("report"), "{}", o.stdout);
    let v = ok(&mut s.cli(), &["templates", "render", "report"]).json();
    assert_eq!(v["result"]["body"]["msg"], "s");
    let o = ok(&mut s.cli(), &["templates", "delete", "report"]);
    assert!(o.stdout.contains("deleted template report"), "{}", o.stdout);
    assert_eq!(run(&mut s.cli(), &["templates", "get", "report"]).code, 3);

    ok(
        &mut s.cli(),
        &[
            "events",
            "create",
            "--name",
            "Nightly backup",
            "--at",
            &in_half_an_hour(),
            "--webhook",
            "http://127.0.0.1:9/",
        ],
    );
    let v = ok(&mut s.cli(), &["--json", "events", "list", "--q", "back"]).json();
    assert_eq!(v["data"][0]["name"], "Nightly backup", "{v}");
}

#[test]
fn analytics() {
    let s = Server::start();
    let target = dead_url();
    let at = (jiff::Timestamp::now() + jiff::SignedDuration::from_millis(300))
        .round(jiff::Unit::Millisecond)
        .unwrap()
        .to_string();
    ok(
        &mut s.cli(),
        &[
            "events",
            "create",
            "--name",
            "nobody home",
            "--at",
            &at,
            "--webhook",
            &format!("{target}/hook?key=s3cret"),
            "--tag",
            "ops",
        ],
    );
    // The first attempt fails (nothing listens): poll the figures until it is counted.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let v = loop {
        let v = ok(
            &mut s.cli(),
            &["--json", "analytics", "--from", "1h", "--bucket", "minute"],
        )
        .json();
        let failed: i64 = v["buckets"]
            .as_array()
            .expect("buckets")
            .iter()
            .map(|b| b["failed_attempts"].as_i64().unwrap_or(0))
            .sum();
        if failed >= 1 {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "never counted: {v}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(v["bucket"], "minute");
    let host_path = format!("{}/hook", target.trim_start_matches("http://"));
    assert_eq!(v["top_failing_targets"][0]["target"], host_path.as_str());

    let o = ok(&mut s.cli(), &["analytics", "--from", "2h", "--tag", "ops"]);
    assert!(o.stdout.contains("by hour"), "{}", o.stdout);
    assert!(o.stdout.contains("DELIVERED"), "{}", o.stdout);
    assert!(o.stdout.contains("failing targets:"), "{}", o.stdout);
    assert!(o.stdout.contains(&host_path), "{}", o.stdout);
    assert!(!o.stdout.contains("s3cret"), "{}", o.stdout);
    let o = ok(
        &mut s.cli(),
        &["analytics", "--tag", "elsewhere", "--bucket", "day"],
    );
    assert!(
        o.stdout.contains("no deliveries in this range"),
        "{}",
        o.stdout
    );

    let o = run(&mut s.cli(), &["analytics", "--from", "yesterday"]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("--from"), "{}", o.stderr);
    let o = run(&mut s.cli(), &["analytics", "--from", "1h", "--to", "2h"]);
    assert_eq!(o.code, 2, "the server refuses from after to: {}", o.stderr);
}

#[test]
fn local_times_all_day_events_and_durations() {
    let s = Server::start();
    // A local start in a zone: 02:30 on Berlin's spring-forward day moves to 03:30 CEST.
    let v = ok(
        &mut s.cli(),
        &[
            "--json",
            "events",
            "create",
            "--name",
            "gap",
            "--at",
            "2030-03-31T02:30:00",
            "--timezone",
            "Europe/Berlin",
            "--duration",
            "45m",
            "--webhook",
            "http://127.0.0.1:9/hook",
        ],
    )
    .json();
    assert_eq!(v["start_time"], "2030-03-31T01:30:00Z");
    assert_eq!(v["end_time"], "2030-03-31T02:15:00Z");
    // An all-day event on a local date, fired at 09:00 there.
    let v = ok(
        &mut s.cli(),
        &[
            "--json",
            "events",
            "create",
            "--name",
            "holiday",
            "--date",
            "2030-12-25",
            "--fire-time",
            "09:00",
            "--timezone",
            "America/New_York",
            "--duration",
            "1d",
            "--webhook",
            "http://127.0.0.1:9/hook",
        ],
    )
    .json();
    assert_eq!(v["start_date"], "2030-12-25");
    assert_eq!(v["start_time"], "2030-12-25T14:00:00Z");
    assert_eq!(v["end_time"], "2030-12-26T05:00:00Z");
    // Preview from a local start.
    let o = ok(
        &mut s.cli(),
        &[
            "preview",
            "FREQ=DAILY;COUNT=2",
            "--start",
            "2030-03-30T02:30",
            "--timezone",
            "Europe/Berlin",
        ],
    );
    assert!(o.stdout.contains("2030-03-30T01:30:00Z"), "{}", o.stdout);
    assert!(o.stdout.contains("2030-03-31T01:30:00Z"), "{}", o.stdout);
    // Without a zone a local time is the server's 400, naming the field.
    let o = run(
        &mut s.cli(),
        &[
            "events",
            "create",
            "--name",
            "x",
            "--at",
            "2030-03-31T02:30:00",
            "--webhook",
            "http://127.0.0.1:9/hook",
        ],
    );
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("start_time"), "{}", o.stderr);
}

#[test]
fn calendars_import_and_list() {
    let s = Server::start();
    let file = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../qhronos/tests/data/ics/apple.ics");
    let file = file.to_str().unwrap();
    // A dry run says what would be created and creates nothing.
    let o = ok(
        &mut s.cli(),
        &[
            "calendars",
            "import",
            file,
            "--webhook",
            "http://127.0.0.1:9/hook",
            "--dry-run",
        ],
    );
    assert!(
        o.stdout.starts_with("(dry run) calendar -: 3 created"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("created Book club"), "{}", o.stdout);
    let v = ok(&mut s.cli(), &["--json", "calendars", "list"]).json();
    assert_eq!(v["data"].as_array().unwrap().len(), 0);
    let v = ok(
        &mut s.cli(),
        &[
            "--json",
            "calendars",
            "import",
            file,
            "--webhook",
            "http://127.0.0.1:9/hook",
            "--tag",
            "home",
        ],
    )
    .json();
    assert_eq!(v["created"].as_array().unwrap().len(), 3);
    let cal = v["calendar_id"].as_str().unwrap().to_string();
    // Again into the same calendar: unchanged.
    let o = ok(
        &mut s.cli(),
        &["calendars", "import", file, "--calendar", &cal],
    );
    assert!(
        o.stdout
            .contains("0 created, 0 updated, 0 removed, 3 unchanged"),
        "{}",
        o.stdout
    );
    let o = ok(&mut s.cli(), &["calendars", "list"]);
    assert!(o.stdout.contains("Home"), "{}", o.stdout);
    // A file that is not a calendar: the server's 400, exit code not 0.
    let o = run(
        &mut s.cli(),
        &["calendars", "import", "Cargo.toml", "--calendar", &cal],
    );
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("not an iCalendar object"), "{}", o.stderr);
}

#[test]
fn whoami_channels_and_the_config_summary() {
    let s = Server::start();
    let o = ok(&mut s.cli(), &["whoami"]);
    assert!(o.stdout.contains("kind:"), "{}", o.stdout);
    assert!(o.stdout.contains("master"), "{}", o.stdout);
    assert!(
        o.stdout
            .contains("read, write, admin, issue_tokens, operate"),
        "{}",
        o.stdout
    );
    let read = ok(
        &mut s.cli(),
        &[
            "--json",
            "tokens",
            "create",
            "--sub",
            "viewer",
            "--access",
            "read",
            "--scope",
            "team-a",
            "--expires",
            "1h",
        ],
    )
    .json();
    let token = read["token"].as_str().expect("a token").to_string();
    let v = ok(
        bare()
            .env("QHRONOS_URL", s.url())
            .env("QHRONOS_TOKEN", &token),
        &["whoami", "--json"],
    )
    .json();
    assert_eq!(v["sub"], "viewer");
    assert_eq!(v["scope"], serde_json::json!(["team-a"]));
    assert_eq!(v["can"]["write"], false);

    ok(
        &mut s.cli(),
        &[
            "events",
            "create",
            "--name",
            "job",
            "--at",
            &in_half_an_hour(),
            "--action-json",
            r#"{"type":"pull","params":{"queue":"jobs"}}"#,
        ],
    );
    let o = ok(&mut s.cli(), &["channels"]);
    assert!(o.stdout.contains("Pull queues"), "{}", o.stdout);
    assert!(o.stdout.contains("jobs"), "{}", o.stdout);
    let v = ok(&mut s.cli(), &["channels", "--json"]).json();
    assert_eq!(v["queues"][0]["queue"], "jobs");
    assert_eq!(v["queues"][0]["waiting"], 1);

    let o = ok(&mut s.cli(), &["occurrences", "counts"]);
    assert!(o.stdout.contains("pending    1"), "{}", o.stdout);
    let v = ok(
        &mut s.cli(),
        &["occurrences", "counts", "--tag", "none", "--json"],
    )
    .json();
    assert_eq!(v["pending"], 0);

    let o = ok(&mut s.cli(), &["admin", "config"]);
    assert!(o.stdout.contains("store:"), "{}", o.stdout);
    assert!(
        o.stdout.contains("\"master_token\": \"***\""),
        "{}",
        o.stdout
    );
    assert!(!o.stdout.contains(TOKEN), "{}", o.stdout);
}

#[test]
fn agenda_lists_stored_and_projected_instants() {
    let s = Server::start();
    let at = in_half_an_hour();
    ok(
        &mut s.cli(),
        &[
            "events",
            "create",
            "--name",
            "hourly",
            "--at",
            &at,
            "--webhook",
            "http://127.0.0.1:9/hook",
            "--schedule",
            "FREQ=HOURLY",
            "--tag",
            "ops",
        ],
    );
    let to = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(5)).to_string();
    // Pages of two, followed to the end: five hours of an hourly rule from half an hour on.
    let v = ok(
        &mut s.cli(),
        &[
            "--json", "agenda", "--to", &to, "--tag", "ops", "--limit", "2", "--all",
        ],
    )
    .json();
    let items = v["data"].as_array().unwrap();
    assert_eq!(items.len(), 5, "{v}");
    assert_eq!(items[0]["status"], "pending", "{v}");
    assert_eq!(items[4]["status"], "projected", "{v}");
    let o = ok(&mut s.cli(), &["agenda", "--to", &to, "--limit", "2"]);
    assert!(
        o.stdout.contains("projected") || o.stdout.contains("pending"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("hourly"), "{}", o.stdout);
    assert!(o.stdout.contains("more results"), "{}", o.stdout);
    let o = run(&mut s.cli(), &["agenda", "--from", "yesterday"]);
    assert_ne!(o.code, 0, "{}", o.stdout);
}
