//! Black-box integration tests: the real server, a real receiver, a temporary database each.

mod analytics;
mod authz;
mod channels;
mod cli;
mod defaults;
mod delivery;
mod email_relay;
mod engine;
mod events;
mod expansion;
mod fuzz_input;
mod helpers;
mod leases;
mod openapi;
mod operations;
mod receipts;
mod restart;
mod scopes;
mod secrets;
mod security;
mod templates;
mod validation;
mod websocket;
mod ws_ownership;

/// The backend of this target (`TEST_STORE` overrides it); see helpers.rs.
const DEFAULT_STORE: &str = "sqlite";
