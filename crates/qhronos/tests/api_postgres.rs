//! The whole integration suite (tests/api) again, on PostgreSQL: a fresh database per test on
//! the server at `POSTGRES_TEST_URL`. See tests/api/helpers.rs for the backend choice and for
//! what happens when no server is reachable. The multi-node tests live here only.

#[path = "api/channels.rs"]
mod channels;
#[path = "api/cli.rs"]
mod cli;
#[path = "api/delivery.rs"]
mod delivery;
#[path = "api/engine.rs"]
mod engine;
#[path = "api/events.rs"]
mod events;
#[path = "api/fuzz_input.rs"]
mod fuzz_input;
#[path = "api/helpers.rs"]
mod helpers;
#[path = "api/leases.rs"]
mod leases;
#[path = "api/multinode.rs"]
mod multinode;
#[path = "api/openapi.rs"]
mod openapi;
#[path = "api/operations.rs"]
mod operations;
#[path = "api/private_pg.rs"]
mod private_pg;
#[path = "api/restart.rs"]
mod restart;
#[path = "api/security.rs"]
mod security;
#[path = "api/validation.rs"]
mod validation;
#[path = "api/websocket.rs"]
mod websocket;

/// The backend of this target (`TEST_STORE` overrides it).
const DEFAULT_STORE: &str = "postgres";
