//! Event history: what a version of an event keeps (its state as the API shows it, never a
//! secret), how two versions differ, and how a version becomes a request body again.

use serde::Serialize;
use serde_json::{Map, Value};

use super::action::Action;
use super::event::Event;
use super::fmt_ms;
use super::policy::{MisfirePolicy, RetryPolicy};
use crate::api::event_io::EventIn;

/// The kinds of change a version records.
pub mod change {
    pub const CREATE: &str = "create";
    pub const UPDATE: &str = "update";
    /// An update that made an earlier version current again (`restored_from` names it).
    pub const RESTORE: &str = "restore";
    pub const PAUSE: &str = "pause";
    pub const RESUME: &str = "resume";
    pub const DELETE: &str = "delete";
    /// The engine paused the event: its receiver answered 410 Gone.
    pub const PAUSE_GONE: &str = "pause_gone";
}

/// The actor of the changes the engine makes on its own (the 410 pause).
pub const SYSTEM: &str = "system";

/// An event's state in a version: the fields a caller sets, as `GET /events/{id}` shows them,
/// with the secrets left out — `hmac_secret_set` says whether one is set, and `apicall` header
/// values are masked (`***`), as in every response. Times the engine moves on its own
/// (`next_fire_at`, `updated_at`) are not part of it: a version's `at` says when it was made.
#[derive(Debug, Clone, Serialize)]
pub struct EventState {
    pub name: String,
    pub description: Option<String>,
    pub start_time: String,
    pub timezone: String,
    pub schedule: Option<String>,
    pub exdates: Vec<String>,
    pub rdates: Vec<String>,
    /// Only when set, so that versions of events without one read as before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fire_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calendar_id: Option<uuid::Uuid>,
    pub action: Action,
    pub tags: Vec<String>,
    pub metadata: Value,
    pub hmac_secret_set: bool,
    pub retry: RetryPolicy,
    pub misfire: MisfirePolicy,
    pub status: String,
    pub paused_reason: Option<String>,
}

impl From<&Event> for EventState {
    fn from(e: &Event) -> Self {
        EventState {
            name: e.name.clone(),
            description: e.description.clone(),
            start_time: fmt_ms(e.start_time),
            timezone: e.timezone.clone(),
            schedule: e.schedule.clone(),
            exdates: e.exdates.iter().map(|m| fmt_ms(*m)).collect(),
            rdates: e.rdates.iter().map(|m| fmt_ms(*m)).collect(),
            duration: e.duration.map(crate::api::event_io::fmt_duration),
            start_date: e.all_day.map(|a| a.start_date.to_string()),
            fire_time: e
                .all_day
                .map(|a| a.fire_time.strftime("%H:%M:%S").to_string()),
            calendar_id: e.calendar_id,
            action: e.action.masked(),
            tags: e.tags.clone(),
            metadata: e.metadata.clone(),
            hmac_secret_set: e.hmac_secret.is_some(),
            retry: e.retry.clone(),
            misfire: e.misfire.clone(),
            status: e.status.as_str().to_string(),
            paused_reason: e.paused_reason.clone(),
        }
    }
}

/// The snapshot stored for `e` (a JSON object of [`EventState`]).
pub fn snapshot(e: &Event) -> Value {
    serde_json::to_value(EventState::from(e)).unwrap_or(Value::Null)
}

/// `{field: [old, new]}` for every field that differs between two snapshots; `old` is `None`
/// for the first version (every field against `null`).
pub fn diff(old: Option<&Value>, new: &Value) -> Map<String, Value> {
    let empty = Map::new();
    let old = old.and_then(Value::as_object).unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let mut out = Map::new();
    for (k, v) in new {
        let before = old.get(k).unwrap_or(&Value::Null);
        if before != v {
            out.insert(k.clone(), Value::Array(vec![before.clone(), v.clone()]));
        }
    }
    for (k, v) in old {
        if !new.contains_key(k) {
            out.insert(k.clone(), Value::Array(vec![v.clone(), Value::Null]));
        }
    }
    out
}

/// The fields of a snapshot a caller can set again, as a request body (`PUT /events/{id}`).
/// The secret is not among them (a restore keeps the current one); masked header values are
/// filled from the current action by the update's merge (see `action::keep_stored_headers`).
pub fn as_input(snapshot: &Value) -> Result<EventIn, String> {
    const SETTABLE: [&str; 17] = [
        "name",
        "duration",
        "start_date",
        "fire_time",
        "calendar_id",
        "description",
        "start_time",
        "timezone",
        "schedule",
        "exdates",
        "rdates",
        "action",
        "tags",
        "metadata",
        "retry",
        "misfire",
        "status",
    ];
    let obj = snapshot
        .as_object()
        .ok_or("the stored version is not an object")?;
    // An all-day version keeps its date: its start_time is derived from it.
    let all_day = obj.get("start_date").is_some_and(|d| !d.is_null());
    let mut body: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| SETTABLE.contains(&k.as_str()))
        .filter(|(k, _)| !(all_day && k.as_str() == "start_time"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // A version without a duration clears the current one.
    body.entry("duration").or_insert(Value::Null);
    serde_json::from_value(Value::Object(body)).map_err(|e| format!("stored version: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_lists_changed_added_and_removed_fields_only() {
        let a = json!({"name": "a", "tags": ["x"], "gone": 1});
        let b = json!({"name": "b", "tags": ["x"], "new": true});
        let d = diff(Some(&a), &b);
        assert_eq!(d.get("name"), Some(&json!(["a", "b"])));
        assert_eq!(d.get("new"), Some(&json!([null, true])));
        assert_eq!(d.get("gone"), Some(&json!([1, null])));
        assert!(!d.contains_key("tags"));
    }

    #[test]
    fn the_first_version_differs_from_nothing_in_every_field() {
        let b = json!({"name": "b", "description": null});
        let d = diff(None, &b);
        assert_eq!(d.get("name"), Some(&json!([null, "b"])));
        // null against null is no change.
        assert!(!d.contains_key("description"));
    }
}
