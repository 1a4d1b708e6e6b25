//! The qhronosd child process: start it on a free port, learn its address from its log, keep
//! draining its stderr, kill it (politely at the end, with SIGKILL on demand), read its peak RSS.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};

/// How long qhronosd may take to print `listening on`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Log lines kept for an error message.
const TAIL_LINES: usize = 40;
/// WARN/ERROR lines kept for the end-of-run summary.
const KEPT_PROBLEMS: usize = 10;

/// What the stderr drainer saw, shared over restarts.
#[derive(Default)]
pub struct LogStats {
    pub tail: VecDeque<String>,
    pub warnings: usize,
    pub errors: usize,
    pub problems: Vec<String>,
    /// The dispatcher's lease owner (`node-…`), as logged at start (the latest process's).
    pub owner: Option<String>,
}

pub struct Server {
    bin: PathBuf,
    data_dir: PathBuf,
    token: String,
    /// Extra environment for the child (settings the bench needs).
    env: Vec<(String, String)>,
    child: Option<Child>,
    pub base: String,
    /// Peak RSS (VmHWM, kB) of every earlier process of this server (restarts).
    earlier_peak_kb: u64,
    pub log: Arc<Mutex<LogStats>>,
}

impl Server {
    /// Starts qhronosd with the bench's settings plus `extra_env` (`(name, value)` pairs, set
    /// after the bench's own, so that a later pair for the same name wins).
    pub fn start(
        bin: &Path,
        data_dir: &Path,
        token: &str,
        extra_env: &[(&str, &str)],
    ) -> anyhow::Result<Server> {
        let env: Vec<(String, String)> = [
            ("QHRONOS_DELIVERY__ALLOWED_NETWORKS", "[127.0.0.0/8]"),
            ("QHRONOS_RATE_LIMIT__ENABLED", "false"),
        ]
        .iter()
        .chain(extra_env)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut s = Server {
            bin: bin.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            token: token.to_string(),
            env,
            child: None,
            base: String::new(),
            earlier_peak_kb: 0,
            log: Arc::new(Mutex::new(LogStats::default())),
        };
        if let Err(e) = s.spawn() {
            // A build without rate limiting refuses the unknown `rate_limit` key.
            if !format!("{e:#}").contains("rate_limit") {
                return Err(e);
            }
            eprintln!("[bench] this qhronosd has no rate_limit setting; starting it without");
            s.env.retain(|(k, _)| !k.starts_with("QHRONOS_RATE_LIMIT"));
            s.log.lock().unwrap().tail.clear();
            s.spawn()?;
        }
        Ok(s)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut child = Command::new(&self.bin)
            .arg("--port")
            .arg("0")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--log-format")
            .arg("json")
            .env("QHRONOS_MASTER_TOKEN", &self.token)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("RUST_LOG")
            // The bench's own setting: qhronosd would read it as an unknown `bench.*` key.
            .env_remove("QHRONOS_BENCH_KEEP_DB")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", self.bin.display()))?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let (tx, rx) = mpsc::channel::<String>();
        let log = self.log.clone();
        std::thread::Builder::new()
            .name("qhronosd-stderr".into())
            .spawn(move || drain(BufReader::new(stderr), tx, log))?;
        let pid = child.id();
        self.child = Some(child);
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => {
                self.base = format!("http://{addr}");
                eprintln!("[bench] qhronosd pid {pid} listening on {}", self.base);
                Ok(())
            }
            Err(_) => {
                let status = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                self.stop();
                let tail = self
                    .log
                    .lock()
                    .unwrap()
                    .tail
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>();
                bail!(
                    "qhronosd did not print 'listening on' within {START_TIMEOUT:?} (exit: {status:?}); its last log lines:\n{}",
                    tail.join("\n")
                )
            }
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// VmHWM of the running process, in kB.
    pub fn current_peak_kb(&self) -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// VmRSS of the running process now, in kB.
    pub fn rss_kb(&self) -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Peak RSS over this server's processes so far (kB).
    pub fn peak_kb(&self) -> u64 {
        self.earlier_peak_kb
            .max(self.current_peak_kb().unwrap_or(0))
    }

    /// SIGKILL (Child::kill is SIGKILL on Unix) and reap.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.earlier_peak_kb = self.peak_kb();
        if let Some(mut c) = self.child.take() {
            c.kill().context("kill -9 qhronosd")?;
            c.wait()?;
        }
        Ok(())
    }

    /// Starts the process again on the same data directory and token (a new port).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9()?;
        self.spawn()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn drain(r: impl BufRead, tx: mpsc::Sender<String>, log: Arc<Mutex<LogStats>>) {
    let mut tx = Some(tx);
    for line in r.lines() {
        let Ok(line) = line else { break };
        if let Some(t) = &tx {
            if let Some(addr) = listening_addr(&line) {
                let _ = t.send(addr);
                tx = None;
            }
        }
        let mut l = log.lock().unwrap();
        if let Some(o) = lease_owner(&line) {
            l.owner = Some(o);
        }
        let level = line_level(&line);
        if level == Some("WARN") {
            l.warnings += 1;
        } else if level == Some("ERROR") {
            l.errors += 1;
        }
        if level.is_some() && l.problems.len() < KEPT_PROBLEMS {
            l.problems.push(line.clone());
        }
        if l.tail.len() == TAIL_LINES {
            l.tail.pop_front();
        }
        l.tail.push_back(line);
    }
}

fn listening_addr(line: &str) -> Option<String> {
    let rest = &line[line.find("listening on http://")? + "listening on http://".len()..];
    let end = rest
        .find(|c: char| c == '"' || c.is_whitespace())
        .unwrap_or(rest.len());
    (end > 0).then(|| rest[..end].to_string())
}

/// The `owner` field of the "dispatcher started" line.
fn lease_owner(line: &str) -> Option<String> {
    if !line.contains("dispatcher started") {
        return None;
    }
    let i = line.find("node-")?;
    let rest = &line[i..];
    let end = rest
        .find(|c: char| c == '"' || c.is_whitespace())
        .unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

/// `Some("WARN")` / `Some("ERROR")` for such a JSON (or text) log line, else None.
fn line_level(line: &str) -> Option<&'static str> {
    if line.contains("\"level\":\"WARN\"") || line.contains(" WARN ") {
        Some("WARN")
    } else if line.contains("\"level\":\"ERROR\"") || line.contains(" ERROR ") {
        Some("ERROR")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address() {
        let l = r#"{"timestamp":"x","level":"INFO","fields":{"message":"listening on http://127.0.0.1:4321"}}"#;
        assert_eq!(listening_addr(l).as_deref(), Some("127.0.0.1:4321"));
        assert_eq!(
            listening_addr("listening on http://[::1]:80").as_deref(),
            Some("[::1]:80")
        );
        assert_eq!(listening_addr("nothing here"), None);
    }

    #[test]
    fn finds_the_lease_owner() {
        let l = r#"{"level":"INFO","fields":{"message":"dispatcher started","owner":"node-0193"}}"#;
        assert_eq!(lease_owner(l).as_deref(), Some("node-0193"));
        assert_eq!(lease_owner(r#"{"owner":"node-1"}"#), None);
    }
}
