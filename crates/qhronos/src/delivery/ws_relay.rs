//! The WebSocket hub's link to the other nodes of a shared store.
//!
//! The hub does not know the store: it hands its outgoing relay messages to a [`Relay`] (the
//! sending half of a bounded channel) and is fed the other nodes' messages through
//! [`Hub::on_message`]. One task per node, started by [`spawn`], owns the store side: it
//! publishes the outgoing messages as `Change::Message` (PostgreSQL's NOTIFY), one after the
//! other in the order the hub sent them, and passes every `Change::Message` of the change feed
//! to the hub.
//!
//! Nothing here may hold a delivery: the hub only ever `try_send`s. When the channel is full
//! (the store does not keep up) or a publish fails, the message is dropped, logged and counted
//! ([`Relay::dropped`]). A dropped message costs what a lost one on the wire would: a relayed
//! delivery or its ack times out and the occurrence is retried (at least once), a copy for
//! another node's tag listeners is lost (copies are best-effort).

use std::fmt::Display;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::ws::Hub;
use crate::store::{Change, Store};

/// Relay messages a node queues for the store before it drops new ones. A message is a NOTIFY
/// round trip at most 8,000 bytes long; 1,024 of them is about a second of a busy store's work
/// and at most 8 MiB held.
pub const RELAY_BUFFER: usize = 1024;

/// The hub's end of the relay: this node's id and the queue of messages for the other nodes.
#[derive(Clone)]
pub struct Relay {
    node: Uuid,
    tx: mpsc::Sender<String>,
    losses: Arc<Losses>,
}

/// The store's end of the relay: what [`run`] forwards from.
pub struct RelayOutbox {
    rx: mpsc::Receiver<String>,
    losses: Arc<Losses>,
}

impl Relay {
    /// A relay for node `node` holding at most `capacity` messages, and the receiving end that
    /// [`run`] forwards from.
    pub fn channel(node: Uuid, capacity: usize) -> (Relay, RelayOutbox) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let losses = Arc::new(Losses::default());
        let relay = Relay {
            node,
            tx,
            losses: losses.clone(),
        };
        (relay, RelayOutbox { rx, losses })
    }

    /// This node's id: messages carry it so that a node ignores its own.
    pub fn node(&self) -> Uuid {
        self.node
    }

    /// Queues `message` for the other nodes without waiting: when the queue is full the
    /// message is dropped (logged and counted).
    pub fn send(&self, message: String) {
        match self.tx.try_send(message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => self
                .losses
                .count(1, "the relay queue is full (the store does not keep up)"),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.losses.count(1, "the relay task has stopped")
            }
        }
    }

    /// Relay messages lost on this node so far, in either direction: not queued (queue full,
    /// task stopped), not published (the store refused), or missed from the change feed (this
    /// node read it too slowly).
    pub fn dropped(&self) -> u64 {
        self.losses.0.load(Ordering::Relaxed)
    }
}

/// The count of lost relay messages, shared by both ends.
#[derive(Default)]
struct Losses(AtomicU64);

impl Losses {
    /// Counts `n` lost messages. Every loss is logged at debug; a warning goes out when the
    /// total passes 1, 2, 4, 8… so that a store that stops keeping up does not also flood the
    /// log.
    fn count(&self, n: u64, why: &str) {
        let before = self.0.fetch_add(n, Ordering::Relaxed);
        let total = before.saturating_add(n);
        tracing::debug!(lost = n, total, "WebSocket relay message lost: {why}");
        if n > 0 && (before == 0 || before.ilog2() != total.ilog2()) {
            tracing::warn!(
                total,
                "WebSocket relay messages lost: {why}; relayed deliveries time out and are retried, copies for other nodes' tag listeners are gone"
            );
        }
    }
}

/// Links `hub` to the other nodes of `store`: installs a [`Relay`] of [`RELAY_BUFFER`]
/// messages with a new node id and starts the task that carries the messages both ways.
pub fn spawn(
    hub: Arc<Hub>,
    store: Arc<dyn Store>,
    changes: broadcast::Receiver<Change>,
) -> JoinHandle<()> {
    let (relay, outgoing) = Relay::channel(Uuid::now_v7(), RELAY_BUFFER);
    hub.set_relay(relay);
    let publish = move |change: Change| {
        let store = store.clone();
        async move { store.publish(&change).await }
    };
    tokio::spawn(run(outgoing, publish, changes, hub))
}

