//! `/health` and `/status`: no authentication, never a secret.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;
use crate::domain::{fmt_ms, now_ms};
use crate::metrics::{HttpLabels, PoolLabels, RouteLabels, StatusLabel};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
}

/// The dispatcher goes round its loop at least every poll interval; beyond this it is stuck.
const HEARTBEAT_STALE_MS: i64 = 10_000;

/// Liveness
///
/// 200 when the database answers and the scheduler loop is running; 503 with the reason
/// otherwise. `search` says whether the full-text index of events answers (`ok`) or not
/// (`unavailable`: `GET /events?q=` fails, everything else works).
#[utoipa::path(
    get,
    path = "/health",
    tag = "system",
    responses(
        (status = 200, description = "Healthy", body = super::openapi::Health),
        (status = 503, description = "Unhealthy: the database is unreachable or the scheduler has stalled", body = super::openapi::Health),
    ),
)]
pub(super) async fn health(State(st): State<AppState>) -> (StatusCode, Json<Value>) {
    let db = st.store.ping().await;
    let age = now_ms() - st.engine.heartbeat();
    let search = || async {
        match st.store.search_ready().await {
            Ok(()) => "ok",
            Err(e) => {
                tracing::warn!(error = %e, "health check: the full-text index does not answer");
                "unavailable"
            }
        }
    };
    match db {
        Ok(()) if age <= HEARTBEAT_STALE_MS => (
            StatusCode::OK,
            Json(json!({ "status": "ok", "search": search().await })),
        ),
        Ok(()) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({ "status": "unhealthy", "error": format!("scheduler heartbeat is {age} ms old"), "search": search().await }),
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

/// Status
///
/// Version, uptime, store kind, scheduler heartbeat, occurrence counts by status. Never a
/// secret.
#[utoipa::path(
    get,
    path = "/status",
    tag = "system",
    responses(
        (status = 200, description = "Status", body = super::openapi::Status),
        (status = 503, description = "The store could not be read (`occurrences` is null)", body = super::openapi::Status),
    ),
)]
pub(super) async fn status(State(st): State<AppState>) -> (StatusCode, Json<Value>) {
    let beat = st.engine.heartbeat();
    let age = now_ms() - beat;
    let now = now_ms();
    let gauges = cached_gauges(&st).await;
    let queue = json!({
        "oldest_overdue_seconds": gauges.as_ref().ok().and_then(|g| g.oldest_overdue).map(|t| (now - t).max(0) as f64 / 1000.0),
        "expander_lag_seconds": gauges.as_ref().map_or(0.0, |g| expander_lag(&st, g, now)),
        "fire_lag_ms": st.metrics.fire_lag_avg_us.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1000.0,
    });
    let retention = st.retention.lock().ok().and_then(|r| r.clone());
    let (clients, listeners) = st.hub.connected();
    let counts = gauges.map(|g| g.counts.clone());
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
            "queue": queue,
            "retention": retention,
            "websocket": {"clients": clients, "tag_listeners": listeners},
        })),
    )
}

/// Prometheus metrics
///
/// The text exposition format. Queue depths, the oldest overdue occurrence, the expander lag and
/// pool usage are read from the store at most once a second. See docs/operations.md for the list.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "system",
    responses((status = 200, description = "Metrics in the Prometheus text format", body = String, content_type = "text/plain")),
)]
pub(super) async fn metrics(State(st): State<AppState>) -> axum::response::Response {
    if !st.metrics.enabled {
        return crate::error::ApiError::NotFound(
            "metrics are disabled (metrics.enabled: false)".into(),
        )
        .into_response();
    }
    let now = now_ms();
    if let Ok(g) = cached_gauges(&st).await {
        let m = &st.metrics;
        let c = &g.counts;
        for (status, n) in [
            ("pending", c.pending),
            ("scheduled", c.scheduled),
            ("completed", c.completed),
            ("failed", c.failed),
            ("missed", c.missed),
            ("cancelled", c.cancelled),
        ] {
            m.occurrences.get_or_create(&StatusLabel { status }).set(n);
        }
        m.oldest_overdue.set(
            g.oldest_overdue
                .map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0),
        );
        m.expander_lag.set(expander_lag(&st, &g, now));
        for &(pool, idle, used) in &g.pools {
            m.db_pool
                .get_or_create(&PoolLabels {
                    pool,
                    state: "idle",
                })
                .set(i64::from(idle));
            m.db_pool
                .get_or_create(&PoolLabels {
                    pool,
                    state: "in_use",
                })
                .set(i64::from(used));
        }
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(),
    )
        .into_response()
}

/// The store's figures, about a second old (see `gauge_cache`): `/status` and `/metrics` are
/// open to anyone, and counting by status reads every occurrence.
async fn cached_gauges(
    st: &AppState,
) -> crate::store::Result<std::sync::Arc<crate::store::Gauges>> {
    let store = st.store.clone();
    st.metrics
        .store_gauges
        .get(move || async move { store.gauges(now_ms()).await })
        .await
}

/// Seconds by which the earliest unexpanded instance lies inside the look-ahead window.
fn expander_lag(st: &AppState, g: &crate::store::Gauges, now: i64) -> f64 {
    let window_end = now + st.config.engine.look_ahead.as_millis();
    g.earliest_unexpanded
        .map_or(0.0, |t| (window_end - t).max(0) as f64 / 1000.0)
}

/// Middleware: HTTP requests by method, route and status, with latency.
pub async fn track_http(
    State(m): State<std::sync::Arc<crate::metrics::Metrics>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // Labels from closed sets only: a request cannot invent a series.
    let method = crate::auth::gate::method_label(req.method());
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let start = std::time::Instant::now();
    if !m.enabled {
        return next.run(req).await;
    }
    let res = next.run(req).await;
    let status = res.status().as_u16();
    m.http_requests
        .get_or_create(&HttpLabels {
            method,
            route: route.clone(),
            status,
        })
        .inc();
    m.http_duration
        .get_or_create(&RouteLabels { method, route })
        .observe(start.elapsed().as_secs_f64());
    res
}
