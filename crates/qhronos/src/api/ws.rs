//! `GET /ws`: the WebSocket channel (the original Qhronos protocol).
//!
//! The first frame subscribes: `{"type": "client-hook", "client_name": …, "token": …}` or
//! `{"type": "tag-listener", "tags": […], "token": …}` (the token may come in the
//! `Authorization` header instead). The server answers `{"type": "ack", "message":
//! "subscription registered"}`, or `{"type": "error", "message": …}` and closes. Events then
//! arrive as `{"type": "event", …}`; a client hook answers each with `{"type": "ack",
//! "occurrence_id": …}`. The route is public to the gate because the token may come inside
//! the socket; the handler authenticates it.
//!
//! A client name belongs to an identity: a token may register the name equal to its `sub`, or
//! one listed in its `clients` claim (`POST /tokens {"clients": [...]}`); the master token may
//! register any. Otherwise any read token could take a share of another consumer's deliveries
//! (and acknowledge them). Creating an event that *addresses* a client name needs no ownership:
//! the creator names a consumer; ownership governs who receives. A connection lives no longer
//! than its token: it is closed when the token expires, and within a second of a revocation on
//! any node (revocations are re-read every second, and at once through PostgreSQL's feed).

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::AppState;
use crate::auth::jwt::Session;
use crate::auth::permissions::Need;
use crate::auth::Principal;
use crate::delivery::ws::Outbox;
use crate::domain::action::check_name;
use crate::domain::{now_ms, Millis};

pub fn router() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

/// How long a new connection has to send its subscription frame.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that takes longer than this to take one frame is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_FRAME: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
enum Hello {
    ClientHook {
        client_name: String,
        token: Option<String>,
    },
    TagListener {
        tags: Vec<String>,
        token: Option<String>,
    },
}

#[derive(Deserialize)]
struct Ack {
    #[serde(rename = "type")]
    kind: String,
    occurrence_id: Option<String>,
}

/// WebSocket subscriptions
///
/// Upgrades to a WebSocket. First frame: `{"type": "client-hook", "client_name": "…", "token":
/// "…"}` (receives the occurrences of events whose action is `{"type": "websocket", "params":
/// {"client_name": "…"}}` and must answer each with `{"type": "ack", "occurrence_id": "…"}`) or
/// `{"type": "tag-listener", "tags": […], "token": "…"}` (a copy of every occurrence of events
/// with one of the tags, inside the token's scope; no ack). The token may be sent in the
/// `Authorization` header instead; it needs read access, and for a client hook it must own the
/// name: the name is its `sub` or is in its `clients` claim (the master token owns every name).
/// The connection is closed when the token expires or is revoked. See docs/channels.md.
#[utoipa::path(
    get,
    path = "/ws",
    tag = "channels",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade request"),
    ),
)]
pub(super) async fn upgrade(
    State(st): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let header_token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string());
    ws.max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| session(st, socket, header_token))
}

fn error_frame(msg: &str) -> Message {
    Message::Text(json!({"type": "error", "message": msg}).to_string().into())
}

/// The token of a connection: who it is, and (for an issued token) its claims that matter for
/// as long as the connection lives.
struct Authenticated {
    principal: Principal,
    /// `None` for the master token.
    session: Option<Session>,
}

impl Authenticated {
    /// True when this token may register the client name `name`: the master token, a token
    /// whose `sub` is the name, or one whose `clients` claim lists it.
    fn owns(&self, name: &str) -> bool {
        match (&self.principal, &self.session) {
            (Principal::Master, _) => true,
            (Principal::Token { sub, .. }, s) => {
                sub == name
                    || s.as_ref()
                        .is_some_and(|s| s.clients.iter().any(|c| c == name))
            }
        }
    }

    fn jti(&self) -> Option<&str> {
        match &self.principal {
            Principal::Token { jti, .. } => Some(jti),
            Principal::Master => None,
        }
    }
}

fn authenticate(st: &AppState, token: Option<&str>) -> Result<Authenticated, String> {
    let token = token.ok_or("missing token: send it as \"token\" in the first frame or as 'Authorization: Bearer <token>'")?;
    let (principal, session) = if st.master.verify(token) {
        (Principal::Master, None)
    } else {
        let (p, s) = st
            .tokens
            .verify_session(token)
            .map_err(|e| format!("invalid token: {e}"))?;
        (p, Some(s))
    };
    if !principal.allows(Need::Read) {
        return Err("this token has no read access".into());
    }
    if super::feeds::is_feed_token(&principal) {
        return Err("a feed token only reads an iCalendar feed".into());
    }
    Ok(Authenticated { principal, session })
}

/// A registered connection: its hub id, its queue, and the token it lives by.
struct Subscribed {
    conn: u64,
    outbox: Outbox,
    jti: Option<String>,
    expires_at: Option<Millis>,
}

