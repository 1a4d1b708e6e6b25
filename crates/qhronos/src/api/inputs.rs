//! The schemas of request fields, from `qhronos-schema` (the fragments the MCP tools use too),
//! with this API's descriptions; and the create form of an event, whose alternatives say which
//! fields go together.
//!
//! The request types name these functions in `#[schema(schema_with = …)]`, so the document
//! says what the handlers accept: formats, patterns, enums, lengths and ranges. A test in
//! `tests/api/schema_fuzz.rs` sends requests generated from the document and counts refusals.

use std::borrow::Cow;

use qhronos_schema::{self as schema, limits};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::{Object, Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

fn describe(mut o: Object, d: &str) -> Object {
    o.description = Some(d.to_string());
    o
}

fn describe_schema(mut s: Schema, d: &str) -> Schema {
    match &mut s {
        Schema::Object(o) => o.description = Some(d.to_string()),
        Schema::Array(a) => a.description = Some(d.to_string()),
        Schema::OneOf(o) => o.description = Some(d.to_string()),
        _ => {}
    }
    s
}

pub fn event_name() -> Object {
    describe(
        schema::text(limits::NAME_MAX),
        "Required on create: 1 to 256 characters, not only white space (it is trimmed)",
    )
}

pub fn start_time() -> Object {
    describe(
        schema::date_time(),
        "Required on create (or `start_in`): RFC 3339 with an offset; the one-time instant, or DTSTART of a series",
    )
}

pub fn start_in() -> Object {
    describe(
        schema::duration_up_to(limits::START_IN_MAX_MS),
        "Instead of `start_time`: a delay from now, a whole number with a unit ms, s, m, h or d (`\"20m\"`, `\"2h\"`, at most 36500d). Resolved once, when the request is handled, and stored as the instant (responses show `start_time`); giving both is a 400",
    )
}

pub fn event_duration() -> Object {
    describe(
        schema::duration_up_to(366 * 86_400_000),
        "How long each occurrence lasts, 1 ms to 366d (`\"45m\"`, `\"1h\"`; an all-day event: whole days). Occurrences and webhooks carry `ends_at`",
    )
}

pub fn end_time() -> Object {
    describe(
        schema::date_time(),
        "Instead of `duration`: when the first occurrence ends, after its start (RFC 3339; a local time with `timezone`)",
    )
}

pub fn start_date() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Date,
        )))
        .pattern(Some("^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])$"))
        .description(Some("Instead of `start_time`, for an all-day event: the local date in `timezone` (required with it)"))
        .build()
}

pub fn fire_time() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$"))
        .description(Some("With `start_date`: the local time of day it fires at, `HH:MM` or `HH:MM:SS` (default `00:00`)"))
        .build()
}

pub fn timezone() -> RefOr<Schema> {
    Ref::from_schema_name(TimeZone::name()).into()
}

pub fn date_times() -> Schema {
    describe_schema(
        schema::date_times(),
        "RFC 3339 instants (at most 1000): `exdates` removes them from the set, `rdates` adds them",
    )
}

/// `events` of `POST /events/batch`: 1 to 1,000 events, each as in `POST /events`.
pub fn batch_events() -> Schema {
    ArrayBuilder::new()
        .items(Ref::from_schema_name(EventCreate::name()))
        .min_items(Some(1))
        .max_items(Some(limits::BATCH_MAX))
        .description(Some("1 to 1,000 events, each as in `POST /events`"))
        .build()
        .into()
}

pub fn tags() -> Schema {
    schema::tags()
}

pub fn metadata() -> Object {
    describe(
        schema::any_object(),
        "Any JSON object (at most 64 KiB), sent in the webhook body",
    )
}

pub fn legacy_url() -> Object {
    describe(
        schema::http_url(),
        "Legacy: a webhook URL, instead of `action`",
    )
}

