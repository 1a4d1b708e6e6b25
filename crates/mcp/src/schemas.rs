//! The tools as agents see them: names, descriptions and input schemas.
//!
//! Every argument that a REST field also takes has that field's schema, built from the same
//! `qhronos-schema` fragment as the OpenAPI document (a test in `qhronos` compares the two), so
//! an agent that fills a tool's arguments by its schema sends what the API accepts. Two
//! fragments are shortened for agents, whose context they would fill: a time zone is a
//! pattern instead of the ~600 names, and a rule is its RRULE text (the JSON form of
//! `POST /events` is accepted too).

use qhronos_schema::{self as schema, limits};
use serde_json::{json, Value};

/// A tool as listed to agents.
#[derive(Debug, Clone)]
pub struct ToolDef {
    pub name: &'static str,
    pub description: &'static str,
    /// The JSON Schema of its arguments (an object).
    pub schema: Value,
}

/// `fragment` with `description`.
fn says(fragment: impl Into<utoipa::openapi::RefOr<utoipa::openapi::Schema>>, d: &str) -> Value {
    let mut v = schema::json(fragment);
    v["description"] = json!(d);
    v
}

/// An object of `properties`, with the `required` ones, refusing other names.
fn args(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false
    })
}

const ID: &str = "An event id (a UUID, as returned by schedule or list_events)";

fn id_schema() -> Value {
    args(json!({"id": says(schema::uuid(), ID)}), &["id"])
}

fn delivery_schema() -> Value {
    json!({
        "description": "Where each occurrence is delivered; exactly one of the fields. Deliveries are retried until acknowledged (webhooks are signed, see the event's secret).",
        "type": "object",
        "properties": {
            "webhook": says(schema::http_url(), "POST a signed JSON body to this http(s) URL"),
            "websocket": says(schema::key(), "Send to the WebSocket client registered under this name (GET /ws)"),
            "queue": says(schema::key(), "Put it on this pull queue; fetch it with the claim tool and confirm with ack (no public URL needed)"),
            "email": {
                "type": "object",
                "description": "Send an email (the server must have SMTP configured)",
                "properties": {
                    "to": schema::json(utoipa::openapi::schema::ArrayBuilder::new()
                        .items(schema::email())
                        .min_items(Some(1))
                        .max_items(Some(limits::RECIPIENTS_MAX))
                        .build()),
                    "subject": schema::json(schema::text(998)),
                    "text": {"type": "string"}
                },
                "required": ["to", "subject", "text"],
                "additionalProperties": false
            }
        },
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": false
    })
}

/// A rule, as RRULE text.
pub fn rule_schema() -> Value {
    says(
        schema::rule::rrule(),
        "A recurrence rule as RRULE text (RFC 5545), e.g. \"FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0\" (parts in the order of the pattern; the JSON form of POST /events is accepted too). Times in the rule are local to `timezone`. See the resource qhronos://docs/recurrence.",
    )
}

fn timezone(d: &str) -> Value {
    says(schema::timezone_brief(), d)
}

fn start_in() -> Value {
    says(
        schema::duration_up_to(limits::START_IN_MAX_MS),
        "One-time: a delay from now, a whole number with a unit ms, s, m, h or d: \"90s\", \"20m\", \"2h\", \"1d\"",
    )
}

