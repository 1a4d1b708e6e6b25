//! `/mcp`: the MCP tools (crate `qhronos-mcp`) over MCP's streamable HTTP transport.
//!
//! The transport runs stateless, answering each JSON-RPC POST with JSON, so every request
//! carries its bearer token and passes the gate like any REST call (`POST /mcp` needs a valid
//! token; `GET`/`DELETE`, the session routes of the transport's stateful mode, are 405). Each
//! tool then calls the REST API *through this same router*, with the caller's `Authorization`
//! and address: roles, tag scopes, rate limits and the audit log (actor = the token) apply to
//! every action exactly as over REST, and no route exists here that REST lacks.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request};
use axum::Router;
use qhronos_mcp::{Api, QhronosMcp, Reply};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;
use tower::ServiceExt;

/// Most bytes of a REST answer a tool reads (lists are paged well below this).
const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// The router the tools call; set once the router is built (it contains `/mcp` itself). Weak:
/// the router owns this, and a strong reference would keep the router, the store and its pools
/// alive forever.
#[derive(Clone, Default)]
pub struct LateRouter(Arc<OnceLock<Weak<Router>>>);

impl LateRouter {
    /// Sets the router; later calls are ignored.
    pub fn set(&self, r: &Arc<Router>) {
        let _ = self.0.set(Arc::downgrade(r));
    }
}

/// The REST API of this process, called in-process with the MCP request's credentials.
pub struct InProcess {
    router: LateRouter,
}

#[async_trait]
impl Api for InProcess {
    async fn call(
        &self,
        from: Option<&http::request::Parts>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Reply, String> {
        let router = self
            .router
            .0
            .get()
            .and_then(Weak::upgrade)
            .map(|r| (*r).clone())
            .ok_or("the server is starting or stopping")?;
        let mut req = Request::builder().method(method).uri(path);
        if let Some(auth) = from.and_then(|p| p.headers.get(header::AUTHORIZATION)) {
            req = req.header(header::AUTHORIZATION, auth.clone());
        }
        if let Some(id) = from.and_then(|p| p.headers.get("x-request-id")) {
            req = req.header("x-request-id", id.clone());
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let mut req = req.body(body).map_err(|e| e.to_string())?;
        // The caller's address, for rate limits and the audit log.
        if let Some(ci) = from.and_then(|p| p.extensions.get::<ConnectInfo<SocketAddr>>()) {
            req.extensions_mut().insert(*ci);
        }
        let resp = router.oneshot(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), MAX_ANSWER)
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(Reply { status, body })
    }
}

/// The `/mcp` route, its tools calling `late` (set it to the finished router).
pub fn router<S: Clone + Send + Sync + 'static>(late: LateRouter) -> Router<S> {
    let api = Arc::new(InProcess { router: late });
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        // The Host check guards servers without credentials against DNS rebinding; every
        // request here carries a bearer token, and qhronosd may sit behind any host name.
        .disable_allowed_hosts();
    let service: StreamableHttpService<QhronosMcp<InProcess>, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(QhronosMcp::new(api.clone())),
            Default::default(),
            config,
        );
    Router::new().route_service("/mcp", service)
}

/// MCP (for AI agents)
///
/// The Model Context Protocol's streamable HTTP transport, stateless: each JSON-RPC request
/// (`initialize`, `tools/list`, `tools/call`, `resources/read`, `prompts/get`, …) gets its JSON
/// answer. The tools call this API's routes with the caller's token, so each action needs what
/// its route needs; see docs/mcp.md. `GET` and `DELETE` (the stateful mode's sessions) are 405.
#[utoipa::path(
    post,
    path = "/mcp",
    tag = "mcp",
    request_body(content = Object, description = "A JSON-RPC 2.0 request of MCP", content_type = "application/json"),
    responses(
        (status = 200, description = "The JSON-RPC response (a tool's failure is a result with `isError: true` and the REST message)", body = Object),
    ),
)]
#[allow(dead_code)]
pub(super) async fn mcp_doc() {}
