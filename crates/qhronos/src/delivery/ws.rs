//! The WebSocket hub: who is connected to `GET /ws`, and the acknowledgements awaited.
//!
//! A `client-hook` connection receives the occurrences of events whose action names its client
//! (one connection per occurrence, round-robin when a client has several) and must answer
//! `{"type": "ack", "occurrence_id": …}`; only then is the attempt a success. A `tag-listener`
//! connection gets a copy of every occurrence of events carrying one of its tags (inside its
//! token's scope), best-effort. Each connection has a bounded queue: when it is full a delivery
//! fails (and is retried) and a copy is dropped, so a slow client never holds the dispatcher.
//!
//! With several nodes on one store, a delivery for a client connected to another node, and the
//! copies for the other nodes' listeners, travel as relay messages through a [`Relay`]
//! (`delivery::ws_relay`); the hub itself never touches the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::ws_relay::Relay;
use super::Delivered;
use crate::auth::Principal;
use crate::domain::event::Event;
use crate::domain::occurrence::Occurrence;
use crate::domain::{fmt_ms, Millis};

/// One connection's outgoing queue of JSON text frames, bounded by the hub's `buffer`: the
/// socket task writes what it receives here, in order.
pub type Outbox = mpsc::Receiver<String>;

#[derive(Clone)]
struct Conn {
    id: u64,
    tx: mpsc::Sender<String>,
    principal: Principal,
}

struct Listener {
    id: u64,
    tx: mpsc::Sender<String>,
    tags: Vec<String>,
}

/// Who waits for an ack: a delivery on this node, or one on another node (answered through
/// the relay).
enum Waiter {
    Local(oneshot::Sender<()>),
    Remote(Uuid),
}

#[derive(Default)]
struct Inner {
    clients: HashMap<String, Vec<Conn>>,
    listeners: Vec<Listener>,
    /// occurrence id → (connection it was sent to, who waits for the ack)
    waiting: HashMap<Uuid, (u64, Waiter)>,
    /// Deliveries of this node handed to the other nodes: occurrence id → who waits.
    relayed: HashMap<Uuid, oneshot::Sender<()>>,
    turn: usize,
}

impl Inner {
    /// The next connection of `client` (in turn) whose token may see an event with `tags`.
    fn next_conn(&mut self, client: &str, tags: &[String]) -> Option<Conn> {
        let turn = self.turn;
        self.turn = self.turn.wrapping_add(1);
        let conns = self.clients.get(client)?;
        let ok: Vec<&Conn> = conns.iter().filter(|c| c.principal.can_see(tags)).collect();
        (!ok.is_empty()).then(|| ok[turn % ok.len()].clone())
    }
}

/// The connections of one node, as `Hub::connections` shows them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Connections {
    /// `client-hook` connections by client name, sorted by name.
    pub clients: Vec<ClientOut>,
    /// `tag-listener` connections, in the order they connected.
    pub listeners: Vec<ListenerOut>,
}

/// One client name's connections.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClientOut {
    /// The name events address with `q:<name>` or `action.params.client_name`.
    pub name: String,
    /// Open connections of this client on this node.
    pub connections: usize,
    /// Occurrences sent to them whose ack is awaited.
    pub awaiting_ack: usize,
}

/// One tag listener.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ListenerOut {
    /// The tags it listens to (those inside the viewer's scope).
    pub tags: Vec<String>,
}

/// What nodes tell each other about WebSocket deliveries: the JSON after the `ws` prefix of a
/// relay message (a `Change::Message` on the store).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "ws", rename_all = "snake_case")]
enum RelayMsg {
    /// Node `from` has no connection of `client`: whoever has one sends `frame` and relays the
    /// ack back.
    Deliver {
        from: Uuid,
        client: String,
        occurrence_id: Uuid,
        tags: Vec<String>,
        frame: String,
    },
    /// A connection on another node acknowledged an occurrence that node `to` delivers.
    Ack { to: Uuid, occurrence_id: Uuid },
    /// A copy for the tag listeners of the other nodes.
    Copy {
        from: Uuid,
        tags: Vec<String>,
        frame: String,
    },
}

