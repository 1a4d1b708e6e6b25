//! `qhronos`: a command-line client of the qhronosd HTTP API.
//!
//! It only speaks HTTP (see docs/api.md); it does not link the service. Exit codes are in
//! [`client::exit`] and docs/cli.md.

mod agenda;
mod archive;
mod calendars;
mod client;
mod output;
mod session;

use std::io::Read;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::{json, Map, Value};

use client::{exit, Client, Failure, Result};

/// Command-line client of qhronosd, the Qhronos scheduling and webhook service.
///
/// Exit codes: 0 success, 1 usage or input error, 2 the API refused the request (4xx other than
/// 401/403/404), 3 not found, 4 authentication or permission, 5 server error, 6 cannot connect.
#[derive(Parser, Debug)]
#[command(name = "qhronos", version, about, long_about)]
struct Cli {
    /// Base URL of qhronosd.
    #[arg(
        long,
        env = "QHRONOS_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// Bearer token: the master token or an issued one.
    #[arg(long, env = "QHRONOS_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print the server's JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 30, value_name = "SECONDS", global = true)]
    timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create, list, inspect and control events.
    #[command(subcommand)]
    Events(EventsCmd),
    /// List, inspect and re-drive occurrences (the deliveries of events).
    #[command(subcommand, alias = "occ")]
    Occurrences(OccurrencesCmd),
    /// Issue, list and revoke API tokens (issuing needs the master token).
    #[command(subcommand)]
    Tokens(TokensCmd),
    /// Create, list, inspect and delete workflows ("when X completes, do Y").
    #[command(subcommand, alias = "wf")]
    Workflows(WorkflowsCmd),
    /// Named, versioned templates that actions use by name.
    #[command(subcommand)]
    Templates(TemplatesCmd),
    /// Show the next instants of a recurrence rule (POST /schedules/preview).
    Preview(PreviewArgs),
    /// Show the server's version, uptime, scheduler health and occurrence counts.
    Status,
    /// Show who the token is: its subject, access, scope and what it may do (GET /me).
    Whoami,
    /// Show the WebSocket clients and tag listeners connected, and the pull queues with their
    /// depth and claims (GET /channels).
    Channels {
        /// Only the queues of events with this tag (repeatable).
        #[arg(long)]
        tag: Vec<String>,
    },
    /// Serve Qhronos's MCP tools over stdio (for desktop agents that start local tool
    /// servers), calling the qhronosd at --url with --token. The same tools as `/mcp`.
    Mcp,
    /// Show every instant in a time window across events, stored and projected by the rules
    /// (GET /agenda).
    Agenda(agenda::AgendaArgs),
    /// Read and export what retention archived.
    #[command(subcommand)]
    Archive(archive::ArchiveCmd),
    /// Calendars: import iCalendar files, list calendars.
    #[command(subcommand, alias = "cal")]
    Calendars(calendars::CalendarsCmd),
    /// Operator views: the backups.
    #[command(subcommand)]
    Admin(archive::AdminCmd),
    /// Delivery figures by minute, hour or day, and the failing targets (GET /analytics).
    Analytics(AnalyticsArgs),
}

