//! `qhronos`: a command-line client of the qhronosd HTTP API.
//!
//! It only speaks HTTP (see docs/api.md); it does not link the service. Exit codes are in
//! [`client::exit`] and docs/cli.md.

mod agenda;
mod archive;
mod args;
mod calendars;
mod client;
mod events;
mod inputs;
mod occurrences;
mod output;
mod session;

use std::time::Duration;

use clap::Parser;
use reqwest::Method;
use serde_json::{json, Value};

use args::*;
use client::{exit, list, Client, Failure, Result};
use inputs::*;
use output::{list_human, preview_human};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are not errors; every usage error exits 1 (not clap's 2,
            // which means "the API refused the request" here).
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(exit::SERVER);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(out) => {
            if !out.is_empty() {
                print!("{out}");
                if !out.ends_with('\n') {
                    println!();
                }
            }
        }
        Err(f) => {
            eprintln!("error: {}", f.message);
            std::process::exit(f.code);
        }
    }
}

/// Serves MCP over stdin/stdout until the client closes it.
async fn mcp(cli: &Cli) -> Result<String> {
    use rmcp::ServiceExt;
    let token = cli.token.clone().ok_or_else(|| Failure {
        code: exit::USAGE,
        message: "qhronos mcp needs --token (or QHRONOS_TOKEN): the tools act as that token".into(),
    })?;
    let base = url::Url::parse(&cli.url).map_err(|e| Failure {
        code: exit::USAGE,
        message: format!("--url {}: {e}", cli.url),
    })?;
    let server =
        qhronos_mcp::QhronosMcp::new(std::sync::Arc::new(qhronos_mcp::HttpApi::new(base, token)));
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| Failure {
            code: exit::SERVER,
            message: format!("MCP over stdio: {e}"),
        })?;
    running.waiting().await.map_err(|e| Failure {
        code: exit::SERVER,
        message: format!("MCP over stdio: {e}"),
    })?;
    Ok(String::new())
}

