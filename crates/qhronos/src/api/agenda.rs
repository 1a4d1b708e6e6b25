//! `GET /agenda`: every instant in a time window across the events a token may see, in time
//! order — the occurrences already materialised, and beyond each event's look-ahead window the
//! instants its rule will give (expanded here by the planner's code). The dashboard's calendar
//! and `qhronos agenda` read it.

use std::collections::{BinaryHeap, HashSet};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use uuid::Uuid;

use super::extract::Params;
use super::AppState;
use crate::auth::Caller;
use crate::domain::event::Event;
use crate::domain::{fmt_ms, now_ms, to_ts, Millis};
use crate::error::ApiError;
use crate::store::{AgendaRow, AgendaWindow};

pub fn router() -> Router<AppState> {
    Router::new().route("/agenda", get(agenda))
}

/// Default window: a week from `from`.
const DEFAULT_SPAN: Millis = 7 * 86_400_000;
/// Longest window: 400 days (a year view with its edges).
pub const MAX_SPAN: Millis = 400 * 86_400_000;
/// Default and largest page.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;
/// Events read per store round while expanding rules.
const EVENTS_PER_ROUND: i64 = 500;
/// Most events whose rules one request expands; past them the answer says `incomplete`.
pub const MAX_EXPANDED: usize = 20_000;
/// Steps one event's rule may take to give its instants in the window (a tenth of the
/// planner's budget: a page expands many rules).
const STEPS_PER_EVENT: u64 = recur::DEFAULT_BUDGET / 10;

/// One instant of the agenda.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgendaItem {
    /// When, in UTC.
    #[schema(format = DateTime)]
    pub at: String,
    pub event_id: Uuid,
    /// The event's name.
    pub name: String,
    /// The materialised occurrence; `null` for an instant beyond the look-ahead window that
    /// the event's rule gives but that is not stored yet (`status` is then `projected`).
    pub occurrence_id: Option<Uuid>,
    /// The occurrence's status (`pending`, `scheduled`, `dispatched`, `completed`, `failed`,
    /// `missed`; cancelled ones are left out), or `projected`.
    pub status: String,
    /// When it ends (the event's duration); `null` without one.
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
}

/// A page of the agenda.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgendaPage {
    /// Ascending by time (then event id).
    pub data: Vec<AgendaItem>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// True when some rule was not expanded: its instants are missing from this page (a rule
    /// past its step budget, or more than 20,000 events with instants beyond the look-ahead
    /// window in the range). Materialised occurrences are always all there.
    pub incomplete: bool,
}

/// An instant on its way into the page; ordered by `(at, event_id)`, the page order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key(Millis, Uuid);

#[derive(Debug, Clone)]
struct Item {
    key: Key,
    name: String,
    occurrence: Option<Uuid>,
    status: String,
    ends_at: Option<Millis>,
}

impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key.cmp(&o.key)
    }
}

impl From<AgendaRow> for Item {
    fn from(r: AgendaRow) -> Self {
        Item {
            key: Key(r.scheduled_at, r.event_id),
            name: r.name,
            occurrence: Some(r.id),
            status: r.status.as_str().to_string(),
            ends_at: r.ends_at,
        }
    }
}

/// The `keep` smallest items seen so far (a max-heap: its top is the one to drop first).
struct Best {
    heap: BinaryHeap<Item>,
    keep: usize,
}

impl Best {
    fn full(&self) -> bool {
        self.heap.len() >= self.keep
    }
    /// The largest key kept, once the page is full: later candidates must be smaller.
    fn bar(&self) -> Option<&Key> {
        self.full()
            .then(|| self.heap.peek().map(|i| &i.key))
            .flatten()
    }
    /// Keeps `item` if it is among the smallest; false when it is not (nor anything after it).
    fn offer(&mut self, item: Item) -> bool {
        if self.bar().is_some_and(|bar| item.key >= *bar) {
            return false;
        }
        self.heap.push(item);
        if self.heap.len() > self.keep {
            self.heap.pop();
        }
        true
    }
}

/// Offers the instants of `e`'s rule that are not materialised (from its `next_fire_at`) and
/// fall in the window and after the cursor, in order, until the page has no room for them.
/// An instant already `stored` (an occurrence moved past the look-ahead window onto one of
/// the rule's instants) is not offered twice. False when the rule ran past its step budget
/// (or cannot be read).
fn expand(e: &Event, w: &AgendaWindow, stored: &HashSet<Key>, best: &mut Best) -> bool {
    let Some(next) = e.next_fire_at else {
        return true;
    };
    let Ok(rec) = e.recurrence() else {
        return false;
    };
    // Instants strictly after `floor`: from the first unmaterialised one, the window's start
    // and the cursor's instant, whichever is latest.
    let mut floor = next.max(w.from) - 1;
    if let Some((at, _)) = w.after {
        floor = floor.max(at - 1);
    }
    let mut it = rec.cursor(Some(to_ts(floor)), None, STEPS_PER_EVENT);
    for t in it.by_ref() {
        let at = t.as_millisecond();
        if at >= w.to {
            break;
        }
        let key = Key(at, e.id);
        if w.after.is_some_and(|(a, id)| key <= Key(a, id)) || stored.contains(&key) {
            continue;
        }
        let item = Item {
            key,
            name: e.name.clone(),
            occurrence: None,
            status: "projected".into(),
            ends_at: e.ends_at(at),
        };
        if !best.offer(item) {
            break;
        }
    }
    it.check().is_ok()
}

