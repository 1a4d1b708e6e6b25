//! The dashboard in a real headless Chromium, driven over WebDriver against the real server
//! (the api suite's `spawn_app`): one `chromedriver` per test binary, started by the first test
//! that needs it and stopped when the binary ends; each test has its own server and its own
//! browser session. At most `DASHBOARD_BROWSERS` browsers (default 2) run at once, so that two
//! cores are not shared by many. Without chromium/chromedriver the tests say why and pass,
//! unless `CI` is set: then they fail.
//!
//! `cargo test -p qhronos --test dashboard`; `-- --ignored screenshots` rewrites
//! `docs/dashboard/*.png`.

mod actions;
mod forms;
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
mod pages;
mod screenshots;
mod timing;
mod webdriver;

/// The backend (`TEST_STORE` overrides it); see helpers.rs.
const DEFAULT_STORE: &str = "sqlite";

use helpers::{TestApp, TOKEN};
use webdriver::{Driver, Session};

/// Browsers running at once (`DASHBOARD_BROWSERS`, default 2).
fn browsers() -> &'static tokio::sync::Semaphore {
    static TURNS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    TURNS.get_or_init(|| {
        let n = std::env::var("DASHBOARD_BROWSERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n| *n >= 1)
            .unwrap_or(2);
        tokio::sync::Semaphore::new(n)
    })
}

/// A browser on the app's dashboard; `None` (after saying why) when there is no browser.
pub struct Browser {
    pub s: Session,
    pub base: String,
    _turn: tokio::sync::SemaphorePermit<'static>,
}

impl Browser {
    pub async fn open(app: &TestApp) -> Option<Browser> {
        Self::open_sized(app, 1280, 900).await
    }

    pub async fn open_sized(app: &TestApp, width: u32, height: u32) -> Option<Browser> {
        Self::open_at(&app.url(""), width, height).await
    }

    /// A browser on the dashboard of the server at `base` (`http://host:port`).
    pub async fn open_at(base: &str, width: u32, height: u32) -> Option<Browser> {
        let turn = browsers()
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let driver = Driver::get()?;
        let s = driver.session(width, height).await;
        Some(Browser {
            s,
            base: base.to_string(),
            _turn: turn,
        })
    }

    /// Opens a dashboard path (`/ui/...`).
    pub async fn visit(&self, path: &str) {
        self.s.goto(&format!("{}{path}", self.base)).await;
    }

    /// Signs in on the sign-in form with `token` and waits for the navigation.
    pub async fn sign_in(&self, token: &str) {
        self.visit("/ui/").await;
        self.s.type_into("#token", token).await;
        self.s.click_on("#signin button[type=submit]").await;
        self.s.find("#signout").await;
    }

    pub async fn sign_in_master(&self) {
        self.sign_in(TOKEN).await;
    }
}
