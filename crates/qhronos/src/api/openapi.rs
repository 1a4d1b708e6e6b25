//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! types' `ToSchema` derives, served at `GET /openapi.json`.
//!
//! What every route has in common is added here from the permission table rather than repeated
//! on each handler: the bearer security requirement (none for `PUBLIC` routes), the role it
//! needs, and the 401 / 403 / 429 answers of the gate; a route with a body also answers 400 and
//! 413. `docs/openapi.json` is the checked-in copy; a test fails when it drifts.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder, Schema};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::inputs::Params;
use super::AppState;
use crate::auth::permissions::{PUBLIC, TABLE};
use crate::domain::duration::Dur;

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// The document, serialised once.
fn cached() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(document_json)
}

/// The OpenAPI 3.1 description of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "system",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)),
)]
pub async fn openapi_json() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], cached())
}

/// The document as a value.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as pretty-printed JSON with a trailing newline, exactly as checked in at
/// `docs/openapi.json`.
pub fn document_json() -> String {
    let mut s = serde_json::to_string_pretty(&document()).expect("the document serialises");
    s.push('\n');
    s
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Qhronos",
        description = "Scheduling and delivery service: register events (one-time or recurring by an \
iCalendar RRULE) and Qhronos delivers each occurrence as a signed webhook, an API call, a \
WebSocket message, an email or a message clients pull, retrying until it is acknowledged.\n\n\
Every route but `/health`, `/status`, `/openapi.json`, `/docs` and `/ws` (which takes its token \
inside the socket) needs `Authorization: Bearer <token>`. Errors are `{\"error\": \"message\"}`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        super::events::create_event,
        super::events_batch::create_events_batch,
        super::events::list_events,
        super::events::get_event,
        super::events::update_event,
        super::event_actions::delete_event,
        super::event_actions::pause_event,
        super::event_actions::resume_event,
        super::event_actions::trigger_event,
        super::bulk::pause_events,
        super::bulk::resume_events,
        super::bulk::delete_events,
        super::secrets::get_secret,
        super::history::list_versions,
        super::history::get_version,
        super::history::restore_version,
        super::occurrences::list_event_occurrences,
        super::occurrences::list_occurrences,
        super::occurrences::count_occurrences,
        super::occurrences::get_occurrence,
        super::occurrences::cancel_occurrence,
        super::occurrences::move_occurrence,
        super::occurrences::retry_occurrence,
        super::agenda::agenda,
        super::bulk::retry_occurrences,
        super::queues::claim,
        super::queues::ack,
        super::queues::nack,
        super::ws::upgrade,
        super::schedules::preview,
        super::templates::create_template,
        super::templates::list_templates,
        super::templates::get_template,
        super::templates::update_template,
        super::templates::delete_template,
        super::templates::list_versions,
        super::templates::render_template,
        super::tokens::create_token,
        super::tokens::list_tokens,
        super::tokens::revoke_token,
        super::audit::list_audit,
        super::analytics::get_analytics,
        super::system::health,
        super::system::status,
        super::system::metrics,
        super::admin::backup,
        super::admin::list_backups,
        super::admin::config_summary,
        super::me::whoami,
        super::channels::list_channels,
        super::archive::list_archived_occurrences,
        super::archive::get_archived_event,
        super::archive::export_archive,
        super::workflows::create_workflow,
        super::workflows::list_workflows,
        super::workflows::get_workflow,
        super::workflows::update_workflow,
        super::workflows::delete_workflow,
        super::calendars::create_calendar,
        super::calendars::list_calendars,
        super::calendars::get_calendar,
        super::calendars::delete_calendar,
        super::calendars::import,
        super::feeds::calendar_feed,
        super::feeds::events_feed,
        super::feeds::create_feed_token,
        super::conflicts::free_slots_handler,
        super::conflicts::conflicts_handler,
        super::calendar_feeds::refresh_now,
        openapi_json,
        super::docs::docs_page,
        super::mcp::mcp_doc,
    ),
    components(
        schemas(ErrorBody, EventPage, OccurrencePage, TokenPage, AuditPage, super::inputs::EventCreate, super::inputs::ScheduleIn, super::inputs::JsonScheduleIn, super::inputs::ActionIn, super::inputs::TimeZone),
        responses(BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PayloadTooLarge, Unprocessable, TooManyRequests),
    ),
    modifiers(&Common, &Params),
    tags(
        (name = "events", description = "Events: what to deliver, where, and when"),
        (name = "occurrences", description = "Occurrences: one due instance of an event, with its delivery attempts"),
        (name = "schedules", description = "Recurrence rules"),
        (name = "templates", description = "Named, versioned templates that actions use by name"),
        (name = "queues", description = "The pull channel: claim due occurrences over HTTP, then ack or nack each"),
        (name = "channels", description = "The WebSocket channel (docs/channels.md), what is connected to it, and the pull queues' depths"),
        (name = "tokens", description = "Issued tokens (JWT) with roles and tag scopes"),
        (name = "audit", description = "The audit log"),
        (name = "mcp", description = "The Model Context Protocol for AI agents (docs/mcp.md)"),
        (name = "archive", description = "What retention moved out of the hot tables (retention.archive)"),
        (name = "workflows", description = "Workflows: when an occurrence completes, fails or is missed, fire a follow-up"),
        (name = "calendars", description = "Calendars: iCalendar import, subscriptions and feeds (docs/calendars.md)"),
        (name = "analytics", description = "Delivery figures over time, kept in rollups written with the outcomes"),
        (name = "system", description = "Health, status and this document (no authentication)"),
    ),
)]
struct ApiDoc;