/// Cursors are `<ms>_<event id>` of the last item of the previous page.
fn parse_cursor(c: &str) -> Result<(Millis, Uuid), ApiError> {
    c.split_once('_')
        .and_then(|(t, id)| Some((t.parse().ok()?, Uuid::parse_str(id).ok()?)))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "cursor: '{c}' is not a cursor from a previous page of the agenda"
            ))
        })
}

/// List instants across events in a time window
///
/// Every instant from `from` (default now) to `to` (default a week later; at most 400 days)
/// of the events the token may see (`tags` narrows), in time order, one page at a time: the
/// occurrences already materialised (any status but `cancelled`, with their id), and beyond
/// each active event's look-ahead window the instants its rule, `rdates` and `exdates` will
/// give (`status: projected`, no id), computed by the code that plans occurrences. Paused
/// events project nothing. A projected instant becomes a stored occurrence when the look-ahead
/// window reaches it; an edit, pause or manual move before then changes it.
#[utoipa::path(
    get,
    path = "/agenda",
    tag = "occurrences",
    params(
        ("from" = Option<String>, Query, description = "At or after this RFC 3339 time; default now"),
        ("to" = Option<String>, Query, description = "Before this RFC 3339 time; default `from` + 7 days, at most `from` + 400 days"),
        ("tags" = Option<String>, Query, description = "Comma-separated tags: instants of events with any of them; a scoped token's default is its scope"),
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 100", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of instants", body = AgendaPage),
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub(super) async fn agenda(
    State(st): State<AppState>,
    caller: Caller,
    p: Params,
) -> Result<Json<AgendaPage>, ApiError> {
    p.only(&["from", "to", "tags", "limit", "cursor"])?;
    let bad = ApiError::BadRequest;
    let limit = match p.get("limit") {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "limit: '{s}' is not a number from 1 to {MAX_LIMIT}"
                ))
            })?,
    };
    let from = p.time("from")?.unwrap_or_else(now_ms);
    let to = p.time("to")?.unwrap_or(from + DEFAULT_SPAN);
    if to <= from {
        return Err(bad(format!(
            "to: {} is not after from ({})",
            fmt_ms(to),
            fmt_ms(from)
        )));
    }
    if to - from > MAX_SPAN {
        return Err(bad(format!(
            "to: the window from {} to {} is longer than 400 days",
            fmt_ms(from),
            fmt_ms(to)
        )));
    }
    let after = p.get("cursor").map(parse_cursor).transpose()?;
    let Some(tags) = caller.principal.filter_tags(p.tags()) else {
        return Ok(Json(AgendaPage {
            data: Vec::new(),
            next_cursor: None,
            incomplete: false,
        }));
    };
    let w = AgendaWindow {
        tags,
        from,
        to,
        after,
    };
    // One more than a page, to know whether another follows.
    let keep = limit as usize + 1;
    let mut best = Best {
        heap: BinaryHeap::with_capacity(keep + 1),
        keep,
    };
    // The stored ones first. A projected instant with the key of a stored one that is not
    // among these could not make the page anyway: these fill it with smaller keys.
    let mut stored = HashSet::new();
    for r in st.store.agenda_occurrences(&w, keep as i64).await? {
        let item = Item::from(r);
        stored.insert(item.key);
        best.offer(item);
    }
    let stored = std::sync::Arc::new(stored);
    // Rules, by their first unmaterialised instant: once the page is full with items earlier
    // than the next event's first instant, no later event can add any.
    let mut incomplete = false;
    let mut expanded = 0usize;
    let mut page_after = None;
    loop {
        let events = st
            .store
            .agenda_events(&w, page_after, EVENTS_PER_ROUND)
            .await?;
        let Some(last) = events.last() else { break };
        page_after = last.next_fire_at.map(|n| (n, last.id));
        let first = events.first().and_then(|e| e.next_fire_at);
        if let (Some(bar), Some(first)) = (best.bar(), first) {
            if bar.0 < first {
                break;
            }
        }
        if expanded >= MAX_EXPANDED {
            incomplete = true;
            break;
        }
        expanded += events.len();
        let round = events.len() as i64;
        let (win, known) = (w.clone(), stored.clone());
        let (b, ok) = tokio::task::spawn_blocking(move || {
            let mut ok = true;
            for e in &events {
                ok &= expand(e, &win, &known, &mut best);
            }
            (best, ok)
        })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("agenda task failed: {e}")))?;
        best = b;
        incomplete |= !ok;
        if round < EVENTS_PER_ROUND || page_after.is_none() {
            break;
        }
    }
    let mut items = best.heap.into_sorted_vec();
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|i| format!("{}_{}", i.key.0, i.key.1))
    } else {
        None
    };
    let data = items
        .into_iter()
        .map(|i| AgendaItem {
            at: fmt_ms(i.key.0),
            event_id: i.key.1,
            name: i.name,
            occurrence_id: i.occurrence,
            status: i.status,
            ends_at: i.ends_at.map(fmt_ms),
        })
        .collect();
    Ok(Json(AgendaPage {
        data,
        next_cursor,
        incomplete,
    }))
}
