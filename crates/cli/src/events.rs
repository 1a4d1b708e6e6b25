//! `qhronos events …`: the commands on events.

use reqwest::Method;
use serde_json::json;

use crate::args::*;
use crate::client::{list, Client, Failure, Result};
use crate::inputs::*;
use crate::output::{self, history_human, list_human, Show};

/// `qhronos events …` (`json_out`: `--json` was given).
pub async fn events(
    client: &Client,
    cmd: EventsCmd,
    show: Show<'_>,
    json_out: bool,
) -> Result<String> {
    match (matches!(cmd, EventsCmd::Pause { .. }), cmd) {
        (_, EventsCmd::Create(a)) => {
            let body = event_body(&a)?;
            let headers: Vec<(&str, String)> = a
                .idempotency_key
                .iter()
                .map(|k| ("Idempotency-Key", k.clone()))
                .collect();
            let v = client
                .send_with(
                    Method::POST,
                    client.url("events", &[]),
                    Some(&body),
                    &headers,
                )
                .await?;
            Ok(show(&v, &|v| {
                format!(
                    "created event {}\n{}{}",
                    output::field(v, "id"),
                    output::event_detail(v),
                    output::generated_secret(v)
                )
            }))
        }
        (_, EventsCmd::List(a)) => {
            let query = vec![
                ("tags", a.tag.join(",")),
                ("status", a.status.unwrap_or_default()),
                ("q", a.query.unwrap_or_default()),
                ("limit", a.limit.map(|l| l.to_string()).unwrap_or_default()),
            ];
            let v = list(client, "events", query, a.all).await?;
            Ok(show(&v, &|v| list_human(v, output::events_table)))
        }
        (_, EventsCmd::Get { id }) => {
            let v = client
                .send(
                    Method::GET,
                    client.url(&format!("events/{}", seg(&id)), &[]),
                    None,
                )
                .await?;
            Ok(show(&v, &output::event_detail))
        }
        (_, EventsCmd::Delete { id: None, bulk }) => {
            bulk_events(client, "delete", &bulk, show).await
        }
        (_, EventsCmd::Pause { id: None, bulk }) => bulk_events(client, "pause", &bulk, show).await,
        (_, EventsCmd::Resume { id: None, bulk }) => {
            bulk_events(client, "resume", &bulk, show).await
        }
        (
            _,
            EventsCmd::Pause { bulk, .. }
            | EventsCmd::Resume { bulk, .. }
            | EventsCmd::Delete { bulk, .. },
        ) if bulk.given() => Err(Failure::usage(
            "give an event id or a filter (--tag, --status, -q), not both",
        )),
        (_, EventsCmd::Delete { id: Some(id), .. }) => {
            client
                .send(
                    Method::DELETE,
                    client.url(&format!("events/{}", seg(&id)), &[]),
                    None,
                )
                .await?;
            Ok(if json_out {
                String::new()
            } else {
                format!("deleted event {id}")
            })
        }
        (_, EventsCmd::History { id }) => {
            let v = client
                .send(
                    Method::GET,
                    client.url(
                        &format!("events/{}/versions", seg(&id)),
                        &[("limit", "1000".into())],
                    ),
                    None,
                )
                .await?;
            Ok(show(&v, &history_human))
        }
        (_, EventsCmd::Restore { id, version }) => {
            let v = client
                .send(
                    Method::POST,
                    client.url(
                        &format!("events/{}/versions/{version}/restore", seg(&id)),
                        &[],
                    ),
                    Some(&json!({})),
                )
                .await?;
            Ok(show(&v, &|v| {
                format!(
                    "event {} restored to version {version}\n{}",
                    output::field(v, "id"),
                    output::event_detail(v)
                )
            }))
        }
        (pause, EventsCmd::Pause { id: Some(id), .. } | EventsCmd::Resume { id: Some(id), .. }) => {
            let verb = if pause { "pause" } else { "resume" };
            let v = client
                .send(
                    Method::POST,
                    client.url(&format!("events/{}/{verb}", seg(&id)), &[]),
                    None,
                )
                .await?;
            Ok(show(&v, &|v| {
                format!(
                    "event {} is {}\n",
                    output::field(v, "id"),
                    output::field(v, "status")
                )
            }))
        }
        (_, EventsCmd::Secret { id }) => {
            let v = client
                .send(
                    Method::GET,
                    client.url(&format!("events/{}/secret", seg(&id)), &[]),
                    None,
                )
                .await?;
            Ok(show(&v, &|v| {
                match v["hmac_secret"].as_str() {
                Some(s) => format!("{s}\n"),
                None => format!(
                    "event {id} is signed with the server's default secret (it predates per-event secrets); give it its own with PUT /events/{id} {{\"hmac_secret\": null}}\n"
                ),
            }
            }))
        }
        (_, EventsCmd::Trigger { id }) => {
            let v = client
                .send(
                    Method::POST,
                    client.url(&format!("events/{}/trigger", seg(&id)), &[]),
                    None,
                )
                .await?;
            Ok(show(&v, &|v| {
                format!(
                    "triggered occurrence {}\n{}",
                    output::field(v, "id"),
                    output::occurrence_detail(v)
                )
            }))
        }
    }
}

/// `POST /events/{verb}` with the filter.
async fn bulk_events(
    client: &Client,
    verb: &str,
    bulk: &BulkArgs,
    show: Show<'_>,
) -> Result<String> {
    if !bulk.given() {
        return Err(Failure::usage(format!(
            "give an event id, or a filter (--tag, --status, -q) to {verb} every match"
        )));
    }
    let v = client
        .send(
            Method::POST,
            client.url(&format!("events/{verb}"), &[]),
            Some(&bulk.body()),
        )
        .await?;
    let dry = bulk.dry_run;
    Ok(show(&v, &|v| {
        let mut out = format!(
            "{} matched, {} changed ({verb}){}\n",
            output::field(v, "matched"),
            output::field(v, "changed"),
            if dry { ", dry run" } else { "" }
        );
        for f in v["failed"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  not changed: {}: {}\n",
                output::field(f, "id"),
                output::field(f, "error")
            ));
        }
        out
    }))
}
