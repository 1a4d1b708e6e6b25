//! The tools: their names, descriptions and input schemas, and what each one calls.

use serde_json::{json, Map, Value};

use crate::api::{Api, Reply};

pub use crate::schemas::{list, ToolDef};

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

/// What `import_calendar` sends to `POST /calendars/import`.
pub fn import_body(args: &Args) -> Result<Value, ToolError> {
    let mut body = Map::new();
    body.insert("ics".into(), json!(need_str(args, "ics")?));
    for k in ["calendar_id", "name", "dry_run"] {
        if let Some(v) = args.get(k) {
            body.insert(k.into(), v.clone());
        }
    }
    let mut defaults = Map::new();
    if let Some(d) = args.get("deliver") {
        defaults.insert("action".into(), action(d)?);
    }
    for k in ["tags", "timezone"] {
        if let Some(v) = args.get(k) {
            defaults.insert(k.into(), v.clone());
        }
    }
    if !defaults.is_empty() {
        body.insert("defaults".into(), Value::Object(defaults));
    }
    Ok(Value::Object(body))
}

/// What `check_conflicts` sends to `POST /calendars/{id}/conflicts`.
pub fn conflicts_body(args: &Args) -> Result<Value, ToolError> {
    let (at, rule) = (str_arg(args, "at"), args.get("rule"));
    let mut body = Map::new();
    match (at, rule) {
        (Some(_), Some(_)) => {
            return Err(ToolError(
                "give `at` (one-time) or `rule` with `start` (recurring), not both".into(),
            ))
        }
        (Some(at), None) => {
            body.insert("start_time".into(), json!(at));
        }
        (None, Some(rule)) => {
            body.insert("schedule".into(), rule.clone());
            let start = str_arg(args, "start").map_or_else(next_minute, str::to_string);
            body.insert("start_time".into(), json!(start));
        }
        (None, None) => {
            return Err(ToolError(
                "say when: `at` (one-time) or `rule` (recurring, from `start`)".into(),
            ))
        }
    }
    for k in ["duration", "timezone", "event_id"] {
        if let Some(v) = args.get(k) {
            body.insert(k.into(), v.clone());
        }
    }
    Ok(Value::Object(body))
}

/// Runs tool `name` with `args` against `api`, on behalf of the HTTP request `auth` (if any).
pub async fn call(
    api: &dyn Api,
    auth: Option<&http::request::Parts>,
    name: &str,
    args: &Args,
) -> Result<Value, ToolError> {
    // The schemas say `additionalProperties: false`: a misspelt argument is an error naming
    // it, not silently ignored.
    if let Some(known) = crate::schemas::arguments(name) {
        if let Some(k) = args.keys().find(|k| !known.contains(k)) {
            return Err(ToolError(format!(
                "unknown argument '{k}': {name} takes {}",
                known.join(", ")
            )));
        }
    }
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
        "list_calendars" => {
            let q = query(&opt_pairs(args, &["limit", "cursor"]));
            rest(api, auth, "GET", &format!("/calendars{q}"), None).await
        }
        "import_calendar" => {
            let body = import_body(args)?;
            rest(api, auth, "POST", "/calendars/import", Some(body)).await
        }
        "free_slots" => {
            let path = format!("/calendars/{}/free-slots", seg(args, "calendar_id")?);
            let mut body = Map::new();
            for k in ["duration", "from", "to", "working_hours", "limit"] {
                if let Some(v) = args.get(k) {
                    body.insert(k.into(), v.clone());
                }
            }
            rest(api, auth, "POST", &path, Some(Value::Object(body))).await
        }
        "check_conflicts" => {
            let path = format!("/calendars/{}/conflicts", seg(args, "calendar_id")?);
            rest(api, auth, "POST", &path, Some(conflicts_body(args)?)).await
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
        assert!(tools.len() >= 19);
        for t in &tools {
            assert_eq!(t.schema["type"], "object", "{}", t.name);
            assert!(t.description.len() > 20, "{}", t.name);
        }
        let mut names: Vec<&str> = tools.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), tools.len(), "names are unique");
    }

    #[tokio::test]
    async fn an_unknown_argument_is_named() {
        struct Never;
        #[async_trait::async_trait]
        impl Api for Never {
            async fn call(
                &self,
                _: Option<&http::request::Parts>,
                _: &str,
                _: &str,
                _: Option<Value>,
            ) -> Result<Reply, String> {
                Err("not called".into())
            }
        }
        let e = call(
            &Never,
            None,
            "get_event",
            &args(json!({"id": "x", "idd": "y"})),
        )
        .await
        .unwrap_err();
        assert!(
            e.0.contains("unknown argument 'idd'") && e.0.contains("id"),
            "{e}"
        );
    }

    #[test]
    fn calendar_tools_map_to_their_rest_bodies() {
        let b = import_body(&args(json!({
            "ics": "BEGIN:VCALENDAR", "deliver": {"queue": "cal"}, "tags": ["team"], "dry_run": true
        })))
        .unwrap();
        assert_eq!(
            b["defaults"]["action"],
            json!({"type": "pull", "params": {"queue": "cal"}})
        );
        assert_eq!(b["defaults"]["tags"], json!(["team"]));
        assert_eq!(b["dry_run"], true);
        let b = conflicts_body(&args(json!({
            "calendar_id": "x", "rule": "FREQ=DAILY", "start": "2030-01-01T09:00:00Z", "duration": "30m"
        })))
        .unwrap();
        assert_eq!(b["schedule"], "FREQ=DAILY");
        assert_eq!(b["start_time"], "2030-01-01T09:00:00Z");
        assert!(b.get("calendar_id").is_none());
        let e = conflicts_body(&args(json!({"duration": "30m"}))).unwrap_err();
        assert!(e.0.contains("say when"), "{e}");
    }

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        let e = seg(&args(json!({"id": "../tokens"})), "id").unwrap_err();
        assert!(e.0.contains("not an id"));
    }
}
