//! `/calendars`: calendars (create, list, read, delete) and `POST /calendars/import` (an
//! iCalendar file into a calendar's events; the work is in `calendar_import.rs`).

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::calendar_import::{import_into, ImportJob, ImportOut};
use super::extract::{Body, Params};
use super::AppState;
use crate::auth::Caller;
use crate::calendars::ics::MAX_BYTES;
use crate::calendars::import::Defaults;
use crate::domain::duration::Dur;
use crate::domain::{fmt_ms, now_ms, Millis};
use crate::error::ApiError;
use crate::store::Calendar;

/// An import body may carry a 10 MiB file escaped in JSON.
const IMPORT_BODY_LIMIT: usize = MAX_BYTES + MAX_BYTES / 4;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/calendars", post(create_calendar).get(list_calendars))
        .route(
            "/calendars/import",
            post(import).layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT)),
        )
        .route("/calendars/{id}", get(get_calendar).delete(delete_calendar))
}

/// The body of `POST /calendars`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CalendarIn {
    /// 1 to 256 characters
    name: Option<String>,
    /// `free` (default: overlaps are saved and reported) or `auto_plan` (an overlapping create
    /// or update is refused with the nearest free slots)
    mode: Option<String>,
    /// What the calendar's imported events take where the file says nothing
    defaults: Option<Defaults>,
    /// A feed to keep the calendar in step with (http or https); none for a calendar filled by
    /// imports
    url: Option<String>,
    /// How often the feed is fetched (`"15m"`, at least `"1m"`; default `"1h"`)
    refresh: Option<String>,
}

/// A calendar.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CalendarOut {
    pub id: Uuid,
    pub name: String,
    pub mode: String,
    pub defaults: Defaults,
    pub tags: Vec<String>,
    pub url: Option<String>,
    pub refresh: Option<String>,
    /// When the feed was last fetched
    pub last_fetch_at: Option<String>,
    /// What the last import or fetch did (`"ok"`, `"not modified"`, `"failed: …"`)
    pub last_result: Option<String>,
    pub next_fetch_at: Option<String>,
    /// The counts of the last import: created, updated, removed, unchanged, skipped
    #[schema(value_type = Option<Object>)]
    pub counts: Option<Value>,
    /// How many live events the calendar has (only in `GET /calendars/{id}`)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<usize>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Calendar> for CalendarOut {
    fn from(c: &Calendar) -> Self {
        CalendarOut {
            id: c.id,
            name: c.name.clone(),
            mode: c.mode.clone(),
            defaults: defaults_of(c),
            tags: c.tags.clone(),
            url: c.url.clone(),
            refresh: c
                .refresh
                .map(|ms| Dur::from_millis(u64::try_from(ms).unwrap_or(0)).to_string()),
            last_fetch_at: c.last_fetch_at.map(fmt_ms),
            last_result: c.last_result.clone(),
            next_fetch_at: c.next_fetch_at.map(fmt_ms),
            counts: c.counts.clone(),
            events: None,
            created_at: fmt_ms(c.created_at),
            updated_at: fmt_ms(c.updated_at),
        }
    }
}

/// The stored defaults (validated when saved).
pub(super) fn defaults_of(c: &Calendar) -> Defaults {
    serde_json::from_value(c.defaults.clone()).unwrap_or_default()
}

fn not_found(raw: &str) -> ApiError {
    ApiError::NotFound(format!("calendar '{raw}' not found"))
}

/// A calendar the caller may see: a scoped token sees calendars whose tags its scope covers.
pub(super) async fn visible_calendar(
    st: &AppState,
    caller: &Caller,
    raw: &str,
) -> Result<Calendar, ApiError> {
    let id = Uuid::parse_str(raw.trim()).map_err(|_| not_found(raw))?;
    match st.store.get_calendar(id).await? {
        Some(c) if caller.principal.can_see(&c.tags) => Ok(c),
        _ => Err(not_found(raw)),
    }
}

/// A new calendar from a body (shared by `POST /calendars` and an import without a calendar).
pub(super) fn new_calendar(
    caller: &Caller,
    name: String,
    mode: Option<&str>,
    defaults: Defaults,
    now: Millis,
) -> Result<Calendar, ApiError> {
    let bad = ApiError::BadRequest;
    let name = name.trim().to_string();
    if name.is_empty() || name.chars().count() > 256 {
        return Err(bad("name: 1 to 256 characters".into()));
    }
    let mode = match mode.unwrap_or("free") {
        m @ ("free" | "auto_plan") => m.to_string(),
        m => {
            return Err(bad(format!(
                "mode '{m}' is unknown: expected free or auto_plan"
            )))
        }
    };
    if let Some(tz) = &defaults.timezone {
        jiff::tz::TimeZone::get(tz).map_err(|_| {
            bad(format!(
                "defaults.timezone: unknown time zone '{tz}': expected an IANA name such as Europe/Berlin"
            ))
        })?;
    }
    if let Some(t) = &defaults.fire_time {
        t.parse::<jiff::civil::Time>().map_err(|_| {
            bad(format!(
                "defaults.fire_time: '{t}' is not a time of day: expected HH:MM"
            ))
        })?;
    }
    let mut defaults = defaults;
    defaults.tags = caller.principal.scoped_tags(defaults.tags)?;
    Ok(Calendar {
        id: Uuid::now_v7(),
        name,
        mode,
        tags: defaults.tags.clone(),
        defaults: serde_json::to_value(&defaults).unwrap_or(Value::Null),
        url: None,
        refresh: None,
        etag: None,
        last_modified: None,
        last_fetch_at: None,
        last_result: None,
        next_fetch_at: None,
        counts: None,
        created_at: now,
        updated_at: now,
        events_gen: 0,
    })
}