pub fn secret() -> Object {
    describe(
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
                Type::String,
                Type::Null,
            ]))
            .min_length(Some(1))
            .build(),
        "Write-only signing secret (`whsec_` + base64, or any string). Omitted on create: one is generated and returned once, in `hmac_secret` of the 201. `null` on an update generates a new one (returned once in the 200)",
    )
}

pub fn event_status() -> Object {
    describe(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["active", "paused"]))
            .build(),
        "`active` (default) or `paused`",
    )
}

pub fn action() -> RefOr<Schema> {
    Ref::from_schema_name(ActionIn::name()).into()
}

/// A rule, or `null`: none (on an update, `null` removes the rule).
pub fn schedule() -> Schema {
    OneOfBuilder::new()
        .item(Ref::from_schema_name(ScheduleIn::name()))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

pub fn preview_limit() -> Object {
    describe(
        schema::int(1, limits::PREVIEW_MAX as u64),
        "How many instants (default 10, at most 1000)",
    )
}

pub fn after() -> Object {
    describe(schema::date_time(), "Only instants strictly after this")
}

pub fn token_sub() -> Object {
    describe(
        schema::text(limits::SUB_MAX),
        "Required: who the token is for (1 to 256 characters, trimmed)",
    )
}

pub fn scope() -> Schema {
    ArrayBuilder::new()
        .items(schema::tag())
        .description(Some("Tags the token is limited to; empty: every event"))
        .build()
        .into()
}

pub fn clients() -> Schema {
    ArrayBuilder::new()
        .items(schema::key())
        .max_items(Some(limits::CLIENTS_MAX))
        .description(Some("WebSocket client names the token may register (`GET /ws` client hooks), besides the one equal to its `sub`; at most 100, each 1 to 128 of A-Z a-z 0-9 . _ -"))
        .build()
        .into()
}

pub fn expires_at() -> Object {
    describe(
        schema::date_time(),
        "Required: an RFC 3339 time in the future (one in the past is a 400)",
    )
}

pub fn token_type() -> Object {
    describe(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["jwt"]))
            .build(),
        "Only `jwt` (the default)",
    )
}

pub fn receipt() -> Object {
    describe(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .build(),
        "Required: the `receipt` that `POST /queues/{queue}/claim` returned with this occurrence",
    )
}

pub fn retry_after() -> Object {
    describe(
        schema::duration(),
        "Try again after this long (e.g. \"10s\"); default: the event's retry policy",
    )
}

pub fn max_attempts() -> Object {
    describe(
        schema::int(1, limits::ATTEMPTS_MAX),
        "Attempts in all, 1 to 100",
    )
}

pub fn retry_timeout() -> Object {
    describe(
        schema::duration_up_to(limits::TIMEOUT_MAX_MS),
        "Per-attempt timeout, 1ms to 60s",
    )
}

