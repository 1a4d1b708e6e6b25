//! Black-box integration tests: the real server, a real receiver, a temporary database each.

mod channels;
mod cli;
mod delivery;
mod engine;
mod events;
mod fuzz_input;
mod helpers;
mod leases;
mod openapi;
mod operations;
mod restart;
mod security;
mod validation;
mod websocket;

/// The backend of this target (`TEST_STORE` overrides it); see helpers.rs.
const DEFAULT_STORE: &str = "sqlite";