/// Name of the bearer security scheme.
const BEARER: &str = "bearer";

/// Applies what the permission table says to every operation.
struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.security_schemes.insert(
            BEARER.into(),
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The master token, or a token issued by `POST /tokens` (a JWT).",
                    ))
                    .build(),
            ),
        );
        doc.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
        for (path, item) in doc.paths.paths.iter_mut() {
            let public = PUBLIC.contains(&path.as_str());
            for (method, op) in operations(item) {
                if public {
                    // No security at all, overriding the global requirement; the rate limit
                    // (per client IP) still applies.
                    op.security = Some(Vec::new());
                    op.responses
                        .responses
                        .entry("429".to_string())
                        .or_insert_with(|| {
                            RefOr::Ref(Ref::from_response_name(TooManyRequests::NAME))
                        });
                    continue;
                }
                let Some((_, _, need)) = TABLE
                    .iter()
                    .find(|(m, r, _)| m.eq_ignore_ascii_case(method) && r == path)
                else {
                    continue;
                };
                let needs = format!(
                    "Needs a token with `{}` access{}.",
                    need.as_str(),
                    match need.as_str() {
                        "master" => " (the master token only)",
                        "admin" => " (or the master token)",
                        _ => " (`read_write`, `admin` and the master token include it)",
                    }
                );
                op.description = Some(match op.description.take() {
                    Some(d) if !d.is_empty() => format!("{d}\n\n{needs}"),
                    _ => needs,
                });
                let mut add = vec![
                    ("401", Unauthorized::NAME),
                    ("403", Forbidden::NAME),
                    ("429", TooManyRequests::NAME),
                ];
                if op.request_body.is_some() {
                    add.push(("400", BadRequest::NAME));
                    add.push(("413", PayloadTooLarge::NAME));
                }
                for (code, name) in add {
                    op.responses
                        .responses
                        .entry(code.to_string())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                }
            }
        }
    }
}

/// The operations of a path item with their methods, in a fixed order.
fn operations(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("GET", item.get.as_mut()),
        ("PUT", item.put.as_mut()),
        ("POST", item.post.as_mut()),
        ("DELETE", item.delete.as_mut()),
        ("PATCH", item.patch.as_mut()),
        ("HEAD", item.head.as_mut()),
        ("OPTIONS", item.options.as_mut()),
        ("TRACE", item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
    .collect()
}

/// Every error: a message that names the field and what would be accepted.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Error, example = json!({"error": "name is required (a non-empty string)"}))]
pub struct ErrorBody {
    pub error: String,
}

macro_rules! error_responses {
    ($($name:ident: $desc:literal;)*) => {$(
        pub struct $name;
        impl $name {
            pub const NAME: &'static str = stringify!($name);
        }
        impl<'s> utoipa::ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<Response>) {
                (
                    Self::NAME,
                    ResponseBuilder::new()
                        .description($desc)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("Error")))
                                .build(),
                        )
                        .build()
                        .into(),
                )
            }
        }
    )*};
}

error_responses! {
    BadRequest: "Bad input: the message names the field (or query parameter) and what would be accepted";
    Unauthorized: "No token, or a wrong, expired or revoked one (with `WWW-Authenticate: Bearer`)";
    Forbidden: "The token's role does not allow this route, or a tag is outside its scope";
    NotFound: "Unknown id (also for ids that are not UUIDs, and for events outside the token's scope)";
    Conflict: "A conflict with the current state";
    PayloadTooLarge: "The request body is over 1 MiB";
    Unprocessable: "The delivery target is refused by the SSRF guard; the message names the setting that allows it";
    TooManyRequests: "Rate limited: `Retry-After` says when to try again; every answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`";
}

