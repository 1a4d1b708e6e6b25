//! The tools: their names, descriptions and input schemas, and what each one calls.

use serde_json::{json, Map, Value};

use crate::api::{Api, Reply};

/// A tool as listed to agents.
#[derive(Debug, Clone)]
pub struct ToolDef {
    pub name: &'static str,
    pub description: &'static str,
    /// The JSON Schema of its arguments (an object).
    pub schema: Value,
}

/// Why a tool call did not work, in words an agent can act on: the REST API's own message
/// (which names the field and what would be accepted), with its status.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolError(pub String);

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Args = Map<String, Value>;

const ID: &str = "An event id (a UUID, as returned by schedule or list_events)";

fn id_schema(what: &str) -> Value {
    json!({
        "type": "object",
        "properties": {"id": {"type": "string", "format": "uuid", "description": what}},
        "required": ["id"],
        "additionalProperties": false
    })
}

fn delivery_schema() -> Value {
    json!({
        "description": "Where each occurrence is delivered; exactly one of the fields. Deliveries are retried until acknowledged (webhooks are signed, see the event's secret).",
        "type": "object",
        "properties": {
            "webhook": {"type": "string", "format": "uri", "description": "POST a signed JSON body to this http(s) URL"},
            "websocket": {"type": "string", "description": "Send to the WebSocket client registered under this name (GET /ws)"},
            "queue": {"type": "string", "description": "Put it on this pull queue; fetch it with the claim tool and confirm with ack (no public URL needed)"},
            "email": {
                "type": "object",
                "description": "Send an email (the server must have SMTP configured)",
                "properties": {
                    "to": {"type": "array", "items": {"type": "string", "format": "email"}, "minItems": 1},
                    "subject": {"type": "string"},
                    "text": {"type": "string"}
                },
                "required": ["to", "subject"]
            }
        },
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": false
    })
}

fn rule_schema() -> Value {
    json!({
        "description": "A recurrence rule: RRULE text such as \"FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0\" (RFC 5545), or its JSON form {\"frequency\": \"weekly\", \"by_day\": [\"MO\"], \"by_hour\": [9], …}. Times in the rule are local to `timezone`. See the resource qhronos://docs/recurrence.",
        "oneOf": [{"type": "string", "minLength": 1}, {"type": "object"}]
    })
}

