//! Black-box integration tests: the real server, a real receiver, a temporary database each.

mod agenda;
mod analytics;
mod archive;
mod authz;
mod backups;
mod bulk;
mod calendar_checks;
mod calendars;
mod channels;
mod cli;
mod conflicts;
mod dashboard;
mod defaults;
mod delivery;
mod email_relay;
mod engine;
mod events;
mod expansion;
mod feeds;
mod fuzz_input;
mod helpers;
mod history;
mod leases;
mod local_times;
mod mcp;
mod mcp_calendars;
mod named_templates;
mod openapi;
mod operations;
mod receipts;
mod restart;
mod schema_drift;
mod schema_fuzz;
mod scopes;
mod search;
mod secrets;
mod security;
mod subscriptions;
mod templates;
mod validation;
mod websocket;
mod workflows;
mod ws_ownership;

/// The backend of this target (`TEST_STORE` overrides it); see helpers.rs.
const DEFAULT_STORE: &str = "sqlite";
