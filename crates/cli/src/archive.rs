//! `qhronos archive …` and `qhronos admin …`: the archive retention fills, the backups and the
//! configuration summary.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{exit, Client, Failure, Result};
use crate::output::{field, pairs, table, Show};

#[derive(Subcommand, Debug)]
pub enum ArchiveCmd {
    /// List archived occurrences (what retention moved out of the live tables), newest first.
    #[command(alias = "ls")]
    Occurrences(ArchiveListArgs),
    /// Show an archived event with a summary of its archived occurrences.
    Event { id: String },
    /// Download the archive as gzipped JSON Lines (admin).
    Export(ExportArgs),
}

#[derive(Args, Debug)]
pub struct ArchiveListArgs {
    /// Only this event's occurrences.
    #[arg(long, value_name = "ID")]
    event: Option<String>,
    /// Only occurrences of events with this tag (repeat: any of them).
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
    /// Scheduled at or after this RFC 3339 time.
    #[arg(long)]
    from: Option<String>,
    /// Scheduled at or before this RFC 3339 time.
    #[arg(long)]
    to: Option<String>,
    /// Page size (the server's default is 50, at most 1000).
    #[arg(long)]
    limit: Option<u32>,
    /// Follow next_before and list every page.
    #[arg(long)]
    all: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The file to write (gzipped JSON Lines); `-` for standard output.
    #[arg(long, short, value_name = "FILE")]
    out: String,
    /// Scheduled at or after this RFC 3339 time.
    #[arg(long)]
    from: Option<String>,
    /// Scheduled at or before this RFC 3339 time.
    #[arg(long)]
    to: Option<String>,
    /// Only occurrences of events with this tag (repeat: any of them).
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum AdminCmd {
    /// List the backups in the backup folder with their integrity check (admin, no scope).
    Backups,
    /// Show the version, store and the configuration in force, secrets masked (admin, no
    /// scope).
    Config,
}

pub async fn archive(client: &Client, cmd: ArchiveCmd, show: Show<'_>) -> Result<String> {
    match cmd {
        ArchiveCmd::Occurrences(a) => {
            let mut query = vec![
                ("event_id", a.event.unwrap_or_default()),
                ("tags", a.tag.join(",")),
                ("from", a.from.unwrap_or_default()),
                ("to", a.to.unwrap_or_default()),
                ("limit", a.limit.map(|l| l.to_string()).unwrap_or_default()),
                ("before", String::new()),
            ];
            let mut page = client
                .send(Method::GET, client.url("archive/occurrences", &query), None)
                .await?;
            if a.all {
                let mut items = page["data"].as_array().cloned().unwrap_or_default();
                while let Some(c) = page["next_before"].as_str().filter(|c| !c.is_empty()) {
                    if let Some(last) = query.last_mut() {
                        last.1 = c.to_string();
                    }
                    page = client
                        .send(Method::GET, client.url("archive/occurrences", &query), None)
                        .await?;
                    items.extend(page["data"].as_array().cloned().unwrap_or_default());
                }
                page = json!({ "data": items, "next_before": null });
            }
            Ok(show(&page, &archived_table))
        }
        ArchiveCmd::Event { id } => {
            let v = client
                .send(
                    Method::GET,
                    client.url(&format!("archive/events/{}", crate::seg(&id)), &[]),
                    None,
                )
                .await?;
            Ok(show(&v, &archived_event))
        }
        ArchiveCmd::Export(a) => {
            let url = client.url(
                "archive/export",
                &[
                    ("from", a.from.unwrap_or_default()),
                    ("to", a.to.unwrap_or_default()),
                    ("tags", a.tag.join(",")),
                ],
            );
            if a.out == "-" {
                let mut out = std::io::stdout().lock();
                client.download(url, &mut out).await?;
                return Ok(String::new());
            }
            let path = std::path::Path::new(&a.out);
            if path.exists() {
                return Err(Failure::usage(format!(
                    "--out {}: the file exists; choose another name",
                    a.out
                )));
            }
            let mut file = std::fs::File::create(path).map_err(|e| Failure {
                code: exit::USAGE,
                message: format!("--out {}: cannot create it: {e}", a.out),
            })?;
            match client.download(url, &mut file).await {
                Ok(n) => Ok(format!(
                    "wrote {n} bytes (gzipped JSON Lines) to {}\n",
                    a.out
                )),
                Err(e) => {
                    drop(file);
                    let _ = std::fs::remove_file(path);
                    Err(e)
                }
            }
        }
    }
}

pub async fn admin(client: &Client, cmd: AdminCmd, show: Show<'_>) -> Result<String> {
    match cmd {
        AdminCmd::Backups => {
            let v = client
                .send(Method::GET, client.url("admin/backups", &[]), None)
                .await?;
            Ok(show(&v, &backups_table))
        }
        AdminCmd::Config => {
            let v = client
                .send(Method::GET, client.url("admin/config", &[]), None)
                .await?;
            Ok(show(&v, &crate::session::config))
        }
    }
}

fn archived_table(v: &Value) -> String {
    let items = v["data"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|o| {
            vec![
                field(o, "id"),
                field(o, "event_id"),
                field(o, "event_name"),
                field(o, "status"),
                field(o, "scheduled_at"),
                field(o, "attempt_count"),
                field(o, "archived_at"),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "ID",
            "EVENT",
            "NAME",
            "STATUS",
            "SCHEDULED",
            "ATTEMPTS",
            "ARCHIVED",
        ],
        &rows,
    );
    if v["next_before"].as_str().is_some_and(|c| !c.is_empty()) {
        out.push_str("(more results: use --all, or a larger --limit)\n");
    }
    out
}

fn archived_event(v: &Value) -> String {
    let e = &v["event"];
    let s = &v["summary"];
    pairs(&[
        ("id", field(e, "id")),
        ("name", field(e, "name")),
        ("status", field(e, "status")),
        ("tags", field(e, "tags")),
        ("archived_at", field(e, "archived_at")),
        ("removed_at", field(e, "removed_at")),
        ("occurrences", field(s, "occurrences")),
        ("by_status", field(s, "by_status")),
        ("attempts", field(s, "attempts")),
        ("first", field(s, "first_scheduled_at")),
        ("last", field(s, "last_scheduled_at")),
    ])
}

fn backups_table(v: &Value) -> String {
    let items = v["data"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|b| {
            vec![
                field(b, "taken_at"),
                field(b, "file"),
                field(b, "bytes"),
                field(b, "integrity"),
                field(b, "scheduled"),
            ]
        })
        .collect();
    format!(
        "folder: {}\n{}",
        field(v, "dir"),
        table(&["TAKEN", "FILE", "BYTES", "INTEGRITY", "SCHEDULED"], &rows)
    )
}
