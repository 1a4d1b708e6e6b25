//! The web dashboard: the files of `crates/qhronos/ui/` (plain ES modules and CSS, no build
//! step, so `cargo build` needs no JavaScript toolchain), compiled into the binary and served
//! at `/ui`. The page is one more client of the public API: it holds no secret and needs no
//! token to load; it asks for one and sends it with each API call.
//!
//! Every answer here carries a strict Content-Security-Policy (scripts and styles from this
//! origin only, nothing inline, no framing, API calls to this origin only) and
//! `X-Frame-Options: DENY`.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

use crate::api::AppState;

/// The page's routes, each public (see `auth::permissions::PUBLIC`).
pub const ROUTES: &[&str] = &["/", "/ui", "/ui/", "/ui/{*path}"];

/// `connect-src 'self'`: the page talks to this server's API and nothing else.
/// `style-src 'self'`: no inline style either (the scripts set styles through the CSSOM only).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
pub struct Asset {
    /// The path under `/ui/`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

macro_rules! assets {
    ($($path:literal => $ct:expr),* $(,)?) => {
        /// Every file of the dashboard.
        pub const ASSETS: &[Asset] = &[$(Asset {
            path: $path,
            content_type: $ct,
            body: include_bytes!(concat!("../ui/", $path)),
        }),*];
    };
}

const JS: &str = "text/javascript; charset=utf-8";

assets! {
    "index.html" => "text/html; charset=utf-8",
    "style.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "app.js" => JS,
    "lib/api.js" => JS,
    "lib/dom.js" => JS,
    "lib/time.js" => JS,
    "lib/rule.js" => JS,
    "lib/chart.js" => JS,
    "lib/list.js" => JS,
    "lib/attempts.js" => JS,
    "pages/signin.js" => JS,
    "pages/overview.js" => JS,
    "pages/events.js" => JS,
    "pages/event.js" => JS,
    "pages/edit.js" => JS,
    "pages/calendar.js" => JS,
    "pages/deliveries.js" => JS,
    "pages/channels.js" => JS,
    "pages/admin.js" => JS,
}

/// What a path under `/ui/` serves.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    Asset(&'static str),
    /// The page itself: its script reads the path and shows that view (`/ui/events/…`).
    Index,
    NotFound,
}

/// The path rule: an embedded file by its path; a path whose last segment has no dot is a
/// view of the page (index.html); any other path (a missing `.js`, `.png` …) is 404, so that
/// a typo in an asset name is an error and not a page served as a script.
pub fn resolve(path: &str) -> Resolved {
    let path = path.trim_start_matches('/');
    if let Some(a) = ASSETS.iter().find(|a| a.path == path) {
        return Resolved::Asset(a.path);
    }
    let last = path.rsplit('/').next().unwrap_or_default();
    if path.split('/').any(|s| s == "..") || last.contains('.') {
        Resolved::NotFound
    } else {
        Resolved::Index
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(ROUTES[0], get(redirect))
        .route(ROUTES[1], get(index))
        .route(ROUTES[2], get(index))
        .route(ROUTES[3], get(file))
}

async fn redirect() -> Response {
    secure((StatusCode::SEE_OTHER, [(LOCATION, "/ui/")]).into_response())
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match resolve(&path) {
        Resolved::Asset(p) => serve(p, &headers),
        Resolved::Index => serve("index.html", &headers),
        Resolved::NotFound => secure(
            (
                StatusCode::NOT_FOUND,
                [(CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("no dashboard file '{path}'"),
            )
                .into_response(),
        ),
    }
}

/// Strong validators, computed once: the files change only with the binary, and `no-cache`
/// makes the browser ask each time (a 304 costs a round trip, never a stale page after an
/// upgrade).
fn etag(path: &str) -> Option<&'static str> {
    static TAGS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let h = Sha256::digest(a.body);
                (a.path, format!("\"{}\"", hex::encode(&h[..12])))
            })
            .collect()
    })
    .iter()
    .find(|(p, _)| *p == path)
    .map(|(_, t)| t.as_str())
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.path == path) else {
        return secure(StatusCode::NOT_FOUND.into_response());
    };
    let tag = etag(path).unwrap_or_default();
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(CONTENT_TYPE, a.content_type)], a.body).into_response()
    };
    let h = r.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(ETAG, v);
    }
    secure(r)
}

/// The security headers of every dashboard answer.
fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_rule_serves_files_views_and_refuses_missing_files() {
        assert_eq!(resolve("app.js"), Resolved::Asset("app.js"));
        assert_eq!(
            resolve("/pages/events.js"),
            Resolved::Asset("pages/events.js")
        );
        assert_eq!(resolve(""), Resolved::Index);
        assert_eq!(resolve("events"), Resolved::Index);
        assert_eq!(
            resolve("events/0190a1b2-0000-7000-8000-000000000000/edit"),
            Resolved::Index
        );
        assert_eq!(resolve("deliveries"), Resolved::Index);
        assert_eq!(resolve("missing.js"), Resolved::NotFound);
        assert_eq!(resolve("pages/nope.css"), Resolved::NotFound);
        assert_eq!(resolve("../Cargo.toml"), Resolved::NotFound);
        assert_eq!(resolve("a/../b"), Resolved::NotFound);
    }

    #[test]
    fn every_file_has_a_content_type_by_its_extension() {
        for a in ASSETS {
            let want = match a.path.rsplit('.').next() {
                Some("js") => JS,
                Some("css") => "text/css; charset=utf-8",
                Some("html") => "text/html; charset=utf-8",
                Some("svg") => "image/svg+xml",
                other => panic!("{}: unexpected extension {other:?}", a.path),
            };
            assert_eq!(a.content_type, want, "{}", a.path);
        }
    }
}