#[derive(Args, Debug)]
struct AnalyticsArgs {
    /// Start: an RFC 3339 time, or a duration ago (90m, 12h, 30d, 2w). Default: 24h before --to.
    #[arg(long)]
    from: Option<String>,
    /// End: an RFC 3339 time, or a duration ago. Default: now.
    #[arg(long)]
    to: Option<String>,
    #[arg(long, value_enum, default_value_t = BucketArg::Hour)]
    bucket: BucketArg,
    /// Only events with this tag (repeat: any of them; not with --event).
    #[arg(long, value_name = "TAG", conflicts_with = "event")]
    tag: Vec<String>,
    /// Only this event (also a deleted one).
    #[arg(long, value_name = "ID")]
    event: Option<String>,
    /// List empty buckets too.
    #[arg(long)]
    all: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum BucketArg {
    Minute,
    Hour,
    Day,
}

#[derive(Subcommand, Debug)]
enum EventsCmd {
    /// Create an event from flags, or from a JSON body with --file.
    Create(Box<CreateArgs>),
    /// List events, newest first.
    #[command(alias = "ls")]
    List(ListEventsArgs),
    /// Show one event.
    Get { id: String },
    /// Delete an event (occurrences not yet fired are cancelled), or every event a filter
    /// matches (--tag, --status, -q; try --dry-run first).
    #[command(alias = "rm")]
    Delete {
        id: Option<String>,
        #[command(flatten)]
        bulk: BulkArgs,
    },
    /// Pause an event (occurrences not yet fired are cancelled until it is resumed), or every
    /// event a filter matches.
    Pause {
        id: Option<String>,
        #[command(flatten)]
        bulk: BulkArgs,
    },
    /// Resume a paused event, or every paused event a filter matches.
    Resume {
        id: Option<String>,
        #[command(flatten)]
        bulk: BulkArgs,
    },
    /// Every change of an event (also after it was deleted), oldest first, with what changed.
    History { id: String },
    /// Make version N of an event current again (a new version; re-planned like an update).
    Restore { id: String, version: u32 },
    /// Fire one extra occurrence now.
    Trigger { id: String },
    /// Show an event's webhook signing secret (needs a write token within the event's scope).
    Secret { id: String },
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// A full JSON event body (see docs/api.md); `-` reads it from stdin.
    #[arg(
        long,
        short = 'f',
        value_name = "PATH",
        conflicts_with_all = ["name", "at", "date", "duration", "webhook", "action_json", "schedule", "timezone", "tag", "metadata", "secret", "description"]
    )]
    file: Option<String>,
    /// The event's name.
    #[arg(long, required_unless_present = "file")]
    name: Option<String>,
    /// When: the one-time instant, or the first instance of a series: RFC 3339 with an
    /// offset, or with --timezone a local date-time ('2026-03-29T09:00').
    #[arg(long, value_name = "TIME", required_unless_present_any = ["file", "date"], conflicts_with = "date")]
    at: Option<String>,
    /// An all-day event on this local date (YYYY-MM-DD) in --timezone (required with it).
    #[arg(long, value_name = "DATE", requires = "timezone")]
    date: Option<String>,
    /// With --date: the local time it fires at (HH:MM, default 00:00).
    #[arg(long, value_name = "HH:MM", requires = "date")]
    fire_time: Option<String>,
    /// How long each occurrence lasts ('45m', '2h'; whole days for --date, '2d').
    #[arg(long, value_name = "DURATION")]
    duration: Option<String>,
    /// Deliver a signed webhook POST to this URL.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present_any = ["file", "action_json"],
        conflicts_with = "action_json"
    )]
    webhook: Option<String>,
    /// The action as JSON, e.g. '{"type":"apicall","params":{"method":"POST","url":"…"}}'.
    #[arg(long, value_name = "JSON")]
    action_json: Option<String>,
    /// A recurrence rule (RRULE), e.g. 'FREQ=WEEKLY;BYDAY=MO,WE'.
    #[arg(long, value_name = "RRULE")]
    schedule: Option<String>,
    /// IANA time zone the rule is evaluated in (default UTC).
    #[arg(long, value_name = "TZ")]
    timezone: Option<String>,
    /// A tag (repeat for several).
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
    /// A JSON object sent in the webhook body.
    #[arg(long, value_name = "JSON")]
    metadata: Option<String>,
    /// The HMAC secret that signs this event's webhooks (default: the server's).
    #[arg(long, value_name = "SECRET")]
    secret: Option<String>,
    /// Free text.
    #[arg(long)]
    description: Option<String>,
    /// Idempotency-Key header: a retry with the same key returns the same event.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
}

