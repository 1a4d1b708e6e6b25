//! Request ids and request logs. Every response carries `X-Request-Id`: the request's own when
//! it sent a sane one (1 to 128 visible ASCII characters), else a new UUID v7. The id is a field
//! of the request's log span, with the method and the matched route; the response is logged at
//! info with its status and latency. Never a header value other than the id, a query string or
//! a body.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Response};
use axum::middleware::Next;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::{DefaultOnFailure, DefaultOnRequest, TraceLayer};
use tracing::Span;
use uuid::Uuid;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a client.
pub const MAX_LEN: usize = 128;

/// The request's id, as an extension for handlers that want it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The client's id when it is 1 to 128 visible ASCII characters (no spaces, no controls).
fn sane(v: &HeaderValue) -> Option<&str> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= MAX_LEN && s.bytes().all(|b| b.is_ascii_graphic())).then_some(s)
}

/// Middleware: settles the request's id before anything else sees the request, and echoes it on
/// the response.
pub async fn request_id(mut req: Request, next: Next) -> axum::response::Response {
    let value = match req.headers().get(&HEADER).filter(|v| sane(v).is_some()) {
        Some(v) => v.clone(),
        None => HeaderValue::from_str(&Uuid::now_v7().to_string()).expect("a UUID is ASCII"),
    };
    let id = value.to_str().unwrap_or_default().to_string();
    req.headers_mut().insert(HEADER, value.clone());
    req.extensions_mut().insert(RequestId(id));
    let mut res = next.run(req).await;
    res.headers_mut().insert(HEADER, value);
    res
}

type MakeSpan = fn(&Request<Body>) -> Span;
type OnResponse = fn(&Response<Body>, Duration, &Span);

/// The request span: method, route (the matched template, or the raw path when no route
/// matched), request id.
fn make_span(req: &Request<Body>) -> Span {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str())
        .unwrap_or_else(|| req.uri().path());
    let id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.as_str())
        .unwrap_or_default();
    tracing::info_span!(
        target: "qhronos::http",
        "request",
        method = %req.method(),
        path = %path,
        request_id = %id,
    )
}

fn on_response(res: &Response<Body>, latency: Duration, _: &Span) {
    tracing::info!(
        target: "qhronos::http",
        status = res.status().as_u16(),
        latency_ms = latency.as_micros() as f64 / 1000.0,
        "response"
    );
}

/// The trace layer for the API router (inside [`request_id`], so that the span has the id).
pub fn trace_layer() -> TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    MakeSpan,
    DefaultOnRequest,
    OnResponse,
    (),
    (),
    DefaultOnFailure,
> {
    TraceLayer::new_for_http()
        .make_span_with(make_span as MakeSpan)
        .on_response(on_response as OnResponse)
        .on_body_chunk(())
        .on_eos(())
}