/// PostgreSQL's NOTIFY payload limit is 8,000 bytes; the message needs room around the frame.
const RELAY_MAX_FRAME: usize = 7_000;

/// The connections of this node and the acknowledgements awaited from them.
///
/// Guarantees: no call waits on a connection (every send is a `try_send` on a bounded queue, so
/// a full or dead connection fails the delivery at once and drops a copy); a delivery is a
/// success only after the ack of the very connection it was sent to; an ack is awaited at most
/// `ack_timeout`. All state is in memory: what is waiting when the process stops is delivered
/// again from the store.
pub struct Hub {
    ack_timeout: Duration,
    buffer: usize,
    ids: AtomicU64,
    inner: Mutex<Inner>,
    relay: Mutex<Option<Relay>>,
}

/// The text frame an occurrence is sent as, to a client and to listeners alike:
/// `{"type": "event", event_id, occurrence_id, scheduled_at, name, payload, tags}`.
pub fn event_frame(event: &Event, occ: &Occurrence) -> String {
    json!({
        "type": "event",
        "event_id": event.id,
        "occurrence_id": occ.id,
        "scheduled_at": fmt_ms(occ.scheduled_at),
        "name": event.name,
        "payload": event.metadata,
        "tags": event.tags,
    })
    .to_string()
}

impl Hub {
    /// A hub with no connection and no relay: a delivery waits at most `ack_timeout` for its
    /// ack, and each connection queues at most `buffer` frames.
    pub fn new(ack_timeout: Duration, buffer: usize) -> Hub {
        Hub {
            ack_timeout,
            buffer,
            ids: AtomicU64::new(1),
            inner: Mutex::new(Inner::default()),
            relay: Mutex::new(None),
        }
    }

    /// Several nodes on one store: deliveries for clients connected elsewhere, and copies for
    /// the other nodes' tag listeners, go through `relay` (`ws_relay::spawn` sets it). Without
    /// one, a client not connected here is not connected at all.
    pub fn set_relay(&self, relay: Relay) {
        *self.relay.lock().unwrap_or_else(|p| p.into_inner()) = Some(relay);
    }

