//! Domain types: what an event, an occurrence and an attempt are, and the parsing that turns
//! request bodies into them ("parse, don't validate": inner code never sees an invalid value).

pub mod access;
pub mod action;
pub mod duration;
pub mod event;
pub mod history;
pub mod named_template;
pub mod occurrence;
pub mod policy;
pub mod schedule;
pub mod template;

use jiff::Timestamp;

/// Milliseconds since the Unix epoch, UTC: how instants are stored and compared.
pub type Millis = i64;

pub fn now_ms() -> Millis {
    Timestamp::now().as_millisecond()
}

pub fn to_ts(ms: Millis) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// RFC 3339 in UTC, with milliseconds only when they are not zero.
pub fn fmt_ms(ms: Millis) -> String {
    to_ts(ms).to_string()
}

pub mod ms_rfc3339 {
    //! serde helpers: `Millis` fields as RFC 3339 strings.
    use super::{fmt_ms, Millis};
    pub fn serialize<S: serde::Serializer>(ms: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&fmt_ms(*ms))
    }
    pub mod option {
        use super::super::{fmt_ms, Millis};
        pub fn serialize<S: serde::Serializer>(
            ms: &Option<Millis>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match ms {
                Some(ms) => s.serialize_str(&fmt_ms(*ms)),
                None => s.serialize_none(),
            }
        }
    }
}

/// Parses an RFC 3339 instant, naming the field when it is not one.
pub fn parse_time(field: &str, s: &str) -> Result<Timestamp, String> {
    parse_time_in(field, s, None)
}

/// Parses an RFC 3339 instant or, when `tz` is given, a local date-time without an offset
/// (`2026-03-29T02:30:00`) read in that zone by the DST policy of `recur::resolve_local`: the
/// spring-forward gap moves forward, the fall-back fold takes the first instant. Without a
/// zone a local time is refused, naming the field: guessing UTC would fire hours off.
pub fn parse_time_in(field: &str, s: &str, tz: Option<&str>) -> Result<Timestamp, String> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    match (recur::parse_local(s), tz) {
        (Some(local), Some(tz)) => recur::resolve_local(local, tz).map_err(|e| format!("{field}: {e}")),
        (Some(_), None) => Err(format!(
            "{field}: '{s}' has no offset: add one (Z, or e.g. +02:00), or give timezone to read it as a local time in that zone"
        )),
        (None, _) => Err(format!(
            "{field}: '{s}' is not an RFC 3339 time with an offset (e.g. 2026-01-01T09:00:00Z){}",
            if tz.is_some() {
                " or a local date-time (e.g. 2026-01-01T09:00:00)"
            } else {
                ""
            }
        )),
    }
}
