//! The HTTP error type: every handler returns `Result<_, ApiError>`, and this is the one place
//! where errors become status codes. Internal errors are logged with their cause; the client
//! gets a plain message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// The reason: missing, malformed, expired, revoked, bad signature.
    #[error("{0}: send 'Authorization: Bearer <token>'")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than the limit (1 MiB; 16 MiB for POST /events/batch)")]
    PayloadTooLarge,
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unavailable(String),
    /// Items of a batch are invalid (each with its index, status and error); nothing was
    /// written. 409 when every item is a 409, else 400.
    #[error("{message}")]
    Items {
        message: String,
        items: Vec<serde_json::Value>,
    },
    /// An event overlaps others in an `auto_plan` calendar: the collisions and the nearest
    /// free slots (409).
    #[error("{message}")]
    Overlap {
        message: String,
        /// `{conflicts, proposals}`, boxed to keep the error small.
        detail: Box<serde_json::Value>,
    },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            // Items all refused for the same reason answer with it (409: overlaps in an
            // `auto_plan` calendar); otherwise 400.
            ApiError::Items { items, .. }
                if !items.is_empty() && items.iter().all(|i| i["status"] == 409) =>
            {
                StatusCode::CONFLICT
            }
            ApiError::Items { .. } => StatusCode::BAD_REQUEST,
            ApiError::Overlap { .. } => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = ?e, "request failed");
        }
        let status = self.status();
        let body = match &self {
            ApiError::Items { message, items } => json!({ "error": message, "items": items }),
            ApiError::Overlap { message, detail } => {
                json!({ "error": message, "conflicts": detail["conflicts"], "proposals": detail["proposals"] })
            }
            _ => json!({ "error": self.to_string() }),
        };
        let mut res = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        res
    }
}

/// Store faults are ours: logged with their cause, a plain 500 for the client. A handler that
/// can explain one to the caller (a backup target that exists) matches it before this.
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::Internal(e.into())
    }
}