    fn relay(&self) -> Option<Relay> {
        self.relay.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Queues `msg` for the other nodes; never waits (a full relay queue drops it).
    fn publish(&self, relay: &Relay, msg: &RelayMsg) {
        let Ok(text) = serde_json::to_string(msg) else {
            return;
        };
        relay.send(format!("ws{text}"));
    }

    /// A relay message from another node (a `Change::Message` of the change feed). Messages
    /// that are not the hub's, this node's own, and those addressed to another node are
    /// ignored; so is everything while no relay is set.
    pub fn on_message(&self, msg: &str) {
        let Some(msg) = msg
            .strip_prefix("ws")
            .and_then(|m| serde_json::from_str::<RelayMsg>(m).ok())
        else {
            return;
        };
        let Some(relay) = self.relay() else { return };
        match msg {
            RelayMsg::Deliver {
                from,
                client,
                occurrence_id,
                tags,
                frame,
            } if from != relay.node() => {
                let mut g = self.lock();
                if let Some(c) = g.next_conn(&client, &tags) {
                    if c.tx.try_send(frame).is_ok() {
                        g.waiting
                            .insert(occurrence_id, (c.id, Waiter::Remote(from)));
                    }
                }
            }
            RelayMsg::Ack { to, occurrence_id } if to == relay.node() => {
                if let Some(tx) = self.lock().relayed.remove(&occurrence_id) {
                    let _ = tx.send(());
                }
            }
            RelayMsg::Copy { from, tags, frame } if from != relay.node() => {
                self.copy_to_listeners(&tags, || frame.clone());
            }
            _ => {}
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a `client-hook` connection of client `name`, authenticated as `principal`
    /// (it only gets events its token may see); returns its id and its outgoing queue.
    pub fn add_client(&self, name: &str, principal: Principal) -> (u64, Outbox) {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.buffer);
        self.lock()
            .clients
            .entry(name.to_string())
            .or_default()
            .push(Conn { id, tx, principal });
        (id, rx)
    }

    /// Registers a tag listener for `tags` (already narrowed to the token's scope); returns
    /// its id and its outgoing queue. It gets copies, best-effort: none is awaited or retried.
    pub fn add_listener(&self, tags: Vec<String>) -> (u64, Outbox) {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.buffer);
        self.lock().listeners.push(Listener { id, tx, tags });
        (id, rx)
    }

    /// Forgets a connection (client or listener). This node's deliveries awaiting its ack fail
    /// at once, so they are retried without waiting for the timeout; another node's relayed
    /// delivery times out there.
    pub fn remove(&self, id: u64) {
        let mut g = self.lock();
        for conns in g.clients.values_mut() {
            conns.retain(|c| c.id != id);
        }
        g.clients.retain(|_, v| !v.is_empty());
        g.listeners.retain(|l| l.id != id);
        g.waiting.retain(|_, (conn, _)| *conn != id);
    }

    /// An ack from connection `conn`; false when nothing of that id waits on it (unknown,
    /// already acknowledged or timed out, or sent to another connection). An ack for a
    /// delivery of another node is relayed back to it.
    pub fn ack(&self, conn: u64, occurrence_id: Uuid) -> bool {
        let waiter = {
            let mut g = self.lock();
            match g.waiting.get(&occurrence_id) {
                Some((c, _)) if *c == conn => g.waiting.remove(&occurrence_id).map(|(_, w)| w),
                _ => None,
            }
        };
        match waiter {
            Some(Waiter::Local(tx)) => {
                let _ = tx.send(());
                true
            }
            Some(Waiter::Remote(to)) => {
                if let Some(relay) = self.relay() {
                    self.publish(&relay, &RelayMsg::Ack { to, occurrence_id });
                }
                true
            }
            None => false,
        }
    }

    /// Connections open on this node now: (client connections, tag listeners).
    pub fn connected(&self) -> (usize, usize) {
        let g = self.lock();
        (g.clients.values().map(Vec::len).sum(), g.listeners.len())
    }

    /// This node's connections as `viewer` may see them: the clients connected with a token
    /// whose scope lies inside the viewer's (every client for an unscoped viewer), and the
    /// listeners sharing a tag with the viewer's scope (showing only those tags). Names and
    /// tags only: never a token.
    pub fn connections(&self, viewer: &Principal) -> Connections {
        let g = self.lock();
        let mut clients: Vec<ClientOut> = g
            .clients
            .iter()
            .filter_map(|(name, conns)| {
                let seen: Vec<&Conn> = conns
                    .iter()
                    .filter(|c| viewer.covers(c.principal.scope().unwrap_or(&[])))
                    .collect();
                (!seen.is_empty()).then(|| ClientOut {
                    name: name.clone(),
                    connections: seen.len(),
                    awaiting_ack: g
                        .waiting
                        .values()
                        .filter(|(id, _)| seen.iter().any(|c| c.id == *id))
                        .count(),
                })
            })
            .collect();
        clients.sort_by(|a, b| a.name.cmp(&b.name));
        let listeners = g
            .listeners
            .iter()
            .filter_map(|l| {
                let tags: Vec<String> = match viewer.scope() {
                    None => l.tags.clone(),
                    Some(scope) => l
                        .tags
                        .iter()
                        .filter(|t| scope.contains(t))
                        .cloned()
                        .collect(),
                };
                (!tags.is_empty()).then_some(ListenerOut { tags })
            })
            .collect();
        Connections { clients, listeners }
    }

    /// Copies the occurrence to every listener whose tags meet the event's, here and (through
    /// the relay, when the frame fits in a NOTIFY) on the other nodes; a full queue drops the
    /// copy. Never waits.
    pub fn broadcast(&self, event: &Event, occ: &Occurrence) {
        if event.tags.is_empty() {
            return;
        }
        self.copy_to_listeners(&event.tags, || event_frame(event, occ));
        if let Some(relay) = self.relay() {
            let frame = event_frame(event, occ);
            if frame.len() <= RELAY_MAX_FRAME {
                let msg = RelayMsg::Copy {
                    from: relay.node(),
                    tags: event.tags.clone(),
                    frame,
                };
                self.publish(&relay, &msg);
            }
        }
    }

    fn copy_to_listeners(&self, tags: &[String], frame_of: impl FnOnce() -> String) {
        let g = self.lock();
        let mut frame_of = Some(frame_of);
        let mut frame: Option<String> = None;
        for l in &g.listeners {
            if l.tags.iter().any(|t| tags.contains(t)) {
                let f = match &frame {
                    Some(f) => f.clone(),
                    None => {
                        let f = frame_of.take().map(|f| f()).unwrap_or_default();
                        frame = Some(f.clone());
                        f
                    }
                };
                if l.tx.try_send(f).is_err() {
                    tracing::debug!(
                        listener = l.id,
                        "tag listener's queue is full; copy dropped"
                    );
                }
            }
        }
    }

    /// Sends the occurrence to one connection of `client` that may see the event (in turn,
    /// when it has several) and waits for its ack, at most the ack timeout. With no such
    /// connection here, asks the other nodes through the relay. The result is a success only
    /// when the ack came; every failure names its cause and is retryable.
    pub async fn deliver(
        &self,
        client: &str,
        event: &Event,
        occ: &Occurrence,
        attempt: u32,
        started_at: Millis,
    ) -> Delivered {
        let clock = Instant::now();
        let fail = |msg: String| Delivered::failed(attempt, started_at, msg, false);
        let (tx, rx) = oneshot::channel();
        let conn = {
            let mut g = self.lock();
            let conn = g.next_conn(client, &event.tags);
            if let Some(c) = &conn {
                g.waiting.insert(occ.id, (c.id, Waiter::Local(tx)));
            }
            conn
        };
        let Some(conn) = conn else {
            return self
                .deliver_elsewhere(client, event, occ, attempt, started_at)
                .await;
        };
        if let Err(e) = conn.tx.try_send(event_frame(event, occ)) {
            self.lock().waiting.remove(&occ.id);
            return fail(match e {
                mpsc::error::TrySendError::Full(_) => {
                    format!("WebSocket client '{client}' is not keeping up (its queue is full)")
                }
                mpsc::error::TrySendError::Closed(_) => {
                    format!("WebSocket client '{client}' disconnected")
                }
            });
        }
        let mut d = match tokio::time::timeout(self.ack_timeout, rx).await {
            Ok(Ok(())) => {
                let mut d = fail(String::new());
                d.success = true;
                d.attempt.error = None;
                d.attempt.response = Some("acknowledged".into());
                d
            }
            Ok(Err(_)) => fail(format!(
                "WebSocket client '{client}' disconnected before acknowledging"
            )),
            Err(_) => {
                self.lock().waiting.remove(&occ.id);
                fail(format!(
                    "WebSocket client '{client}' did not acknowledge within {}",
                    crate::domain::duration::Dur(self.ack_timeout)
                ))
            }
        };
        d.attempt.duration_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
        d
    }

    /// No connection of `client` here: with other nodes on the store, asks them to send it and
    /// waits for an ack relayed back (same timeout). Every node with such a connection sends
    /// it, so a client connected to several nodes may get it more than once (at least once).
    async fn deliver_elsewhere(
        &self,
        client: &str,
        event: &Event,
        occ: &Occurrence,
        attempt: u32,
        started_at: Millis,
    ) -> Delivered {
        let clock = Instant::now();
        let fail = |msg: String| Delivered::failed(attempt, started_at, msg, false);
        let not_connected = || {
            format!(
                "no WebSocket client '{client}' is connected (with a token whose scope covers this event)"
            )
        };
        let Some(relay) = self.relay() else {
            return fail(not_connected());
        };
        let frame = event_frame(event, occ);
        if frame.len() > RELAY_MAX_FRAME {
            return fail(format!(
                "no WebSocket client '{client}' is connected to this node, and the event is too large ({} bytes) to relay to the others (at most {RELAY_MAX_FRAME})",
                frame.len()
            ));
        }
        let (tx, rx) = oneshot::channel();
        self.lock().relayed.insert(occ.id, tx);
        let msg = RelayMsg::Deliver {
            from: relay.node(),
            client: client.to_string(),
            occurrence_id: occ.id,
            tags: event.tags.clone(),
            frame,
        };
        self.publish(&relay, &msg);
        let mut d = match tokio::time::timeout(self.ack_timeout, rx).await {
            Ok(Ok(())) => {
                let mut d = fail(String::new());
                d.success = true;
                d.attempt.error = None;
                d.attempt.response = Some("acknowledged (through another node)".into());
                d
            }
            _ => {
                self.lock().relayed.remove(&occ.id);
                fail(format!(
                    "{} on any node, or it did not acknowledge within {}",
                    not_connected(),
                    crate::domain::duration::Dur(self.ack_timeout)
                ))
            }
        };
        d.attempt.duration_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
        d
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::event_io::EventIn;

    /// An event for client `c` with `tags`.
    pub(crate) fn event(tags: &[&str]) -> Event {
        let input: EventIn = serde_json::from_value(json!({
            "name": "e", "start_time": "2026-01-01T00:00:00Z", "tags": tags,
            "action": {"type": "websocket", "params": {"client_name": "c"}},
        }))
        .unwrap();
        input.validate(Uuid::now_v7(), 0, 0).unwrap()
    }

    fn occ(e: &Event) -> Occurrence {
        Occurrence::fixture(e.id)
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_never_holds_the_sender() {
        let hub = Hub::new(Duration::from_millis(50), 1);
        let (_id, _outbox) = hub.add_client("c", Principal::Master);
        let (_l, _listener_outbox) = hub.add_listener(vec!["t".into()]);
        let e = event(&["t"]);
        // Fills the one-slot queue; nobody acks.
        let d = hub.deliver("c", &e, &occ(&e), 1, 0).await;
        assert!(d.attempt.error.unwrap().contains("did not acknowledge"));
        // The queue is full: the next delivery fails at once instead of waiting.
        let t = Instant::now();
        let d = hub.deliver("c", &e, &occ(&e), 1, 0).await;
        assert!(t.elapsed() < Duration::from_millis(40));
        assert!(d.attempt.error.unwrap().contains("not keeping up"));
        // Copies to a listener that does not read are dropped, never awaited.
        for _ in 0..10 {
            hub.broadcast(&e, &occ(&e));
        }
        assert_eq!(hub.connected(), (1, 1));
    }

    #[tokio::test]
    async fn acks_count_only_from_the_connection_that_got_the_event() {
        let hub = Hub::new(Duration::from_secs(5), 8);
        let (a, mut outbox) = hub.add_client("c", Principal::Master);
        let e = event(&[]);
        let o = occ(&e);
        let waiting = hub.deliver("c", &e, &o, 1, 0);
        let acker = async {
            let frame: serde_json::Value =
                serde_json::from_str(&outbox.recv().await.unwrap()).unwrap();
            assert_eq!(frame["occurrence_id"], o.id.to_string());
            assert!(!hub.ack(a + 1000, o.id), "another connection's ack");
            assert!(hub.ack(a, o.id));
        };
        let (d, ()) = tokio::join!(waiting, acker);
        assert!(d.success);
        // A scoped token's connection does not get events outside its scope.
        hub.remove(a);
        let scoped = Principal::Token {
            jti: "j".into(),
            sub: "s".into(),
            access: crate::auth::Access::Read,
            scope: vec!["x".into()],
        };
        let (_b, _out) = hub.add_client("c", scoped);
        let d = hub.deliver("c", &e, &occ(&e), 1, 0).await;
        assert!(d.attempt.error.unwrap().contains("is connected"));
    }
}
