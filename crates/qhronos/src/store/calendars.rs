//! Calendars: a name, the defaults and conflict mode of their events, a subscription's feed
//! state; and the one-transaction write of an iCalendar import (creates, updates, removals).

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

use super::events::{delete_in, insert_events, update_in};
use super::history::By;
use super::sql::rows::{to_json, RowExt, EVENT_COLS};
use super::sql::{fetch_one, query, Col, Dialect, Kind, Push, Val};
use super::{Backend, Result, StoreError};
use crate::domain::event::Event;
use crate::domain::occurrence::NewOccurrence;
use crate::domain::Millis;

/// A calendar as stored. `defaults` is the validated JSON of the calendar's event defaults
/// (action, tags, retry, misfire, timezone); `tags` the tags its events carry at least (the
/// scope check of a calendar reads them).
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    /// The calendar's id (UUID v7).
    pub id: Uuid,
    /// For people.
    pub name: String,
    /// `free` or `auto_plan`.
    pub mode: String,
    /// What imported events take when the file does not say (JSON object).
    pub defaults: Value,
    /// Tags every event of the calendar carries.
    pub tags: Vec<String>,
    /// A subscription's feed URL; `None` for a calendar filled by imports.
    pub url: Option<String>,
    /// How often the feed is fetched (ms).
    pub refresh: Option<Millis>,
    /// The feed's `ETag` at the last fetch that read it (sent back as `If-None-Match`).
    pub etag: Option<String>,
    /// The feed's `Last-Modified` (sent back as `If-Modified-Since`).
    pub last_modified: Option<String>,
    /// When the feed was last fetched.
    pub last_fetch_at: Option<Millis>,
    /// What the last fetch did, for people (`"ok: 3 created, …"`, `"failed: …"`).
    pub last_result: Option<String>,
    /// When the feed is fetched next (`None`: not a subscription).
    pub next_fetch_at: Option<Millis>,
    /// The counts of the last import (JSON object).
    pub counts: Option<Value>,
    /// When it was created.
    pub created_at: Millis,
    /// When it last changed.
    pub updated_at: Millis,
    /// Moves with every write to one of the calendar's events (in that write's transaction),
    /// on every node: a conflict index built when it had another value is stale. Read only:
    /// writing a calendar leaves it alone.
    pub events_gen: i64,
}

/// What an import writes, all in one transaction.
#[derive(Debug, Default)]
pub struct ImportWrite {
    /// New events with their first occurrences.
    pub creates: Vec<(Event, Vec<NewOccurrence>)>,
    /// (event, re-plan after, occurrences): see `EventStore::update_event`.
    pub updates: Vec<(Event, Option<Millis>, Vec<NewOccurrence>)>,
    /// Events deleted (they vanished from the file).
    pub removes: Vec<Uuid>,
}

/// Calendars and what belongs to them.
#[async_trait]
pub trait CalendarStore: Send + Sync + 'static {
    /// Inserts a calendar.
    async fn create_calendar(&self, c: &Calendar) -> Result<()>;
    /// One calendar, if it exists.
    async fn get_calendar(&self, id: Uuid) -> Result<Option<Calendar>>;
    /// Oldest first (by id), those after `after`, at most `limit`.
    async fn list_calendars(&self, after: Option<Uuid>, limit: i64) -> Result<Vec<Calendar>>;
    /// Replaces every field but `id` and `created_at`; false when unknown.
    async fn update_calendar(&self, c: &Calendar) -> Result<bool>;
    /// Deletes the calendar; its events stay, without a calendar. False when unknown.
    async fn delete_calendar(&self, id: Uuid, now: Millis) -> Result<bool>;
    /// The live (not deleted) events of a calendar, oldest first.
    async fn calendar_events(&self, id: Uuid) -> Result<Vec<Event>>;
    /// Applies an import in one transaction (all or nothing), each change with its version
    /// and its announcement, and stores the calendar's new state (`calendar`, inserted when it
    /// does not exist yet) with it.
    async fn apply_import(
        &self,
        calendar: &Calendar,
        w: &ImportWrite,
        now: Millis,
        by: By<'_>,
    ) -> Result<()>;
    /// Subscriptions whose next fetch is due at `now`, soonest first.
    async fn due_feeds(&self, now: Millis, limit: i64) -> Result<Vec<Calendar>>;
    /// The single instances of these events that a person changed: moved ones (not
    /// cancelled since) and ones cancelled with `DELETE /occurrences/{id}`, by event and
    /// original instant. A feed writes them as RECURRENCE-ID overrides.
    async fn overrides(&self, event_ids: &[Uuid]) -> Result<Vec<Override>>;
}