macro_rules! component {
    ($(#[$doc:meta])* $name:ident = $schema:expr;) => {
        $(#[$doc])*
        pub struct $name;
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                RefOr::T(Schema::from($schema))
            }
        }
        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

component! {
    /// An IANA time zone of the server's tz database.
    TimeZone = schema::timezone();
}

component! {
    /// An action as a request gives it.
    ActionIn = schema::action::action_in();
}

component! {
    /// The JSON form of a rule, by groups of frequencies.
    JsonScheduleIn = schema::rule::json_rule();
}

component! {
    /// A rule as a request gives it: RRULE text or the JSON form.
    ScheduleIn = OneOfBuilder::new()
        .description(Some("A recurrence rule: RRULE text (with or without `RRULE:`) or its JSON form. `null` (on update) removes the rule."))
        .item(schema::rule::rrule())
        .item(Ref::from_schema_name(JsonScheduleIn::name()))
        .build();
}

/// Which fields give the start, and which the delivery, in a create.
const STARTS: [&str; 2] = ["start_time", "start_in"];
const DELIVERIES: [&str; 3] = ["action", "webhook", "webhook_url"];

component! {
    /// The body of `POST /events`: the fields of `EventIn`, in one alternative per way of
    /// giving the start and the delivery, each with what it requires.
    EventCreate = event_create();
}

fn event_create() -> Schema {
    let RefOr::T(Schema::Object(base)) = super::event_io::EventIn::schema() else {
        return Schema::default();
    };
    let mut b = OneOfBuilder::new().description(Some(
        "An event to create: `name`, a start (`start_time`, `start_in`, or `start_date` with `timezone` for an all-day event) and a delivery (`action`, or the legacy `webhook` or `webhook_url`), with the optional fields of `EventIn`",
    ));
    // The all-day fields go with `start_date` only; `end_time` (instead of `duration`) is left
    // to the prose, so that no alternative allows both.
    const ALL_DAY: [&str; 2] = ["start_date", "fire_time"];
    for start in STARTS.iter().chain(&["start_date"]) {
        for delivery in DELIVERIES {
            let mut o = base.clone();
            o.description = None;
            o.example = None;
            let all_day = *start == "start_date";
            o.properties.retain(|k, _| {
                let k = k.as_str();
                (!STARTS.contains(&k) || k == *start)
                    && (!DELIVERIES.contains(&k) || k == delivery)
                    && (!ALL_DAY.contains(&k) || all_day)
                    && k != "end_time"
                    && !(all_day && k == "duration")
            });
            o.required = vec!["name".into(), (*start).into(), delivery.into()];
            if all_day {
                o.required.push("timezone".into());
            }
            b = b.item(o);
        }
    }
    b.build().into()
}

/// The query, path and header parameters whose schemas come from `qhronos-schema`: the
/// parameter tuples of `#[utoipa::path]` cannot name a function, so this modifier sets them.
pub struct Params;

/// (path, parameter, its schema).
fn param_schemas() -> Vec<(&'static str, &'static str, Schema)> {
    vec![
        ("/queues/{queue}/claim", "queue", schema::key().into()),
        (
            "/events",
            "Idempotency-Key",
            schema::idempotency_key().into(),
        ),
        (
            "/queues/{queue}/claim",
            "max",
            schema::int(1, limits::CLAIM_MAX).into(),
        ),
        ("/queues/{queue}/claim", "wait", schema::duration().into()),
        (
            "/queues/{queue}/claim",
            "visibility",
            schema::duration_up_to(limits::VISIBILITY_MAX_MS).into(),
        ),
    ]
}

/// The headers of a WebSocket upgrade (RFC 6455 §4.1): without them `GET /ws` is a 400.
fn upgrade_headers() -> Vec<(&'static str, Object, &'static str)> {
    let one = |v: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([v.to_string()]))
            .build()
    };
    vec![
        ("Connection", one("Upgrade"), "`Upgrade`"),
        ("Upgrade", one("websocket"), "`websocket`"),
        ("Sec-WebSocket-Version", one("13"), "`13`"),
        (
            "Sec-WebSocket-Key",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[A-Za-z0-9+/]{21}[AQgw]==$"))
                .build(),
            "16 random bytes in base64, new for each connection",
        ),
    ]
}

impl utoipa::Modify for Params {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::Required;
        let table = param_schemas();
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops = [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ];
            for op in ops.into_iter().flatten() {
                for p in op.parameters.iter_mut().flatten() {
                    let id = p.name == "id"
                        && (path.starts_with("/events/") || path.starts_with("/occurrences/"));
                    if id {
                        p.schema = Some(RefOr::T(schema::uuid().into()));
                    }
                    if let Some((_, _, s)) =
                        table.iter().find(|(tp, tn, _)| tp == path && *tn == p.name)
                    {
                        p.schema = Some(RefOr::T(s.clone()));
                    }
                }
                if path == "/ws" {
                    let params = op.parameters.get_or_insert_with(Vec::new);
                    for (name, s, says) in upgrade_headers() {
                        params.push(
                            ParameterBuilder::new()
                                .name(name)
                                .parameter_in(ParameterIn::Header)
                                .required(Required::True)
                                .description(Some(says))
                                .schema(Some(s))
                                .build(),
                        );
                    }
                }
            }
        }
    }
}
