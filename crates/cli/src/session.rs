//! `qhronos whoami`, `qhronos channels`, `qhronos occurrences counts` and `qhronos admin config`:
//! who the token is, what is connected, what is where, and the server's settings (the routes the
//! dashboard added, for the terminal too).

use serde_json::Value;

use crate::output::{cell, field, pairs, table};

/// `GET /me` as lines.
pub fn whoami(v: &Value) -> String {
    let can = &v["can"];
    let abilities: Vec<&str> = ["read", "write", "admin", "issue_tokens", "operate"]
        .into_iter()
        .filter(|k| can[*k] == Value::Bool(true))
        .collect();
    let scope = v["scope"]
        .as_array()
        .map(|s| s.iter().map(cell).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|| "all events".into());
    pairs(&[
        ("kind", field(v, "kind")),
        ("subject", field(v, "sub")),
        ("token id", field(v, "jti")),
        ("access", field(v, "access")),
        ("scope", scope),
        ("may", abilities.join(", ")),
    ])
}

/// `GET /channels` as three tables.
pub fn channels(v: &Value) -> String {
    let list = |k: &str| v["websocket"][k].as_array().cloned().unwrap_or_default();
    let clients: Vec<Vec<String>> = list("clients")
        .iter()
        .map(|c| {
            vec![
                field(c, "name"),
                field(c, "connections"),
                field(c, "awaiting_ack"),
            ]
        })
        .collect();
    let listeners: Vec<Vec<String>> = list("listeners")
        .iter()
        .map(|l| vec![cell(&l["tags"])])
        .collect();
    let queues: Vec<Vec<String>> = v["queues"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|q| {
            vec![
                field(q, "queue"),
                field(q, "ready"),
                field(q, "claimed"),
                field(q, "waiting"),
                field(q, "events"),
                field(q, "oldest_ready_at"),
            ]
        })
        .collect();
    format!(
        "WebSocket clients (this node)\n{}\nTag listeners (this node)\n{}\nPull queues\n{}",
        table(&["CLIENT", "CONNECTIONS", "AWAITING ACK"], &clients),
        table(&["TAGS"], &listeners),
        table(
            &[
                "QUEUE",
                "READY",
                "CLAIMED",
                "WAITING",
                "EVENTS",
                "OLDEST READY"
            ],
            &queues
        )
    )
}

/// `GET /admin/config`: the summary, then the settings as JSON (secrets masked).
pub fn config(v: &Value) -> String {
    format!(
        "{}\n{}\n",
        pairs(&[
            ("version", field(v, "version")),
            ("store", field(v, "store")),
            ("started", field(v, "started_at")),
            ("uptime", format!("{} s", field(v, "uptime_seconds"))),
        ]),
        serde_json::to_string_pretty(&v["config"]).unwrap_or_default()
    )
}

/// `GET /occurrences/counts` as a table.
pub fn counts(v: &Value) -> String {
    let rows: Vec<Vec<String>> = [
        "pending",
        "scheduled",
        "completed",
        "failed",
        "missed",
        "cancelled",
    ]
    .into_iter()
    .map(|s| vec![s.to_string(), field(v, s)])
    .collect();
    table(&["STATUS", "COUNT"], &rows)
}