/// One instance changed by hand (see [`CalendarStore::overrides`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// Its event.
    pub event_id: Uuid,
    /// The instant the series gave it (its RECURRENCE-ID).
    pub original: Millis,
    /// Where it was moved, with its end; `None` when it was cancelled.
    pub moved_to: Option<(Millis, Option<Millis>)>,
}

const CAL_COLS: [Col; 15] = [
    ("id", Kind::Text),
    ("name", Kind::Text),
    ("mode", Kind::Text),
    ("defaults", Kind::Text),
    ("tags", Kind::Text),
    ("url", Kind::Text),
    ("refresh_ms", Kind::Int),
    ("etag", Kind::Text),
    ("last_modified", Kind::Text),
    ("last_fetch_at", Kind::Int),
    ("last_result", Kind::Text),
    ("next_fetch_at", Kind::Int),
    ("counts", Kind::Text),
    ("created_at", Kind::Int),
    ("updated_at", Kind::Int),
];

fn values(c: &Calendar) -> Vec<Val> {
    vec![
        c.id.into(),
        c.name.clone().into(),
        c.mode.clone().into(),
        to_json(&c.defaults).into(),
        to_json(&c.tags).into(),
        c.url.clone().into(),
        c.refresh.into(),
        c.etag.clone().into(),
        c.last_modified.clone().into(),
        c.last_fetch_at.into(),
        c.last_result.clone().into(),
        c.next_fetch_at.into(),
        c.counts.as_ref().map(to_json).into(),
        c.created_at.into(),
        c.updated_at.into(),
    ]
}

fn calendar<R: RowExt>(r: &R) -> Result<Calendar> {
    Ok(Calendar {
        id: r.id("id")?,
        name: r.text("name")?,
        mode: r.text("mode")?,
        defaults: r.json("defaults")?,
        tags: r.json("tags")?,
        url: r.opt_text("url")?,
        refresh: r.opt_int("refresh_ms")?,
        etag: r.opt_text("etag")?,
        last_modified: r.opt_text("last_modified")?,
        last_fetch_at: r.opt_int("last_fetch_at")?,
        last_result: r.opt_text("last_result")?,
        next_fetch_at: r.opt_int("next_fetch_at")?,
        counts: r
            .opt_text("counts")?
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("counts: {e}")))?,
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
        events_gen: r.int("events_gen")?,
    })
}

async fn update_row<D: Dialect>(c: &mut D::Connection, cal: &Calendar) -> Result<bool> {
    let mut q = query::<D>("UPDATE calendars SET ");
    let mut first = true;
    for ((col, _), v) in CAL_COLS.iter().zip(values(cal)) {
        if *col == "id" || *col == "created_at" {
            continue;
        }
        if !first {
            q.push(", ");
        }
        first = false;
        q.push(format!("{col} = ")).val(v);
    }
    q.push(" WHERE id = ").val(cal.id);
    Ok(D::exec(q, c).await? > 0)
}

fn select() -> String {
    format!(
        "SELECT {}, events_gen FROM calendars",
        super::sql::names(&CAL_COLS)
    )
}