/// Carries relay messages until both directions end: `outgoing` (the hub's messages) to
/// `publish`, one at a time and in order, and the `Change::Message`s of `changes` to the hub.
/// The two directions run side by side, so a slow publish never delays an incoming ack.
pub async fn run<P, F, E>(
    outgoing: RelayOutbox,
    mut publish: P,
    mut changes: broadcast::Receiver<Change>,
    hub: Arc<Hub>,
) where
    P: FnMut(Change) -> F,
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    let RelayOutbox { mut rx, losses } = outgoing;
    let out = async {
        while let Some(message) = rx.recv().await {
            if let Err(e) = publish(Change::Message(message)).await {
                tracing::warn!(error = %e, "relaying a WebSocket message to the other nodes failed");
                losses.count(1, "the store refused to publish it");
            }
        }
    };
    let incoming = async {
        use broadcast::error::RecvError;
        loop {
            match changes.recv().await {
                Ok(Change::Message(m)) => hub.on_message(&m),
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => losses.count(
                    n,
                    "this node read the change feed too slowly and missed messages",
                ),
                Err(RecvError::Closed) => return,
            }
        }
    };
    tokio::join!(out, incoming);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::auth::Principal;
    use crate::domain::event::Event;
    use crate::domain::occurrence::Occurrence;

    fn event(tags: &[&str]) -> Event {
        crate::delivery::ws::tests::event(tags)
    }

    async fn next(rx: &mut mpsc::Receiver<String>) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a frame within 5 s")
    }

    /// Two hubs joined by an in-memory bus standing in for the store's NOTIFY (which, like
    /// PostgreSQL, also hands every node its own messages).
    fn two_nodes(ack_timeout: Duration) -> (Arc<Hub>, Arc<Hub>) {
        let bus = broadcast::channel::<Change>(64).0;
        let hubs = [(); 2].map(|()| Arc::new(Hub::new(ack_timeout, 8)));
        for hub in &hubs {
            let (relay, outgoing) = Relay::channel(Uuid::now_v7(), 16);
            hub.set_relay(relay);
            let bus_tx = bus.clone();
            let publish = move |c: Change| {
                let sent = bus_tx.send(c).map(|_| ()).map_err(|e| e.to_string());
                async move { sent }
            };
            tokio::spawn(run(outgoing, publish, bus.subscribe(), hub.clone()));
        }
        let [a, b] = hubs;
        (a, b)
    }

    #[tokio::test]
    async fn a_delivery_reaches_a_client_on_the_other_node_and_its_ack_comes_back() {
        let (a, b) = two_nodes(Duration::from_secs(5));
        let (conn, mut outbox) = b.add_client("c", Principal::Master);
        let e = event(&[]);
        let o = Occurrence::fixture(e.id);
        let acker = async {
            let frame: serde_json::Value =
                serde_json::from_str(&outbox.recv().await.expect("a frame")).expect("json");
            assert_eq!(frame["occurrence_id"], o.id.to_string());
            assert!(b.ack(conn, o.id));
        };
        let (d, ()) = tokio::join!(a.deliver("c", &e, &o, 1, 0), acker);
        assert!(d.success, "{:?}", d.attempt.error);
        assert_eq!(
            d.attempt.response.as_deref(),
            Some("acknowledged (through another node)")
        );
    }

    #[tokio::test]
    async fn a_copy_reaches_the_other_nodes_listeners_and_a_node_ignores_its_own() {
        let (a, b) = two_nodes(Duration::from_secs(5));
        let (_la, mut here) = a.add_listener(vec!["t".into()]);
        let (_lb, mut there) = b.add_listener(vec!["t".into()]);
        let occurrence_of = |frame: Option<String>| {
            let frame = frame.expect("a frame");
            let v: serde_json::Value = serde_json::from_str(&frame).expect("json");
            v["occurrence_id"].clone()
        };
        let e = event(&["t"]);
        let first = Occurrence::fixture(e.id);
        a.broadcast(&e, &first);
        assert_eq!(occurrence_of(here.try_recv().ok()), json!(first.id));
        assert_eq!(occurrence_of(next(&mut there).await), json!(first.id));
        // `first` is on the bus, so node a reads it before anything b sends now: had a not
        // ignored its own message, its listener would get `first` again before `second`.
        let second = Occurrence::fixture(e.id);
        b.broadcast(&e, &second);
        assert_eq!(occurrence_of(there.try_recv().ok()), json!(second.id));
        assert_eq!(occurrence_of(next(&mut here).await), json!(second.id));
    }

    #[tokio::test]
    async fn a_full_relay_queue_drops_and_counts_instead_of_waiting() {
        let hub = Hub::new(Duration::from_millis(20), 8);
        // Nobody reads the queue: the store side is stuck.
        let (relay, _outgoing) = Relay::channel(Uuid::now_v7(), 1);
        hub.set_relay(relay.clone());
        let (_l, _listener) = hub.add_listener(vec!["t".into()]);
        let e = event(&["t"]);
        let o = Occurrence::fixture(e.id);
        hub.broadcast(&e, &o);
        assert_eq!(relay.dropped(), 0, "the first message fits");
        hub.broadcast(&e, &o);
        hub.broadcast(&e, &o);
        assert_eq!(relay.dropped(), 2);
        // A delivery to a client connected nowhere is not held by the full queue either: it
        // fails after the ack timeout, to be retried.
        let t = std::time::Instant::now();
        let d = hub.deliver("nobody", &e, &o, 1, 0).await;
        assert!(!d.success);
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(relay.dropped(), 3);
    }

    #[tokio::test]
    async fn a_failed_publish_and_a_lagging_feed_count_as_drops() {
        let hub = Arc::new(Hub::new(Duration::from_millis(20), 8));
        let (relay, outgoing) = Relay::channel(Uuid::now_v7(), 4);
        hub.set_relay(relay.clone());
        let (feed, changes) = broadcast::channel::<Change>(1);
        let publish = |_: Change| async { Err::<(), _>("refused") };
        let task = tokio::spawn(run(outgoing, publish, changes, hub.clone()));
        relay.send("ws{}".into());
        // Overflows the one-slot feed before the task reads it: one message is missed.
        for _ in 0..2 {
            feed.send(Change::Tokens).expect("a subscriber");
        }
        drop(feed);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while relay.dropped() < 2 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(relay.dropped(), 2);
        task.abort();
    }
}
