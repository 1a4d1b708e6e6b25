//! iCalendar feeds: `GET /calendars/{id}/feed.ics` and `GET /events.ics?tags=`, and the feed
//! tokens calendar apps use (`POST /feed-tokens`). A calendar app cannot send a header, so a
//! feed URL carries its token in `?token=`; the gate takes it there only for `.ics` routes, and
//! a feed token (subject `feed:…`) is refused everywhere else: it reads one feed, nothing more.
//! Feed tokens are ordinary issued tokens (read access, a scope), so `GET /tokens` lists them
//! and `DELETE /tokens/{jti}` revokes them.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::calendars::visible_calendar;
use super::extract::{Body, Params};
use super::AppState;
use crate::auth::{Access, Caller, Principal};
use crate::calendars::export::feed;
use crate::domain::event::Event;
use crate::domain::{fmt_ms, now_ms, parse_time};
use crate::error::ApiError;
use crate::store::{EventFilter, TokenRecord};

/// The subject prefix of feed tokens.
pub const FEED_SUB: &str = "feed:";
/// Most events one feed lists.
const MAX_FEED_EVENTS: usize = 10_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/calendars/{id}/feed.ics", get(calendar_feed))
        .route("/events.ics", get(events_feed))
        .route("/feed-tokens", post(create_feed_token))
}

/// True for a feed token's principal.
pub fn is_feed_token(p: &Principal) -> bool {
    matches!(p, Principal::Token { sub, .. } if sub.starts_with(FEED_SUB))
}

/// A feed token may read only the feed it was issued for.
fn check_feed(caller: &Caller, feed_sub: &str) -> Result<(), ApiError> {
    match &caller.principal {
        Principal::Token { sub, .. } if sub.starts_with(FEED_SUB) && sub != feed_sub => Err(
            ApiError::Forbidden("this feed token is for another feed".into()),
        ),
        _ => Ok(()),
    }
}

fn ics(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=60"),
        ],
        body,
    )
        .into_response()
}

/// A calendar's feed
///
/// The calendar's events as iCalendar (VEVENT with RRULE, EXDATE, RDATE, DURATION;
/// VTIMEZONE for each zone; moved and cancelled instances as RECURRENCE-ID overrides). A
/// calendar app subscribes to it with a feed token in `?token=` (`POST /feed-tokens`).
#[utoipa::path(
    get,
    path = "/calendars/{id}/feed.ics",
    tag = "calendars",
    params(
        ("id" = String, Path, description = "The calendar id"),
        ("token" = Option<String>, Query, description = "A feed token (instead of the Authorization header)"),
    ),
    responses(
        (status = 200, description = "The feed", content_type = "text/calendar", body = String),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn calendar_feed(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let cal = visible_calendar(&st, &caller, &raw).await?;
    check_feed(&caller, &format!("{FEED_SUB}calendar:{}", cal.id))?;
    let events: Vec<Event> = st
        .store
        .calendar_events(cal.id)
        .await?
        .into_iter()
        .filter(|e| caller.principal.can_see(&e.tags))
        .take(MAX_FEED_EVENTS)
        .collect();
    render(&st, &cal.name, events).await
}

async fn render(st: &AppState, name: &str, events: Vec<Event>) -> Result<Response, ApiError> {
    let ids: Vec<Uuid> = events
        .iter()
        .filter(|e| e.schedule.is_some())
        .map(|e| e.id)
        .collect();
    let overrides = st.store.overrides(&ids).await?;
    let name = name.to_string();
    let now = now_ms();
    let text = tokio::task::spawn_blocking(move || feed(&name, &events, &overrides, now))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("feed task failed: {e}")))?;
    Ok(ics(text))
}

