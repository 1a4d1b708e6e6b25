//! Event history: a version per change of an event, written in the transaction of the change
//! by the event writes (`events.rs`) and the engine's 410 pause (`claims.rs`), read here.

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

use super::sql::rows::{to_json, RowExt, EVENT_COLS};
use super::sql::{fetch_one, query, Col, Dialect, Kind, Push};
use super::{Backend, Result, StoreError};
use crate::domain::event::Event;
use crate::domain::history::{change, snapshot};
use crate::domain::Millis;

/// Who makes a change to an event, for its history. Every event write takes one, so that no
/// write can forget its version.
#[derive(Debug, Clone, Copy)]
pub struct By<'a> {
    /// `master`, `sub:<token subject>`, or `system` (the engine).
    pub actor: &'a str,
    /// Set by a restore: the version an update makes current again (its version then says
    /// `restore` instead of `update`).
    pub restores: Option<i64>,
}

impl<'a> By<'a> {
    /// Changes made by `actor` (not a restore).
    pub fn actor(actor: &'a str) -> By<'a> {
        By {
            actor,
            restores: None,
        }
    }
}

/// One version of an event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventVersion {
    /// The event it is a version of.
    pub event_id: Uuid,
    /// 1, 2, 3, … per event, in the order the changes committed.
    pub version: i64,
    /// When the change was made.
    pub at: Millis,
    /// Who made it: `master`, `sub:<sub>` or `system`.
    pub actor: String,
    /// `create`, `update`, `restore`, `pause`, `resume`, `delete` or `pause_gone`.
    pub change: String,
    /// The version a `restore` made current again.
    pub restored_from: Option<i64>,
    /// The event's state after the change (see `domain::history::EventState`): never a secret.
    pub snapshot: Value,
}

/// Reading the history. Writing it is part of every event write (`EventStore`, the 410 pause
/// of `ClaimStore::record_outcomes`): a version commits exactly when its change does. A write
/// that leaves the event's state as it was (a pause of a paused event, an update that changes
/// nothing) stores no version; a create always does. Versions outlive a delete and go with
/// the event when retention removes it.
#[async_trait]
pub trait HistoryStore: Send + Sync + 'static {
    /// Versions of the event (deleted or not) numbered above `after`, oldest first, at most
    /// `limit`.
    async fn event_versions(
        &self,
        event_id: Uuid,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventVersion>>;
    /// Version `version` of the event.
    async fn event_version(&self, event_id: Uuid, version: i64) -> Result<Option<EventVersion>>;
}

const VERSION_COLS: [Col; 7] = [
    ("event_id", Kind::Text),
    ("version", Kind::Int),
    ("at", Kind::Int),
    ("actor", Kind::Text),
    ("change", Kind::Text),
    ("restored_from", Kind::Int),
    ("snapshot", Kind::Text),
];

/// Version 1 of new events, a statement for many: `(event, actor)`.
pub(super) async fn record_created<D: Dialect>(
    c: &mut D::Connection,
    events: &[(&Event, &str)],
) -> Result<()> {
    for chunk in events.chunks(D::max_rows(VERSION_COLS.len())) {
        let rows = chunk
            .iter()
            .map(|(e, actor)| {
                vec![
                    e.id.into(),
                    1i64.into(),
                    e.created_at.into(),
                    (*actor).into(),
                    change::CREATE.into(),
                    None::<i64>.into(),
                    to_json(&snapshot(e)).into(),
                ]
            })
            .collect();
        let mut q = query::<D>(format!(
            "INSERT INTO event_versions ({})",
            super::sql::names(&VERSION_COLS)
        ));
        D::push_insert_rows(&mut q, &VERSION_COLS, rows);
        D::exec(q, c).await?;
    }
    Ok(())
}

/// After a change of event `id` inside its transaction: the next version, with the event as
/// the change left it (read back, so that what the same transaction did besides — a series
/// finished by the update — is in it), unless its state is the latest version's.
pub(super) async fn record_change<D: Dialect>(
    c: &mut D::Connection,
    id: Uuid,
    by: By<'_>,
    kind: &str,
    at: Millis,
) -> Result<()> {
    let mut q = query::<D>(format!("SELECT {EVENT_COLS} FROM events WHERE id = "));
    q.val(id);
    let Some(row) = fetch_one(q, c).await? else {
        return Err(StoreError::Internal(format!(
            "event {id} vanished inside its own change"
        )));
    };
    let state = snapshot(&row.event()?);
    let mut q = query::<D>("SELECT version, snapshot FROM event_versions WHERE event_id = ");
    q.val(id).push(" ORDER BY version DESC LIMIT 1");
    let (last, same) = match fetch_one(q, c).await? {
        Some(r) => (r.int("version")?, r.json::<Value>("snapshot")? == state),
        None => (0, false),
    };
    if same {
        return Ok(());
    }
    let kind = match by.restores {
        Some(_) if kind == change::UPDATE => change::RESTORE,
        _ => kind,
    };
    let mut q = query::<D>(format!(
        "INSERT INTO event_versions ({})",
        super::sql::names(&VERSION_COLS)
    ));
    D::push_insert_rows(
        &mut q,
        &VERSION_COLS,
        vec![vec![
            id.into(),
            (last + 1).into(),
            at.into(),
            by.actor.into(),
            kind.into(),
            by.restores.into(),
            to_json(&state).into(),
        ]],
    );
    D::exec(q, c).await?;
    Ok(())
}

fn version_of(r: &impl RowExt) -> Result<EventVersion> {
    Ok(EventVersion {
        event_id: r.id("event_id")?,
        version: r.int("version")?,
        at: r.int("at")?,
        actor: r.text("actor")?,
        change: r.text("change")?,
        restored_from: r.opt_int("restored_from")?,
        snapshot: r.json("snapshot")?,
    })
}

#[async_trait]
impl<B: Backend> HistoryStore for B {
    async fn event_versions(
        &self,
        event_id: Uuid,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventVersion>> {
        let mut q = query::<B::D>("SELECT * FROM event_versions WHERE event_id = ");
        q.val(event_id)
            .push(" AND version > ")
            .val(after)
            .push(" ORDER BY version LIMIT ")
            .val(limit);
        let mut c = self.reads().acquire().await?;
        B::D::fetch(q, &mut c)
            .await?
            .iter()
            .map(version_of)
            .collect()
    }

    async fn event_version(&self, event_id: Uuid, version: i64) -> Result<Option<EventVersion>> {
        let mut q = query::<B::D>("SELECT * FROM event_versions WHERE event_id = ");
        q.val(event_id).push(" AND version = ").val(version);
        let mut c = self.reads().acquire().await?;
        fetch_one(q, &mut c)
            .await?
            .map(|r| version_of(&r))
            .transpose()
    }
}
