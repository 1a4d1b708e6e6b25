//! The `qhronosd` binary itself: `--version`, `config check`, and JSON logs with request ids.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary with no `QHRONOS_*` variable or `RUST_LOG` from the test's environment.
fn qhronosd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_qhronosd"));
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().to_string();
        if k.starts_with("QHRONOS_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c.stdin(Stdio::null());
    c
}

fn run(c: &mut Command) -> (i32, String, String) {
    let out = c.output().expect("qhronosd runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version() {
    let (code, out, _) = run(qhronosd().arg("--version"));
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("qhronosd {}", env!("CARGO_PKG_VERSION"))
    );
}

const MASTER: &str = "master-token-that-must-not-print";
const JWT: &str = "jwt-key-that-must-not-print-0123456789";
const SMTP_PASSWORD: &str = "smtp-password-that-must-not-print";

#[test]
fn config_check_prints_the_effective_settings_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(
        &file,
        format!("port: 9123\nmaster_token: {MASTER}\nauth:\n  jwt_secret: {JWT}\ndelivery:\n  allowed_networks: [127.0.0.0/8]\nsmtp:\n  host: 127.0.0.1\n  user: q\n  password: {SMTP_PASSWORD}\n"),
    )
    .unwrap();
    // The subcommand before or after the flags; environment and flags are layered in.
    for args in [
        vec!["config", "check", "--config", file.to_str().unwrap()],
        vec!["--config", file.to_str().unwrap(), "config", "check"],
    ] {
        let (code, out, err) = run(qhronosd()
            .args(&args)
            .args(["--log-level", "debug"])
            .env("QHRONOS_RATE_LIMIT__BURST", "7"));
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(err.contains("valid"), "{err}");
        assert!(
            !out.contains(MASTER) && !out.contains(JWT) && !out.contains(SMTP_PASSWORD),
            "{out}"
        );
        let v: Value = serde_yaml_ng::from_str(&out).expect("YAML");
        assert_eq!(v["port"], 9123);
        assert_eq!(v["log_level"], "debug");
        assert_eq!(v["rate_limit"]["burst"], 7);
        assert_eq!(v["master_token"], "***");
        assert_eq!(v["auth"]["jwt_secret"], "***");
        assert_eq!(v["smtp"]["password"], "***");
        assert_eq!(v["smtp"]["user"], "q");
        assert_eq!(v["delivery"]["allowed_networks"][0], "127.0.0.0/8");
        assert_eq!(v["retry"]["initial_delay"], "5s");
    }
    // Unset secrets stay null (nothing to mask), and no file is needed.
    let (code, out, err) = run(qhronosd().args(["config", "check"]));
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_yaml_ng::from_str(&out).expect("YAML");
    assert!(v["master_token"].is_null(), "{out}");
}

#[test]
fn config_check_fails_with_exit_code_2_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("prot: 9000\n", "prot"),
        ("port: [1]\n", "port"),
        ("master_token: short\n", "master_token"),
        ("log_format: xml\n", "log_format"),
        ("retry: {max_attempts: 0}\n", "max_attempts"),
        ("port: 8080\n  bad indent: [\n", "YAML"),
    ];
    for (i, (yaml, says)) in cases.into_iter().enumerate() {
        let file = dir.path().join(format!("c{i}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        let (code, out, err) = run(qhronosd().args(["config", "check", "--config"]).arg(&file));
        assert_eq!(code, 2, "{yaml}: {out} {err}");
        assert!(err.contains(says), "{yaml}: {err}");
        assert!(out.is_empty(), "{out}");
    }
    let (code, _, err) = run(qhronosd().args(["config", "check", "--config", "/nonexistent.yaml"]));
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent.yaml"), "{err}");
}

#[test]
fn a_database_password_is_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: opening the store fails, and the error names the URL.
    let (code, out, err) = run(qhronosd()
        .args(["--migrate", "--data-dir"])
        .arg(dir.path())
        .args([
            "--database-url",
            "postgres://qh:pw-that-must-not-print@127.0.0.1:1/qhronos",
        ])
        .env("QHRONOS_DATABASE__CONNECT_TIMEOUT", "1s"));
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("postgres://qh:***@127.0.0.1:1/qhronos"),
        "{err}"
    );
    assert!(!err.contains("pw-that-must-not-print") && !out.contains("pw-that-must-not-print"));
    let (code, out, _) = run(qhronosd()
        .args(["config", "check", "--database-url"])
        .arg("postgres://qh@127.0.0.1/q?password=pw-that-must-not-print"));
    assert_eq!(code, 0);
    assert!(!out.contains("pw-that-must-not-print"), "{out}");
}

/// Kills the server when the test ends, however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn json_logs_carry_the_request_span_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = qhronosd()
        .args(["--log-format", "json", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .env("QHRONOS_MASTER_TOKEN", MASTER)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qhronosd starts");
    let stderr = child.stderr.take().unwrap();
    let _server = Server(child);
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines: Vec<String> = Vec::new();
    let next = |lines: &mut Vec<String>, until: Instant| -> Option<String> {
        let wait = until.saturating_duration_since(Instant::now());
        let l = rx.recv_timeout(wait).ok()?;
        lines.push(l.clone());
        Some(l)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let l = next(&mut lines, deadline).unwrap_or_else(|| panic!("no address: {lines:#?}"));
        if let Some(a) = l.split("listening on http://").nth(1) {
            break a.split('"').next().unwrap().to_string();
        }
    };
    let client = reqwest::Client::new();
    let r = client
        .get(format!("http://{addr}/health"))
        .header("x-request-id", "log-test-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .post(format!("http://{addr}/events"))
        .bearer_auth(MASTER)
        .header("x-request-id", "log-test-2")
        .body(r#"{"name": "secret-body-marker"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 2 {
        let Some(l) = next(&mut lines, deadline) else {
            panic!("no response lines: {lines:#?}")
        };
        let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{e}: {l}"));
        if v["fields"]["message"] == "response" {
            seen.push(v);
        }
    }
    let (a, b) = (&seen[0], &seen[1]);
    assert_eq!(a["level"], "INFO");
    assert_eq!(a["span"]["request_id"], "log-test-1", "{a}");
    assert_eq!(a["span"]["method"], "GET");
    assert_eq!(a["span"]["path"], "/health");
    assert_eq!(a["fields"]["status"], 200);
    assert!(a["fields"]["latency_ms"].is_number(), "{a}");
    assert_eq!(b["span"]["request_id"], "log-test-2", "{b}");
    assert_eq!(b["span"]["method"], "POST");
    assert_eq!(b["span"]["path"], "/events");
    assert_eq!(b["fields"]["status"], 400);
    let all = lines.join("\n");
    assert!(!all.contains(MASTER), "the token was logged");
    assert!(!all.contains("secret-body-marker"), "a body was logged");
}
