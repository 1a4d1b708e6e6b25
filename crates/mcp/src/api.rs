//! How the tools reach the REST API.

use async_trait::async_trait;
use serde_json::Value;

/// A REST answer: its status and JSON body (`null` for an empty one).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// True for a 2xx answer.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Something that answers REST calls of the Qhronos API.
#[async_trait]
pub trait Api: Send + Sync + 'static {
    /// `method path` (path with its query string) with an optional JSON body, on behalf of the
    /// HTTP request `from` when the transport is HTTP (its `Authorization` header, its peer): an
    /// API with its own token (the CLI's) ignores it. `Err` only when no answer came at all.
    async fn call(
        &self,
        from: Option<&http::request::Parts>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Reply, String>;
}

/// The REST API of a `qhronosd` at `base`, called with `token` (the CLI's `qhronos mcp`).
pub struct HttpApi {
    base: url::Url,
    token: String,
    client: reqwest::Client,
}

impl HttpApi {
    /// An API at `base` (`http://127.0.0.1:8080`) called with `token`.
    pub fn new(base: url::Url, token: String) -> HttpApi {
        HttpApi {
            base,
            token,
            client: reqwest::Client::new(),
        }
    }
}

#[async_trait]
impl Api for HttpApi {
    async fn call(
        &self,
        _from: Option<&http::request::Parts>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Reply, String> {
        let url = self
            .base
            .join(path)
            .map_err(|e| format!("bad path {path}: {e}"))?;
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut req = self.client.request(method, url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("qhronosd at {} did not answer: {e}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Reply { status, body })
    }
}
