//! Fragments for single values: times, durations, zones, names, tags, URLs.

use serde_json::json;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type,
};
use utoipa::openapi::{Object, RefOr, Schema};

use crate::limits::*;
use crate::up_to;

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// An RFC 3339 time with an offset (`2026-01-01T09:00:00+01:00`). Years 0001 to 9999, as
/// RFC 3339 allows.
pub fn date_time() -> Object {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .examples([json!("2026-12-24T18:00:00+01:00")])
        .build()
}

/// A list of RFC 3339 times (`exdates`, `rdates`): at most 1,000.
pub fn date_times() -> Schema {
    ArrayBuilder::new()
        .items(date_time())
        .max_items(Some(PREVIEW_MAX))
        .build()
        .into()
}

/// The units of a duration and their milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

const DURATION_TEXT: &str =
    "A duration: a whole number with a unit ms, s, m, h or d, e.g. \"250ms\", \"5s\", \"20m\", \"1h\"";

/// A duration, `"250ms"`, `"5s"`, `"2m"`, `"1h"`, `"1d"`: a whole number (up to 9 digits)
/// with a unit.
pub fn duration() -> Object {
    string()
        .pattern(Some("^[0-9]{1,9}(?:ms|s|m|h|d)$"))
        .description(Some(DURATION_TEXT))
        .examples([json!("5s")])
        .build()
}

/// A duration from 1 ms to `max_ms`, as a pattern that lists exactly the numbers each unit
/// may take.
pub fn duration_up_to(max_ms: u64) -> Object {
    let alts: Vec<String> = UNITS
        .iter()
        .filter(|(_, per)| max_ms / per >= 1)
        .map(|(unit, per)| format!("{}{unit}", up_to(max_ms / per)))
        .collect();
    string()
        .pattern(Some(format!("^(?:{})$", alts.join("|"))))
        .description(Some(format!(
            "{DURATION_TEXT}; from 1ms to {}",
            show_ms(max_ms)
        )))
        .examples([json!("5s")])
        .build()
}

/// `max_ms` in its largest whole unit.
fn show_ms(ms: u64) -> String {
    UNITS
        .iter()
        .rev()
        .find(|(_, per)| ms.is_multiple_of(*per))
        .map_or(format!("{ms}ms"), |(u, per)| format!("{}{u}", ms / per))
}

/// Every IANA time zone name the server knows (its bundled tz database), sorted.
pub fn zone_names() -> Vec<String> {
    let mut names: Vec<String> = jiff::tz::db()
        .available()
        .map(|n| n.as_str().to_string())
        .filter(|n| jiff::tz::TimeZone::get(n).is_ok())
        .collect();
    names.sort();
    names.dedup();
    names
}

const ZONE_TEXT: &str = "An IANA time zone name, e.g. \"UTC\", \"Europe/Berlin\", \"America/New_York\": the zone a rule's local times are in";

/// An IANA time zone: one of the names of the server's tz database.
pub fn timezone() -> Object {
    string()
        .enum_values(Some(zone_names()))
        .description(Some(ZONE_TEXT))
        .examples([json!("Europe/Berlin")])
        .build()
}

/// [`timezone`] without its ~600 names (for agents, whose context they would fill): a pattern
/// every name of the list matches.
pub fn timezone_brief() -> Object {
    string()
        .pattern(Some("^[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+){0,2}$"))
        .description(Some(ZONE_TEXT))
        .examples([json!("Europe/Berlin")])
        .build()
}

/// Free text with at least one character that is not white space, of at most `max`
/// characters, without U+0000 (which no request body may hold: PostgreSQL cannot store it).
pub fn text(max: usize) -> Object {
    string()
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(r"^[^\x00]*[^\s\x00][^\x00]*$"))
        .build()
}

/// A tag: 1 to 128 characters, no comma, not only white space (it is trimmed).
pub fn tag() -> Object {
    string()
        .min_length(Some(1))
        .max_length(Some(TAG_MAX))
        .pattern(Some(r"^[^,\x00]*[^,\s\x00][^,\x00]*$"))
        .build()
}

/// An event's tags: at most 64.
pub fn tags() -> Schema {
    ArrayBuilder::new()
        .items(tag())
        .max_items(Some(TAGS_MAX))
        .description(Some(
            "Tags for filtering and token scopes: at most 64, each 1 to 128 characters, no commas",
        ))
        .build()
        .into()
}

/// The name of a queue, a WebSocket client or a template: 1 to 128 of `A-Z a-z 0-9 . _ -`.
pub fn key() -> Object {
    string()
        .pattern(Some(format!("^[A-Za-z0-9._-]{{1,{KEY_MAX}}}$")))
        .examples([json!("agent-7")])
        .build()
}

/// An http(s) URL with a plain host name or IPv4 address, an optional port and path.
pub fn http_url() -> Object {
    // Labels start with a letter: an all-digit host is an IP address, which the SSRF guard
    // refuses when it is a private one.
    let label = "[a-z](?:[a-z0-9-]{0,30}[a-z0-9])?";
    string()
        .format(Some(SchemaFormat::Custom("uri".into())))
        .pattern(Some(format!(
            "^https?://{label}(?:\\.{label}){{0,3}}(?::[1-9][0-9]{{0,3}})?(?:/[A-Za-z0-9._~-]*){{0,4}}$"
        )))
        .description(Some("An http or https URL (the SSRF guard may still refuse its address: a 422 names the setting that allows it)"))
        .examples([json!("https://example.com/hook")])
        .build()
}

/// An email address.
pub fn email() -> Object {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .pattern(Some(
            "^[a-z0-9]{1,20}(?:[._-][a-z0-9]{1,20}){0,2}@[a-z](?:[a-z0-9-]{0,20}[a-z0-9])?(?:\\.[a-z]{2,10}){1,2}$",
        ))
        .examples([json!("ana@example.com")])
        .build()
}

/// An `Idempotency-Key`: 1 to 255 visible ASCII characters.
pub fn idempotency_key() -> Object {
    string().pattern(Some("^[!-~]{1,255}$")).build()
}

/// A UUID (ids of events and occurrences).
pub fn uuid() -> Object {
    string()
        .format(Some(SchemaFormat::Custom("uuid".into())))
        .build()
}

/// A whole number from `min` to `max`.
pub fn int(min: u64, max: u64) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(min as f64))
        .maximum(Some(max as f64))
        .build()
}

/// Any JSON object.
pub fn any_object() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(true)))
        .build()
}

/// `s` as a reference-or-schema.
pub fn inline(s: impl Into<Schema>) -> RefOr<Schema> {
    RefOr::T(s.into())
}
