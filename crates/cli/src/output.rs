//! Human output: aligned tables and `key: value` blocks. `--json` bypasses all of this.

use serde_json::Value;

/// How a command prints an answer: `--json` (the server's answer, pretty-printed), or the human
/// rendering given.
pub type Show<'a> = &'a dyn Fn(&Value, &dyn Fn(&Value) -> String) -> String;

/// A value as a table cell: strings bare, `null` as `-`, arrays joined with commas.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "-".into(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// `v[key]` as a cell.
pub fn field(v: &Value, key: &str) -> String {
    cell(v.get(key).unwrap_or(&Value::Null))
}

/// Renders rows under a header, each column as wide as its widest cell, two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            s.push_str(c);
            if i < last {
                let pad = widths[i] - c.chars().count() + 2;
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// `key: value` lines with the values aligned.
pub fn pairs(items: &[(&str, String)]) -> String {
    let w = items.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (k, v) in items {
        out.push_str(&format!("{:<w$} {v}\n", format!("{k}:")));
    }
    out
}

/// Pretty JSON, for `--json` and for nested values in human output.
pub fn json(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// The delivery target of an event: the URL (with the method for an `apicall`), the WebSocket
/// client, the pull queue, or the email recipients.
pub fn target(event: &Value) -> String {
    let action = &event["action"];
    let p = &action["params"];
    match action["type"].as_str() {
        Some("apicall") => format!("{} {}", cell(&p["method"]), cell(&p["url"])),
        Some("websocket") => format!("ws:{}", cell(&p["client_name"])),
        Some("pull") => format!("queue:{}", cell(&p["queue"])),
        Some("email") => format!("mailto:{}", cell(&p["to"])),
        _ => cell(&p["url"]),
    }
}

pub fn events_table(events: &[Value]) -> String {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                field(e, "id"),
                field(e, "name"),
                field(e, "status"),
                field(e, "schedule"),
                field(e, "start_time"),
                field(e, "tags"),
            ]
        })
        .collect();
    table(
        &["ID", "NAME", "STATUS", "SCHEDULE", "START", "TAGS"],
        &rows,
    )
}

pub fn event_detail(e: &Value) -> String {
    let mut items = vec![
        ("id", field(e, "id")),
        ("name", field(e, "name")),
        ("status", field(e, "status")),
        ("start_time", field(e, "start_time")),
        ("timezone", field(e, "timezone")),
        ("schedule", field(e, "schedule")),
        (
            "action",
            format!("{} {}", field(&e["action"], "type"), target(e)),
        ),
        ("tags", field(e, "tags")),
        ("hmac_secret_set", field(e, "hmac_secret_set")),
    ];
    if let Some(d) = e.get("description").filter(|d| !d.is_null()) {
        items.insert(2, ("description", cell(d)));
    }
    if e["metadata"].as_object().is_some_and(|m| !m.is_empty()) {
        items.push(("metadata", e["metadata"].to_string()));
    }
    items.push(("created_at", field(e, "created_at")));
    items.push(("updated_at", field(e, "updated_at")));
    pairs(&items)
}

/// The secret the server generated for a new event: printed once, with how to read it later.
pub fn generated_secret(e: &Value) -> String {
    match e["hmac_secret"].as_str() {
        Some(secret) => format!(
            "hmac_secret: {secret}\n  (generated for this event and shown only now; verify webhooks with it, read it again with `qhronos events secret {}`)\n",
            field(e, "id")
        ),
        None => String::new(),
    }
}