/// Every tool, in the order agents see them.
pub fn list() -> Vec<ToolDef> {
    vec![
        ToolDef {
            name: "schedule",
            description: "Schedule something: one-time (`at` an instant, or `in` a delay such as \"20m\") or recurring (`rule`, evaluated in `timezone`, from `start`). Each occurrence is delivered to `deliver` with `payload`, retried until acknowledged, and every attempt is recorded. Returns the event (its id, `schedule_text` in words) and its next instants in UTC and in the zone.",
            schema: json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 256, "description": "What this is, e.g. \"remind me to call Ana\" (shown in lists, sent in the payload)"},
                    "at": {"type": "string", "format": "date-time", "description": "One-time: when, RFC 3339 with an offset, e.g. 2026-12-24T18:00:00+01:00"},
                    "in": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h|d)$", "description": "One-time: a delay from now, a whole number with a unit ms, s, m, h or d: \"90s\", \"20m\", \"2h\", \"1d\""},
                    "rule": rule_schema(),
                    "timezone": {"type": "string", "description": "IANA time zone the rule's times are in, e.g. \"Europe/Berlin\" (default UTC). \"Every weekday at 9\" in Berlin is rule FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0 with timezone Europe/Berlin"},
                    "start": {"type": "string", "format": "date-time", "description": "Recurring: the first instant the rule counts from (DTSTART), RFC 3339 with an offset; default the next whole minute. Parts the rule does not give (seconds, minutes, the hour of a daily rule) come from it"},
                    "deliver": delivery_schema(),
                    "payload": {"type": "object", "description": "JSON delivered with every occurrence (the event's metadata)"},
                    "tags": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 128}, "maxItems": 64, "description": "Labels for finding it later (and for token scopes)"},
                    "description": {"type": "string"}
                },
                "required": ["name", "deliver"],
                "additionalProperties": false
            }),
        },
        ToolDef {
            name: "preview_schedule",
            description: "The next instants of a rule without saving anything: in UTC and local to `timezone`, and the rule in words. Use it to check a rule before `schedule`.",
            schema: json!({
                "type": "object",
                "properties": {
                    "rule": rule_schema(),
                    "timezone": {"type": "string", "description": "IANA time zone (default UTC)"},
                    "start": {"type": "string", "format": "date-time", "description": "DTSTART, RFC 3339 with an offset; default the next whole minute"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10}
                },
                "required": ["rule"],
                "additionalProperties": false
            }),
        },
        ToolDef {
            name: "list_events",
            description: "Find events, newest first: by text (`q`, in name or description), tags, status. Returns {data: [events], next_cursor}; pass next_cursor back as `cursor` for more.",
            schema: json!({
                "type": "object",
                "properties": {
                    "q": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}, "description": "Events with any of these tags"},
                    "status": {"type": "string", "enum": ["active", "paused", "inactive"]},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                    "cursor": {"type": "string"}
                },
                "additionalProperties": false
            }),
        },
        ToolDef {
            name: "get_event",
            description: "One event: its schedule (RRULE and in words), delivery, payload, status.",
            schema: id_schema(ID),
        },
        ToolDef {
            name: "update_event",
            description: "Change an event: only the fields given in `changes` change (the REST body of PUT /events/{id}: name, description, start_time or start_in, timezone, schedule, action, tags, metadata, retry, misfire). A schedule change re-plans future occurrences.",
            schema: json!({
                "type": "object",
                "properties": {
                    "id": {"type": "string", "format": "uuid", "description": ID},
                    "changes": {"type": "object", "minProperties": 1}
                },
                "required": ["id", "changes"],
                "additionalProperties": false
            }),
        },
        ToolDef {
            name: "pause_event",
            description: "Stop an event firing until resumed (what is already due waits).",
            schema: id_schema(ID),
        },
        ToolDef {
            name: "resume_event",
            description: "Resume a paused event: a series continues with its next instance after now.",
            schema: id_schema(ID),
        },
        ToolDef {
            name: "cancel_event",
            description: "Delete an event: occurrences not yet fired are cancelled. Cannot be undone.",
            schema: id_schema(ID),
        },
        ToolDef {
            name: "trigger_now",
            description: "Fire one extra occurrence of an event now (its schedule is unchanged). Returns the occurrence.",
            schema: id_schema(ID),
        },
        ToolDef {
            name: "list_deliveries",
            description: "Did it go through? Occurrences (deliveries) newest first — of one event (`event_id`) or all — with their status (pending, scheduled, dispatched, completed, failed, missed, cancelled); with `attempts: true` each comes with its attempts (status code, error, duration).",
            schema: json!({
                "type": "object",
                "properties": {
                    "event_id": {"type": "string", "format": "uuid"},
                    "status": {"type": "string", "enum": ["pending", "scheduled", "dispatched", "completed", "failed", "missed", "cancelled"]},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                    "cursor": {"type": "string"},
                    "attempts": {"type": "boolean", "default": false, "description": "Include each occurrence's attempts (one more request per occurrence)"}
                },
                "additionalProperties": false
            }),
        },
        ToolDef {
            name: "retry_delivery",
            description: "Send a failed or missed occurrence again, now, with a fresh set of attempts.",
            schema: json!({
                "type": "object",
                "properties": {"occurrence_id": {"type": "string", "format": "uuid"}},
                "required": ["occurrence_id"],
                "additionalProperties": false
            }),
        },
        ToolDef {
            name: "whoami",
            description: "Who the token is: its subject, access (read, write, read_write, admin, master), the tags it is limited to, and what it may do. Ask this before offering changes.",
            schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
        },
        ToolDef {
            name: "list_channels",
            description: "What listens: the WebSocket clients and tag listeners connected (to the node answering), and every pull queue with its depth (`ready`), claims in flight (`claimed`) and later instances (`waiting`).",
            schema: json!({
                "type": "object",
                "properties": {"tags": {"type": "array", "items": {"type": "string"}, "description": "Only the queues of events with one of these tags"}},
                "additionalProperties": false
            }),
        },
        ToolDef {
            name: "claim",
            description: "Take due occurrences from a pull queue (events delivered with {queue: name}), for an agent without a public URL: poll this, act, then `ack` each with its receipt. Unacknowledged ones come back after the visibility timeout.",
            schema: json!({
                "type": "object",
                "properties": {
                    "queue": {"type": "string", "minLength": 1},
                    "max": {"type": "integer", "minimum": 1, "maximum": 100, "default": 1},
                    "wait": {"type": "string", "pattern": "^[0-9]+(ms|s|m)$", "description": "Long-poll an empty queue this long, e.g. \"20s\""},
                    "visibility": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$", "description": "How long the claim hides the occurrence from other claimers"}
                },
                "required": ["queue"],
                "additionalProperties": false
            }),
        },
        ToolDef {
            name: "ack",
            description: "Confirm a claimed occurrence is done (with the receipt `claim` returned); with `failed: true` it goes back to the queue for another attempt (or fails after its last).",
            schema: json!({
                "type": "object",
                "properties": {
                    "occurrence_id": {"type": "string", "format": "uuid"},
                    "receipt": {"type": "string", "minLength": 1},
                    "failed": {"type": "boolean", "default": false},
                    "error": {"type": "string", "description": "With failed: why"},
                    "retry_after": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h|d)$"}
                },
                "required": ["occurrence_id", "receipt"],
                "additionalProperties": false
            }),
        },
    ]
}

