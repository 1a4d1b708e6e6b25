//! The HTTP API: one router per resource, merged here; authentication wraps all but
//! `/health` and `/status`.

pub mod events;
pub mod extract;
pub mod occurrences;
pub mod schedules;
pub mod system;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::middleware;
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::auth::{require_master, MasterToken};
use crate::config::Config;
use crate::domain::Millis;
use crate::engine::EngineHandle;
use crate::error::ApiError;
use crate::store::Store;

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 1 << 20;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub engine: EngineHandle,
    pub started: Instant,
    pub started_at: Millis,
    pub store_kind: &'static str,
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

pub fn router(state: AppState, token: Arc<MasterToken>) -> Router {
    let protected = Router::new()
        .merge(events::router())
        .merge(occurrences::router())
        .merge(schedules::router())
        .route_layer(middleware::from_fn_with_state(token, require_master));
    Router::new()
        .merge(system::router())
        .merge(protected)
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
