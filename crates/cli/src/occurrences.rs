//! `qhronos occurrences …`: the commands on occurrences.

use reqwest::Method;
use serde_json::json;

use crate::args::*;
use crate::client::{list, Client, Failure, Result};
use crate::inputs::*;
use crate::output::{self, list_human, Show};
use crate::session;

/// `qhronos occurrences …`.
pub async fn occurrences(client: &Client, cmd: OccurrencesCmd, show: Show<'_>) -> Result<String> {
    match cmd {
        OccurrencesCmd::List(a) => {
            let path = match &a.event {
                Some(id) => format!("events/{}/occurrences", seg(id)),
                None => "occurrences".into(),
            };
            let query = vec![
                ("tags", a.tag.join(",")),
                ("status", a.status.unwrap_or_default()),
                ("limit", a.limit.map(|l| l.to_string()).unwrap_or_default()),
            ];
            let v = list(client, &path, query, a.all).await?;
            Ok(show(&v, &|v| list_human(v, output::occurrences_table)))
        }
        OccurrencesCmd::Get { id } => {
            let v = client
                .send(
                    Method::GET,
                    client.url(&format!("occurrences/{}", seg(&id)), &[]),
                    None,
                )
                .await?;
            Ok(show(&v, &output::occurrence_detail))
        }
        OccurrencesCmd::Counts { tag } => {
            let v = client
                .send(
                    Method::GET,
                    client.url("occurrences/counts", &[("tags", tag.join(","))]),
                    None,
                )
                .await?;
            Ok(show(&v, &session::counts))
        }
        OccurrencesCmd::Retry { id: None, bulk } => {
            let Some(status) = &bulk.status else {
                return Err(Failure::usage(
                    "give an occurrence id, or --status failed|missed to re-drive every match",
                ));
            };
            let mut body = json!({"status": status, "dry_run": bulk.dry_run});
            for (k, v) in [
                ("from", &bulk.from),
                ("to", &bulk.to),
                ("event_id", &bulk.event),
            ] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            if !bulk.tag.is_empty() {
                body["tags"] = json!(bulk.tag);
            }
            let v = client
                .send(
                    Method::POST,
                    client.url("occurrences/retry", &[]),
                    Some(&body),
                )
                .await?;
            Ok(show(&v, &|v| {
                format!(
                    "{} matched, {} re-driven{}\n",
                    output::field(v, "matched"),
                    output::field(v, "retried"),
                    if bulk.dry_run { " (dry run)" } else { "" }
                )
            }))
        }
        OccurrencesCmd::Retry { id: Some(id), .. } => {
            let v = client
                .send(
                    Method::POST,
                    client.url(&format!("occurrences/{}/retry", seg(&id)), &[]),
                    None,
                )
                .await?;
            Ok(show(&v, &|v| {
                format!(
                    "occurrence {} re-driven\n{}",
                    output::field(v, "id"),
                    output::occurrence_detail(v)
                )
            }))
        }
    }
}