fn str_arg<'a>(args: &'a Args, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

fn need_str<'a>(args: &'a Args, name: &str) -> Result<&'a str, ToolError> {
    str_arg(args, name).ok_or_else(|| ToolError(format!("{name} is required (a string)")))
}

/// Path segment: ids are checked to be plain (the REST API refuses anything else as unknown).
fn seg(args: &Args, name: &str) -> Result<String, ToolError> {
    let v = need_str(args, name)?;
    if v.is_empty()
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ToolError(format!("{name}: {v:?} is not an id")));
    }
    Ok(v.to_string())
}

fn query(pairs: &[(&str, String)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    let s = q.finish();
    if s.is_empty() {
        s
    } else {
        format!("?{s}")
    }
}

fn opt_pairs(args: &Args, names: &[&str]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for n in names {
        let v = match args.get(*n) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(x)) => x.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            _ => continue,
        };
        // The names are the REST query parameters' own.
        let name: &'static str = match *n {
            "q" => "q",
            "tags" => "tags",
            "status" => "status",
            "limit" => "limit",
            "cursor" => "cursor",
            "max" => "max",
            "wait" => "wait",
            "visibility" => "visibility",
            _ => continue,
        };
        out.push((name, v));
    }
    out
}

/// The REST answer as the tool's result, or its error as a tool error.
fn answer(r: Reply) -> Result<Value, ToolError> {
    if r.ok() {
        return Ok(r.body);
    }
    let msg = r
        .body
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| r.body.to_string());
    Err(ToolError(format!("{} (HTTP {})", msg, r.status)))
}