/// A filter for the bulk forms of pause, resume and delete.
#[derive(Args, Debug)]
struct BulkArgs {
    /// Events with this tag (repeat: any of them).
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
    /// active, paused or inactive.
    #[arg(long)]
    status: Option<String>,
    /// A substring of the name or description.
    #[arg(long, short = 'q')]
    query: Option<String>,
    /// Only count what matches; change nothing.
    #[arg(long)]
    dry_run: bool,
}

impl BulkArgs {
    fn given(&self) -> bool {
        !self.tag.is_empty() || self.status.is_some() || self.query.is_some() || self.dry_run
    }

    fn body(&self) -> Value {
        let mut b = json!({"dry_run": self.dry_run});
        if !self.tag.is_empty() {
            b["tags"] = json!(self.tag);
        }
        if let Some(s) = &self.status {
            b["status"] = json!(s);
        }
        if let Some(q) = &self.query {
            b["q"] = json!(q);
        }
        b
    }
}

#[derive(Args, Debug)]
struct ListEventsArgs {
    /// Only events with this tag (repeat: any of them).
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
    /// active, paused or inactive.
    #[arg(long)]
    status: Option<String>,
    /// Full-text search over name, description, tags and metadata values (word prefixes,
    /// best match first).
    #[arg(long, short = 'q', visible_alias = "q")]
    query: Option<String>,
    /// Page size (the server's default is 50, at most 1000).
    #[arg(long)]
    limit: Option<u32>,
    /// Follow next_cursor and list every page.
    #[arg(long)]
    all: bool,
}

#[derive(Subcommand, Debug)]
enum WorkflowsCmd {
    /// Create a workflow from flags, or from a JSON body with --file.
    Create(CreateWorkflowArgs),
    /// List workflows, oldest first.
    #[command(alias = "ls")]
    List {
        /// Follow next_cursor and list every page.
        #[arg(long)]
        all: bool,
    },
    /// Show one workflow.
    Get { id: String },
    /// Delete a workflow (follow-ups it already wrote stay).
    #[command(alias = "rm")]
    Delete { id: String },
}

#[derive(Args, Debug)]
struct CreateWorkflowArgs {
    /// A full JSON workflow body (see docs/api.md); `-` reads it from stdin.
    #[arg(
        long,
        short = 'f',
        value_name = "PATH",
        conflicts_with_all = ["name", "when_event", "when_tag", "on", "trigger", "create_file", "delay", "disabled"]
    )]
    file: Option<String>,
    /// The workflow's name.
    #[arg(long, required_unless_present = "file")]
    name: Option<String>,
    /// The cause: occurrences of this event.
    #[arg(long, value_name = "ID", conflicts_with = "when_tag")]
    when_event: Option<String>,
    /// The cause: occurrences of events carrying this tag (repeat: all of them).
    #[arg(long, value_name = "TAG")]
    when_tag: Vec<String>,
    /// completed, failed or missed (repeat for several; default completed).
    #[arg(long, value_name = "STATE")]
    on: Vec<String>,
    /// The follow-up: a new occurrence of this event.
    #[arg(long, value_name = "ID", conflicts_with = "create_file")]
    trigger: Option<String>,
    /// The follow-up: a new one-time event from this JSON event body (`-`: stdin).
    #[arg(long, value_name = "PATH")]
    create_file: Option<String>,
    /// How long after the cause the follow-up fires, e.g. 30s, 5m (default: at once).
    #[arg(long, value_name = "DURATION")]
    delay: Option<String>,
    /// Save it disabled (it fires nothing until enabled).
    #[arg(long)]
    disabled: bool,
}

