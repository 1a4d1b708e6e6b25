//! `/health` and `/status`: no authentication, never a secret.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;
use crate::domain::{fmt_ms, now_ms};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/status", get(status))
}

/// The dispatcher goes round its loop at least every poll interval; beyond this it is stuck.
const HEARTBEAT_STALE_MS: i64 = 10_000;

async fn health(State(st): State<AppState>) -> (StatusCode, Json<Value>) {
    let db = st.store.ping().await;
    let age = now_ms() - st.engine.heartbeat();
    match db {
        Ok(()) if age <= HEARTBEAT_STALE_MS => (StatusCode::OK, Json(json!({ "status": "ok" }))),
        Ok(()) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({ "status": "unhealthy", "error": format!("scheduler heartbeat is {age} ms old") }),
            ),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unhealthy", "error": "database unreachable" })),
            )
        }
    }
}

async fn status(State(st): State<AppState>) -> (StatusCode, Json<Value>) {
    let beat = st.engine.heartbeat();
    let age = now_ms() - beat;
    let counts = st.store.counts().await;
    let code = if counts.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": st.started.elapsed().as_secs(),
            "started_at": fmt_ms(st.started_at),
            "store": st.store_kind,
            "scheduler": {
                "heartbeat_at": (beat > 0).then(|| fmt_ms(beat)),
                "heartbeat_age_ms": age,
                "healthy": age <= HEARTBEAT_STALE_MS,
            },
            "occurrences": counts.ok(),
        })),
    )
}