/// Runs one command; its stdout text, or the failure.
async fn run(cli: Cli) -> Result<String> {
    if matches!(cli.command, Command::Mcp) {
        return mcp(&cli).await;
    }
    let client = Client::new(
        &cli.url,
        cli.token.clone(),
        Duration::from_secs(cli.timeout.max(1)),
    )?;
    let json_out = cli.json;
    // `--json`: the server's answer, pretty-printed; otherwise the human rendering.
    let show = |v: &Value, human: &dyn Fn(&Value) -> String| -> String {
        if json_out {
            output::json(v)
        } else {
            human(v)
        }
    };
    match cli.command {
        Command::Events(cmd) => events::events(&client, cmd, &show, json_out).await,
        Command::Occurrences(cmd) => occurrences::occurrences(&client, cmd, &show).await,
        Command::Tokens(cmd) => match cmd {
            TokensCmd::Create(a) => {
                let expires_at = expiry(&a.expires, jiff::Timestamp::now())?;
                let body = json!({
                    "sub": a.sub,
                    "access": a.access.as_str(),
                    "scope": a.scope,
                    "clients": a.clients,
                    "expires_at": expires_at,
                });
                let v = client
                    .send(Method::POST, client.url("tokens", &[]), Some(&body))
                    .await?;
                Ok(show(&v, &|v| {
                    format!(
                        "{}\ntoken (shown only now, keep it):\n{}\n",
                        output::pairs(&[
                            ("jti", output::field(v, "jti")),
                            ("sub", output::field(v, "sub")),
                            ("access", output::field(v, "access")),
                            ("scope", output::field(v, "scope")),
                            ("clients", output::field(v, "clients")),
                            ("expires_at", output::field(v, "expires_at")),
                        ]),
                        output::field(v, "token")
                    )
                }))
            }
            TokensCmd::List { all } => {
                let v = list(&client, "tokens", vec![], all).await?;
                Ok(show(&v, &|v| list_human(v, output::tokens_table)))
            }
            TokensCmd::Revoke { jti } => {
                client
                    .send(
                        Method::DELETE,
                        client.url(&format!("tokens/{}", seg(&jti)), &[]),
                        None,
                    )
                    .await?;
                Ok(if json_out {
                    String::new()
                } else {
                    format!("revoked token {jti}")
                })
            }
        },
        Command::Workflows(cmd) => match cmd {
            WorkflowsCmd::Create(a) => {
                let body = workflow_body(&a)?;
                let v = client
                    .send(Method::POST, client.url("workflows", &[]), Some(&body))
                    .await?;
                Ok(show(&v, &|v| {
                    format!(
                        "created workflow {}\n{}",
                        output::field(v, "id"),
                        output::workflow_detail(v)
                    )
                }))
            }
            WorkflowsCmd::List { all } => {
                let v = list(&client, "workflows", vec![], all).await?;
                Ok(show(&v, &|v| list_human(v, output::workflows_table)))
            }
            WorkflowsCmd::Get { id } => {
                let v = client
                    .send(
                        Method::GET,
                        client.url(&format!("workflows/{}", seg(&id)), &[]),
                        None,
                    )
                    .await?;
                Ok(show(&v, &output::workflow_detail))
            }
            WorkflowsCmd::Delete { id } => {
                client
                    .send(
                        Method::DELETE,
                        client.url(&format!("workflows/{}", seg(&id)), &[]),
                        None,
                    )
                    .await?;
                Ok(if json_out {
                    String::new()
                } else {
                    format!("deleted workflow {id}")
                })
            }
        },
        Command::Templates(cmd) => match cmd {
            TemplatesCmd::List { all } => {
                let v = list(&client, "templates", vec![], all).await?;
                Ok(show(&v, &|v| {
                    let rows: Vec<Vec<String>> = v["data"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .iter()
                        .map(|t| {
                            ["name", "kind", "version", "saved_at"]
                                .iter()
                                .map(|k| output::cell(&t[*k]))
                                .collect()
                        })
                        .collect();
                    output::table(&["NAME", "KIND", "VERSION", "SAVED"], &rows)
                }))
            }
            TemplatesCmd::Get {
                name,
                version,
                versions,
            } => {
                let url = if versions {
                    client.url(&format!("templates/{}/versions", seg(&name)), &[])
                } else {
                    let q = vec![(
                        "version",
                        version.map(|n| n.to_string()).unwrap_or_default(),
                    )];
                    client.url(&format!("templates/{}", seg(&name)), &q)
                };
                let v = client.send(Method::GET, url, None).await?;
                Ok(output::json(&v))
            }
            TemplatesCmd::Put { name, file } => {
                let body = json_file(&file, "template")?;
                let put = client
                    .send(
                        Method::PUT,
                        client.url(&format!("templates/{}", seg(&name)), &[]),
                        Some(&body),
                    )
                    .await;
                let v = match put {
                    Err(f) if f.code == exit::NOT_FOUND => {
                        let mut b = body.clone();
                        b["name"] = name.clone().into();
                        client
                            .send(Method::POST, client.url("templates", &[]), Some(&b))
                            .await?
                    }
                    other => other?,
                };
                Ok(show(&v, &|v| {
                    format!(
                        "saved template {name} version {}",
                        output::cell(&v["version"])
                    )
                }))
            }
            TemplatesCmd::Delete { name } => {
                client
                    .send(
                        Method::DELETE,
                        client.url(&format!("templates/{}", seg(&name)), &[]),
                        None,
                    )
                    .await?;
                Ok(if json_out {
                    String::new()
                } else {
                    format!("deleted template {name}")
                })
            }
            TemplatesCmd::Render {
                name,
                context,
                version,
            } => {
                let mut body = json!({});
                if let Some(c) = context {
                    body["context"] = json_file(&c, "context")?;
                }
                if let Some(n) = version {
                    body["version"] = n.into();
                }
                let v = client
                    .send(
                        Method::POST,
                        client.url(&format!("templates/{}/render", seg(&name)), &[]),
                        Some(&body),
                    )
                    .await?;
                Ok(output::json(&v))
            }
        },
        Command::Preview(a) => {
            let start = match a.start {
                Some(s) => s,
                None => jiff::Timestamp::now()
                    .round(jiff::Unit::Second)
                    .map_err(|e| Failure::usage(e.to_string()))?
                    .to_string(),
            };
            let mut body = json!({ "start_time": start, "schedule": a.rrule });
            if let Some(tz) = &a.timezone {
                body["timezone"] = tz.clone().into();
            }
            if let Some(after) = a.after {
                body["after"] = after.into();
            }
            if let Some(n) = a.count {
                body["limit"] = n.into();
            }
            let v = client
                .send(
                    Method::POST,
                    client.url("schedules/preview", &[]),
                    Some(&body),
                )
                .await?;
            Ok(show(&v, &preview_human))
        }
        Command::Status => {
            let v = client
                .send(Method::GET, client.url("status", &[]), None)
                .await?;
            Ok(show(&v, &output::status))
        }
        Command::Whoami => {
            let v = client
                .send(Method::GET, client.url("me", &[]), None)
                .await?;
            Ok(show(&v, &session::whoami))
        }
        Command::Channels { tag } => {
            let v = client
                .send(
                    Method::GET,
                    client.url("channels", &[("tags", tag.join(","))]),
                    None,
                )
                .await?;
            Ok(show(&v, &session::channels))
        }
        Command::Mcp => mcp(&cli).await,
        Command::Agenda(a) => agenda::agenda(&client, a, &show).await,
        Command::Archive(cmd) => archive::archive(&client, cmd, &show).await,
        Command::Calendars(cmd) => calendars::calendars(&client, cmd, &show).await,
        Command::Admin(cmd) => archive::admin(&client, cmd, &show).await,
        Command::Analytics(a) => {
            let now = jiff::Timestamp::now();
            let at = |flag: &str, s: &Option<String>| -> Result<String> {
                s.as_deref()
                    .map_or(Ok(String::new()), |s| ago(flag, s, now))
            };
            let query = vec![
                ("from", at("--from", &a.from)?),
                ("to", at("--to", &a.to)?),
                (
                    "bucket",
                    match a.bucket {
                        BucketArg::Minute => "minute",
                        BucketArg::Hour => "hour",
                        BucketArg::Day => "day",
                    }
                    .to_string(),
                ),
                ("tags", a.tag.join(",")),
                ("event_id", a.event.clone().unwrap_or_default()),
            ];
            let v = client
                .send(Method::GET, client.url("analytics", &query), None)
                .await?;
            Ok(show(&v, &|v| output::analytics(v, a.all)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_accepts_times_and_durations() {
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(expiry("30d", now).unwrap(), "2026-01-31T00:00:00Z");
        assert_eq!(expiry("12h", now).unwrap(), "2026-01-01T12:00:00Z");
        assert_eq!(expiry("2w", now).unwrap(), "2026-01-15T00:00:00Z");
        assert_eq!(
            expiry("2027-01-01T00:00:00+01:00", now).unwrap(),
            "2027-01-01T00:00:00+01:00"
        );
        for bad in ["", "30", "d", "30y", "soon", "99999999999999999d"] {
            assert_eq!(expiry(bad, now).unwrap_err().code, exit::USAGE, "{bad}");
        }
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("abc-123"), "abc-123");
        assert_eq!(seg("../tokens"), "..%2Ftokens");
        assert_eq!(seg("a b"), "a%20b");
    }

    #[test]
    fn body_from_flags() {
        let cli = Cli::try_parse_from([
            "qhronos",
            "events",
            "create",
            "--name",
            "n",
            "--at",
            "2030-01-01T00:00:00Z",
            "--webhook",
            "http://x/h",
            "--tag",
            "a",
            "--tag",
            "b",
            "--metadata",
            r#"{"k":1}"#,
        ])
        .unwrap();
        let Command::Events(EventsCmd::Create(a)) = cli.command else {
            panic!("parsed as create")
        };
        let b = event_body(&a).unwrap();
        assert_eq!(
            b,
            json!({"name": "n", "start_time": "2030-01-01T00:00:00Z",
                   "action": {"type": "webhook", "params": {"url": "http://x/h"}},
                   "tags": ["a", "b"], "metadata": {"k": 1}})
        );
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
