//! The dashboard in a real headless Chromium, driven over WebDriver against the real server
//! (the api suite's `spawn_app`): each test starts `chromedriver` on a free port and kills it
//! when it ends; one browser runs at a time (the tests take a lock), so that two cores are
//! not shared by several browsers. Without chromium/chromedriver the tests say why and pass,
//! unless `CI` is set: then they fail.
//!
//! `cargo test -p qhronos --test dashboard`; `-- --ignored screenshots` rewrites
//! `docs/dashboard/*.png`.

mod actions;
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

/// One browser at a time.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A browser on the app's dashboard; `None` (after saying why) when there is no browser.
pub struct Browser {
    pub s: Session,
    pub base: String,
    _driver: Driver,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Browser {
    pub async fn open(app: &TestApp) -> Option<Browser> {
        Self::open_sized(app, 1280, 900).await
    }

    pub async fn open_sized(app: &TestApp, width: u32, height: u32) -> Option<Browser> {
        let turn = ONE_BROWSER.lock().await;
        let (driver, chromium) = Driver::start().await?;
        let s = driver.session(&chromium, width, height).await;
        Some(Browser {
            s,
            base: app.url(""),
            _driver: driver,
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
