//! Subscriptions: a calendar with a `url` is kept in step with that iCalendar feed. Each due
//! feed is fetched through the SSRF guard (the webhooks' resolver, no redirects, no proxy),
//! with `If-None-Match` / `If-Modified-Since`, at most 10 MiB within 30 s, and imported like
//! `POST /calendars/import` (updated by UID, vanished events removed). A fetch or a file that
//! fails leaves the events as they were and says so in `last_result`.
//!
//! The loop that refreshes due feeds, on one node at a time (upkeep lease `feeds`), is
//! `engine/feeds.rs`; it calls [`refresh`] here.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};

use super::calendar_import::{import_into, ImportJob};
use super::calendars::{visible_calendar, CalendarOut};
use super::AppState;
use crate::auth::{Caller, Principal};
use crate::calendars::ics::MAX_BYTES;
use crate::calendars::import::Defaults;
use crate::delivery::ssrf::GuardedResolver;
use crate::domain::{now_ms, Millis};
use crate::error::ApiError;
use crate::store::Calendar;

const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

pub fn router() -> Router<AppState> {
    Router::new().route("/calendars/{id}/refresh", post(refresh_now))
}

enum Fetched {
    NotModified,
    Body {
        text: String,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

async fn fetch(st: &AppState, cal: &Calendar, url: &str) -> Result<Fetched, String> {
    st.guard.check_literal(url)?;
    let client = reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver(st.guard.clone())))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(FETCH_TIMEOUT)
        .user_agent(st.config.delivery.user_agent.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = client.get(url);
    if let Some(e) = &cal.etag {
        req = req.header(IF_NONE_MATCH, e);
    }
    if let Some(m) = &cal.last_modified {
        req = req.header(IF_MODIFIED_SINCE, m);
    }
    let mut resp = req.send().await.map_err(|e| format!("fetch failed: {e}"))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified);
    }
    if !status.is_success() {
        return Err(format!("the feed answered {status}"));
    }
    let header = |h| {
        resp.headers()
            .get(h)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let (etag, last_modified) = (header(ETAG), header(LAST_MODIFIED));
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the feed: {e}"))?
    {
        if body.len() + chunk.len() > MAX_BYTES {
            return Err(format!(
                "the feed is larger than {MAX_BYTES} bytes (10 MiB)"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).map_err(|_| "the feed is not UTF-8 text".to_string())?;
    Ok(Fetched::Body {
        text,
        etag,
        last_modified,
    })
}

/// Fetches and imports one subscription now; the calendar as it is afterwards.
pub async fn refresh(st: &AppState, mut cal: Calendar, now: Millis) -> Result<Calendar, ApiError> {
    let Some(url) = cal.url.clone() else {
        return Err(ApiError::BadRequest(
            "this calendar has no url: it is filled by imports, not a subscription".into(),
        ));
    };
    cal.last_fetch_at = Some(now);
    cal.next_fetch_at = Some(now + cal.refresh.unwrap_or(3_600_000));
    cal.updated_at = now;
    let system = Caller {
        principal: Principal::Master,
        ip: None,
    };
    match fetch(st, &cal, &url).await {
        Ok(Fetched::NotModified) => {
            cal.last_result = Some("not modified".into());
            st.store.update_calendar(&cal).await?;
        }
        Ok(Fetched::Body {
            text,
            etag,
            last_modified,
        }) => {
            let before = cal.clone();
            cal.etag = etag;
            cal.last_modified = last_modified;
            let job = ImportJob {
                text: &text,
                over: &Defaults::default(),
                dry_run: false,
                rename: false,
                now,
            };
            if let Err(e) = import_into(st, &system, cal.clone(), job).await {
                // The events stay as they were; the validators too (the next fetch reads the
                // whole feed again).
                cal = before;
                cal.last_result = Some(format!("failed: {e}"));
                st.store.update_calendar(&cal).await?;
            }
        }
        Err(e) => {
            cal.last_result = Some(format!("failed: {e}"));
            st.store.update_calendar(&cal).await?;
        }
    }
    Ok(st.store.get_calendar(cal.id).await?.unwrap_or(cal))
}

/// Refresh a subscription now
///
/// Fetches the calendar's feed at once (instead of at its next refresh) and imports it.
#[utoipa::path(
    post,
    path = "/calendars/{id}/refresh",
    tag = "calendars",
    params(("id" = String, Path, description = "The calendar id")),
    responses(
        (status = 200, description = "The calendar after the fetch (see last_result)", body = CalendarOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn refresh_now(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<CalendarOut>, ApiError> {
    let cal = visible_calendar(&st, &caller, &raw).await?;
    let cal = refresh(&st, cal, now_ms()).await?;
    Ok(Json(CalendarOut::from(&cal)))
}
