//! The command line: `clap`'s definitions of every command, its arguments and their help.

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};

use crate::{agenda, archive, calendars};

/// Command-line client of qhronosd, the Qhronos scheduling and webhook service.
///
/// Exit codes: 0 success, 1 usage or input error, 2 the API refused the request (4xx other than
/// 401/403/404), 3 not found, 4 authentication or permission, 5 server error, 6 cannot connect.
#[derive(Parser, Debug)]
#[command(name = "qhronos", version, about, long_about)]
pub(crate) struct Cli {
    /// Base URL of qhronosd.
    #[arg(
        long,
        env = "QHRONOS_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub(crate) url: String,
    /// Bearer token: the master token or an issued one.
    #[arg(long, env = "QHRONOS_TOKEN", hide_env_values = true, global = true)]
    pub(crate) token: Option<String>,
    /// Print the server's JSON answer instead of a table.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 30, value_name = "SECONDS", global = true)]
    pub(crate) timeout: u64,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
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
pub(crate) struct AnalyticsArgs {
    /// Start: an RFC 3339 time, or a duration ago (90m, 12h, 30d, 2w). Default: 24h before --to.
    #[arg(long)]
    pub(crate) from: Option<String>,
    /// End: an RFC 3339 time, or a duration ago. Default: now.
    #[arg(long)]
    pub(crate) to: Option<String>,
    #[arg(long, value_enum, default_value_t = BucketArg::Hour)]
    pub(crate) bucket: BucketArg,
    /// Only events with this tag (repeat: any of them; not with --event).
    #[arg(long, value_name = "TAG", conflicts_with = "event")]
    pub(crate) tag: Vec<String>,
    /// Only this event (also a deleted one).
    #[arg(long, value_name = "ID")]
    pub(crate) event: Option<String>,
    /// List empty buckets too.
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum BucketArg {
    Minute,
    Hour,
    Day,
}

#[derive(Subcommand, Debug)]
pub(crate) enum EventsCmd {
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
pub(crate) struct CreateArgs {
    /// A full JSON event body (see docs/api.md); `-` reads it from stdin.
    #[arg(
        long,
        short = 'f',
        value_name = "PATH",
        conflicts_with_all = ["name", "at", "date", "duration", "webhook", "action_json", "schedule", "timezone", "tag", "metadata", "secret", "description"]
    )]
    pub(crate) file: Option<String>,
    /// The event's name.
    #[arg(long, required_unless_present = "file")]
    pub(crate) name: Option<String>,
    /// When: the one-time instant, or the first instance of a series: RFC 3339 with an
    /// offset, or with --timezone a local date-time ('2026-03-29T09:00').
    #[arg(long, value_name = "TIME", required_unless_present_any = ["file", "date"], conflicts_with = "date")]
    pub(crate) at: Option<String>,
    /// An all-day event on this local date (YYYY-MM-DD) in --timezone (required with it).
    #[arg(long, value_name = "DATE", requires = "timezone")]
    pub(crate) date: Option<String>,
    /// With --date: the local time it fires at (HH:MM, default 00:00).
    #[arg(long, value_name = "HH:MM", requires = "date")]
    pub(crate) fire_time: Option<String>,
    /// How long each occurrence lasts ('45m', '2h'; whole days for --date, '2d').
    #[arg(long, value_name = "DURATION")]
    pub(crate) duration: Option<String>,
    /// Deliver a signed webhook POST to this URL.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present_any = ["file", "action_json"],
        conflicts_with = "action_json"
    )]
    pub(crate) webhook: Option<String>,
    /// The action as JSON, e.g. '{"type":"apicall","params":{"method":"POST","url":"…"}}'.
    #[arg(long, value_name = "JSON")]
    pub(crate) action_json: Option<String>,
    /// A recurrence rule (RRULE), e.g. 'FREQ=WEEKLY;BYDAY=MO,WE'.
    #[arg(long, value_name = "RRULE")]
    pub(crate) schedule: Option<String>,
    /// IANA time zone the rule is evaluated in (default UTC).
    #[arg(long, value_name = "TZ")]
    pub(crate) timezone: Option<String>,
    /// A tag (repeat for several).
    #[arg(long, value_name = "TAG")]
    pub(crate) tag: Vec<String>,
    /// A JSON object sent in the webhook body.
    #[arg(long, value_name = "JSON")]
    pub(crate) metadata: Option<String>,
    /// The HMAC secret that signs this event's webhooks (default: the server's).
    #[arg(long, value_name = "SECRET")]
    pub(crate) secret: Option<String>,
    /// Free text.
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// Idempotency-Key header: a retry with the same key returns the same event.
    #[arg(long, value_name = "KEY")]
    pub(crate) idempotency_key: Option<String>,
}

/// A filter for the bulk forms of pause, resume and delete.
#[derive(Args, Debug)]
pub(crate) struct BulkArgs {
    /// Events with this tag (repeat: any of them).
    #[arg(long, value_name = "TAG")]
    pub(crate) tag: Vec<String>,
    /// active, paused or inactive.
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// A substring of the name or description.
    #[arg(long, short = 'q')]
    pub(crate) query: Option<String>,
    /// Only count what matches; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

impl BulkArgs {
    pub(crate) fn given(&self) -> bool {
        !self.tag.is_empty() || self.status.is_some() || self.query.is_some() || self.dry_run
    }

