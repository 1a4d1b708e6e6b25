//! Flags and files read into request bodies: the event and workflow bodies, JSON objects from
//! files or stdin, times given as durations, path segments.

use std::io::Read;

use serde_json::{json, Map, Value};

use crate::args::{CreateArgs, CreateWorkflowArgs};
use crate::client::{Failure, Result};

/// `--from` / `--to`: an RFC 3339 time as given, or now minus a duration (`90m`, `12h`, `30d`).
pub(crate) fn ago(flag: &str, s: &str, now: jiff::Timestamp) -> Result<String> {
    let s = s.trim();
    if s.parse::<jiff::Timestamp>().is_ok() {
        return Ok(s.to_string());
    }
    let secs = duration_secs(s.strip_prefix('-').unwrap_or(s)).ok_or_else(|| {
        Failure::usage(format!(
            "{flag} '{s}' is neither an RFC 3339 time (2027-01-01T00:00:00Z) nor a duration ago \
             (90m, 12h, 30d, 2w)"
        ))
    })?;
    let t = now
        .checked_sub(jiff::SignedDuration::from_secs(secs))
        .map_err(|_| Failure::usage(format!("{flag} '{s}' is too far back")))?;
    Ok(t.round(jiff::Unit::Second).unwrap_or(t).to_string())
}

/// `90m`, `12h`, `30d`, `2w`, `3600s` in seconds.
pub(crate) fn duration_secs(s: &str) -> Option<i64> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(per)
}

/// One path segment, percent-encoded, so an id cannot change the route.
pub(crate) fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// A JSON object read from a file, or stdin for `-`.
pub(crate) fn json_file(path: &str, what: &str) -> Result<Value> {
    let v = read_json(path, what)?;
    if !v.is_object() {
        return Err(Failure::usage(format!("the {what} must be a JSON object")));
    }
    Ok(v)
}

/// A JSON document from a file, or from stdin for `-`.
pub(crate) fn read_json(path: &str, what: &str) -> Result<Value> {
    let text = if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Failure::usage(format!("cannot read the {what} from stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("cannot read {path}: {e}")))?
    };
    serde_json::from_str(&text).map_err(|e| {
        Failure::usage(format!(
            "{}: not JSON: {e}",
            if path == "-" { "stdin" } else { path }
        ))
    })
}

/// The body of `workflows create`: the --file JSON, or one built from the flags.
pub(crate) fn workflow_body(a: &CreateWorkflowArgs) -> Result<Value> {
    if let Some(path) = &a.file {
        return read_json(path, "workflow");
    }
    let mut when = Map::new();
    match (&a.when_event, a.when_tag.is_empty()) {
        (Some(id), true) => {
            when.insert("event_id".into(), id.clone().into());
        }
        (None, false) => {
            when.insert("tags".into(), json!(a.when_tag));
        }
        _ => {
            return Err(Failure::usage(
                "give the cause: --when-event ID or --when-tag TAG",
            ))
        }
    }
    let on = if a.on.is_empty() {
        vec!["completed".to_string()]
    } else {
        a.on.clone()
    };
    when.insert("on".into(), json!(on));
    let mut then = Map::new();
    match (&a.trigger, &a.create_file) {
        (Some(id), None) => {
            then.insert("trigger".into(), id.clone().into());
        }
        (None, Some(path)) => {
            then.insert("create".into(), read_json(path, "event")?);
        }
        _ => {
            return Err(Failure::usage(
                "give the follow-up: --trigger ID or --create-file PATH",
            ))
        }
    }
    if let Some(d) = &a.delay {
        then.insert("delay".into(), d.clone().into());
    }
    Ok(json!({
        "name": a.name.clone().unwrap_or_default(),
        "when": when,
        "then": then,
        "enabled": !a.disabled,
    }))
}

/// The body of `events create`: the --file JSON, or one built from the flags.
pub(crate) fn event_body(a: &CreateArgs) -> Result<Value> {
    if let Some(path) = &a.file {
        let text = if path == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Failure::usage(format!("cannot read the event from stdin: {e}")))?;
            s
        } else {
            std::fs::read_to_string(path)
                .map_err(|e| Failure::usage(format!("cannot read {path}: {e}")))?
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            Failure::usage(format!(
                "{}: not JSON: {e}",
                if path == "-" { "stdin" } else { path }
            ))
        })?;
        if !v.is_object() {
            return Err(Failure::usage("the event body must be a JSON object"));
        }
        return Ok(v);
    }
    let mut body = Map::new();
    body.insert("name".into(), a.name.clone().unwrap_or_default().into());
    match (&a.at, &a.date) {
        (_, Some(d)) => {
            body.insert("start_date".into(), d.clone().into());
            if let Some(t) = &a.fire_time {
                body.insert("fire_time".into(), t.clone().into());
            }
        }
        (at, None) => {
            body.insert("start_time".into(), at.clone().unwrap_or_default().into());
        }
    }
    if let Some(d) = &a.duration {
        body.insert("duration".into(), d.clone().into());
    }
    if let Some(d) = &a.description {
        body.insert("description".into(), d.clone().into());
    }
    let action = match (&a.webhook, &a.action_json) {
        (Some(url), _) => json!({ "type": "webhook", "params": { "url": url } }),
        (None, Some(j)) => parse_json_object("--action-json", j)?,
        (None, None) => return Err(Failure::usage("give --webhook URL or --action-json JSON")),
    };
    body.insert("action".into(), action);
    if let Some(s) = &a.schedule {
        body.insert("schedule".into(), s.clone().into());
    }
    if let Some(tz) = &a.timezone {
        body.insert("timezone".into(), tz.clone().into());
    }
    if !a.tag.is_empty() {
        body.insert("tags".into(), a.tag.clone().into());
    }
    if let Some(m) = &a.metadata {
        body.insert("metadata".into(), parse_json_object("--metadata", m)?);
    }
    if let Some(s) = &a.secret {
        body.insert("hmac_secret".into(), s.clone().into());
    }
    Ok(Value::Object(body))
}

/// A flag's value that must be a JSON object.
pub(crate) fn parse_json_object(flag: &str, text: &str) -> Result<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Failure::usage(format!("{flag} must be a JSON object"))),
        Err(e) => Err(Failure::usage(format!("{flag} is not JSON: {e}"))),
    }
}

/// `--expires`: an RFC 3339 time as given, or now plus a duration (`90m`, `12h`, `30d`, `2w`,
/// `3600s`), as RFC 3339 UTC.
pub(crate) fn expiry(s: &str, now: jiff::Timestamp) -> Result<String> {
    let s = s.trim();
    if s.parse::<jiff::Timestamp>().is_ok() {
        return Ok(s.to_string());
    }
    let bad = || {
        Failure::usage(format!(
            "--expires '{s}' is neither an RFC 3339 time (2027-01-01T00:00:00Z) nor a duration \
             (90m, 12h, 30d, 2w)"
        ))
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let secs_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(secs_per).ok_or_else(bad)?;
    let t = now
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .map_err(|_| bad())?;
    Ok(t.round(jiff::Unit::Second).unwrap_or(t).to_string())
}
