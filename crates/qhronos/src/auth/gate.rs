//! The gate in front of every route: who is calling (master token, issued token, or nobody),
//! rate limiting by that identity (by client IP for anonymous requests), then the permission
//! table. One middleware, so that no route can skip a step.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::jwt::Tokens;
use super::master::MasterToken;
use super::permissions::{self, PUBLIC};
use super::principal::{Caller, Principal};
use crate::error::ApiError;
use crate::ratelimit::{Class, Decision, RateLimiter};
use std::time::Instant;

#[derive(Clone)]
pub struct Gate {
    pub master: Arc<MasterToken>,
    pub tokens: Arc<Tokens>,
    /// `None` when rate limiting is off.
    pub limiter: Option<Arc<RateLimiter>>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

fn bearer(req: &Request) -> Option<&str> {
    let v = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl Gate {
    fn authenticate(&self, req: &Request) -> Result<Option<Principal>, &'static str> {
        let Some(token) = bearer(req).or_else(|| feed_token(req)) else {
            return match req.headers().get(AUTHORIZATION) {
                Some(_) => Err("malformed Authorization header: expected 'Bearer <token>'"),
                None => Ok(None),
            };
        };
        if self.master.verify(token) {
            return Ok(Some(Principal::Master));
        }
        self.tokens.verify(token).map(Some)
    }
}

/// A feed URL's `?token=` (calendar apps cannot send a header): taken only on `.ics` routes
/// and only without an Authorization header.
fn feed_token(req: &Request) -> Option<&str> {
    if req.headers().contains_key(AUTHORIZATION) || !req.uri().path().ends_with(".ics") {
        return None;
    }
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token="))
        .filter(|t| !t.is_empty())
}

fn unauthorized(reason: &str) -> Response {
    ApiError::Unauthorized(reason.to_string()).into_response()
}

fn set_headers(r: &mut Response, d: &Decision) {
    let h = r.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(d.reset_secs));
}

pub async fn gate(State(g): State<Gate>, mut req: Request, next: Next) -> Response {
    let ip: Option<IpAddr> = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let auth = g.authenticate(&req);
    let (key, class) = match &auth {
        Ok(Some(Principal::Master)) => ("master".to_string(), Class::Master),
        Ok(Some(p)) => (p.actor(), Class::Token),
        _ => (
            format!("ip:{}", ip.map(|i| i.to_string()).unwrap_or_default()),
            Class::Anonymous,
        ),
    };
    let decision = g.limiter.as_ref().and_then(|l| {
        Some((
            l.check_at(&key, class, Instant::now())?,
            l.per_second(class),
        ))
    });
    if let Some((d, per_second)) = &decision {
        if !d.allowed {
            g.metrics.rate_limited.inc();
            let mut r = (StatusCode::TOO_MANY_REQUESTS, Json(json!({ "error": format!("rate limit exceeded: {} requests burst, then {} per second; retry after {} s", d.limit, per_second, d.retry_after_secs) }))).into_response();
            set_headers(&mut r, d);
            r.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from(d.retry_after_secs),
            );
            return r;
        }
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let mut res = match route {
        // No route matched: the fallback answers 404 whoever asks.
        None => next.run(req).await,
        Some(r) if PUBLIC.contains(&r.as_str()) => next.run(req).await,
        Some(r) => match auth {
            Err(reason) => unauthorized(reason),
            Ok(None) => unauthorized("missing token"),
            Ok(Some(principal)) => match permissions::need(req.method(), &r) {
                // A method the table does not give this route is refused here, whatever the
                // router has: a handler can only be reached through a rule.
                None if permissions::has_route(&r) => method_not_allowed(req.method(), &r),
                // A route missing from the table is refused to everyone (fail closed).
                None => ApiError::Forbidden(format!("no permission rule for {} {r}", req.method()))
                    .into_response(),
                Some(need) if !principal.allows(need) => {
                    let has = match &principal {
                        Principal::Token { access, .. } => access.as_str(),
                        Principal::Master => "master",
                    };
                    ApiError::Forbidden(format!(
                        "this token has access '{has}'; {} {r} needs {}",
                        req.method(),
                        need.as_str()
                    ))
                    .into_response()
                }
                // A feed token reads its feed and nothing else.
                Some(_) if crate::api::feeds::is_feed_token(&principal) && !r.ends_with(".ics") => {
                    ApiError::Forbidden(format!(
                        "a feed token only reads an iCalendar feed, not {} {r}",
                        req.method()
                    ))
                    .into_response()
                }
                Some(_) => {
                    req.extensions_mut().insert(Caller { principal, ip });
                    next.run(req).await
                }
            },
        },
    };
    if let Some((d, _)) = &decision {
        set_headers(&mut res, d);
    }
    res
}

/// 405 with the methods the permission table gives the route.
fn method_not_allowed(method: &Method, route: &str) -> Response {
    let allow = permissions::methods(route).join(", ");
    let mut r = (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "error": format!("{method} is not allowed on {route}: use {allow}") })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&allow) {
        r.headers_mut().insert(axum::http::header::ALLOW, v);
    }
    r
}

/// The methods the HTTP metrics and the router know; any other answers 405 before anything
/// else runs, so that invented methods create no metric series and cost no lookup.
pub const STANDARD_METHODS: &[Method] = &[
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
    Method::CONNECT,
];

/// The metric label of a method: itself when standard, else `other`.
pub fn method_label(m: &Method) -> &'static str {
    STANDARD_METHODS
        .iter()
        .find(|s| *s == m)
        .map_or("other", Method::as_str)
}

/// Middleware, outside the gate: refuses methods that are not standard with 405.
pub async fn refuse_unknown_methods(req: Request, next: Next) -> Response {
    if method_label(req.method()) == "other" {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            Json(json!({ "error": "unknown HTTP method: use GET, HEAD, POST, PUT, PATCH or DELETE" })),
        )
            .into_response();
    }
    next.run(req).await
}
