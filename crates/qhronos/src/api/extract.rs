//! Request extractors with error messages a person can act on.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
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

    pub fn time(&self, k: &str) -> Result<Option<Millis>, ApiError> {
        self.get(k)
            .map(|s| {
                parse_time(k, s)
                    .map(|t| t.as_millisecond())
                    .map_err(ApiError::BadRequest)
            })
            .transpose()
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
