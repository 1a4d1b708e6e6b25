//! `GET /channels`: what is connected to the WebSocket hub of this node and what waits in the
//! pull queues, for the dashboard's Channels page and the CLI.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::extract::Params;
use super::AppState;
use crate::auth::Caller;
use crate::delivery::ws::Connections;
use crate::domain::{fmt_ms, now_ms};
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new().route("/channels", get(list_channels))
}

/// One pull queue's backlog.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueOut {
    /// The queue's name (`action.params.queue`).
    pub queue: String,
    /// Events on the queue (not deleted) that the caller may see.
    pub events: i64,
    /// Occurrences due and waiting to be claimed (the queue's depth).
    pub ready: i64,
    /// Occurrences pending with a later due time (future instances, retries backing off).
    pub waiting: i64,
    /// Occurrences claimed by a consumer and not yet acked or nacked.
    pub claimed: i64,
    /// The due time of the oldest ready occurrence; `null` when none is ready.
    #[schema(format = DateTime)]
    pub oldest_ready_at: Option<String>,
}

/// The delivery channels clients hold open or pull from.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelsOut {
    /// WebSocket connections of the node that answered (with several nodes, each has its own).
    pub websocket: Connections,
    /// Every pull queue with an event the caller may see, by name.
    pub queues: Vec<QueueOut>,
}

/// Channels
///
/// The WebSocket clients (`client-hook`) and tag listeners connected to this node, and the pull
/// queues with their depth (`ready`) and claims in flight (`claimed`). A scoped token sees the
/// clients connected with tokens inside its scope, the listeners' tags inside its scope, and
/// the queues of its events only. Names and counts only: never a token.
#[utoipa::path(
    get,
    path = "/channels",
    tag = "channels",
    params(("tags" = Option<String>, Query, description = "Comma-separated tags: only the queues of events with one of them")),
    responses(
        (status = 200, description = "Connections and queues", body = ChannelsOut),
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub(super) async fn list_channels(
    State(st): State<AppState>,
    caller: Caller,
    p: Params,
) -> Result<Json<ChannelsOut>, ApiError> {
    p.only(&["tags"])?;
    let websocket = st.hub.connections(&caller.principal);
    let queues = match caller.principal.filter_tags(p.tags()) {
        None => Vec::new(),
        Some(tags) => st
            .store
            .queue_depths(&tags, now_ms())
            .await?
            .into_iter()
            .map(|d| QueueOut {
                queue: d.queue,
                events: d.events,
                ready: d.ready,
                waiting: d.waiting,
                claimed: d.claimed,
                oldest_ready_at: d.oldest_ready_at.map(fmt_ms),
            })
            .collect(),
    };
    Ok(Json(ChannelsOut { websocket, queues }))
}
