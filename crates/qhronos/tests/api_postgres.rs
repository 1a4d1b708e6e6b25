//! The whole integration suite (tests/api) again, on PostgreSQL: a fresh database per test on
//! the server at `POSTGRES_TEST_URL`. See tests/api/helpers.rs for the backend choice and for
//! what happens when no server is reachable. The multi-node tests live here only.

#[path = "api/agenda.rs"]
mod agenda;
#[path = "api/analytics.rs"]
mod analytics;
#[path = "api/archive.rs"]
mod archive;
#[path = "api/authz.rs"]
mod authz;
#[path = "api/backups.rs"]
mod backups;

#[path = "api/bulk.rs"]
mod bulk;
#[path = "api/calendar_checks.rs"]
mod calendar_checks;
#[path = "api/calendars.rs"]
mod calendars;
#[path = "api/channels.rs"]
mod channels;
#[path = "api/cli.rs"]
mod cli;
#[path = "api/conflicts.rs"]
mod conflicts;
#[path = "api/dashboard.rs"]
mod dashboard;
#[path = "api/defaults.rs"]
mod defaults;
#[path = "api/delivery.rs"]
mod delivery;
#[path = "api/email_relay.rs"]
mod email_relay;
#[path = "api/engine.rs"]
mod engine;
#[path = "api/events.rs"]
mod events;
#[path = "api/expansion.rs"]
mod expansion;
#[path = "api/feeds.rs"]
mod feeds;
#[path = "api/fuzz_input.rs"]
mod fuzz_input;
#[path = "api/helpers.rs"]
mod helpers;
#[path = "api/history.rs"]
mod history;
#[path = "api/leases.rs"]
mod leases;
#[path = "api/local_times.rs"]
mod local_times;
#[path = "api/mcp.rs"]
mod mcp;
#[path = "api/mcp_calendars.rs"]
mod mcp_calendars;
#[path = "api/multinode.rs"]
mod multinode;
#[path = "api/named_templates.rs"]
mod named_templates;
#[path = "api/openapi.rs"]
mod openapi;
#[path = "api/operations.rs"]
mod operations;
#[path = "api/private_pg.rs"]
mod private_pg;
#[path = "api/receipts.rs"]
mod receipts;
#[path = "api/restart.rs"]
mod restart;
#[path = "api/schema_fuzz.rs"]
mod schema_fuzz;
#[path = "api/scopes.rs"]
mod scopes;
#[path = "api/search.rs"]
mod search;
#[path = "api/secrets.rs"]
mod secrets;
#[path = "api/security.rs"]
mod security;
#[path = "api/subscriptions.rs"]
mod subscriptions;
#[path = "api/templates.rs"]
mod templates;
#[path = "api/validation.rs"]
mod validation;
#[path = "api/websocket.rs"]
mod websocket;
#[path = "api/workflows.rs"]
mod workflows;
#[path = "api/ws_ownership.rs"]
mod ws_ownership;

/// The backend of this target (`TEST_STORE` overrides it).
const DEFAULT_STORE: &str = "postgres";