/// `"250ms"`, `"5s"`, `"2m"`, `"1h"`, `"1d"`: a whole number with a unit.
impl PartialSchema for Dur {
    fn schema() -> RefOr<Schema> {
        RefOr::T(qhronos_schema::duration().into())
    }
}

impl ToSchema for Dur {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Duration")
    }
}

/// The role of an issued token.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Access)]
#[allow(dead_code)]
pub enum AccessDoc {
    Read,
    Write,
    ReadWrite,
    Admin,
}

/// An issued token, without the token itself.
#[derive(Serialize, ToSchema)]
#[schema(as = Token)]
#[allow(dead_code)]
pub struct TokenDoc {
    pub jti: String,
    /// Who the token is for.
    pub sub: String,
    pub access: AccessDoc,
    /// Tags the token is limited to; empty: every event.
    pub scope: Vec<String>,
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
}

/// A newly issued token: the record plus the token, shown only in this answer.
#[derive(Serialize, ToSchema)]
#[schema(as = TokenCreated)]
#[allow(dead_code)]
pub struct TokenCreatedDoc {
    pub jti: String,
    pub sub: String,
    pub access: AccessDoc,
    pub scope: Vec<String>,
    #[schema(format = DateTime)]
    pub expires_at: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub revoked_at: Option<String>,
    /// The WebSocket client names the token may register besides its `sub` (its `clients`
    /// claim; not kept in the token list).
    pub clients: Vec<String>,
    /// The bearer token (a JWT). Shown only here.
    pub token: String,
    /// Always `jwt`.
    #[serde(rename = "type")]
    #[schema(example = "jwt")]
    pub kind: String,
}

/// One line of the audit log. Never holds secrets, metadata or headers.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditEntry)]
#[allow(dead_code)]
pub struct AuditEntryDoc {
    pub id: i64,
    #[schema(format = DateTime)]
    pub at: String,
    /// `master` or `token:<jti> (<sub>)`.
    pub actor: String,
    /// e.g. `event.create`, `occurrence.retry`, `token.revoke`.
    pub action: String,
    /// The id of what was changed.
    pub target: Option<String>,
    /// The client's IP address.
    pub ip: Option<String>,
    /// What changed (names of fields, never their secret values).
    #[schema(value_type = Object)]
    pub summary: serde_json::Value,
}

macro_rules! pages {
    ($($page:ident of $item:ty;)*) => {$(
        /// A page of a list, newest first. Pass `next_cursor` back as `cursor` for the next page;
        /// `null` on the last page.
        #[derive(Serialize, ToSchema)]
        #[allow(dead_code)]
        pub struct $page {
            pub data: Vec<$item>,
            pub next_cursor: Option<String>,
        }
    )*};
}

pages! {
    EventPage of super::event_io::EventOut;
    OccurrencePage of super::occurrences::OccOut;
    TokenPage of TokenDoc;
    AuditPage of AuditEntryDoc;
}

/// `GET /health`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Health {
    /// `ok` or `unhealthy`.
    #[schema(example = "ok")]
    pub status: String,
    /// Why it is unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The full-text index of events (`GET /events?q=`): `ok` or `unavailable`; absent when
    /// the database does not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "ok")]
    pub search: Option<String>,
}

/// `GET /status`. Never a secret.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Status {
    pub version: String,
    pub uptime_seconds: u64,
    #[schema(format = DateTime)]
    pub started_at: String,
    /// The store kind, e.g. `sqlite`.
    pub store: String,
    pub scheduler: SchedulerStatus,
    /// Occurrence counts by status; `null` when the store could not be read.
    pub occurrences: Option<BTreeMap<String, i64>>,
    pub queue: QueueStatus,
    /// What the last retention pass removed; `null` before the first pass.
    pub retention: Option<RetentionStatus>,
}

/// Where a backup was written.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct BackupOut {
    /// Absolute path of the new file on the server.
    pub path: String,
    pub bytes: u64,
    pub took_ms: i64,
}

/// `GET /admin/config`. No secret: those that are set read `***`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConfigSummary {
    pub version: String,
    /// The store kind, e.g. `sqlite`.
    pub store: String,
    #[schema(format = DateTime)]
    pub started_at: String,
    pub uptime_seconds: u64,
    /// Every setting as in docs/configuration.md, secrets masked.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
}