/// Reads and checks the subscription frame; registers the connection.
async fn subscribe(
    st: &AppState,
    socket: &mut WebSocket,
    header_token: Option<String>,
) -> Result<Subscribed, String> {
    let first = loop {
        match tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await {
            Err(_) => return Err("no subscription frame within 10s".into()),
            Ok(None | Some(Err(_))) => return Err(String::new()),
            Ok(Some(Ok(Message::Text(t)))) => break t.to_string(),
            Ok(Some(Ok(Message::Close(_)))) => return Err(String::new()),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Binary(_)))) => return Err("expected a JSON text frame".into()),
        }
    };
    let hello: Hello = serde_json::from_str(&first).map_err(|e| {
        format!("first frame: expected {{\"type\": \"client-hook\" or \"tag-listener\", …}} ({e})")
    })?;
    match hello {
        Hello::ClientHook { client_name, token } => {
            let auth = authenticate(st, token.as_deref().or(header_token.as_deref()))?;
            let name = check_name("client_name", &client_name)?;
            if !auth.owns(&name) {
                let sub = match &auth.principal {
                    Principal::Token { sub, .. } => sub.as_str(),
                    Principal::Master => "",
                };
                return Err(format!(
                    "client_name '{name}' is not this token's: a token registers the client name equal to its sub ('{sub}') or one listed in its clients claim (issue one with POST /tokens {{\"clients\": [\"{name}\"], …}})"
                ));
            }
            let (jti, expires_at) = (
                auth.jti().map(str::to_string),
                auth.session.as_ref().map(|s| s.expires_at),
            );
            let (conn, outbox) = st.hub.add_client(&name, auth.principal);
            let registered = Subscribed {
                conn,
                outbox,
                jti,
                expires_at,
            };
            // What failed while the client was away is delivered now, not at its retry time.
            let now = now_ms();
            match st.store.wake_client(&name, now).await {
                Ok(0) => {}
                Ok(_) => st.engine.due_at(now),
                Err(e) => {
                    tracing::warn!(error = %e, client = %name, "waking a client's retries failed")
                }
            }
            Ok(registered)
        }
        Hello::TagListener { tags, token } => {
            let auth = authenticate(st, token.as_deref().or(header_token.as_deref()))?;
            let principal = &auth.principal;
            let tags: Vec<String> = tags
                .into_iter()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect();
            if tags.is_empty() {
                return Err("tags: give at least one tag".into());
            }
            let Some(tags) = principal.filter_tags(tags) else {
                return Err("tags: none of these tags is inside this token's scope".into());
            };
            let (conn, outbox) = st.hub.add_listener(tags);
            Ok(Subscribed {
                conn,
                outbox,
                jti: auth.jti().map(str::to_string),
                expires_at: auth.session.as_ref().map(|s| s.expires_at),
            })
        }
    }
}

async fn session(st: AppState, mut socket: WebSocket, header_token: Option<String>) {
    // Watched from before the token is checked, so no revocation can slip in between.
    let revocations = st.tokens.revocations();
    let mut sub = match subscribe(&st, &mut socket, header_token).await {
        Ok(x) => x,
        Err(msg) => {
            if !msg.is_empty() {
                let _ = socket.send(error_frame(&msg)).await;
            }
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
    };
    let registered = json!({"type": "ack", "message": "subscription registered"}).to_string();
    if socket.send(Message::Text(registered.into())).await.is_ok() {
        if let Some(why) = serve(&st, &mut socket, &mut sub, revocations).await {
            let _ = socket.send(error_frame(why)).await;
            let _ = socket.send(Message::Close(None)).await;
        }
    }
    st.hub.remove(sub.conn);
}

/// Runs a connection until it ends; `Some(why)` when the server ends it because its token
/// expired or was revoked.
async fn serve(
    st: &AppState,
    socket: &mut WebSocket,
    sub: &mut Subscribed,
    mut revocations: tokio::sync::watch::Receiver<u64>,
) -> Option<&'static str> {
    let conn = sub.conn;
    let outbox = &mut sub.outbox;
    let mut ping = tokio::time::interval(st.config.websocket.ping_interval.0);
    ping.tick().await;
    let until_expiry = sub
        .expires_at
        .map(|at| Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0)));
    let expiry = tokio::time::sleep(until_expiry.unwrap_or_default());
    tokio::pin!(expiry);
    let mut watching = sub.jti.is_some();
    if sub.jti.as_deref().is_some_and(|j| st.tokens.is_revoked(j)) {
        return Some("token revoked");
    }
    loop {
        tokio::select! {
            _ = &mut expiry, if until_expiry.is_some() => return Some("token expired"),
            changed = revocations.changed(), if watching => {
                if changed.is_err() {
                    watching = false;
                } else if sub.jti.as_deref().is_some_and(|j| st.tokens.is_revoked(j)) {
                    return Some("token revoked");
                }
            }
            frame = outbox.recv() => {
                let frame = frame?;
                match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(frame.into()))).await {
                    Ok(Ok(())) => {}
                    _ => return None,
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Ping(Default::default()))).await {
                    Ok(Ok(())) => {}
                    _ => return None,
                }
            }
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Text(t))) => {
                    let ack = serde_json::from_str::<Ack>(&t).ok().filter(|a| a.kind == "ack");
                    let id = ack.and_then(|a| a.occurrence_id).and_then(|s| Uuid::parse_str(&s).ok());
                    match id {
                        Some(id) => {
                            if !st.hub.ack(conn, id) {
                                tracing::debug!(%id, "ack for an occurrence not awaiting one on this connection");
                            }
                        }
                        None => {
                            let _ = socket.send(error_frame("expected {\"type\": \"ack\", \"occurrence_id\": \"…\"}")).await;
                        }
                    }
                }
                Some(Ok(_)) => {}
            },
        }
    }
}