pub fn occurrences_table(occs: &[Value]) -> String {
    let rows: Vec<Vec<String>> = occs
        .iter()
        .map(|o| {
            vec![
                field(o, "id"),
                field(o, "event_id"),
                field(o, "status"),
                field(o, "scheduled_at"),
                field(o, "attempt_count"),
                field(o, "next_attempt_at"),
                field(o, "last_error"),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "EVENT",
            "STATUS",
            "SCHEDULED",
            "ATTEMPTS",
            "NEXT ATTEMPT",
            "LAST ERROR",
        ],
        &rows,
    )
}

pub fn occurrence_detail(o: &Value) -> String {
    let mut out = pairs(&[
        ("id", field(o, "id")),
        ("event_id", field(o, "event_id")),
        ("status", field(o, "status")),
        ("scheduled_at", field(o, "scheduled_at")),
        ("attempt_count", field(o, "attempt_count")),
        ("next_attempt_at", field(o, "next_attempt_at")),
        ("completed_at", field(o, "completed_at")),
        ("last_error", field(o, "last_error")),
        ("caused_by", field(o, "caused_by")),
        ("caused", field(o, "caused")),
        ("created_at", field(o, "created_at")),
        ("updated_at", field(o, "updated_at")),
    ]);
    if let Some(attempts) = o["attempts"].as_array() {
        out.push('\n');
        if attempts.is_empty() {
            out.push_str("no attempts yet\n");
        } else {
            let rows: Vec<Vec<String>> = attempts
                .iter()
                .map(|a| {
                    vec![
                        field(a, "attempt"),
                        field(a, "started_at"),
                        format!("{} ms", field(a, "duration_ms")),
                        field(a, "status_code"),
                        field(a, "error"),
                    ]
                })
                .collect();
            out.push_str(&table(
                &["ATTEMPT", "STARTED", "DURATION", "HTTP", "ERROR"],
                &rows,
            ));
        }
    }
    out
}

pub fn workflows_table(workflows: &[Value]) -> String {
    let rows: Vec<Vec<String>> = workflows
        .iter()
        .map(|w| {
            vec![
                field(w, "id"),
                field(w, "name"),
                workflow_when(w),
                workflow_then(w),
                field(w, "enabled"),
            ]
        })
        .collect();
    table(&["ID", "NAME", "WHEN", "THEN", "ENABLED"], &rows)
}

fn workflow_when(w: &Value) -> String {
    let on = field(&w["when"], "on");
    match w["when"]["event_id"].as_str() {
        Some(id) => format!("event {id} {on}"),
        None => format!("tags {} {on}", field(&w["when"], "tags")),
    }
}

fn workflow_then(w: &Value) -> String {
    let t = &w["then"];
    let what = match t["trigger"].as_str() {
        Some(id) => format!("trigger {id}"),
        None => format!("create '{}'", field(&t["create"], "name")),
    };
    match t["delay"].as_str() {
        Some(d) if d != "0ms" => format!("{what} after {d}"),
        _ => what,
    }
}

pub fn workflow_detail(w: &Value) -> String {
    pairs(&[
        ("id", field(w, "id")),
        ("name", field(w, "name")),
        ("when", workflow_when(w)),
        ("then", workflow_then(w)),
        ("enabled", field(w, "enabled")),
        ("tags", field(w, "tags")),
        ("created_at", field(w, "created_at")),
        ("updated_at", field(w, "updated_at")),
    ])
}

pub fn tokens_table(tokens: &[Value]) -> String {
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                field(t, "jti"),
                field(t, "sub"),
                field(t, "access"),
                field(t, "scope"),
                field(t, "expires_at"),
                field(t, "revoked_at"),
            ]
        })
        .collect();
    table(
        &["JTI", "SUB", "ACCESS", "SCOPE", "EXPIRES", "REVOKED"],
        &rows,
    )
}

pub fn status(s: &Value) -> String {
    let sched = &s["scheduler"];
    let mut out = pairs(&[
        ("version", field(s, "version")),
        ("store", field(s, "store")),
        ("started_at", field(s, "started_at")),
        (
            "uptime",
            human_seconds(s["uptime_seconds"].as_u64().unwrap_or(0)),
        ),
        (
            "scheduler",
            format!(
                "{} (heartbeat {} ms ago)",
                if sched["healthy"].as_bool() == Some(true) {
                    "healthy"
                } else {
                    "UNHEALTHY"
                },
                field(sched, "heartbeat_age_ms")
            ),
        ),
    ]);
    match s["occurrences"].as_object() {
        Some(counts) if !counts.is_empty() => {
            out.push_str("\noccurrences:\n");
            let rows: Vec<Vec<String>> = counts
                .iter()
                .map(|(k, v)| vec![k.clone(), cell(v)])
                .collect();
            out.push_str(&table(&["STATUS", "COUNT"], &rows));
        }
        Some(_) => out.push_str("\noccurrences: none\n"),
        None => out.push_str("\noccurrences: unknown (the store could not be read)\n"),
    }
    out
}

