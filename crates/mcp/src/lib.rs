//! Qhronos for AI agents: the Model Context Protocol tools, resources and prompts, defined once
//! and served two ways — over MCP's streamable HTTP transport by `qhronosd` (`/mcp`, behind the
//! same gate as the REST API) and over stdio by the CLI (`qhronos mcp`).
//!
//! Every tool is a call (or two) of the public REST API through an [`Api`]: in `qhronosd` the
//! request goes through the server's own router with the caller's bearer token, so roles, tag
//! scopes, rate limits and the audit log apply exactly as for REST; in the CLI it goes over HTTP
//! to `--url` with `--token`. A REST error becomes an MCP *tool* error carrying the REST message
//! (it names the field and what would be accepted), never a protocol failure.

pub mod api;
pub mod schemas;
mod server;
pub mod tools;

pub use api::{Api, HttpApi, Reply};
pub use server::QhronosMcp;