/// Events as a feed
///
/// The events carrying any of `tags` (all the caller may see without), as iCalendar, like
/// a calendar's feed; at most 10,000 events, newest first.
#[utoipa::path(
    get,
    path = "/events.ics",
    tag = "calendars",
    params(
        ("tags" = Option<String>, Query, description = "Comma-separated: events with any of these tags"),
        ("token" = Option<String>, Query, description = "A feed token (instead of the Authorization header)"),
    ),
    responses(
        (status = 200, description = "The feed", content_type = "text/calendar", body = String),
        (status = 401, response = super::openapi::Unauthorized),
        (status = 403, response = super::openapi::Forbidden),
    ),
)]
pub(super) async fn events_feed(
    State(st): State<AppState>,
    caller: Caller,
    Params(q): Params,
) -> Result<Response, ApiError> {
    check_feed(&caller, &format!("{FEED_SUB}events"))?;
    let requested: Vec<String> = q
        .get("tags")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let Some(tags) = caller.principal.filter_tags(requested) else {
        return render(&st, "Qhronos events", Vec::new()).await;
    };
    let mut events = Vec::new();
    let mut before = None;
    loop {
        let page = st
            .store
            .list_events(&EventFilter {
                tags: tags.clone(),
                status: None,
                limit: 1000,
                before_id: before,
            })
            .await?;
        let done = page.len() < 1000;
        before = page.last().map(|e| e.id);
        events.extend(page);
        if done || events.len() >= MAX_FEED_EVENTS {
            break;
        }
    }
    events.truncate(MAX_FEED_EVENTS);
    let name = if tags.is_empty() {
        "Qhronos events".to_string()
    } else {
        format!("Qhronos events: {}", tags.join(", "))
    };
    render(&st, &name, events).await
}

/// The body of `POST /feed-tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct FeedTokenIn {
    /// The calendar whose feed the token reads; none: `/events.ics`
    calendar_id: Option<String>,
    /// For `/events.ics`: the tags the token may read (within the caller's scope)
    #[serde(default)]
    tags: Vec<String>,
    /// When it stops working (RFC 3339); default a year from now
    expires_at: Option<String>,
}

/// A feed token and the URL that carries it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct FeedTokenOut {
    /// Revoke it with `DELETE /tokens/{jti}`
    jti: String,
    token: String,
    /// The feed's path with the token, for a calendar app's "subscribe by URL"
    feed_url: String,
    scope: Vec<String>,
    expires_at: String,
}

/// Issue a feed token
///
/// A read-only token for one feed, which calendar apps carry in the feed URL (`?token=`). It
/// reads that feed and nothing else, within the issuer's scope; `DELETE /tokens/{jti}`
/// revokes it.
#[utoipa::path(
    post,
    path = "/feed-tokens",
    tag = "calendars",
    request_body = FeedTokenIn,
    responses(
        (status = 201, description = "Issued", body = FeedTokenOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn create_feed_token(
    State(st): State<AppState>,
    caller: Caller,
    Body(input, _): Body<FeedTokenIn>,
) -> Result<(StatusCode, Json<FeedTokenOut>), ApiError> {
    if is_feed_token(&caller.principal) {
        return Err(ApiError::Forbidden(
            "a feed token cannot issue tokens".into(),
        ));
    }
    let now = now_ms();
    let expires_at = match input.expires_at.as_deref() {
        None => now + 366 * 86_400_000,
        Some(s) => parse_time("expires_at", s)
            .map_err(ApiError::BadRequest)?
            .as_millisecond(),
    };
    if expires_at <= now {
        return Err(ApiError::BadRequest(
            "expires_at must be in the future".into(),
        ));
    }
    let (sub, scope, path) = match &input.calendar_id {
        Some(raw) => {
            if !input.tags.is_empty() {
                return Err(ApiError::BadRequest(
                    "tags: only for an /events.ics token (a calendar's token reads its calendar)"
                        .into(),
                ));
            }
            let cal = visible_calendar(&st, &caller, raw).await?;
            let scope = match caller.principal.scope() {
                Some(s) => s.to_vec(),
                None => cal.tags.clone(),
            };
            (
                format!("{FEED_SUB}calendar:{}", cal.id),
                scope,
                format!("/calendars/{}/feed.ics", cal.id),
            )
        }
        None => {
            let scope = caller.principal.scoped_tags(input.tags.clone())?;
            let q = if input.tags.is_empty() {
                String::new()
            } else {
                format!("tags={}&", input.tags.join(","))
            };
            (
                format!("{FEED_SUB}events"),
                scope,
                format!("/events.ics?{q}"),
            )
        }
    };
    let wanted = super::tokens::Wanted {
        sub: &sub,
        access: Access::Read,
        scope: &scope,
        clients: &[],
        expires_at,
    };
    let (token, TokenRecord { jti, .. }) =
        super::tokens::issue_token(&st, &caller, wanted, now).await?;
    let sep = if path.contains('?') { "" } else { "?" };
    Ok((
        StatusCode::CREATED,
        Json(FeedTokenOut {
            jti,
            feed_url: format!("{path}{sep}token={token}"),
            token,
            scope,
            expires_at: fmt_ms(expires_at),
        }),
    ))
}
