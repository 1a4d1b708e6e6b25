//! The permission table: every protected route and what it needs. The gate refuses a route or
//! a method that is not listed (fail closed); the authorisation matrix test walks every route
//! and method the router answers and checks each against this table.

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
    // The dashboard's files (`crate::ui`): the page asks for a token, its API calls carry it.
    "/",
    "/ui",
    "/ui/",
    "/ui/{*path}",
    // Authenticates inside the socket (the token may come in the first frame).
    "/ws",
];

/// `(method, route template, need)`.
pub const TABLE: &[(&str, &str, Need)] = &[
    ("POST", "/events", Need::Write),
    ("POST", "/events/batch", Need::Write),
    ("POST", "/events/pause", Need::Write),
    ("POST", "/events/resume", Need::Write),
    ("POST", "/events/delete", Need::Write),
    ("GET", "/events", Need::Read),
    ("GET", "/events/{id}", Need::Read),
    ("PUT", "/events/{id}", Need::Write),
    ("DELETE", "/events/{id}", Need::Write),
    ("POST", "/events/{id}/pause", Need::Write),
    ("POST", "/events/{id}/resume", Need::Write),
    ("POST", "/events/{id}/trigger", Need::Write),
    ("GET", "/events/{id}/occurrences", Need::Read),
    ("GET", "/events/{id}/secret", Need::Write),
    ("GET", "/events/{id}/versions", Need::Read),
    ("GET", "/events/{id}/versions/{n}", Need::Read),
    ("POST", "/events/{id}/versions/{n}/restore", Need::Write),
    ("GET", "/occurrences", Need::Read),
    ("GET", "/occurrences/counts", Need::Read),
    ("GET", "/agenda", Need::Read),
    ("POST", "/occurrences/retry", Need::Write),
    ("GET", "/occurrences/{id}", Need::Read),
    ("DELETE", "/occurrences/{id}", Need::Write),
    ("PATCH", "/occurrences/{id}", Need::Write),
    ("POST", "/occurrences/{id}/retry", Need::Write),
    ("POST", "/occurrences/{id}/ack", Need::Write),
    ("POST", "/occurrences/{id}/nack", Need::Write),
    ("POST", "/queues/{queue}/claim", Need::Write),
    ("POST", "/schedules/preview", Need::Read),
    ("POST", "/templates", Need::Write),
    ("GET", "/templates", Need::Read),
    ("GET", "/templates/{name}", Need::Read),
    ("PUT", "/templates/{name}", Need::Write),
    ("DELETE", "/templates/{name}", Need::Write),
    ("GET", "/templates/{name}/versions", Need::Read),
    ("POST", "/templates/{name}/render", Need::Read),
    ("POST", "/tokens", Need::Master),
    ("GET", "/tokens", Need::Admin),
    ("DELETE", "/tokens/{jti}", Need::Admin),
    ("GET", "/audit", Need::Admin),
    ("GET", "/analytics", Need::Read),
    ("POST", "/admin/backup", Need::Admin),
    // MCP: any valid token; each tool's REST call then needs what its route needs.
    ("POST", "/mcp", Need::Read),
    ("GET", "/admin/backups", Need::Admin),
    ("GET", "/admin/config", Need::Admin),
    ("GET", "/me", Need::Read),
    ("GET", "/channels", Need::Read),
    ("GET", "/archive/occurrences", Need::Read),
    ("GET", "/archive/events/{id}", Need::Read),
    ("GET", "/archive/export", Need::Admin),
    ("POST", "/workflows", Need::Write),
    ("GET", "/workflows", Need::Read),
    ("GET", "/workflows/{id}", Need::Read),
    ("PUT", "/workflows/{id}", Need::Write),
    ("DELETE", "/workflows/{id}", Need::Write),
    ("POST", "/calendars", Need::Write),
    ("GET", "/calendars", Need::Read),
    ("POST", "/calendars/import", Need::Write),
    ("GET", "/calendars/{id}", Need::Read),
    ("DELETE", "/calendars/{id}", Need::Write),
    ("GET", "/calendars/{id}/feed.ics", Need::Read),
    ("GET", "/events.ics", Need::Read),
    ("POST", "/feed-tokens", Need::Write),
    ("POST", "/calendars/{id}/free-slots", Need::Read),
    ("POST", "/calendars/{id}/conflicts", Need::Read),
    ("POST", "/calendars/{id}/refresh", Need::Write),
];

/// True when the table lists the route with some method.
pub fn has_route(route: &str) -> bool {
    TABLE.iter().any(|(_, r, _)| *r == route)
}

/// What `method route` needs; `None` when the table has no rule for it. `HEAD` needs what `GET`
/// needs (the router answers it with the GET handler, minus the body).
pub fn need(method: &Method, route: &str) -> Option<Need> {
    let m = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    TABLE
        .iter()
        .find(|(tm, r, _)| *tm == m && *r == route)
        .map(|(_, _, n)| *n)
}

/// The methods the table gives a route (with `HEAD` where it has `GET`), for `Allow`.
pub fn methods(route: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (m, r, _) in TABLE {
        if *r == route {
            out.push(m);
            if *m == "GET" {
                out.push("HEAD");
            }
        }
    }
    out
}