/// Create a calendar
///
/// A calendar groups events: those imported into it (`POST /calendars/import`), those fetched
/// from its feed (`url`), and those created with its `calendar_id`.
#[utoipa::path(
    post,
    path = "/calendars",
    tag = "calendars",
    request_body = CalendarIn,
    responses(
        (status = 201, description = "Created", body = CalendarOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 403, response = super::openapi::Forbidden),
        (status = 422, response = super::openapi::Unprocessable),
    ),
)]
pub(super) async fn create_calendar(
    State(st): State<AppState>,
    caller: Caller,
    Body(input, _): Body<CalendarIn>,
) -> Result<(StatusCode, Json<CalendarOut>), ApiError> {
    let now = now_ms();
    let name = input
        .name
        .ok_or_else(|| ApiError::BadRequest("name is required (1 to 256 characters)".into()))?;
    let mut cal = new_calendar(
        &caller,
        name,
        input.mode.as_deref(),
        input.defaults.unwrap_or_default(),
        now,
    )?;
    if let Some(url) = input.url {
        let refresh: Dur = input
            .refresh
            .as_deref()
            .unwrap_or("1h")
            .parse()
            .map_err(|e| ApiError::BadRequest(format!("refresh: {e}")))?;
        if refresh.as_millis() < 60_000 {
            return Err(ApiError::BadRequest("refresh: at least 1m".into()));
        }
        check_feed_url(&st, &url).await?;
        if defaults_of(&cal).action.is_none() {
            return Err(ApiError::BadRequest(
                "defaults.action is required for a subscription: how its events are delivered"
                    .into(),
            ));
        }
        cal.url = Some(url);
        cal.refresh = Some(refresh.as_millis());
        cal.next_fetch_at = Some(now);
    } else if input.refresh.is_some() {
        return Err(ApiError::BadRequest(
            "refresh: only with url (a subscription)".into(),
        ));
    }
    st.store.create_calendar(&cal).await?;
    st.audit_in(
        &caller,
        "calendar.create",
        Some(cal.id.to_string()),
        &cal.tags,
        json!({"name": cal.name, "url": cal.url}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(CalendarOut::from(&cal))))
}

/// A page of calendars, oldest first. Pass `next_cursor` back as `cursor` for the next page;
/// `null` on the last page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CalendarPage {
    pub data: Vec<CalendarOut>,
    pub next_cursor: Option<String>,
}

/// List calendars
///
/// The calendars the caller may see, oldest first, a page at a time, with each
/// subscription's last fetch, its result and the counts of its last import.
#[utoipa::path(
    get,
    path = "/calendars",
    tag = "calendars",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 50", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of calendars", body = CalendarPage),
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub(super) async fn list_calendars(
    State(st): State<AppState>,
    caller: Caller,
    p: Params,
) -> Result<Json<CalendarPage>, ApiError> {
    Ok(Json(calendar_page(&st, &caller, &p).await?))
}

/// One page of `GET /calendars` (`limit`, `cursor` in `p`); shared with the MCP tool.
pub(super) async fn calendar_page(
    st: &AppState,
    caller: &Caller,
    p: &Params,
) -> Result<CalendarPage, ApiError> {
    p.only(&["limit", "cursor"])?;
    let limit = p.limit()?;
    let (items, next) = super::extract::visible_page(
        p.id_cursor()?,
        limit,
        |from, n| {
            let store = st.store.clone();
            Box::pin(async move { Ok(store.list_calendars(from, n).await?) })
        },
        |x| x.id,
        |x| caller.principal.can_see(&x.tags),
    )
    .await?;
    let data: Vec<CalendarOut> = items.iter().map(CalendarOut::from).collect();
    Ok(CalendarPage {
        data,
        next_cursor: next,
    })
}

