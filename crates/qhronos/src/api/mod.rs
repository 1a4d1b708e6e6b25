//! The HTTP API: one router per resource, merged here, behind one gate (authentication, rate
//! limiting, permissions) — see `auth::gate`.

pub mod admin;
pub mod agenda;
pub mod analytics;
pub mod archive;
pub mod audit;
pub mod bulk;
pub mod calendar_feeds;
mod calendar_import;
pub mod calendars;
pub mod channels;
pub mod conflicts;
pub mod docs;
pub mod event_actions;
pub mod event_io;
pub mod events;
mod events_batch;
pub mod extract;
pub mod feeds;
pub mod mcp;

pub mod history;
pub mod inputs;
pub mod me;
pub mod occurrences;
pub mod openapi;
pub mod queues;
pub mod request_id;
pub mod schedules;
pub mod secrets;
pub mod system;
pub mod templates;
pub mod tokens;
pub mod workflows;
pub mod ws;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::middleware;
use axum::Router;
use serde_json::Value;
use uuid::Uuid;

use crate::auth::gate::{gate, refuse_unknown_methods, Gate};
use crate::auth::jwt::Tokens;
use crate::auth::{Caller, MasterToken};
use crate::config::Config;
use crate::delivery::ssrf::Guard;
use crate::delivery::ws::Hub;
use crate::domain::action::Action;
use crate::domain::event::Event;
use crate::domain::{now_ms, Millis};
use crate::engine::retention::RetentionReport;
use crate::engine::EngineHandle;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::{AuditEntry, Store};

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 1 << 20;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    pub engine: EngineHandle,
    pub tokens: Arc<Tokens>,
    /// The master token, for `GET /ws` (which authenticates inside the socket).
    pub master: Arc<MasterToken>,
    pub guard: Arc<Guard>,
    /// Connected WebSocket clients and tag listeners.
    pub hub: Arc<Hub>,
    pub started: Instant,
    pub started_at: Millis,
    pub store_kind: &'static str,
    pub metrics: Arc<Metrics>,
    /// What the last retention pass removed.
    pub retention: Arc<std::sync::Mutex<Option<RetentionReport>>>,
    /// The conflict indexes of calendars, kept between checks.
    pub calendar_index: Arc<crate::calendars::index_cache::IndexCache>,
}

impl AppState {
    /// Appends to the audit log. A failure is logged, not returned: the change it describes
    /// has already been committed.
    /// The entry concerns no tag: only admins without a scope read it (see `audit_in`).
    pub async fn audit(
        &self,
        caller: &Caller,
        action: &str,
        target: Option<String>,
        summary: Value,
    ) {
        self.audit_entry(caller, action, target, None, summary)
            .await
    }

    /// Appends an entry about something tagged `tags` (an event's tags, a token's scope): an
    /// admin whose scope covers them reads it.
    pub async fn audit_in(
        &self,
        caller: &Caller,
        action: &str,
        target: Option<String>,
        tags: &[String],
        summary: Value,
    ) {
        self.audit_entry(caller, action, target, Some(tags.to_vec()), summary)
            .await
    }

    /// The entry [`AppState::audit_in`] would append, for a store write that keeps it in its
    /// own transaction (a create writes its audit line with the event).
    pub fn audit_line(
        caller: &Caller,
        action: &str,
        target: Option<String>,
        tags: &[String],
        summary: Value,
    ) -> AuditEntry {
        Self::entry(caller, action, target, Some(tags.to_vec()), summary)
    }

    /// An audit entry of `caller`'s, now.
    fn entry(
        caller: &Caller,
        action: &str,
        target: Option<String>,
        tags: Option<Vec<String>>,
        summary: Value,
    ) -> AuditEntry {
        AuditEntry {
            id: 0,
            at: now_ms(),
            actor: caller.principal.actor(),
            action: action.to_string(),
            target,
            ip: caller.ip.map(|ip| ip.to_string()),
            summary,
            tags,
        }
    }

    async fn audit_entry(
        &self,
        caller: &Caller,
        action: &str,
        target: Option<String>,
        tags: Option<Vec<String>>,
        summary: Value,
    ) {
        let entry = Self::entry(caller, action, target, tags, summary);
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::error!(error = %e, action, "audit append failed");
        }
    }

    /// Whether the action can be delivered here: the SSRF guard's verdict on an HTTP target,
    /// a configured SMTP server for email; as a 422 naming the setting.
    pub async fn check_target(&self, action: &Action) -> Result<(), ApiError> {
        if let Some(url) = action.url() {
            self.guard
                .check_url(url)
                .await
                .map_err(|e| ApiError::Unprocessable(format!("action url: {e}")))?;
        }
        if let Action::Email { to, .. } = action {
            if self.config.smtp.host.as_deref().is_none_or(str::is_empty) {
                return Err(ApiError::Unprocessable(
                    "action.type 'email' needs an SMTP server: set smtp.host (see docs/configuration.md)"
                        .into(),
                ));
            }
            crate::delivery::email::check_recipients(&self.config.smtp.allowed_recipients, to)
                .map_err(ApiError::Unprocessable)?;
        }
        Ok(())
    }

    /// The event if it exists and the caller's scope covers it; otherwise 404 (never 403, so
    /// that ids cannot be probed).
    pub async fn visible_event(&self, caller: &Caller, raw: &str) -> Result<Event, ApiError> {
        let nf = || ApiError::NotFound(format!("event '{raw}' not found"));
        let id = Uuid::parse_str(raw).map_err(|_| nf())?;
        match self.store.get_event(id).await? {
            Some(e) if caller.principal.can_see(&e.tags) => Ok(e),
            _ => Err(nf()),
        }
    }
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {method} {}", uri.path()))
}

/// The whole HTTP API. Shared (`Arc`): `/mcp`'s tools call it in-process.
pub fn router(state: AppState, g: Gate) -> std::sync::Arc<Router> {
    let late = mcp::LateRouter::default();
    let r = Router::new()
        .merge(system::router())
        .merge(events::router())
        .merge(history::router())
        .merge(bulk::router())
        .merge(secrets::router())
        .merge(occurrences::router())
        .merge(agenda::router())
        .merge(schedules::router())
        .merge(tokens::router())
        .merge(templates::router())
        .merge(queues::router())
        .merge(ws::router())
        .merge(audit::router())
        .merge(analytics::router())
        .merge(admin::router())
        .merge(me::router())
        .merge(channels::router())
        .merge(archive::router())
        .merge(workflows::router())
        .merge(calendars::router())
        .merge(feeds::router())
        .merge(conflicts::router())
        .merge(calendar_feeds::router())
        .merge(openapi::router())
        .merge(docs::router())
        .merge(mcp::router(late.clone()))
        .merge(crate::ui::router())
        .fallback(no_route)
        .layer(middleware::from_fn_with_state(g, gate))
        .layer(middleware::from_fn(refuse_unknown_methods))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            system::track_http,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(request_id::trace_layer())
        .layer(middleware::from_fn(request_id::request_id))
        .with_state(state);
    let r = std::sync::Arc::new(r);
    late.set(&r);
    r
}
