//! `qhronos agenda`: the instants of every event in a time window, stored and projected
//! (`GET /agenda`).

use clap::Args;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{Client, Result};
use crate::output::{field, table, Show};

#[derive(Args, Debug)]
pub struct AgendaArgs {
    /// At or after this RFC 3339 time (the server's default: now).
    #[arg(long)]
    from: Option<String>,
    /// Before this RFC 3339 time (the server's default: a week after --from; at most 400 days).
    #[arg(long)]
    to: Option<String>,
    /// Only events with this tag (repeat: any of them).
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
    /// Page size (the server's default is 100, at most 1000).
    #[arg(long)]
    limit: Option<u32>,
    /// Follow next_cursor and list every page.
    #[arg(long)]
    all: bool,
}

pub async fn agenda(client: &Client, a: AgendaArgs, show: Show<'_>) -> Result<String> {
    let mut query = vec![
        ("from", a.from.unwrap_or_default()),
        ("to", a.to.unwrap_or_default()),
        ("tags", a.tag.join(",")),
        ("limit", a.limit.map(|l| l.to_string()).unwrap_or_default()),
        ("cursor", String::new()),
    ];
    let mut page = client
        .send(Method::GET, client.url("agenda", &query), None)
        .await?;
    if a.all {
        let mut items = page["data"].as_array().cloned().unwrap_or_default();
        let mut incomplete = page["incomplete"].as_bool().unwrap_or(false);
        while let Some(c) = page["next_cursor"].as_str().filter(|c| !c.is_empty()) {
            if let Some(last) = query.last_mut() {
                last.1 = c.to_string();
            }
            page = client
                .send(Method::GET, client.url("agenda", &query), None)
                .await?;
            items.extend(page["data"].as_array().cloned().unwrap_or_default());
            incomplete |= page["incomplete"].as_bool().unwrap_or(false);
        }
        page = json!({ "data": items, "next_cursor": null, "incomplete": incomplete });
    }
    Ok(show(&page, &agenda_table))
}

fn agenda_table(v: &Value) -> String {
    let items = v["data"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![
                field(i, "at"),
                field(i, "status"),
                field(i, "name"),
                field(i, "event_id"),
                field(i, "occurrence_id"),
            ]
        })
        .collect();
    let mut out = table(&["AT", "STATUS", "NAME", "EVENT", "OCCURRENCE"], &rows);
    if v["incomplete"].as_bool() == Some(true) {
        out.push_str(
            "(incomplete: some rules could not be expanded; their instants are missing)\n",
        );
    }
    if v["next_cursor"].as_str().is_some_and(|c| !c.is_empty()) {
        out.push_str("(more results: use --all, or a larger --limit)\n");
    }
    out
}