#[derive(Subcommand, Debug)]
enum OccurrencesCmd {
    /// List occurrences, newest first.
    #[command(alias = "ls")]
    List(ListOccArgs),
    /// Show one occurrence with its delivery attempts.
    Get { id: String },
    /// Count the occurrences the token may see by status (GET /occurrences/counts).
    Counts {
        /// Occurrences of events with this tag (repeat: any of them).
        #[arg(long, value_name = "TAG")]
        tag: Vec<String>,
    },
    /// Re-drive a failed or missed occurrence with a fresh set of attempts, or (with
    /// --status) every one a filter matches.
    Retry {
        id: Option<String>,
        #[command(flatten)]
        bulk: RetryArgs,
    },
}

/// A filter for the bulk form of `occurrences retry`.
#[derive(Args, Debug)]
struct RetryArgs {
    /// failed or missed: re-drive every occurrence with this status.
    #[arg(long)]
    status: Option<String>,
    /// Scheduled at or after this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    from: Option<String>,
    /// Scheduled at or before this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    to: Option<String>,
    /// Occurrences of events with this tag (repeat: any of them).
    #[arg(long, value_name = "TAG")]
    tag: Vec<String>,
    /// Occurrences of this event only.
    #[arg(long, value_name = "ID")]
    event: Option<String>,
    /// Only count what matches; change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args, Debug)]
struct ListOccArgs {
    /// Only this event's occurrences.
    #[arg(long, value_name = "ID")]
    event: Option<String>,
    /// Only occurrences of events with this tag (repeat: any of them; not with --event).
    #[arg(long, value_name = "TAG", conflicts_with = "event")]
    tag: Vec<String>,
    /// pending, scheduled, completed, failed, missed or cancelled.
    #[arg(long)]
    status: Option<String>,
    /// Page size (the server's default is 50, at most 1000).
    #[arg(long)]
    limit: Option<u32>,
    /// Follow next_cursor and list every page.
    #[arg(long)]
    all: bool,
}

#[derive(Subcommand, Debug)]
enum TemplatesCmd {
    /// List templates (the newest version of each), by name.
    List {
        /// Follow next_cursor and list every page.
        #[arg(long)]
        all: bool,
    },
    /// Show a template (the newest version, or --version N).
    Get {
        name: String,
        #[arg(long)]
        version: Option<u32>,
        /// Every version, newest first.
        #[arg(long, conflicts_with = "version")]
        versions: bool,
    },
    /// Save a template from a JSON file ({kind, subject?, text?, html?, body?, sample?}; `-`
    /// reads stdin): creates it, or saves its next version.
    Put {
        name: String,
        #[arg(long, value_name = "PATH")]
        file: String,
    },
    /// Delete a template and its versions (refused while live events use it).
    Delete { name: String },
    /// Render a template against a context (a JSON file; default: its sample).
    Render {
        name: String,
        #[arg(long, value_name = "PATH")]
        context: Option<String>,
        #[arg(long)]
        version: Option<u32>,
    },
}

/// A JSON object read from a file, or stdin for `-`.
fn json_file(path: &str, what: &str) -> Result<Value> {
    let text = if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Failure::usage(format!("cannot read the {what} from stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("cannot read {path}: {e}")))?
    };
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Failure::usage(format!("{path}: not JSON: {e}")))?;
    if !v.is_object() {
        return Err(Failure::usage(format!("the {what} must be a JSON object")));
    }
    Ok(v)
}

#[derive(Subcommand, Debug)]
enum TokensCmd {
    /// Issue a token (master token only). The token is shown once.
    Create(CreateTokenArgs),
    /// List issued tokens (admin), without the tokens themselves.
    #[command(alias = "ls")]
    List {
        /// Follow next_cursor and list every page.
        #[arg(long)]
        all: bool,
    },
    /// Revoke a token by its id (jti).
    Revoke { jti: String },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "snake_case")]
enum AccessArg {
    Read,
    Write,
    ReadWrite,
    Admin,
}