/// Every tool, in the order agents see them.
pub fn list() -> Vec<ToolDef> {
    let statuses = [
        "pending",
        "scheduled",
        "dispatched",
        "completed",
        "failed",
        "missed",
        "cancelled",
    ];
    vec![
        ToolDef {
            name: "schedule",
            description: "Schedule something: one-time (`at` an instant, or `in` a delay such as \"20m\") or recurring (`rule`, evaluated in `timezone`, from `start`). Each occurrence is delivered to `deliver` with `payload`, retried until acknowledged, and every attempt is recorded. Returns the event (its id, `schedule_text` in words) and its next instants in UTC and in the zone.",
            schema: args(json!({
                "name": says(schema::text(limits::NAME_MAX), "What this is, e.g. \"remind me to call Ana\" (shown in lists, sent in the payload)"),
                "at": says(schema::date_time(), "One-time: when, RFC 3339 with an offset, e.g. 2026-12-24T18:00:00+01:00"),
                "in": start_in(),
                "rule": rule_schema(),
                "timezone": timezone("IANA time zone the rule's times are in, e.g. \"Europe/Berlin\" (default UTC). \"Every weekday at 9\" in Berlin is rule FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0 with timezone Europe/Berlin"),
                "start": says(schema::date_time(), "Recurring: the first instant the rule counts from (DTSTART), RFC 3339 with an offset; default the next whole minute. Parts the rule does not give (seconds, minutes, the hour of a daily rule) come from it"),
                "deliver": delivery_schema(),
                "payload": says(schema::any_object(), "JSON delivered with every occurrence (the event's metadata)"),
                "tags": schema::json(schema::tags()),
                "description": {"type": "string"}
            }), &["name", "deliver"]),
        },
        ToolDef {
            name: "preview_schedule",
            description: "The next instants of a rule without saving anything: in UTC and local to `timezone`, and the rule in words. Use it to check a rule before `schedule`.",
            schema: args(json!({
                "rule": rule_schema(),
                "timezone": timezone("IANA time zone (default UTC)"),
                "start": says(schema::date_time(), "DTSTART, RFC 3339 with an offset; default the next whole minute"),
                "limit": says(schema::int(1, limits::PREVIEW_MAX as u64), "How many instants (default 10)")
            }), &["rule"]),
        },
        ToolDef {
            name: "list_events",
            description: "Find events, newest first: by text (`q`, in name or description), tags, status. Returns {data: [events], next_cursor}; pass next_cursor back as `cursor` for more.",
            schema: args(json!({
                "q": {"type": "string"},
                "tags": {"type": "array", "items": schema::json(schema::tag()), "description": "Events with any of these tags"},
                "status": {"type": "string", "enum": ["active", "paused", "inactive"]},
                "limit": says(schema::int(1, 1000), "Default 50"),
                "cursor": {"type": "string"}
            }), &[]),
        },
        ToolDef {
            name: "get_event",
            description: "One event: its schedule (RRULE and in words), delivery, payload, status.",
            schema: id_schema(),
        },
        ToolDef {
            name: "update_event",
            description: "Change an event: only the fields given in `changes` change (the REST body of PUT /events/{id}: name, description, start_time or start_in, timezone, schedule, action, tags, metadata, retry, misfire). A schedule change re-plans future occurrences.",
            schema: args(json!({
                "id": says(schema::uuid(), ID),
                "changes": {"type": "object", "minProperties": 1, "description": "The fields to change, as in PUT /events/{id}"}
            }), &["id", "changes"]),
        },
        ToolDef {
            name: "pause_event",
            description: "Stop an event firing until resumed (what is already due waits).",
            schema: id_schema(),
        },
        ToolDef {
            name: "resume_event",
            description: "Resume a paused event: a series continues with its next instance after now.",
            schema: id_schema(),
        },
        ToolDef {
            name: "cancel_event",
            description: "Delete an event: occurrences not yet fired are cancelled. Cannot be undone.",
            schema: id_schema(),
        },
        ToolDef {
            name: "trigger_now",
            description: "Fire one extra occurrence of an event now (its schedule is unchanged). Returns the occurrence.",
            schema: id_schema(),
        },
        ToolDef {
            name: "list_deliveries",
            description: "Did it go through? Occurrences (deliveries) newest first — of one event (`event_id`) or all — with their status (pending, scheduled, dispatched, completed, failed, missed, cancelled); with `attempts: true` each comes with its attempts (status code, error, duration).",
            schema: args(json!({
                "event_id": says(schema::uuid(), ID),
                "status": {"type": "string", "enum": statuses},
                "tags": {"type": "array", "items": schema::json(schema::tag())},
                "limit": says(schema::int(1, 100), "Default 20"),
                "cursor": {"type": "string"},
                "attempts": {"type": "boolean", "default": false, "description": "Include each occurrence's attempts (one more request per occurrence)"}
            }), &[]),
        },
        ToolDef {
            name: "retry_delivery",
            description: "Send a failed or missed occurrence again, now, with a fresh set of attempts.",
            schema: args(json!({"occurrence_id": says(schema::uuid(), "An occurrence id")}), &["occurrence_id"]),
        },
        ToolDef {
            name: "whoami",
            description: "Who the token is: its subject, access (read, write, read_write, admin, master), the tags it is limited to, and what it may do. Ask this before offering changes.",
            schema: args(json!({}), &[]),
        },
        ToolDef {
            name: "list_channels",
            description: "What listens: the WebSocket clients and tag listeners connected (to the node answering), and every pull queue with its depth (`ready`), claims in flight (`claimed`) and later instances (`waiting`).",
            schema: args(json!({
                "tags": says(schema::tags(), "Only the queues of events with one of these tags")
            }), &[]),
        },
        ToolDef {
            name: "claim",
            description: "Take due occurrences from a pull queue (events delivered with {queue: name}), for an agent without a public URL: poll this, act, then `ack` each with its receipt. Unacknowledged ones come back after the visibility timeout.",
            schema: args(json!({
                "queue": says(schema::key(), "The queue's name"),
                "max": says(schema::int(1, limits::CLAIM_MAX), "At most this many (default 1)"),
                "wait": says(schema::duration(), "Long-poll an empty queue this long, e.g. \"20s\" (the server may wait less)"),
                "visibility": says(schema::duration_up_to(limits::VISIBILITY_MAX_MS), "How long the claim hides the occurrence from other claimers")
            }), &["queue"]),
        },
        ToolDef {
            name: "ack",
            description: "Confirm a claimed occurrence is done (with the receipt `claim` returned); with `failed: true` it goes back to the queue for another attempt (or fails after its last).",
            schema: args(json!({
                "occurrence_id": says(schema::uuid(), "The claimed occurrence's id"),
                "receipt": {"type": "string", "minLength": 1, "description": "The receipt claim returned with it"},
                "failed": {"type": "boolean", "default": false},
                "error": {"type": "string", "description": "With failed: why"},
                "retry_after": says(schema::duration(), "With failed: try again after this long")
            }), &["occurrence_id", "receipt"]),
        },
        ToolDef {
            name: "list_calendars",
            description: "The calendars (oldest first): each one's id, name, mode (`free`: overlaps are saved and reported; `auto_plan`: an overlapping event is refused), feed url and last fetch. Returns {data, next_cursor}; pass next_cursor back as `cursor` for more.",
            schema: args(json!({
                "limit": says(schema::int(1, 1000), "Default 50"),
                "cursor": {"type": "string"}
            }), &[]),
        },
        ToolDef {
            name: "import_calendar",
            description: "Import an iCalendar (.ics) file: each VEVENT becomes an event (UID kept), delivered to `deliver`. Into `calendar_id` a re-import keeps it in step (updated by UID, vanished ones removed); without, a new calendar is made. Returns what was created, updated, removed, skipped (with why and the line) and, in a free calendar, the overlaps. `dry_run: true` only says what would change.",
            schema: args(json!({
                "ics": {"type": "string", "minLength": 1, "description": "The file's text (BEGIN:VCALENDAR …), at most 10 MiB"},
                "calendar_id": says(schema::uuid(), "The calendar to import into (from list_calendars); none: a new calendar"),
                "name": says(schema::text(limits::NAME_MAX), "The new calendar's name (default: the file's X-WR-CALNAME)"),
                "deliver": delivery_schema(),
                "tags": schema::json(schema::tags()),
                "timezone": timezone("The zone of all-day events and of times without a zone (default: the file's X-WR-TIMEZONE, else UTC)"),
                "dry_run": {"type": "boolean", "default": false}
            }), &["ics"]),
        },
        ToolDef {
            name: "free_slots",
            description: "When is a calendar free? The stretches between `from` and `to` at least `duration` long where none of its events runs, optionally within working hours (local, DST-aware).",
            schema: args(json!({
                "calendar_id": says(schema::uuid(), "The calendar (from list_calendars)"),
                "duration": says(schema::duration(), "The shortest slot wanted, e.g. \"30m\""),
                "from": says(schema::date_time(), "RFC 3339 with an offset"),
                "to": says(schema::date_time(), "RFC 3339 with an offset, at most 366 days after from"),
                "working_hours": {
                    "type": "object",
                    "description": "Only within these local hours",
                    "properties": {
                        "days": {"type": "array", "items": {"type": "string", "enum": ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]}, "description": "Default MO to FR"},
                        "start": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$", "description": "\"HH:MM\""},
                        "end": {"type": "string", "pattern": "^[0-2][0-9]:[0-5][0-9]$", "description": "\"HH:MM\""},
                        "timezone": timezone("The zone of the hours")
                    },
                    "required": ["start", "end", "timezone"],
                    "additionalProperties": false
                },
                "limit": says(schema::int(1, 1000), "Most slots (default 10)")
            }), &["calendar_id", "duration", "from", "to"]),
        },
        ToolDef {
            name: "check_conflicts",
            description: "Would this collide? Checks an event's times (one-time `at`, or `rule` from `start`, lasting `duration`) against a calendar's events over the planning horizon, saving nothing: the collisions and the nearest free slots. In an `auto_plan` calendar scheduling it would be refused. With `event_id`, checks moving that event.",
            schema: args(json!({
                "calendar_id": says(schema::uuid(), "The calendar (from list_calendars)"),
                "duration": says(schema::duration(), "How long each instance lasts, e.g. \"45m\""),
                "at": says(schema::date_time(), "One-time: when, RFC 3339 with an offset"),
                "rule": rule_schema(),
                "start": says(schema::date_time(), "Recurring: the first instant the rule counts from, RFC 3339 with an offset"),
                "timezone": timezone("IANA time zone the rule's times are in (default UTC)"),
                "event_id": says(schema::uuid(), "An event being moved: its own instances are left out")
            }), &["calendar_id", "duration"]),
        },
    ]
}

/// The argument names tool `name` takes, or `None` for an unknown tool.
pub fn arguments(name: &str) -> Option<Vec<String>> {
    let t = list().into_iter().find(|t| t.name == name)?;
    Some(
        t.schema["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default(),
    )
}
