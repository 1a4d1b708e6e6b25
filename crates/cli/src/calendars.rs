//! `qhronos calendars …`: list calendars, import an iCalendar file.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::client::{exit, Client, Failure, Result};
use crate::output::{cell, field, table, Show};

#[derive(Subcommand, Debug)]
pub enum CalendarsCmd {
    /// List calendars with their last import's result.
    #[command(alias = "ls")]
    List,
    /// Import an iCalendar (.ics) file: each VEVENT becomes an event; importing into the same
    /// calendar again keeps it in step (updated by UID, vanished events removed).
    Import(ImportArgs),
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The .ics file; `-` reads standard input.
    file: String,
    /// The calendar to import into (default: a new one, named after the file's X-WR-CALNAME).
    #[arg(long, value_name = "ID")]
    calendar: Option<String>,
    /// The new calendar's name.
    #[arg(long, conflicts_with = "calendar")]
    name: Option<String>,
    /// Deliver each imported event as a signed webhook POST to this URL.
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    /// A tag for every imported event (repeat for several).
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
    /// The zone of all-day events and floating times.
    #[arg(long, value_name = "TZ")]
    timezone: Option<String>,
    /// The local time all-day events fire at (HH:MM).
    #[arg(long, value_name = "HH:MM")]
    fire_time: Option<String>,
    /// Only say what would change.
    #[arg(long)]
    dry_run: bool,
}

fn read(path: &str) -> Result<String> {
    let r = if path == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    };
    r.map_err(|e| Failure {
        code: exit::USAGE,
        message: format!("{path}: cannot read it: {e}"),
    })
}

fn names(v: &Value, key: &str) -> String {
    v[key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| format!("  {} {} ({})", key, cell(&t["name"]), cell(&t["uid"])))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn summary(v: &Value) -> String {
    let n = |k: &str| v[k].as_array().map_or(0, Vec::len);
    let mut out = format!(
        "{}calendar {}: {} created, {} updated, {} removed, {} unchanged, {} skipped",
        if v["dry_run"] == true {
            "(dry run) "
        } else {
            ""
        },
        field(v, "calendar_id"),
        n("created"),
        n("updated"),
        n("removed"),
        cell(&v["unchanged"]),
        n("skipped"),
    );
    for k in ["created", "updated", "removed"] {
        let s = names(v, k);
        if !s.is_empty() {
            out.push('\n');
            out.push_str(&s);
        }
    }
    for s in v["skipped"].as_array().cloned().unwrap_or_default() {
        out.push_str(&format!(
            "\n  skipped line {}: {} ({})",
            cell(&s["line"]),
            cell(&s["reason"]),
            cell(&s["uid"])
        ));
    }
    out
}

pub async fn calendars(client: &Client, cmd: CalendarsCmd, show: Show<'_>) -> Result<String> {
    match cmd {
        CalendarsCmd::List => {
            let v = client
                .send(Method::GET, client.url("calendars", &[]), None)
                .await?;
            Ok(show(&v, &|v| {
                let rows: Vec<Vec<String>> = v["data"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|c| {
                        ["id", "name", "mode", "url", "last_result"]
                            .iter()
                            .map(|k| cell(&c[*k]))
                            .collect()
                    })
                    .collect();
                table(&["ID", "NAME", "MODE", "FEED", "LAST RESULT"], &rows)
            }))
        }
        CalendarsCmd::Import(a) => {
            let mut defaults = Map::new();
            if let Some(url) = &a.webhook {
                defaults.insert(
                    "action".into(),
                    json!({"type": "webhook", "params": {"url": url}}),
                );
            }
            if !a.tag.is_empty() {
                defaults.insert("tags".into(), json!(a.tag));
            }
            if let Some(tz) = &a.timezone {
                defaults.insert("timezone".into(), tz.clone().into());
            }
            if let Some(t) = &a.fire_time {
                defaults.insert("fire_time".into(), t.clone().into());
            }
            let mut body = json!({"ics": read(&a.file)?, "dry_run": a.dry_run});
            if !defaults.is_empty() {
                body["defaults"] = Value::Object(defaults);
            }
            if let Some(c) = a.calendar {
                body["calendar_id"] = c.into();
            }
            if let Some(n) = a.name {
                body["name"] = n.into();
            }
            let v = client
                .send(
                    Method::POST,
                    client.url("calendars/import", &[]),
                    Some(&body),
                )
                .await?;
            Ok(show(&v, &summary))
        }
    }
}