impl AccessArg {
    fn as_str(self) -> &'static str {
        match self {
            AccessArg::Read => "read",
            AccessArg::Write => "write",
            AccessArg::ReadWrite => "read_write",
            AccessArg::Admin => "admin",
        }
    }
}

#[derive(Args, Debug)]
struct CreateTokenArgs {
    /// Who the token is for.
    #[arg(long)]
    sub: String,
    /// What it may do.
    #[arg(long, value_enum)]
    access: AccessArg,
    /// A tag the token is limited to (repeat for several; none: every event).
    #[arg(long, value_name = "TAG")]
    scope: Vec<String>,
    /// A WebSocket client name the token may register on `GET /ws`, besides its `--sub`
    /// (repeat for several).
    #[arg(long = "client", value_name = "NAME")]
    clients: Vec<String>,
    /// When it expires: an RFC 3339 time, or a duration from now (90m, 12h, 30d, 2w).
    #[arg(long, value_name = "RFC3339|DURATION")]
    expires: String,
}

#[derive(Args, Debug)]
struct PreviewArgs {
    /// The rule, e.g. 'FREQ=DAILY;BYHOUR=9' (with or without `RRULE:`).
    rrule: String,
    /// DTSTART: RFC 3339 with an offset, or with --timezone a local date-time (default: now, to the second).
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    /// IANA time zone the rule is evaluated in (default UTC).
    #[arg(long, value_name = "TZ")]
    timezone: Option<String>,
    /// Only instants strictly after this (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    after: Option<String>,
    /// How many instants (default 10, at most 1000).
    #[arg(long, short = 'n')]
    count: Option<u32>,
}

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
        Command::Events(cmd) => match (matches!(cmd, EventsCmd::Pause { .. }), cmd) {
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
                let v = list(&client, "events", query, a.all).await?;
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
                bulk_events(&client, "delete", &bulk, &show).await
            }
            (_, EventsCmd::Pause { id: None, bulk }) => {
                bulk_events(&client, "pause", &bulk, &show).await
            }
            (_, EventsCmd::Resume { id: None, bulk }) => {
                bulk_events(&client, "resume", &bulk, &show).await
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
            (
                pause,
                EventsCmd::Pause { id: Some(id), .. } | EventsCmd::Resume { id: Some(id), .. },
            ) => {
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
        },
        Command::Occurrences(cmd) => match cmd {
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
                let v = list(&client, &path, query, a.all).await?;
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
        },
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

/// `--from` / `--to`: an RFC 3339 time as given, or now minus a duration (`90m`, `12h`, `30d`).
fn ago(flag: &str, s: &str, now: jiff::Timestamp) -> Result<String> {
    let s = s.trim();
    if s.parse::<jiff::Timestamp>().is_ok() {
        return Ok(s.to_string());
    }
    let secs = duration_secs(s.strip_prefix('-').unwrap_or(s)).ok_or_else(|| {
        Failure::usage(format!(
            "{flag} '{s}' is neither an RFC 3339 time (2027-01-01T00:00:00Z) nor a duration ago \
             (90m, 12h, 30d, 2w)"
        ))
    })?;
    let t = now
        .checked_sub(jiff::SignedDuration::from_secs(secs))
        .map_err(|_| Failure::usage(format!("{flag} '{s}' is too far back")))?;
    Ok(t.round(jiff::Unit::Second).unwrap_or(t).to_string())
}

/// `90m`, `12h`, `30d`, `2w`, `3600s` in seconds.
fn duration_secs(s: &str) -> Option<i64> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(per)
}

/// One path segment, percent-encoded, so an id cannot change the route.
/// How `run` prints an answer: `--json`, or the human rendering given.
type Show<'a> = dyn Fn(&Value, &dyn Fn(&Value) -> String) -> String + 'a;