fn human_seconds(s: u64) -> String {
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// `GET /analytics` as a table of buckets (the empty ones only with `all`), a totals line, and
/// the failing targets.
pub fn analytics(v: &Value, all: bool) -> String {
    let empty = Vec::new();
    let buckets = v["buckets"].as_array().unwrap_or(&empty);
    const COUNTS: [&str; 6] = [
        "due",
        "delivered",
        "failed_attempts",
        "retried",
        "failed",
        "missed",
    ];
    let busy = |b: &Value| COUNTS.iter().any(|k| b[*k].as_i64().unwrap_or(0) != 0);
    let rows: Vec<Vec<String>> = buckets
        .iter()
        .filter(|b| all || busy(b))
        .map(|b| {
            let mut r = vec![field(b, "start")];
            r.extend(COUNTS.iter().map(|k| field(b, k)));
            for k in ["lateness_ms", "duration_ms"] {
                r.push(format!("{}/{}", field(&b[k], "p50"), field(&b[k], "p99")));
            }
            r
        })
        .collect();
    let mut out = format!(
        "{} to {} by {}\n",
        field(v, "from"),
        field(v, "to"),
        field(v, "bucket")
    );
    if rows.is_empty() {
        out.push_str("no deliveries in this range\n");
    } else {
        out.push_str(&table(
            &[
                "START",
                "DUE",
                "DELIVERED",
                "FAILED_ATT",
                "RETRIED",
                "FAILED",
                "MISSED",
                "LATE_MS p50/p99",
                "DURATION_MS p50/p99",
            ],
            &rows,
        ));
        let totals: Vec<String> = COUNTS
            .iter()
            .map(|k| {
                let n: i64 = buckets.iter().map(|b| b[*k].as_i64().unwrap_or(0)).sum();
                format!("{k} {n}")
            })
            .collect();
        out.push_str(&format!("total: {}\n", totals.join(", ")));
    }
    if let Some(t) = v["top_failing_targets"]
        .as_array()
        .filter(|t| !t.is_empty())
    {
        out.push_str("\nfailing targets:\n");
        let rows: Vec<Vec<String>> = t
            .iter()
            .map(|x| {
                vec![
                    field(x, "target"),
                    field(x, "failed"),
                    field(x, "last_error"),
                ]
            })
            .collect();
        out.push_str(&table(&["TARGET", "FAILED", "LAST ERROR"], &rows));
    }
    out
}

/// One line per version: number, time, actor, change, and the fields it changed.
pub fn history_human(v: &Value) -> String {
    let mut out = String::new();
    for ver in v.as_array().into_iter().flatten() {
        let fields: Vec<&str> = ver["diff"]
            .as_object()
            .map(|d| d.keys().map(String::as_str).collect())
            .unwrap_or_default();
        out.push_str(&format!(
            "v{}  {}  {}  {}  {}\n",
            field(ver, "version"),
            field(ver, "at"),
            field(ver, "actor"),
            field(ver, "change"),
            fields.join(", ")
        ));
    }
    out
}

/// A list page as a table, with a hint when there are more pages.
pub fn list_human(v: &Value, table: fn(&[Value]) -> String) -> String {
    let items = v["data"].as_array().cloned().unwrap_or_default();
    let mut out = table(&items);
    if v["next_cursor"].as_str().is_some_and(|c| !c.is_empty()) {
        out.push_str("(more results: use --all, or a larger --limit)\n");
    }
    out
}

/// A rule preview: its schedule and time zone, then each instant in UTC and local time.
pub fn preview_human(v: &Value) -> String {
    let tz_name = v["timezone"].as_str().unwrap_or("UTC").to_string();
    let tz = jiff::tz::TimeZone::get(&tz_name).ok();
    let mut out = format!("schedule: {} (timezone {tz_name})\n", field(v, "schedule"));
    let instants = v["occurrences"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = instants
        .iter()
        .map(|i| {
            let utc = cell(i);
            let local = match (&tz, utc.parse::<jiff::Timestamp>()) {
                (Some(tz), Ok(ts)) => ts
                    .to_zoned_datetime(tz.clone())
                    .strftime("%Y-%m-%d %H:%M:%S %:z %a")
                    .to_string(),
                _ => "-".into(),
            };
            vec![utc, local]
        })
        .collect();
    out.push_str(&table(&["UTC", "LOCAL"], &rows));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn targets_name_each_channel() {
        let t = |a: Value| target(&json!({ "action": a }));
        assert_eq!(
            t(json!({"type": "webhook", "params": {"url": "https://h/x"}})),
            "https://h/x"
        );
        assert_eq!(
            t(json!({"type": "websocket", "params": {"client_name": "laptop"}})),
            "ws:laptop"
        );
        assert_eq!(
            t(json!({"type": "pull", "params": {"queue": "jobs"}})),
            "queue:jobs"
        );
        assert_eq!(
            t(json!({"type": "email", "params": {"to": ["a@x.org", "b@x.org"]}})),
            "mailto:a@x.org,b@x.org"
        );
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["ID", "NAME"],
            &[
                vec!["1".into(), "short".into()],
                vec!["22222".into(), "x".into()],
            ],
        );
        assert_eq!(t, "ID     NAME\n1      short\n22222  x\n");
    }

    #[test]
    fn cells() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!(["a", "b"])), "a,b");
        assert_eq!(cell(&json!(3)), "3");
        assert_eq!(cell(&json!("x")), "x");
    }

    #[test]
    fn seconds() {
        assert_eq!(human_seconds(5), "5s");
        assert_eq!(human_seconds(65), "1m 5s");
        assert_eq!(human_seconds(3700), "1h 1m");
        assert_eq!(human_seconds(90_000), "1d 1h");
    }
}
