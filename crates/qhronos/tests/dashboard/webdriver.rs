//! A small W3C WebDriver client over reqwest: enough to drive headless Chromium through
//! `chromedriver` (sessions, navigation, elements, clicks, keys, scripts, screenshots).
//! Written here rather than taken from a crate: the dozen commands the tests use are plain
//! JSON over HTTP, and a client crate would pull in a second HTTP stack to compile.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// The W3C key for an element reference in WebDriver JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a wait polls before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The `chromedriver` of this test binary: started by the first test that needs a browser and
/// shared by all of them (each test has a session of its own). It runs under a small shell that
/// holds the read end of a pipe whose write end this process keeps: when the test binary ends,
/// however it ends, the pipe closes and the shell stops the driver.
pub struct Driver {
    port: u16,
    url: String,
    /// The browser binary sessions start.
    browser: String,
    _keepalive: std::sync::Mutex<std::process::ChildStdin>,
    _child: std::sync::Mutex<Child>,
}

/// The shared driver, or why there is none.
static DRIVER: std::sync::OnceLock<Result<Driver, String>> = std::sync::OnceLock::new();

/// Where the browser and its driver are, or why not.
fn find_tools() -> Result<(String, String), String> {
    let which = |names: &[&str]| {
        names.iter().find_map(|n| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|d| d.join(n))
                .find(|p| p.is_file())
                .map(|p| p.display().to_string())
        })
    };
    let driver = std::env::var("CHROMEDRIVER")
        .ok()
        .or_else(|| which(&["chromedriver"]))
        .ok_or("chromedriver is not installed (Debian: apt-get install chromium-driver)")?;
    let browser = std::env::var("CHROMIUM")
        .ok()
        .or_else(|| which(&["chromium", "chromium-browser", "google-chrome"]))
        .ok_or("chromium is not installed (Debian: apt-get install chromium)")?;
    Ok((driver, browser))
}

impl Driver {
    /// The shared driver (started on first use), or says why there is none and returns `None`
    /// — unless `CI` is set: there a missing browser fails the test instead of skipping it.
    pub fn get() -> Option<&'static Driver> {
        match DRIVER.get_or_init(Driver::start) {
            Ok(d) => Some(d),
            Err(why) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "browser tests cannot run: {why}"
                );
                eprintln!("skipped: {why}");
                None
            }
        }
    }

    fn start() -> Result<Driver, String> {
        let (driver, browser) = find_tools()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        // `read` returns when this process ends (its end of stdin closes): then the driver goes.
        let mut child = Command::new("sh")
            .args([
                "-c",
                "\"$0\" --port=\"$1\" >/dev/null 2>&1 & p=$!; read _; kill $p",
                &driver,
                &port.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {driver}: {e}"))?;
        let keepalive = child.stdin.take().ok_or("no pipe to the driver's shell")?;
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("{driver} did not start within {WAIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Ok(Driver {
            port,
            url: format!("http://127.0.0.1:{port}"),
            browser,
            _keepalive: std::sync::Mutex::new(keepalive),
            _child: std::sync::Mutex::new(child),
        })
    }

    /// A new headless browser session with a window of `width` × `height` CSS pixels, ended
    /// when the [`Session`] is dropped. Headless Chromium's windows are at least 500 px wide:
    /// narrower ones are emulated as a phone's screen.
    pub async fn session(&self, width: u32, height: u32) -> Session {
        let mut options = json!({
            "binary": self.browser,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--hide-scrollbars", "--force-device-scale-factor=1",
                     format!("--window-size={},{height}", width.max(500))],
        });
        if width < 500 {
            options["mobileEmulation"] =
                json!({"deviceMetrics": {"width": width, "height": height, "pixelRatio": 1.0}});
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "unhandledPromptBehavior": "dismiss",
        }}});
        // A client per session: each test has its own runtime, and a client's connections
        // belong to the runtime that made them.
        let http = reqwest::Client::new();
        let v = call(&http, "POST", &format!("{}/session", self.url), Some(caps))
            .await
            .expect("a browser session");
        let id = v["sessionId"].as_str().expect("sessionId").to_string();
        Session {
            http,
            base: format!("{}/session/{id}", self.url),
            port: self.port,
            id,
        }
    }
}