/// `POST /events/{verb}` with the filter.
async fn bulk_events(
    client: &Client,
    verb: &str,
    bulk: &BulkArgs,
    show: &Show<'_>,
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

/// One line per version: number, time, actor, change, and the fields it changed.
fn history_human(v: &Value) -> String {
    let mut out = String::new();
    for ver in v.as_array().into_iter().flatten() {
        let fields: Vec<&str> = ver["diff"]
            .as_object()
            .map(|d| d.keys().map(String::as_str).collect())
            .unwrap_or_default();
        out.push_str(&format!(
            "v{}  {}  {}  {}  {}\n",
            output::field(ver, "version"),
            output::field(ver, "at"),
            output::field(ver, "actor"),
            output::field(ver, "change"),
            fields.join(", ")
        ));
    }
    out
}

fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// GET a list; with `all`, follow `next_cursor` and return every item as one
/// `{"data": [...], "next_cursor": null}`.
async fn list(
    client: &Client,
    path: &str,
    mut query: Vec<(&str, String)>,
    all: bool,
) -> Result<Value> {
    let first = client
        .send(Method::GET, client.url(path, &query), None)
        .await?;
    if !all {
        return Ok(first);
    }
    let mut items = first["data"].as_array().cloned().unwrap_or_default();
    let mut cursor = first["next_cursor"].as_str().map(str::to_string);
    query.push(("cursor", String::new()));
    while let Some(c) = cursor.filter(|c| !c.is_empty()) {
        if let Some(last) = query.last_mut() {
            last.1 = c;
        }
        let page = client
            .send(Method::GET, client.url(path, &query), None)
            .await?;
        items.extend(page["data"].as_array().cloned().unwrap_or_default());
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    Ok(json!({ "data": items, "next_cursor": null }))
}

/// A list page as a table, with a hint when there are more pages.
fn list_human(v: &Value, table: fn(&[Value]) -> String) -> String {
    let items = v["data"].as_array().cloned().unwrap_or_default();
    let mut out = table(&items);
    if v["next_cursor"].as_str().is_some_and(|c| !c.is_empty()) {
        out.push_str("(more results: use --all, or a larger --limit)\n");
    }
    out
}

fn preview_human(v: &Value) -> String {
    let tz_name = v["timezone"].as_str().unwrap_or("UTC").to_string();
    let tz = jiff::tz::TimeZone::get(&tz_name).ok();
    let mut out = format!(
        "schedule: {} (timezone {tz_name})\n",
        output::field(v, "schedule")
    );
    let instants = v["occurrences"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = instants
        .iter()
        .map(|i| {
            let utc = output::cell(i);
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
    out.push_str(&output::table(&["UTC", "LOCAL"], &rows));
    out
}

/// The body of `events create`: the --file JSON, or one built from the flags.
/// A JSON document from a file, or from stdin for `-`.
fn read_json(path: &str, what: &str) -> Result<Value> {
    let text = if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Failure::usage(format!("cannot read the {what} from stdin: {e}")))?;
        s
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Failure::usage(format!("cannot read {path}: {e}")))?
    };
    serde_json::from_str(&text).map_err(|e| {
        Failure::usage(format!(
            "{}: not JSON: {e}",
            if path == "-" { "stdin" } else { path }
        ))
    })
}

fn workflow_body(a: &CreateWorkflowArgs) -> Result<Value> {
    if let Some(path) = &a.file {
        return read_json(path, "workflow");
    }
    let mut when = Map::new();
    match (&a.when_event, a.when_tag.is_empty()) {
        (Some(id), true) => {
            when.insert("event_id".into(), id.clone().into());
        }
        (None, false) => {
            when.insert("tags".into(), json!(a.when_tag));
        }
        _ => {
            return Err(Failure::usage(
                "give the cause: --when-event ID or --when-tag TAG",
            ))
        }
    }
    let on = if a.on.is_empty() {
        vec!["completed".to_string()]
    } else {
        a.on.clone()
    };
    when.insert("on".into(), json!(on));
    let mut then = Map::new();
    match (&a.trigger, &a.create_file) {
        (Some(id), None) => {
            then.insert("trigger".into(), id.clone().into());
        }
        (None, Some(path)) => {
            then.insert("create".into(), read_json(path, "event")?);
        }
        _ => {
            return Err(Failure::usage(
                "give the follow-up: --trigger ID or --create-file PATH",
            ))
        }
    }
    if let Some(d) = &a.delay {
        then.insert("delay".into(), d.clone().into());
    }
    Ok(json!({
        "name": a.name.clone().unwrap_or_default(),
        "when": when,
        "then": then,
        "enabled": !a.disabled,
    }))
}

fn event_body(a: &CreateArgs) -> Result<Value> {
    if let Some(path) = &a.file {
        let text = if path == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Failure::usage(format!("cannot read the event from stdin: {e}")))?;
            s
        } else {
            std::fs::read_to_string(path)
                .map_err(|e| Failure::usage(format!("cannot read {path}: {e}")))?
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            Failure::usage(format!(
                "{}: not JSON: {e}",
                if path == "-" { "stdin" } else { path }
            ))
        })?;
        if !v.is_object() {
            return Err(Failure::usage("the event body must be a JSON object"));
        }
        return Ok(v);
    }
    let mut body = Map::new();
    body.insert("name".into(), a.name.clone().unwrap_or_default().into());
    match (&a.at, &a.date) {
        (_, Some(d)) => {
            body.insert("start_date".into(), d.clone().into());
            if let Some(t) = &a.fire_time {
                body.insert("fire_time".into(), t.clone().into());
            }
        }
        (at, None) => {
            body.insert("start_time".into(), at.clone().unwrap_or_default().into());
        }
    }
    if let Some(d) = &a.duration {
        body.insert("duration".into(), d.clone().into());
    }
    if let Some(d) = &a.description {
        body.insert("description".into(), d.clone().into());
    }
    let action = match (&a.webhook, &a.action_json) {
        (Some(url), _) => json!({ "type": "webhook", "params": { "url": url } }),
        (None, Some(j)) => parse_json_object("--action-json", j)?,
        (None, None) => return Err(Failure::usage("give --webhook URL or --action-json JSON")),
    };
    body.insert("action".into(), action);
    if let Some(s) = &a.schedule {
        body.insert("schedule".into(), s.clone().into());
    }
    if let Some(tz) = &a.timezone {
        body.insert("timezone".into(), tz.clone().into());
    }
    if !a.tag.is_empty() {
        body.insert("tags".into(), a.tag.clone().into());
    }
    if let Some(m) = &a.metadata {
        body.insert("metadata".into(), parse_json_object("--metadata", m)?);
    }
    if let Some(s) = &a.secret {
        body.insert("hmac_secret".into(), s.clone().into());
    }
    Ok(Value::Object(body))
}

fn parse_json_object(flag: &str, text: &str) -> Result<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(Failure::usage(format!("{flag} must be a JSON object"))),
        Err(e) => Err(Failure::usage(format!("{flag} is not JSON: {e}"))),
    }
}

/// `--expires`: an RFC 3339 time as given, or now plus a duration (`90m`, `12h`, `30d`, `2w`,
/// `3600s`), as RFC 3339 UTC.
fn expiry(s: &str, now: jiff::Timestamp) -> Result<String> {
    let s = s.trim();
    if s.parse::<jiff::Timestamp>().is_ok() {
        return Ok(s.to_string());
    }
    let bad = || {
        Failure::usage(format!(
            "--expires '{s}' is neither an RFC 3339 time (2027-01-01T00:00:00Z) nor a duration \
             (90m, 12h, 30d, 2w)"
        ))
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let secs_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    let secs = n.checked_mul(secs_per).ok_or_else(bad)?;
    let t = now
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .map_err(|_| bad())?;
    Ok(t.round(jiff::Unit::Second).unwrap_or(t).to_string())
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