/// Whether the engine keeps up.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct QueueStatus {
    /// Age of the oldest pending occurrence past its due time; `null` when none is overdue.
    pub oldest_overdue_seconds: Option<f64>,
    /// How far the earliest unexpanded instance of a series lies inside the look-ahead window
    /// (0 when the expander keeps up).
    pub expander_lag_seconds: f64,
    /// Moving average of send time minus due time of recent first attempts, in milliseconds.
    pub fire_lag_ms: f64,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct RetentionStatus {
    #[schema(format = DateTime)]
    pub ran_at: String,
    pub removed: RetentionRemoved,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct RetentionRemoved {
    pub occurrences_done: u64,
    pub occurrences_failed: u64,
    pub events: u64,
    /// Archived occurrences deleted after `retention.archive_for`.
    pub archive_occurrences_expired: u64,
    /// Archived events deleted after `retention.archive_for`.
    pub archive_events_expired: u64,
    /// Analytics rows (older than `retention.analytics`).
    pub analytics: u64,
    /// Whole partitions of occurrences dropped (PostgreSQL); their occurrences are counted
    /// in `occurrences_done` and `occurrences_failed`.
    pub partitions: u64,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct SchedulerStatus {
    #[schema(format = DateTime)]
    pub heartbeat_at: Option<String>,
    pub heartbeat_age_ms: i64,
    pub healthy: bool,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    /// The document as JSON.
    fn doc() -> Value {
        serde_json::to_value(super::document()).expect("the document serialises")
    }

    /// The property names of component schema `name`.
    fn properties(doc: &Value, name: &str) -> BTreeSet<String> {
        doc["components"]["schemas"][name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} has no properties"))
            .keys()
            .cloned()
            .collect()
    }

    /// Every field of `recur::JsonSchedule` set (no `..Default::default()`: a new field does not
    /// compile here until it is added).
    fn full_schedule() -> recur::JsonSchedule {
        recur::JsonSchedule {
            frequency: "yearly".into(),
            interval: Some(2),
            by_day: vec!["MO".into()],
            by_month_day: vec![1],
            by_month: vec![1],
            by_year_day: vec![1],
            by_week_no: vec![1],
            by_hour: vec![9],
            by_minute: vec![0],
            by_second: vec![0],
            by_set_pos: vec![1],
            week_start: Some("SU".into()),
            count: Some(3),
            until: Some("2030-01-01".into()),
        }
    }

    #[test]
    fn the_json_schedule_schema_names_exactly_the_fields_recur_serialises() {
        let doc = doc();
        let written = serde_json::to_value(full_schedule()).expect("serialises");
        let fields: BTreeSet<String> = written
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect();
        assert_eq!(properties(&doc, "JsonSchedule"), fields);
    }

    #[test]
    fn every_schedule_field_of_the_api_points_at_the_json_schedule_schema() {
        let doc = doc();
        let schemas = &doc["components"]["schemas"];
        let json_form = Value::String("#/components/schemas/JsonScheduleIn".into());
        let one_of = schemas["ScheduleIn"]["oneOf"]
            .as_array()
            .expect("ScheduleIn is a oneOf");
        assert_eq!(one_of.len(), 2);
        assert_eq!(one_of[0]["type"], "string");
        assert_eq!(one_of[1]["$ref"], json_form);
        // The JSON form's alternatives have exactly recur's fields between them.
        let mut fields = BTreeSet::new();
        for alt in schemas["JsonScheduleIn"]["oneOf"]
            .as_array()
            .expect("a oneOf")
        {
            fields.extend(
                alt["properties"]
                    .as_object()
                    .expect("an object")
                    .keys()
                    .cloned(),
            );
        }
        assert_eq!(fields, properties(&doc, "JsonSchedule"));
        // Inputs take either form; outputs give the JSON form next to the canonical RRULE.
        for input in ["EventIn", "PreviewIn"] {
            let s = &schemas[input]["properties"]["schedule"];
            assert!(
                s.to_string().contains("#/components/schemas/ScheduleIn"),
                "{input}.schedule: {s}"
            );
        }
        for output in ["EventOut", "PreviewOut"] {
            let s = &schemas[output]["properties"]["schedule_json"];
            assert!(
                s.to_string().contains("#/components/schemas/JsonSchedule"),
                "{output}.schedule_json: {s}"
            );
        }
    }
}
