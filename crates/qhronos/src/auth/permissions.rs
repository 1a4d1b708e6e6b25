//! The permission table: every protected route and what it needs. The gate refuses a route
//! that is not listed (fail closed), and the authorisation matrix test walks this table.

use axum::http::Method;

pub use super::principal::Need;

/// Routes anyone may call.
pub const PUBLIC: &[&str] = &[
    "/health",
    "/status",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/swagger-ui.css",
    "/docs/swagger-ui-bundle.js",
    "/docs/init.js",
    // Authenticates inside the socket (the token may come in the first frame).
    "/ws",
];

/// `(method, route template, need)`.
pub const TABLE: &[(&str, &str, Need)] = &[
    ("POST", "/events", Need::Write),
    ("POST", "/events/batch", Need::Write),
    ("GET", "/events", Need::Read),
    ("GET", "/events/{id}", Need::Read),
    ("PUT", "/events/{id}", Need::Write),
    ("DELETE", "/events/{id}", Need::Write),
    ("POST", "/events/{id}/pause", Need::Write),
    ("POST", "/events/{id}/resume", Need::Write),
    ("POST", "/events/{id}/trigger", Need::Write),
    ("GET", "/events/{id}/occurrences", Need::Read),
    ("GET", "/occurrences", Need::Read),
    ("GET", "/occurrences/{id}", Need::Read),
    ("DELETE", "/occurrences/{id}", Need::Write),
    ("PATCH", "/occurrences/{id}", Need::Write),
    ("POST", "/occurrences/{id}/retry", Need::Write),
    ("POST", "/occurrences/{id}/ack", Need::Write),
    ("POST", "/occurrences/{id}/nack", Need::Write),
    ("POST", "/queues/{queue}/claim", Need::Write),
    ("POST", "/schedules/preview", Need::Read),
    ("POST", "/tokens", Need::Master),
    ("GET", "/tokens", Need::Admin),
    ("DELETE", "/tokens/{jti}", Need::Admin),
    ("GET", "/audit", Need::Admin),
    ("POST", "/admin/backup", Need::Admin),
];

/// True when the table lists the route with some method.
pub fn has_route(route: &str) -> bool {
    TABLE.iter().any(|(_, r, _)| *r == route)
}

pub fn need(method: &Method, route: &str) -> Option<Need> {
    TABLE
        .iter()
        .find(|(m, r, _)| *m == method.as_str() && *r == route)
        .map(|(_, _, n)| *n)
}
