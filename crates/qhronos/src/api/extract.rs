//! Request extractors with error messages a person can act on.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::domain::{parse_time, Millis};
use crate::error::ApiError;

/// A JSON body of any content type (curl's `-d` sends a form type), read within the body limit.
/// Errors name the field: unknown fields, wrong types, malformed JSON.
pub struct Body<T>(pub T, pub Bytes);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest(format!("cannot read the request body: {e}"))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadRequest(
                "request body is empty: expected a JSON object".into(),
            ));
        }
        if let Some(at) = nul_in(&bytes) {
            return Err(ApiError::BadRequest(format!(
                "{at}: contains the character U+0000, which cannot be stored: remove it"
            )));
        }
        let v = serde_json::from_slice(&bytes).map_err(|e| {
            let what = if e.is_syntax() || e.is_eof() {
                "malformed JSON"
            } else {
                "invalid request body"
            };
            ApiError::BadRequest(format!("{what}: {e}"))
        })?;
        Ok(Body(v, bytes))
    }
}

/// Where a JSON body holds a U+0000 in a string or a key (`$.name`, `$.events[2].tags[0]`):
/// PostgreSQL text and JSONB cannot store one, so it is refused up front, on every backend
/// alike, instead of failing deep in the store. Only bodies with the escape `\u0000` are
/// parsed twice (raw NUL bytes are not valid JSON).
fn nul_in(bytes: &[u8]) -> Option<String> {
    let escaped = bytes
        .windows(6)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && &w[2..] == b"0000");
    if !escaped {
        return None;
    }
    fn walk(v: &serde_json::Value, path: String) -> Option<String> {
        match v {
            serde_json::Value::String(s) if s.contains('\0') => Some(path),
            serde_json::Value::Array(a) => a
                .iter()
                .enumerate()
                .find_map(|(i, x)| walk(x, format!("{path}[{i}]"))),
            serde_json::Value::Object(m) => m.iter().find_map(|(k, x)| {
                if k.contains('\0') {
                    Some(format!("{path} (a key)"))
                } else {
                    walk(x, format!("{path}.{k}"))
                }
            }),
            _ => None,
        }
    }
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    walk(&v, "$".to_string())
}

/// Query parameters as plain strings, parsed by the handler with precise messages.
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))?;
        Ok(Params(map))
    }
}

impl Params {
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(ApiError::BadRequest(format!(
                "unknown query parameter '{k}': expected {}",
                allowed.join(", ")
            ))),
            None => Ok(()),
        }
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|s| !s.is_empty())
    }

    /// `limit`: default 50, at most 1000.
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.get("limit") {
            None => Ok(50),
            Some(s) => match s.parse::<i64>() {
                Ok(n) if (1..=1000).contains(&n) => Ok(n),
                _ => Err(ApiError::BadRequest(format!(
                    "limit: '{s}' is not a whole number from 1 to 1000"
                ))),
            },
        }
    }

    /// `cursor` of a list paged by id: the id the previous page ended with.
    pub fn id_cursor(&self) -> Result<Option<Uuid>, ApiError> {
        self.get("cursor")
            .map(|c| {
                Uuid::parse_str(c).map_err(|_| {
                    ApiError::BadRequest(format!(
                        "cursor: '{c}' is not a cursor from a previous page"
                    ))
                })
            })
            .transpose()
    }

    pub fn time(&self, k: &str) -> Result<Option<Millis>, ApiError> {
        self.get(k)
            .map(|s| {
                parse_time(k, s)
                    .map(|t| t.as_millisecond())
                    .map_err(ApiError::BadRequest)
            })
            .transpose()
    }

    /// `k`: comma-separated ids (UUIDs), repeats counted once, at most `max`; `None` when the
    /// parameter is absent or empty.
    pub fn ids(&self, k: &str, max: usize) -> Result<Option<Vec<Uuid>>, ApiError> {
        let Some(raw) = self.get(k) else {
            return Ok(None);
        };
        let mut ids = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let id = Uuid::parse_str(part).map_err(|_| {
                ApiError::BadRequest(format!("{k}: '{part}' is not an id (a UUID)"))
            })?;
            if !ids.contains(&id) {
                ids.push(id);
            }
            if ids.len() > max {
                return Err(ApiError::BadRequest(format!(
                    "{k}: more than {max} ids; ask for at most {max} per request"
                )));
            }
        }
        Ok(Some(ids))
    }

    pub fn tags(&self) -> Vec<String> {
        self.get("tags")
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Parses an id from a path; anything that is not a UUID is simply not found.
pub fn id(kind: &str, s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::NotFound(format!("{kind} '{s}' not found")))
}

/// A page of `limit` items the caller may see (`visible`), from a store list paged by id
/// (`fetch(after, n)`: up to `n` items after `after`, ids ascending): store pages are read
/// until the page is full. The cursor is the id of the page's last item, `None` at the end.
pub async fn visible_page<T>(
    after: Option<Uuid>,
    limit: i64,
    fetch: impl Fn(Option<Uuid>, i64) -> BoxFuture<'static, Result<Vec<T>, ApiError>>,
    id: impl Fn(&T) -> Uuid,
    visible: impl Fn(&T) -> bool,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let mut data: Vec<T> = Vec::new();
    let mut from = after;
    loop {
        let batch = fetch(from, limit + 1).await?;
        let last = batch.last().map(&id);
        let exhausted = (batch.len() as i64) <= limit;
        for item in batch {
            if !visible(&item) {
                continue;
            }
            if data.len() as i64 == limit {
                let next = data.last().map(|o| id(o).to_string());
                return Ok((data, next));
            }
            data.push(item);
        }
        if exhausted {
            return Ok((data, None));
        }
        from = last;
    }
}