/// Read a calendar
#[utoipa::path(
    get,
    path = "/calendars/{id}",
    tag = "calendars",
    params(("id" = String, Path, description = "The calendar id")),
    responses(
        (status = 200, description = "The calendar", body = CalendarOut),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn get_calendar(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<CalendarOut>, ApiError> {
    let c = visible_calendar(&st, &caller, &raw).await?;
    let mut out = CalendarOut::from(&c);
    out.events = Some(st.store.calendar_events(c.id).await?.len());
    Ok(Json(out))
}

/// Delete a calendar
///
/// Its events stay (without a calendar); delete them first if they should go too.
#[utoipa::path(
    delete,
    path = "/calendars/{id}",
    tag = "calendars",
    params(("id" = String, Path, description = "The calendar id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn delete_calendar(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let c = visible_calendar(&st, &caller, &raw).await?;
    if !st.store.delete_calendar(c.id, now_ms()).await? {
        return Err(not_found(&raw));
    }
    st.audit_in(
        &caller,
        "calendar.delete",
        Some(c.id.to_string()),
        &c.tags,
        json!({"name": c.name}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// A feed URL: http or https, and allowed by the SSRF guard (as a webhook target is).
async fn check_feed_url(st: &AppState, url: &str) -> Result<(), ApiError> {
    let parsed = url::Url::parse(url)
        .map_err(|_| ApiError::BadRequest(format!("url: '{url}' is not a valid URL")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::BadRequest(format!(
            "url: scheme '{}' is not allowed: use http or https",
            parsed.scheme()
        )));
    }
    st.guard
        .check_url(url)
        .await
        .map_err(|e| ApiError::Unprocessable(format!("url: {e}")))
}

/// The JSON body of `POST /calendars/import`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ImportIn {
    /// The iCalendar text (at most 10 MiB, 10,000 components)
    ics: String,
    /// The calendar to import into (re-importing keeps it in step: updated by UID, vanished
    /// events removed); none: a new calendar is created
    calendar_id: Option<String>,
    /// The new calendar's name (default: the file's X-WR-CALNAME)
    name: Option<String>,
    /// Over the calendar's stored defaults for this import (a new calendar keeps them)
    defaults: Option<Defaults>,
    /// Only say what would change
    #[serde(default)]
    dry_run: bool,
}

/// Import an iCalendar file
///
/// A `text/calendar` body (with `?calendar_id=` and `?dry_run=true`), or JSON `{ics,
/// calendar_id?, name?, defaults?, dry_run?}`. Each VEVENT becomes an event (its UID kept as
/// `external_id`); importing the same file again changes nothing, a changed file updates by
/// UID and removes the calendar's events that vanished. One transaction: a failed import
/// changes nothing. The answer lists what was (with `dry_run`, would be) created, updated,
/// removed, unchanged and skipped — with why and the line of each skipped VEVENT.
///
/// The events it creates or changes are checked for conflicts as single creates are, in the
/// order of the file: into an `auto_plan` calendar any overlap refuses the import (409);
/// into a `free` one `conflicts` lists them.
#[utoipa::path(
    post,
    path = "/calendars/import",
    tag = "calendars",
    request_body(content(
        (ImportIn = "application/json"),
        (String = "text/calendar"),
    )),
    params(
        ("calendar_id" = Option<String>, Query, description = "With a text/calendar body: the calendar to import into"),
        ("dry_run" = Option<bool>, Query, description = "With a text/calendar body: only say what would change"),
    ),
    responses(
        (status = 200, description = "What the import did (or would do)", body = ImportOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, description = "Into an auto_plan calendar: imported events overlap others; nothing was imported. `items` lists each: `{uid, line, status, error, conflicts, proposals}`", body = Object),
        (status = 413, description = "The body is larger than 12.5 MiB"),
        (status = 422, response = super::openapi::Unprocessable),
    ),
)]
pub(super) async fn import(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Params(q): Params,
    body: Bytes,
) -> Result<Json<ImportOut>, ApiError> {
    let bad = ApiError::BadRequest;
    let ctype = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let input = if ctype.starts_with("text/calendar") {
        let ics = String::from_utf8(body.to_vec())
            .map_err(|_| bad("the body is not UTF-8 text: iCalendar files are UTF-8".into()))?;
        let dry_run = match q.get("dry_run").map(String::as_str) {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => return Err(bad(format!("dry_run: '{v}' is not true or false"))),
        };
        ImportIn {
            ics,
            calendar_id: q.get("calendar_id").cloned(),
            name: None,
            defaults: None,
            dry_run,
        }
    } else {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(bad(
                "request body is empty: expected text/calendar, or JSON {\"ics\": …}".into(),
            ));
        }
        serde_json::from_slice::<ImportIn>(&body)
            .map_err(|e| bad(format!("invalid request body: {e} (send the file as text/calendar, or JSON {{\"ics\": …}})")))?
    };
    let now = now_ms();
    let over = input.defaults.unwrap_or_default();
    // A new calendar is written with the import, in its transaction: a failed import leaves
    // none behind. Without a name it takes the file's X-WR-CALNAME.
    let (cal, named) = match &input.calendar_id {
        Some(raw) => (visible_calendar(&st, &caller, raw).await?, true),
        None => {
            let name = input.name.clone();
            let named = name.is_some();
            let name = name.unwrap_or_else(|| "imported calendar".into());
            (new_calendar(&caller, name, None, over.clone(), now)?, named)
        }
    };
    let job = ImportJob {
        text: &input.ics,
        over: &over,
        dry_run: input.dry_run,
        rename: !named,
        now,
    };
    Ok(Json(import_into(&st, &caller, cal, job).await?))
}