    pub(crate) fn body(&self) -> Value {
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
pub(crate) struct ListEventsArgs {
    /// Only events with this tag (repeat: any of them).
    #[arg(long, value_name = "TAG")]
    pub(crate) tag: Vec<String>,
    /// active, paused or inactive.
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// Full-text search over name, description, tags and metadata values (word prefixes,
    /// best match first).
    #[arg(long, short = 'q', visible_alias = "q")]
    pub(crate) query: Option<String>,
    /// Page size (the server's default is 50, at most 1000).
    #[arg(long)]
    pub(crate) limit: Option<u32>,
    /// Follow next_cursor and list every page.
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum WorkflowsCmd {
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
pub(crate) struct CreateWorkflowArgs {
    /// A full JSON workflow body (see docs/api.md); `-` reads it from stdin.
    #[arg(
        long,
        short = 'f',
        value_name = "PATH",
        conflicts_with_all = ["name", "when_event", "when_tag", "on", "trigger", "create_file", "delay", "disabled"]
    )]
    pub(crate) file: Option<String>,
    /// The workflow's name.
    #[arg(long, required_unless_present = "file")]
    pub(crate) name: Option<String>,
    /// The cause: occurrences of this event.
    #[arg(long, value_name = "ID", conflicts_with = "when_tag")]
    pub(crate) when_event: Option<String>,
    /// The cause: occurrences of events carrying this tag (repeat: all of them).
    #[arg(long, value_name = "TAG")]
    pub(crate) when_tag: Vec<String>,
    /// completed, failed or missed (repeat for several; default completed).
    #[arg(long, value_name = "STATE")]
    pub(crate) on: Vec<String>,
    /// The follow-up: a new occurrence of this event.
    #[arg(long, value_name = "ID", conflicts_with = "create_file")]
    pub(crate) trigger: Option<String>,
    /// The follow-up: a new one-time event from this JSON event body (`-`: stdin).
    #[arg(long, value_name = "PATH")]
    pub(crate) create_file: Option<String>,
    /// How long after the cause the follow-up fires, e.g. 30s, 5m (default: at once).
    #[arg(long, value_name = "DURATION")]
    pub(crate) delay: Option<String>,
    /// Save it disabled (it fires nothing until enabled).
    #[arg(long)]
    pub(crate) disabled: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum OccurrencesCmd {
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
pub(crate) struct RetryArgs {
    /// failed or missed: re-drive every occurrence with this status.
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// Scheduled at or after this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub(crate) from: Option<String>,
    /// Scheduled at or before this time (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub(crate) to: Option<String>,
    /// Occurrences of events with this tag (repeat: any of them).
    #[arg(long, value_name = "TAG")]
    pub(crate) tag: Vec<String>,
    /// Occurrences of this event only.
    #[arg(long, value_name = "ID")]
    pub(crate) event: Option<String>,
    /// Only count what matches; change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

#[derive(Args, Debug)]
pub(crate) struct ListOccArgs {
    /// Only this event's occurrences.
    #[arg(long, value_name = "ID")]
    pub(crate) event: Option<String>,
    /// Only occurrences of events with this tag (repeat: any of them; not with --event).
    #[arg(long, value_name = "TAG", conflicts_with = "event")]
    pub(crate) tag: Vec<String>,
    /// pending, scheduled, completed, failed, missed or cancelled.
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// Page size (the server's default is 50, at most 1000).
    #[arg(long)]
    pub(crate) limit: Option<u32>,
    /// Follow next_cursor and list every page.
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum TemplatesCmd {
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

#[derive(Subcommand, Debug)]
pub(crate) enum TokensCmd {
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
pub(crate) enum AccessArg {
    Read,
    Write,
    ReadWrite,
    Admin,
}

impl AccessArg {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AccessArg::Read => "read",
            AccessArg::Write => "write",
            AccessArg::ReadWrite => "read_write",
            AccessArg::Admin => "admin",
        }
    }
}

#[derive(Args, Debug)]
pub(crate) struct CreateTokenArgs {
    /// Who the token is for.
    #[arg(long)]
    pub(crate) sub: String,
    /// What it may do.
    #[arg(long, value_enum)]
    pub(crate) access: AccessArg,
    /// A tag the token is limited to (repeat for several; none: every event).
    #[arg(long, value_name = "TAG")]
    pub(crate) scope: Vec<String>,
    /// A WebSocket client name the token may register on `GET /ws`, besides its `--sub`
    /// (repeat for several).
    #[arg(long = "client", value_name = "NAME")]
    pub(crate) clients: Vec<String>,
    /// When it expires: an RFC 3339 time, or a duration from now (90m, 12h, 30d, 2w).
    #[arg(long, value_name = "RFC3339|DURATION")]
    pub(crate) expires: String,
}

#[derive(Args, Debug)]
pub(crate) struct PreviewArgs {
    /// The rule, e.g. 'FREQ=DAILY;BYHOUR=9' (with or without `RRULE:`).
    pub(crate) rrule: String,
    /// DTSTART: RFC 3339 with an offset, or with --timezone a local date-time (default: now, to the second).
    #[arg(long, value_name = "TIME")]
    pub(crate) start: Option<String>,
    /// IANA time zone the rule is evaluated in (default UTC).
    #[arg(long, value_name = "TZ")]
    pub(crate) timezone: Option<String>,
    /// Only instants strictly after this (RFC 3339).
    #[arg(long, value_name = "RFC3339")]
    pub(crate) after: Option<String>,
    /// How many instants (default 10, at most 1000).
    #[arg(long, short = 'n')]
    pub(crate) count: Option<u32>,
}