#[async_trait]
impl<B: Backend> CalendarStore for B {
    async fn create_calendar(&self, c: &Calendar) -> Result<()> {
        let mut q = query::<B::D>(format!(
            "INSERT INTO calendars ({})",
            super::sql::names(&CAL_COLS)
        ));
        B::D::push_insert_rows(&mut q, &CAL_COLS, vec![values(c)]);
        let mut tx = self.writes().begin().await?;
        B::D::exec(q, &mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_calendar(&self, id: Uuid) -> Result<Option<Calendar>> {
        let mut q = query::<B::D>(format!("{} WHERE id = ", select()));
        q.val(id);
        let mut c = self.reads().acquire().await?;
        fetch_one(q, &mut c)
            .await?
            .map(|r| calendar(&r))
            .transpose()
    }

    async fn list_calendars(&self, after: Option<Uuid>, limit: i64) -> Result<Vec<Calendar>> {
        let mut q = query::<B::D>(format!("{} WHERE id > ", select()));
        q.val(after.map(|a| a.to_string()).unwrap_or_default())
            .push(" ORDER BY id LIMIT ")
            .val(limit);
        let mut c = self.reads().acquire().await?;
        B::D::fetch(q, &mut c).await?.iter().map(calendar).collect()
    }

    async fn update_calendar(&self, cal: &Calendar) -> Result<bool> {
        let mut tx = self.writes().begin().await?;
        let done = update_row::<B::D>(&mut tx, cal).await?;
        tx.commit().await?;
        Ok(done)
    }

    async fn delete_calendar(&self, id: Uuid, now: Millis) -> Result<bool> {
        let mut tx = self.writes().begin().await?;
        let mut q = query::<B::D>("DELETE FROM calendars WHERE id = ");
        q.val(id);
        if B::D::exec(q, &mut tx).await? == 0 {
            return Ok(false);
        }
        let mut q = query::<B::D>("UPDATE events SET calendar_id = NULL, updated_at = ");
        q.val(now).push(" WHERE calendar_id = ").val(id);
        B::D::exec(q, &mut tx).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn calendar_events(&self, id: Uuid) -> Result<Vec<Event>> {
        let mut q = query::<B::D>(format!(
            "SELECT {EVENT_COLS} FROM events WHERE status != 'deleted' AND calendar_id = "
        ));
        q.val(id).push(" ORDER BY id");
        let mut c = self.reads().acquire().await?;
        B::D::fetch(q, &mut c)
            .await?
            .iter()
            .map(|r| r.event())
            .collect()
    }

    async fn apply_import(
        &self,
        calendar: &Calendar,
        w: &ImportWrite,
        now: Millis,
        by: By<'_>,
    ) -> Result<()> {
        let mut tx = self.writes().begin().await?;
        if !update_row::<B::D>(&mut tx, calendar).await? {
            // A calendar made by this import is written with it.
            let mut q = query::<B::D>(format!(
                "INSERT INTO calendars ({})",
                super::sql::names(&CAL_COLS)
            ));
            B::D::push_insert_rows(&mut q, &CAL_COLS, vec![values(calendar)]);
            B::D::exec(q, &mut tx).await?;
        }
        let creates: Vec<(&Event, &[NewOccurrence], &str)> = w
            .creates
            .iter()
            .map(|(e, o)| (e, o.as_slice(), by.actor))
            .collect();
        if !creates.is_empty() {
            insert_events::<B::D>(&mut tx, &creates).await?;
        }
        for (e, replan, occs) in &w.updates {
            update_in::<B>(&mut tx, e, *replan, occs, by).await?;
        }
        for id in &w.removes {
            delete_in::<B>(&mut tx, *id, now, by).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn due_feeds(&self, now: Millis, limit: i64) -> Result<Vec<Calendar>> {
        let mut q = query::<B::D>(format!(
            "{} WHERE url IS NOT NULL AND next_fetch_at <= ",
            select()
        ));
        q.val(now).push(" ORDER BY next_fetch_at LIMIT ").val(limit);
        let mut c = self.reads().acquire().await?;
        B::D::fetch(q, &mut c).await?.iter().map(calendar).collect()
    }

    async fn overrides(&self, event_ids: &[Uuid]) -> Result<Vec<Override>> {
        let mut out = Vec::new();
        let mut c = self.reads().acquire().await?;
        for chunk in event_ids.chunks(500) {
            let mut q = query::<B::D>(
                "SELECT event_id, COALESCE(moved_from, scheduled_at) AS original, scheduled_at, \
                 ends_at, status FROM occurrences WHERE ((moved_from IS NOT NULL AND status != 'cancelled') \
                 OR (status = 'cancelled' AND cancelled_by = 'user')) AND ",
            );
            B::D::push_in(
                &mut q,
                "event_id",
                chunk.iter().map(Uuid::to_string).collect(),
            );
            q.push(" ORDER BY event_id, original");
            for r in B::D::fetch(q, &mut c).await? {
                let cancelled = r.text("status")? == "cancelled";
                out.push(Override {
                    event_id: r.id("event_id")?,
                    original: r.int("original")?,
                    moved_to: (!cancelled)
                        .then(|| {
                            Ok::<_, StoreError>((r.int("scheduled_at")?, r.opt_int("ends_at")?))
                        })
                        .transpose()?,
                });
            }
        }
        Ok(out)
    }
}
