//! Several nodes on one database: which store this is, upkeep leases, and the changes nodes
//! tell each other about.

use async_trait::async_trait;
use uuid::Uuid;

use super::{Backend, Result};
use crate::domain::Millis;

/// A change made through one node that the others must act on, carried by PostgreSQL's
/// LISTEN/NOTIFY (see [`NodeStore::changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An event was updated, paused, resumed or deleted: drop what is held of it, re-read it.
    Event(Uuid),
    /// One occurrence was cancelled or moved.
    Occurrence(Uuid),
    /// A token was revoked.
    Tokens,
    /// A message for other users of the channel (e.g. a WebSocket fan-out): `NodeStore::publish`.
    Message(String),
    /// The listening connection was lost and came back: notifications may have been missed.
    Resync,
}

impl Change {
    /// The NOTIFY payload (at most 8000 bytes: PostgreSQL's limit).
    pub fn payload(&self) -> String {
        match self {
            Change::Event(id) => format!("e:{id}"),
            Change::Occurrence(id) => format!("o:{id}"),
            Change::Tokens => "t:".into(),
            Change::Message(m) => format!("m:{m}"),
            Change::Resync => "r:".into(),
        }
    }

    /// The change a payload of [`Change::payload`] names; `None` for anything else.
    pub fn parse(payload: &str) -> Option<Change> {
        let (kind, rest) = payload.split_once(':')?;
        Some(match kind {
            "e" => Change::Event(Uuid::parse_str(rest).ok()?),
            "o" => Change::Occurrence(Uuid::parse_str(rest).ok()?),
            "t" => Change::Tokens,
            "m" => Change::Message(rest.to_string()),
            "r" => Change::Resync,
            _ => return None,
        })
    }
}

/// What one node of several needs of the store.
#[async_trait]
pub trait NodeStore: Send + Sync + 'static {
    /// `sqlite` or `postgres`, for `/status` and logs.
    fn kind(&self) -> &'static str;
    /// True when only one process can use the database (the embedded store): every lease found
    /// at start-up was then held by an earlier run of this process.
    fn single_process(&self) -> bool;
    /// Takes or renews the lease on a piece of upkeep that must run on one node at a time
    /// (`expander`, `retention`). True when `owner` holds it until `until`; another owner
    /// gets it only after it ended. A single-process store always grants it.
    async fn try_upkeep_lease(
        &self,
        name: &str,
        owner: &str,
        until: Millis,
        now: Millis,
    ) -> Result<bool>;
    /// Changes made through other nodes, as they commit. `None` for a single-process store.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>>;
    /// Tells every node (this one included) about a change. A single-process store has no
    /// other node, and its own callers act directly: it does nothing there.
    async fn publish(&self, change: &Change) -> Result<()>;
}

#[async_trait]
impl<B: Backend> NodeStore for B {
    fn kind(&self) -> &'static str {
        Backend::kind(self)
    }

    fn single_process(&self) -> bool {
        Backend::single_process(self)
    }

    async fn try_upkeep_lease(
        &self,
        name: &str,
        owner: &str,
        until: Millis,
        now: Millis,
    ) -> Result<bool> {
        Backend::try_upkeep_lease(self, name, owner, until, now).await
    }

    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        Backend::changes(self)
    }

    async fn publish(&self, change: &Change) -> Result<()> {
        Backend::publish(self, change).await
    }
}
