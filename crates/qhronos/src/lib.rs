//! Qhronos: a scheduling and delivery service. See `DESIGN.md` and the README.

pub mod api;
pub mod auth;
pub mod calendars;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod engine;
pub mod error;
pub mod gauge_cache;
pub mod metrics;
pub mod ratelimit;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod ui;