async fn rest(
    api: &dyn Api,
    auth: Option<&http::request::Parts>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value, ToolError> {
    let r = api
        .call(auth, method, path, body)
        .await
        .map_err(ToolError)?;
    answer(r)
}

/// The REST action of a `deliver` argument.
fn action(deliver: &Value) -> Result<Value, ToolError> {
    let d = deliver.as_object().ok_or_else(|| {
        ToolError("deliver: an object with one of webhook, websocket, queue, email".into())
    })?;
    if d.len() != 1 {
        return Err(ToolError(
            "deliver: give exactly one of webhook, websocket, queue, email".into(),
        ));
    }
    let (kind, v) = d
        .iter()
        .next()
        .ok_or_else(|| ToolError("deliver: empty".into()))?;
    Ok(match (kind.as_str(), v) {
        ("webhook", Value::String(url)) => json!({"type": "webhook", "params": {"url": url}}),
        ("websocket", Value::String(c)) => {
            json!({"type": "websocket", "params": {"client_name": c}})
        }
        ("queue", Value::String(q)) => json!({"type": "pull", "params": {"queue": q}}),
        ("email", Value::Object(e)) => json!({"type": "email", "params": e}),
        (k, _) => {
            return Err(ToolError(format!(
                "deliver.{k}: expected webhook (a URL), websocket (a client name), queue (a name) or email ({{to, subject, text}})"
            )))
        }
    })
}

/// The default start of a recurring rule: the next whole minute. A rule without BYSECOND (or
/// BYMINUTE) takes its seconds (minutes) from the start, so "every weekday at 9" started at
/// 09:41:32 would fire at 09:00:32; a whole minute keeps it at 09:00:00, and the next one (not
/// this one, partly gone) keeps the first instance from being in the past.
fn next_minute() -> String {
    let now = jiff::Timestamp::now().as_second();
    let next = now - now.rem_euclid(60) + 60;
    jiff::Timestamp::from_second(next)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

/// What `schedule` sends as the REST event body.
pub fn event_body(args: &Args) -> Result<Value, ToolError> {
    let mut body = Map::new();
    body.insert("name".into(), json!(need_str(args, "name")?));
    let (at, delay, rule) = (str_arg(args, "at"), str_arg(args, "in"), args.get("rule"));
    if at.is_some() && delay.is_some() {
        return Err(ToolError("give `at` or `in`, not both".into()));
    }
    if rule.is_some() && (at.is_some() || delay.is_some()) {
        return Err(ToolError(
            "a recurring event (`rule`) starts at `start`; `at` and `in` are for one-time events"
                .into(),
        ));
    }
    if at.is_none() && delay.is_none() && rule.is_none() {
        return Err(ToolError(
            "say when: `at` (an RFC 3339 time), `in` (a delay such as \"20m\") or `rule` (recurring)"
                .into(),
        ));
    }
    if let Some(at) = at {
        body.insert("start_time".into(), json!(at));
    } else if let Some(d) = delay {
        body.insert("start_in".into(), json!(d));
    } else if let Some(start) = str_arg(args, "start") {
        body.insert("start_time".into(), json!(start));
    } else {
        body.insert("start_time".into(), json!(next_minute()));
    }
    if let Some(rule) = rule {
        body.insert("schedule".into(), rule.clone());
    }
    for (from, to) in [
        ("timezone", "timezone"),
        ("payload", "metadata"),
        ("tags", "tags"),
        ("description", "description"),
    ] {
        if let Some(v) = args.get(from) {
            body.insert(to.into(), v.clone());
        }
    }
    let deliver = args
        .get("deliver")
        .ok_or_else(|| ToolError("deliver is required: where to send each occurrence".into()))?;
    body.insert("action".into(), action(deliver)?);
    Ok(Value::Object(body))
}

/// Runs tool `name` with `args` against `api`, on behalf of the HTTP request `auth` (if any).
pub async fn call(
    api: &dyn Api,
    auth: Option<&http::request::Parts>,
    name: &str,
    args: &Args,
) -> Result<Value, ToolError> {
    match name {
        "schedule" => {
            let event = rest(api, auth, "POST", "/events", Some(event_body(args)?)).await?;
            let mut preview = json!({"start_time": event["start_time"], "timezone": event["timezone"], "limit": 5});
            if let Some(s) = event.get("schedule").filter(|s| !s.is_null()) {
                preview["schedule"] = s.clone();
            }
            let next = rest(api, auth, "POST", "/schedules/preview", Some(preview)).await?;
            Ok(json!({
                "event": event,
                "next": next["occurrences"],
                "next_local": next["occurrences_local"],
            }))
        }
        "preview_schedule" => {
            let mut body = json!({
                "schedule": args.get("rule").cloned().unwrap_or(Value::Null),
                "limit": args.get("limit").cloned().unwrap_or(json!(10)),
                "start_time": str_arg(args, "start").map_or_else(next_minute, str::to_string),
            });
            if let Some(tz) = args.get("timezone") {
                body["timezone"] = tz.clone();
            }
            rest(api, auth, "POST", "/schedules/preview", Some(body)).await
        }
        "list_events" => {
            let q = query(&opt_pairs(
                args,
                &["q", "tags", "status", "limit", "cursor"],
            ));
            rest(api, auth, "GET", &format!("/events{q}"), None).await
        }
        "get_event" => {
            rest(
                api,
                auth,
                "GET",
                &format!("/events/{}", seg(args, "id")?),
                None,
            )
            .await
        }
        "update_event" => {
            let changes = args
                .get("changes")
                .filter(|c| c.is_object())
                .ok_or_else(|| {
                    ToolError("changes is required: an object of the fields to change".into())
                })?;
            let path = format!("/events/{}", seg(args, "id")?);
            rest(api, auth, "PUT", &path, Some(changes.clone())).await
        }
        "pause_event" | "resume_event" | "trigger_now" => {
            let verb = match name {
                "pause_event" => "pause",
                "resume_event" => "resume",
                _ => "trigger",
            };
            let path = format!("/events/{}/{verb}", seg(args, "id")?);
            rest(api, auth, "POST", &path, None).await
        }
        "cancel_event" => {
            let path = format!("/events/{}", seg(args, "id")?);
            rest(api, auth, "DELETE", &path, None).await?;
            Ok(json!({"cancelled": true}))
        }
        "list_deliveries" => {
            let mut pairs = opt_pairs(args, &["status", "tags", "cursor"]);
            let limit = args
                .get("limit")
                .and_then(Value::as_u64)
                .unwrap_or(20)
                .clamp(1, 100);
            pairs.push(("limit", limit.to_string()));
            let path = match str_arg(args, "event_id") {
                Some(_) => format!(
                    "/events/{}/occurrences{}",
                    seg(args, "event_id")?,
                    query(&pairs)
                ),
                None => format!("/occurrences{}", query(&pairs)),
            };
            let mut page = rest(api, auth, "GET", &path, None).await?;
            if args.get("attempts").and_then(Value::as_bool) == Some(true) {
                if let Some(items) = page.get_mut("data").and_then(Value::as_array_mut) {
                    for item in items.iter_mut() {
                        let Some(id) = item.get("id").and_then(Value::as_str) else {
                            continue;
                        };
                        let full =
                            rest(api, auth, "GET", &format!("/occurrences/{id}"), None).await?;
                        item["attempts"] = full["attempts"].clone();
                    }
                }
            }
            Ok(page)
        }
        "whoami" => rest(api, auth, "GET", "/me", None).await,
        "list_channels" => {
            let q = query(&opt_pairs(args, &["tags"]));
            rest(api, auth, "GET", &format!("/channels{q}"), None).await
        }
        "retry_delivery" => {
            let path = format!("/occurrences/{}/retry", seg(args, "occurrence_id")?);
            rest(api, auth, "POST", &path, None).await
        }
        "claim" => {
            let queue = seg(args, "queue")?;
            let q = query(&opt_pairs(args, &["max", "wait", "visibility"]));
            rest(
                api,
                auth,
                "POST",
                &format!("/queues/{queue}/claim{q}"),
                None,
            )
            .await
        }
        "ack" => {
            let id = seg(args, "occurrence_id")?;
            let receipt = need_str(args, "receipt")?;
            if args.get("failed").and_then(Value::as_bool) == Some(true) {
                let mut body = json!({"receipt": receipt});
                for k in ["error", "retry_after"] {
                    if let Some(v) = args.get(k) {
                        body[k] = v.clone();
                    }
                }
                rest(
                    api,
                    auth,
                    "POST",
                    &format!("/occurrences/{id}/nack"),
                    Some(body),
                )
                .await
            } else {
                let body = json!({"receipt": receipt});
                rest(
                    api,
                    auth,
                    "POST",
                    &format!("/occurrences/{id}/ack"),
                    Some(body),
                )
                .await
            }
        }
        other => Err(ToolError(format!(
            "no tool {other:?}; the tools are: {}",
            list().iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> Args {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn schedule_maps_to_the_rest_body() {
        let b = event_body(&args(json!({
            "name": "standup", "rule": "FREQ=WEEKLY;BYDAY=MO", "timezone": "Europe/Berlin",
            "deliver": {"queue": "agent"}, "payload": {"x": 1}, "tags": ["a"]
        })))
        .unwrap();
        assert_eq!(
            b["action"],
            json!({"type": "pull", "params": {"queue": "agent"}})
        );
        assert_eq!(b["schedule"], "FREQ=WEEKLY;BYDAY=MO");
        assert_eq!(b["metadata"], json!({"x": 1}));
        let start: jiff::Timestamp = b["start_time"].as_str().unwrap().parse().unwrap();
        assert_eq!(start.as_second() % 60, 0, "a whole minute");
        let b = event_body(&args(
            json!({"name": "x", "in": "20m", "deliver": {"webhook": "https://e.x/h"}}),
        ))
        .unwrap();
        assert_eq!(b["start_in"], "20m");
        let e = event_body(&args(
            json!({"name": "x", "in": "20m", "at": "2030-01-01T00:00:00Z", "deliver": {"queue": "q"}}),
        ));
        assert!(e.unwrap_err().0.contains("not both"));
        let e = event_body(&args(
            json!({"name": "x", "in": "20m", "deliver": {"queue": "q", "webhook": "h"}}),
        ));
        assert!(e.unwrap_err().0.contains("exactly one"));
        let e = event_body(&args(json!({"name": "x", "deliver": {"queue": "q"}})));
        assert!(e.unwrap_err().0.contains("say when"));
    }

    #[test]
    fn every_tool_has_an_object_schema_and_a_description() {
        let tools = list();
        assert!(tools.len() >= 13);
        for t in &tools {
            assert_eq!(t.schema["type"], "object", "{}", t.name);
            assert!(t.description.len() > 20, "{}", t.name);
        }
        let mut names: Vec<&str> = tools.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), tools.len(), "names are unique");
    }

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        let e = seg(&args(json!({"id": "../tokens"})), "id").unwrap_err();
        assert!(e.0.contains("not an id"));
    }
}
