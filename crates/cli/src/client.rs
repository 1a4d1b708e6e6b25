//! The HTTP side: one request, and the mapping of every failure to a message and an exit code.

use std::fmt;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Exit codes scripts can rely on (documented in docs/cli.md).
pub mod exit {
    /// The command worked.
    pub const OK: i32 = 0;
    /// Bad usage or input: an unknown flag, a missing argument, a file that is not JSON, …
    pub const USAGE: i32 = 1;
    /// The API refused the request with a 4xx other than 401, 403 and 404 (400, 409, 422, 429, …).
    pub const API: i32 = 2;
    /// 404: no such event, occurrence or token (or outside the token's scope).
    pub const NOT_FOUND: i32 = 3;
    /// 401 or 403: no token, a wrong, expired or revoked token, or one without the role needed.
    pub const AUTH: i32 = 4;
    /// 5xx, or an answer that is not what the API promises.
    pub const SERVER: i32 = 5;
    /// Nothing answered: connection refused, unknown host, timeout.
    pub const CONNECT: i32 = 6;
}

/// A failure with its message and exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::USAGE,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

pub type Result<T> = std::result::Result<T, Failure>;

/// How many times one request waits out a 429 before the command gives up (exit code 2).
pub const MAX_RATE_LIMIT_WAITS: u32 = 5;
/// The longest single wait, whatever `Retry-After` says.
const MAX_RATE_LIMIT_WAIT_SECS: u64 = 60;

/// Seconds to wait from `Retry-After` (delay-seconds; 1 when absent or not a number), at most
/// [`MAX_RATE_LIMIT_WAIT_SECS`].
fn retry_after(h: &reqwest::header::HeaderMap) -> u64 {
    h.get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .clamp(1, MAX_RATE_LIMIT_WAIT_SECS)
}