async fn call(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = http.request(m, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.map_err(|e| e.to_string())?;
    let ok = r.status().is_success();
    let v: Value = r.json().await.map_err(|e| e.to_string())?;
    if ok {
        Ok(v["value"].clone())
    } else {
        Err(format!(
            "{}: {}",
            v["value"]["error"].as_str().unwrap_or("error"),
            v["value"]["message"]
                .as_str()
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or_default()
        ))
    }
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct El(String);

/// One browser window, ended when dropped.
pub struct Session {
    http: reqwest::Client,
    base: String,
    port: u16,
    id: String,
}

impl Drop for Session {
    /// Ends the browser (a blocking `DELETE` on a plain socket: this runs also when a test
    /// panics, outside any runtime), so that no Chromium outlives its test.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(
                c,
                "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                self.id
            );
            let _ = c.read_to_end(&mut Vec::new());
        }
    }
}

impl Session {
    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        call(&self.http, method, &format!("{}{path}", self.base), body).await
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    /// Elements matching a CSS selector now (maybe none).
    pub async fn all(&self, css: &str) -> Vec<El> {
        self.cmd(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .await
        .map_err(|e| eprintln!("find {css}: {e}"))
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e[ELEMENT].as_str().map(|s| El(s.to_string())))
        .collect()
    }

    /// The first element matching `css`, waiting for it to appear.
    pub async fn find(&self, css: &str) -> El {
        self.wait(&format!("an element {css}"), || async {
            self.all(css).await.into_iter().next()
        })
        .await
    }

    /// Polls `f` every 50 ms until it gives `Some`, at most [`WAIT`].
    pub async fn wait<T, F, Fut>(&self, what: &str, f: F) -> T
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            if Instant::now() > deadline {
                let text = self.text_of("body").await;
                let url = self
                    .cmd("GET", "/url", None)
                    .await
                    .unwrap_or_else(Value::String);
                panic!("waited {WAIT:?} for {what} at {url}; the page says:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the text of the first `css` element contains `needle`; returns the text.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        self.wait(&format!("'{needle}' in {css}"), || async {
            let t = self.text_of(css).await;
            t.contains(needle).then_some(t)
        })
        .await
    }

    /// The visible text of the first `css` element ("" when there is none).
    pub async fn text_of(&self, css: &str) -> String {
        match self.all(css).await.into_iter().next() {
            Some(e) => self.text(&e).await,
            None => String::new(),
        }
    }

    pub async fn text(&self, e: &El) -> String {
        self.cmd("GET", &format!("/element/{}/text", e.0), None)
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Clicks like a person: the element scrolled to the middle of the window first (the
    /// page's sticky header would otherwise cover what WebDriver scrolls to the top).
    pub async fn click(&self, e: &El) {
        self.exec(
            "arguments[0].scrollIntoView({block: 'center'})",
            vec![json!({ ELEMENT: e.0 })],
        )
        .await;
        self.cmd("POST", &format!("/element/{}/click", e.0), Some(json!({})))
            .await
            .unwrap_or_else(|err| panic!("click: {err}"));
    }

    /// Clicks the first `css` element once it is there.
    pub async fn click_on(&self, css: &str) {
        let e = self.find(css).await;
        self.click(&e).await;
    }

    /// Clicks the first button or link whose text is `label`.
    pub async fn press(&self, label: &str) {
        let e = self
            .wait(&format!("a button '{label}'"), || async {
                for e in self.all("button, a.button").await {
                    if self.text(&e).await.trim() == label && self.displayed(&e).await {
                        return Some(e);
                    }
                }
                None
            })
            .await;
        self.click(&e).await;
    }

    pub async fn displayed(&self, e: &El) -> bool {
        self.cmd("GET", &format!("/element/{}/displayed", e.0), None)
            .await
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }

    /// Replaces the value of the `css` input with `text`, typed as keys (so input events fire).
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.cmd("POST", &format!("/element/{}/clear", e.0), Some(json!({})))
            .await
            .unwrap_or_else(|err| panic!("clear {css}: {err}"));
        self.cmd(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        )
        .await
        .unwrap_or_else(|err| panic!("type into {css}: {err}"));
    }

    /// Runs a script in the page (`arguments[i]` are `args`) and returns its value.
    pub async fn exec(&self, script: &str, args: Vec<Value>) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// The page's path and query.
    pub async fn path(&self) -> String {
        self.exec("return location.pathname + location.search", vec![])
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// A Chrome DevTools Protocol command (chromedriver's `goog/cdp/execute`).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": cmd, "params": params})),
        )
        .await
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
    }

    /// Presses keys in the focused element (WebDriver key codes: `\u{E007}` is Enter).
    pub async fn keys(&self, css: &str, keys: &str) {
        let e = self.find(css).await;
        self.cmd(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": keys })),
        )
        .await
        .unwrap_or_else(|err| panic!("keys into {css}: {err}"));
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        let v = self
            .cmd("GET", "/screenshot", None)
            .await
            .expect("screenshot");
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("base64 PNG")
    }
}
