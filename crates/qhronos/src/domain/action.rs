//! Actions: how an occurrence is delivered.

use std::collections::BTreeMap;

use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A validated action. Serialises as `{"type": …, "params": {…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", content = "params", rename_all = "lowercase")]
pub enum Action {
    /// POST of the signed occurrence body to `url`.
    Webhook { url: String },
    /// A request exactly as the user wrote it.
    Apicall {
        method: String,
        url: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<Value>,
    },
}

const MAX_HEADERS: usize = 32;

const KNOWN_LATER: [&str; 3] = ["websocket", "pull", "email"];

impl Action {
    /// Parses `{"type", "params"}` from a request, naming what is wrong.
    pub fn parse(v: &Value) -> Result<Action, String> {
        let obj = v
            .as_object()
            .ok_or("action: expected an object {\"type\": …, \"params\": {…}}")?;
        if let Some(k) = obj.keys().find(|k| *k != "type" && *k != "params") {
            return Err(format!(
                "action: unknown field '{k}', expected 'type' and 'params'"
            ));
        }
        let ty = obj
            .get("type")
            .and_then(Value::as_str)
            .ok_or("action.type is required: 'webhook' or 'apicall'")?;
        let empty = Value::Object(Default::default());
        let params = obj.get("params").unwrap_or(&empty);
        let p = params
            .as_object()
            .ok_or("action.params: expected an object")?;
        match ty {
            "webhook" => {
                only_fields(p, &["url"])?;
                let url = str_field(p, "url")?;
                Ok(Action::Webhook {
                    url: check_url("action.params.url", url)?,
                })
            }
            "apicall" => {
                only_fields(p, &["method", "url", "headers", "body"])?;
                let url = check_url("action.params.url", str_field(p, "url")?)?;
                let method = match p.get("method") {
                    None => "POST".to_string(),
                    Some(m) => {
                        let m = m
                            .as_str()
                            .ok_or("action.params.method: expected a string such as \"POST\"")?
                            .to_ascii_uppercase();
                        if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
                            .contains(&m.as_str())
                        {
                            return Err(format!(
                                "action.params.method: '{m}' is not one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
                            ));
                        }
                        m
                    }
                };
                let mut headers = BTreeMap::new();
                if let Some(h) = p.get("headers") {
                    let h = h
                        .as_object()
                        .ok_or("action.params.headers: expected an object of strings")?;
                    if h.len() > MAX_HEADERS {
                        return Err(format!(
                            "action.params.headers: at most {MAX_HEADERS} headers ({} given)",
                            h.len()
                        ));
                    }
                    for (k, v) in h {
                        let v = v.as_str().ok_or_else(|| {
                            format!("action.params.headers.{k}: expected a string")
                        })?;
                        if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                            || reqwest::header::HeaderValue::from_str(v).is_err()
                        {
                            return Err(format!(
                                "action.params.headers.{k}: not a valid HTTP header"
                            ));
                        }
                        headers.insert(k.clone(), v.to_string());
                    }
                }
                Ok(Action::Apicall {
                    method,
                    url,
                    headers,
                    body: p.get("body").cloned(),
                })
            }
            t if KNOWN_LATER.contains(&t) => Err(format!(
                "action.type '{t}' is not available in this version: use 'webhook' or 'apicall'"
            )),
            t => Err(format!(
                "action.type '{t}' is unknown: expected 'webhook' or 'apicall'"
            )),
        }
    }

    /// The legacy `webhook` / `webhook_url` string field.
    pub fn from_legacy(field: &str, s: &str) -> Result<Action, String> {
        if s.starts_with("q:") {
            return Err(format!(
                "{field}: WebSocket clients ('q:<client>') are not available in this version: use an http(s) URL"
            ));
        }
        Ok(Action::Webhook {
            url: check_url(field, s)?,
        })
    }

    /// The action type, as in `{"type": …}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Webhook { .. } => "webhook",
            Action::Apicall { .. } => "apicall",
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Action::Webhook { url } | Action::Apicall { url, .. } => url,
        }
    }
}

fn only_fields(p: &serde_json::Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match p.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "action.params: unknown field '{k}', expected {}",
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

fn str_field<'a>(p: &'a serde_json::Map<String, Value>, k: &str) -> Result<&'a str, String> {
    p.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("action.params.{k} is required (a string)"))
}

/// Only absolute http(s) URLs with a host.
pub fn check_url(field: &str, s: &str) -> Result<String, String> {
    let url = Url::parse(s).map_err(|e| format!("{field}: '{s}' is not a valid URL ({e})"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "{field}: scheme '{}' is not allowed: only http and https",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{field}: '{s}' has no host"));
    }
    Ok(s.to_string())
}