pub struct Client {
    base: url::Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, token: Option<String>, timeout: Duration) -> Result<Client> {
        let mut base = url::Url::parse(base).map_err(|e| {
            Failure::usage(format!(
                "--url '{base}' is not a URL ({e}): expected e.g. http://127.0.0.1:8080"
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Failure::usage(format!(
                "--url '{base}' must start with http:// or https://"
            )));
        }
        // Routes are appended to the path, so a server behind a prefix (/qhronos/) works too.
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("qhronos-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10).min(timeout))
            .timeout(timeout)
            .build()
            .map_err(|e| Failure {
                code: exit::SERVER,
                message: format!("cannot create the HTTP client: {e}"),
            })?;
        Ok(Client {
            base,
            token: token.filter(|t| !t.is_empty()),
            http,
        })
    }

    /// The server URL as the user gave it, for messages.
    pub fn base(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// `path` without a leading slash plus query pairs (empty values are left out).
    pub fn url(&self, path: &str, query: &[(&str, String)]) -> url::Url {
        let mut u = self
            .base
            .join(path.trim_start_matches('/'))
            .expect("a relative path joins");
        let pairs: Vec<_> = query.iter().filter(|(_, v)| !v.is_empty()).collect();
        if !pairs.is_empty() {
            let mut q = u.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
        }
        u
    }

    /// Sends one request; a 2xx answer's JSON body (`Value::Null` for 204), or a [`Failure`].
    pub async fn send(&self, method: Method, url: url::Url, body: Option<&Value>) -> Result<Value> {
        self.send_with(method, url, body, &[]).await
    }

    pub async fn send_with(
        &self,
        method: Method,
        url: url::Url,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> Result<Value> {
        let mut waits = 0;
        loop {
            let mut req = self.http.request(method.clone(), url.clone());
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.map_err(|e| self.transport(e))?;
            let status = resp.status();
            // The rate limiter refuses before the request does anything, so sending it again
            // is safe: wait as long as the server asks, a bounded number of times.
            if status == StatusCode::TOO_MANY_REQUESTS && waits < MAX_RATE_LIMIT_WAITS {
                waits += 1;
                let secs = retry_after(resp.headers());
                eprintln!(
                    "qhronos: rate limited (HTTP 429): waiting {secs} s as the server asks, then retrying ({waits} of {MAX_RATE_LIMIT_WAITS})"
                );
                tokio::time::sleep(Duration::from_secs(secs)).await;
                continue;
            }
            let text = resp.text().await.map_err(|e| self.transport(e))?;
            if status.is_success() {
                if text.trim().is_empty() {
                    return Ok(Value::Null);
                }
                return serde_json::from_str(&text).map_err(|e| Failure {
                    code: exit::SERVER,
                    message: format!(
                        "the server answered {status} with a body that is not JSON: {e}"
                    ),
                });
            }
            return Err(self.refused(status, &text));
        }
    }

    /// GETs `url` and writes the answer's body, as it arrives, to `out`; the bytes written.
    /// A non-2xx answer is a [`Failure`] (and nothing is written).
    pub async fn download(&self, url: url::Url, out: &mut dyn std::io::Write) -> Result<u64> {
        let mut req = self.http.get(url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let mut resp = req.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.map_err(|e| self.transport(e))?;
            return Err(self.refused(status, &text));
        }
        let mut n = 0u64;
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(e))? {
            out.write_all(&chunk).map_err(|e| Failure {
                code: exit::USAGE,
                message: format!("cannot write the download: {e}"),
            })?;
            n += chunk.len() as u64;
        }
        Ok(n)
    }

    /// A failure before any HTTP answer.
    fn transport(&self, e: reqwest::Error) -> Failure {
        if e.is_connect() || e.is_timeout() {
            let why = if e.is_timeout() {
                " (timed out)".to_string()
            } else {
                String::new()
            };
            return Failure {
                code: exit::CONNECT,
                message: format!(
                    "cannot reach qhronosd at {}{why}: is it running? (set --url or QHRONOS_URL)",
                    self.base()
                ),
            };
        }
        // Walk the source chain: reqwest's own message is terse ("error sending request").
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        Failure {
            code: exit::CONNECT,
            message: format!("request to qhronosd at {} failed: {msg}", self.base()),
        }
    }

    /// A non-2xx answer: the server's `{"error": …}` message and the exit code of its class.
    fn refused(&self, status: StatusCode, text: &str) -> Failure {
        let server_msg = serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| {
                let t = text.trim();
                if t.is_empty() {
                    status.to_string()
                } else {
                    t.chars().take(500).collect()
                }
            });
        match status.as_u16() {
            401 => Failure {
                code: exit::AUTH,
                message: if self.token.is_some() {
                    "the server refused the token: set --token or QHRONOS_TOKEN".into()
                } else {
                    "the server needs a token: set --token or QHRONOS_TOKEN".into()
                },
            },
            403 => Failure {
                code: exit::AUTH,
                message: format!("forbidden: {server_msg}"),
            },
            404 => Failure {
                code: exit::NOT_FOUND,
                message: server_msg,
            },
            400..=499 => Failure {
                code: exit::API,
                message: format!("{server_msg} (HTTP {})", status.as_u16()),
            },
            _ => Failure {
                code: exit::SERVER,
                message: format!("server error (HTTP {}): {server_msg}", status.as_u16()),
            },
        }
    }
}

/// GET a list; with `all`, follow `next_cursor` and return every item as one
/// `{"data": [...], "next_cursor": null}`.
pub async fn list(
    client: &Client,
    path: &str,
    mut query: Vec<(&str, String)>,
    all: bool,
) -> Result<Value> {
    let first = client
        .send(Method::GET, client.url(path, &query), None)
        .await?;
    if !all {
        return Ok(first);
    }
    let mut items = first["data"].as_array().cloned().unwrap_or_default();
    let mut cursor = first["next_cursor"].as_str().map(str::to_string);
    query.push(("cursor", String::new()));
    while let Some(c) = cursor.filter(|c| !c.is_empty()) {
        if let Some(last) = query.last_mut() {
            last.1 = c;
        }
        let page = client
            .send(Method::GET, client.url(path, &query), None)
            .await?;
        items.extend(page["data"].as_array().cloned().unwrap_or_default());
        cursor = page["next_cursor"].as_str().map(str::to_string);
    }
    Ok(json!({ "data": items, "next_cursor": null }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_and_bounded() {
        let h = |v: &str| {
            let mut m = reqwest::header::HeaderMap::new();
            m.insert(reqwest::header::RETRY_AFTER, v.parse().unwrap());
            m
        };
        assert_eq!(retry_after(&h("3")), 3);
        assert_eq!(retry_after(&h("0")), 1);
        assert_eq!(retry_after(&h("86400")), 60);
        assert_eq!(retry_after(&h("soon")), 1);
        assert_eq!(retry_after(&reqwest::header::HeaderMap::new()), 1);
    }
}
