//! The agenda's reads (`GET /agenda`): the occurrences materialised in a time window, and the
//! active events whose rule goes on past what is materialised (the API expands those).

use async_trait::async_trait;
use uuid::Uuid;

use super::events::push_tags;
use super::sql::rows::{RowExt, EVENT_COLS};
use super::sql::{query, Dialect, Push};
use super::{Backend, Result};
use crate::domain::event::Event;
use crate::domain::occurrence::OccStatus;
use crate::domain::Millis;

/// One materialised occurrence in the agenda.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgendaRow {
    /// The occurrence id.
    pub id: Uuid,
    /// Its event.
    pub event_id: Uuid,
    /// The event's name.
    pub name: String,
    /// When it is (or was) due.
    pub scheduled_at: Millis,
    /// Its status (never `cancelled`).
    pub status: OccStatus,
    /// When it ends (its event's duration), if it has one.
    pub ends_at: Option<Millis>,
}

/// A time window of the agenda and where the page starts.
#[derive(Debug, Clone, Default)]
pub struct AgendaWindow {
    /// Only events carrying any of these tags (empty: all).
    pub tags: Vec<String>,
    /// At or after this instant.
    pub from: Millis,
    /// Before this instant.
    pub to: Millis,
    /// Strictly after this `(instant, event id)`: the previous page's last item.
    pub after: Option<(Millis, Uuid)>,
}

/// Reads for the agenda: what is materialised, and which rules go on beyond it.
#[async_trait]
pub trait AgendaStore: Send + Sync + 'static {
    /// Occurrences of live (not deleted) events in the window, except cancelled ones,
    /// ascending by `(scheduled_at, event_id)`, at most `limit`.
    async fn agenda_occurrences(&self, w: &AgendaWindow, limit: i64) -> Result<Vec<AgendaRow>>;
    /// Active events in `w.tags` whose next instant not yet materialised (`next_fire_at`) is
    /// before `w.to`, ascending by `(next_fire_at, id)` and strictly after `after`, at most
    /// `limit`: one page of the events whose rules the agenda expands.
    async fn agenda_events(
        &self,
        w: &AgendaWindow,
        after: Option<(Millis, Uuid)>,
        limit: i64,
    ) -> Result<Vec<Event>>;
}

#[async_trait]
impl<B: Backend> AgendaStore for B {
    async fn agenda_occurrences(&self, w: &AgendaWindow, limit: i64) -> Result<Vec<AgendaRow>> {
        let mut q = query::<B::D>(
            "SELECT o.id, o.event_id, o.scheduled_at, o.status, o.ends_at, e.name \
             FROM occurrences o JOIN events e ON e.id = o.event_id \
             WHERE e.status != 'deleted' AND o.status != 'cancelled' AND o.scheduled_at >= ",
        );
        q.val(w.from).push(" AND o.scheduled_at < ").val(w.to);
        if let Some((at, id)) = w.after {
            q.push(" AND (o.scheduled_at > ")
                .val(at)
                .push(" OR (o.scheduled_at = ")
                .val(at)
                .push(" AND o.event_id > ")
                .val(id)
                .push("))");
        }
        push_tags(&mut q, "o.event_id", &w.tags);
        q.push(" ORDER BY o.scheduled_at, o.event_id LIMIT ")
            .val(limit);
        let mut c = self.reads().acquire().await?;
        B::D::fetch(q, &mut c)
            .await?
            .iter()
            .map(|r| {
                Ok(AgendaRow {
                    id: r.id("id")?,
                    event_id: r.id("event_id")?,
                    name: r.text("name")?,
                    scheduled_at: r.int("scheduled_at")?,
                    status: r.occ_status("status")?,
                    ends_at: r.opt_int("ends_at")?,
                })
            })
            .collect()
    }

    async fn agenda_events(
        &self,
        w: &AgendaWindow,
        after: Option<(Millis, Uuid)>,
        limit: i64,
    ) -> Result<Vec<Event>> {
        let mut q = query::<B::D>(format!(
            "SELECT {EVENT_COLS} FROM events{} \
             WHERE status = 'active' AND next_fire_at IS NOT NULL AND next_fire_at < ",
            B::D::indexed_by("events_expand")
        ));
        q.val(w.to);
        if let Some((at, id)) = after {
            q.push(" AND (next_fire_at > ")
                .val(at)
                .push(" OR (next_fire_at = ")
                .val(at)
                .push(" AND id > ")
                .val(id)
                .push("))");
        }
        push_tags(&mut q, "id", &w.tags);
        q.push(" ORDER BY next_fire_at, id LIMIT ").val(limit);
        let mut c = self.reads().acquire().await?;
        B::D::fetch(q, &mut c)
            .await?
            .iter()
            .map(|r| r.event())
            .collect()
    }
}
