//! Conflicts of an event with the other events of its calendar (checked on create and
//! update), and `POST /calendars/{id}/free-slots`. The index is in `calendars/conflicts.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::calendars::visible_calendar;
use super::extract::Body;
use super::AppState;
use crate::auth::Caller;
use crate::calendars::conflicts::{
    collisions_but, free_slots, intervals, working_windows, Collision, Index,
};
use crate::calendars::index_cache::SLACK;
use crate::domain::duration::Dur;
use crate::domain::event::Event;
use crate::domain::{fmt_ms, now_ms, parse_time, Millis};
use crate::error::ApiError;
use crate::store::Calendar;

/// Collisions listed in an answer (per event).
pub(super) const MAX_LISTED: usize = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/calendars/{id}/free-slots", post(free_slots_handler))
        .route("/calendars/{id}/conflicts", post(conflicts_handler))
}

/// The conflict index of `cal` (just read: its `events_gen` is current) covering the planning
/// horizon from `now`: the kept one when it is of that generation, else built and kept.
async fn index_of(st: &AppState, cal: &Calendar, now: Millis) -> Result<Arc<Index>, ApiError> {
    let to = now.saturating_add(st.config.planning.horizon.as_millis());
    if let Some(ix) = st.calendar_index.get(cal.id, cal.events_gen, now, to) {
        return Ok(ix);
    }
    // Read after the calendar: these events are at least as new as its `events_gen`, so the
    // index is never newer-tagged than what it holds (a write in between only makes the next
    // check rebuild).
    let started = std::time::Instant::now();
    let events = st.store.calendar_events(cal.id).await?;
    let n = events.len();
    let ix = tokio::task::spawn_blocking(move || Index::build(&events, now, to + SLACK))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("conflict index build failed: {e}")))?;
    tracing::debug!(
        calendar = %cal.id,
        events_gen = cal.events_gen,
        events = n,
        intervals = ix.len(),
        ms = started.elapsed().as_millis() as u64,
        "conflict index built"
    );
    let ix = Arc::new(ix);
    st.calendar_index.put(cal.id, cal.events_gen, ix.clone());
    Ok(ix)
}

/// Checks `e` against the other events of its calendar over `planning.horizon` from now: the
/// collisions to report (`None`: nothing to check: no calendar, or no duration), or, in an
/// `auto_plan` calendar, the 409 (`ApiError::Overlap`) with the nearest free slots.
pub async fn check(
    st: &AppState,
    caller: &Caller,
    e: &Event,
) -> Result<Option<Vec<Collision>>, ApiError> {
    let Some(cal_id) = e.calendar_id else {
        return Ok(None);
    };
    let cal = visible_calendar(st, caller, &cal_id.to_string())
        .await
        .map_err(|_| ApiError::BadRequest(format!("calendar_id: calendar '{cal_id}' not found")))?;
    if e.duration.is_none() && e.all_day.is_none() {
        return Ok(None);
    }
    let now = now_ms();
    let to = now.saturating_add(st.config.planning.horizon.as_millis());
    let ix = index_of(st, &cal, now).await?;
    let mine = intervals(e, now, to);
    let own = e.id;
    let skip = |n: usize| ix.events[n].0 == own;
    let (found, first) = collisions_but(&ix, &mine, &skip, MAX_LISTED);
    if cal.mode == "auto_plan" && !found.is_empty() {
        let proposals = proposals(&ix, first, (now, to), &skip);
        return Err(ApiError::Overlap {
            message: format!(
                "the event overlaps {} occurrence(s) of other events in calendar '{}' (mode auto_plan) within {}: see conflicts; proposals are the nearest free slots for the first one",
                found.len(),
                cal.name,
                st.config.planning.horizon
            ),
            detail: Box::new(json!({"conflicts": found, "proposals": proposals})),
        });
    }
    Ok(Some(found))
}

/// The three free slots nearest to the first colliding instance `first`, as `{start, end}`.
fn proposals(
    ix: &Index,
    first: Option<(Millis, Millis)>,
    window: (Millis, Millis),
    skip: &dyn Fn(usize) -> bool,
) -> Vec<Value> {
    first
        .map(|(s, e)| {
            ix.nearest_free(s, e - s, window, skip, 3)
                .into_iter()
                .map(|p| json!({"start": fmt_ms(p), "end": fmt_ms(p + (e - s))}))
                .collect()
        })
        .unwrap_or_default()
}

/// What a many-event write (`POST /events/batch`, an import) found for one of its events.
#[derive(Debug)]
pub struct ItemConflicts {
    /// The event's place in the write.
    pub item: usize,
    /// Whether its calendar is in `auto_plan` mode (the write is refused).
    pub auto_plan: bool,
    pub conflicts: Vec<Collision>,
    /// The nearest free slots for its first collision (in `auto_plan` mode).
    pub proposals: Vec<Value>,
}

/// Checks the events of a many-event write as if each were created (or updated) on its own,
/// one after the other: against the other events of its calendar (leaving out `replaced`, the
/// events the write removes, and the older versions of the events it updates) and against the
/// items before it in the same calendar. An event whose calendar the caller cannot see is a
/// 400 naming the item (`Err((item, error))`). `known`: a calendar taken as it is, not read
/// (an import's calendar, which may not be stored yet).
pub async fn check_many(
    st: &AppState,
    caller: &Caller,
    items: &[&Event],
    replaced: &[Uuid],
    known: Option<&Calendar>,
) -> Result<Vec<ItemConflicts>, (Option<usize>, ApiError)> {
    let now = now_ms();
    let to = now.saturating_add(st.config.planning.horizon.as_millis());
    let mut by_cal: HashMap<Uuid, Vec<usize>> = HashMap::new();
    for (n, e) in items.iter().enumerate() {
        if let Some(c) = e.calendar_id {
            by_cal.entry(c).or_default().push(n);
        }
    }
    let mut out = Vec::new();
    for (cal_id, members) in by_cal {
        let cal = match known.filter(|c| c.id == cal_id) {
            Some(c) => c.clone(),
            None => visible_calendar(st, caller, &cal_id.to_string())
                .await
                .map_err(|_| {
                    let bad = format!("calendar_id: calendar '{cal_id}' not found");
                    (members.first().copied(), ApiError::BadRequest(bad))
                })?,
        };
        let lasting: Vec<usize> = members
            .into_iter()
            .filter(|&n| items[n].duration.is_some() || items[n].all_day.is_some())
            .collect();
        if lasting.is_empty() {
            continue;
        }
        let ix = index_of(st, &cal, now).await.map_err(|e| (None, e))?;
        let evs: Vec<Event> = lasting.iter().map(|&n| items[n].clone()).collect();
        let mut skip: HashSet<Uuid> = replaced.iter().copied().collect();
        skip.extend(evs.iter().map(|e| e.id));
        let auto_plan = cal.mode == "auto_plan";
        let found = tokio::task::spawn_blocking(move || {
            let side = Index::build(&evs, now, to);
            // The order of each item among this calendar's, by its position in `side`.
            let order: HashMap<Uuid, usize> =
                evs.iter().enumerate().map(|(k, e)| (e.id, k)).collect();
            let side_order: Vec<usize> = side
                .events
                .iter()
                .map(|(id, _)| order.get(id).copied().unwrap_or(usize::MAX))
                .collect();
            let skip_main = |n: usize| skip.contains(&ix.events[n].0);
            let mut found = Vec::new();
            for (k, e) in evs.iter().enumerate() {
                let mine = intervals(e, now, to);
                let (mut c, first) = collisions_but(&ix, &mine, &skip_main, MAX_LISTED);
                let (c2, first2) =
                    collisions_but(&side, &mine, &|n| side_order[n] >= k, MAX_LISTED - c.len());
                c.extend(c2);
                if c.is_empty() {
                    continue;
                }
                let first = match (first, first2) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                let proposals = if auto_plan {
                    proposals(&ix, first, (now, to), &skip_main)
                } else {
                    Vec::new()
                };
                found.push((k, c, proposals));
            }
            found
        })
        .await
        .map_err(|e| {
            let err = anyhow::anyhow!("conflict check failed: {e}");
            (None, ApiError::Internal(err))
        })?;
        out.extend(
            found
                .into_iter()
                .map(|(k, conflicts, proposals)| ItemConflicts {
                    item: lasting[k],
                    auto_plan,
                    conflicts,
                    proposals,
                }),
        );
    }
    out.sort_by_key(|c| c.item);
    Ok(out)
}

/// After a write of this node to events: brings the kept conflict indexes of `calendars` up
/// to date (the events `removed` taken out, `added` put in), or drops them when another write
/// came in between. Best effort: a failure only means the next check rebuilds.
pub async fn after_write(st: &AppState, calendars: &[Uuid], removed: &[Uuid], added: &[&Event]) {
    for &cal in calendars {
        if !st.calendar_index.has(cal) {
            continue;
        }
        let gen = match st.store.get_calendar(cal).await {
            Ok(Some(c)) => c.events_gen,
            _ => {
                st.calendar_index.forget(cal);
                continue;
            }
        };
        let add: Vec<&Event> = added
            .iter()
            .copied()
            .filter(|e| e.calendar_id == Some(cal))
            .collect();
        let remove = removed.to_vec();
        st.calendar_index
            .advance(cal, gen, |ix| ix.updated(&remove, &add));
    }
}

/// The calendars of the events given (each once).
pub fn calendars_of<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = events.into_iter().filter_map(|e| e.calendar_id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// What `POST /calendars/{id}/conflicts` found.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct ConflictsOut {
    /// The calendar's mode: in `auto_plan` a create or update with these times would be refused
    mode: String,
    /// At most 50
    conflicts: Vec<Collision>,
    /// The nearest free slots for the first collision, `{start, end}`
    #[schema(value_type = Vec<Object>)]
    proposals: Vec<Value>,
}

/// Check times against a calendar
///
/// Whether an event with these times would collide with the calendar's events over
/// `planning.horizon` from now, without saving anything: the body is an event as in `POST
/// /events` (`start_time` or `start_date`, `timezone`, `schedule`, `duration` or `end_time`,
/// `exdates`, `rdates`; `name` and `action` may be left out). With `event_id`, that event's
/// own instances are left out (checking a move).
#[utoipa::path(
    post,
    path = "/calendars/{id}/conflicts",
    tag = "calendars",
    params(("id" = String, Path, description = "The calendar id")),
    request_body(content = Object, description = "An event body as in POST /events (name and action optional), and optionally `event_id`"),
    responses(
        (status = 200, description = "The collisions and proposals (nothing was saved)", body = ConflictsOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn conflicts_handler(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(raw_body, _): Body<Value>,
) -> Result<Json<ConflictsOut>, ApiError> {
    let bad = ApiError::BadRequest;
    let cal = visible_calendar(&st, &caller, &raw).await?;
    let Value::Object(mut body) = raw_body else {
        return Err(bad(
            "expected a JSON object: an event body as in POST /events".into(),
        ));
    };
    let own = match body.remove("event_id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| bad("event_id: expected an event id (a UUID)".into()))?,
        ),
    };
    body.entry("name")
        .or_insert_with(|| json!("conflict check"));
    body.entry("action")
        .or_insert_with(|| json!({"type": "pull", "params": {"queue": "conflict-check"}}));
    body.insert("calendar_id".into(), json!(cal.id));
    let input: crate::api::event_io::EventIn = serde_json::from_value(Value::Object(body))
        .map_err(|e| bad(format!("invalid request body: {e}")))?;
    let now = now_ms();
    let e = input
        .validate(own.unwrap_or_else(Uuid::now_v7), now, now)
        .map_err(bad)?;
    if e.duration.is_none() && e.all_day.is_none() {
        return Err(bad(
            "duration: required to check conflicts (or end_time, or an all-day start_date)".into(),
        ));
    }
    let to = now.saturating_add(st.config.planning.horizon.as_millis());
    let ix = index_of(&st, &cal, now).await?;
    let mine = intervals(&e, now, to);
    let skip = |n: usize| ix.events[n].0 == e.id;
    let (conflicts, first) = collisions_but(&ix, &mine, &skip, MAX_LISTED);
    Ok(Json(ConflictsOut {
        mode: cal.mode.clone(),
        proposals: proposals(&ix, first, (now, to), &skip),
        conflicts,
    }))
}

/// Working hours for free slots.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct WorkingHours {
    /// Weekdays: `MO`, `TU`, `WE`, `TH`, `FR`, `SA`, `SU` (default Monday to Friday)
    days: Option<Vec<String>>,
    /// Local start of the day's window, `"HH:MM"`
    start: String,
    /// Local end, `"HH:MM"`
    end: String,
    /// The IANA zone of the hours (DST-aware: 09:00 stays 09:00 local)
    timezone: String,
}

/// The body of `POST /calendars/{id}/free-slots`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct FreeSlotsIn {
    /// The shortest slot wanted (`"30m"`)
    duration: String,
    /// RFC 3339
    from: String,
    /// RFC 3339, at most 366 days after `from`
    to: String,
    working_hours: Option<WorkingHours>,
    /// Most slots (default 10, at most 1000)
    limit: Option<usize>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Slot {
    start: String,
    end: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct FreeSlotsOut {
    /// Free stretches at least `duration` long, ascending
    slots: Vec<Slot>,
}

fn weekday(s: &str) -> Result<jiff::civil::Weekday, String> {
    use jiff::civil::Weekday::*;
    Ok(match s.trim().to_ascii_uppercase().as_str() {
        "MO" => Monday,
        "TU" => Tuesday,
        "WE" => Wednesday,
        "TH" => Thursday,
        "FR" => Friday,
        "SA" => Saturday,
        "SU" => Sunday,
        _ => {
            return Err(format!(
                "working_hours.days: '{s}' is not MO, TU, WE, TH, FR, SA or SU"
            ))
        }
    })
}

/// Free slots of a calendar
///
/// The stretches in `[from, to)` — within `working_hours` when given, read in their zone so
/// that they follow DST — where none of the calendar's events (those with a duration) runs,
/// each at least `duration` long.
#[utoipa::path(
    post,
    path = "/calendars/{id}/free-slots",
    tag = "calendars",
    params(("id" = String, Path, description = "The calendar id")),
    request_body = FreeSlotsIn,
    responses(
        (status = 200, description = "The free slots", body = FreeSlotsOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn free_slots_handler(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(raw_body, _): Body<serde_json::Value>,
) -> Result<Json<FreeSlotsOut>, ApiError> {
    let bad = ApiError::BadRequest;
    // The calendar first: an invisible one is a 404 whatever the body.
    let cal = visible_calendar(&st, &caller, &raw).await?;
    let input: FreeSlotsIn =
        serde_json::from_value(raw_body).map_err(|e| bad(format!("invalid request body: {e}")))?;
    let len: Dur = input
        .duration
        .parse()
        .map_err(|e| bad(format!("duration: {e}")))?;
    let len = len.as_millis();
    if len <= 0 {
        return Err(bad("duration: must be more than zero".into()));
    }
    let from = parse_time("from", &input.from)
        .map_err(bad)?
        .as_millisecond();
    let to = parse_time("to", &input.to).map_err(bad)?.as_millisecond();
    if to <= from || to - from > 366 * 86_400_000 {
        return Err(bad(
            "to: must be after from, and at most 366 days later".into()
        ));
    }
    let limit = input.limit.unwrap_or(10);
    if !(1..=1000).contains(&limit) {
        return Err(bad(format!("limit: {limit} is not from 1 to 1000")));
    }
    let windows = match &input.working_hours {
        None => vec![(from, to)],
        Some(w) => {
            let days = match &w.days {
                None => vec!["MO", "TU", "WE", "TH", "FR"]
                    .into_iter()
                    .map(weekday)
                    .collect::<Result<Vec<_>, _>>(),
                Some(d) => d.iter().map(|s| weekday(s)).collect(),
            }
            .map_err(bad)?;
            let time = |field: &str, v: &str| {
                v.parse::<jiff::civil::Time>().map_err(|_| {
                    bad(format!(
                        "working_hours.{field}: '{v}' is not a time of day: expected HH:MM"
                    ))
                })
            };
            let (s, e) = (time("start", &w.start)?, time("end", &w.end)?);
            if e <= s {
                return Err(bad(
                    "working_hours.end: must be after working_hours.start".into()
                ));
            }
            working_windows(&days, s, e, &w.timezone, from, to)
                .map_err(|m| bad(format!("working_hours.timezone: {m}")))?
        }
    };
    let events = st.store.calendar_events(cal.id).await?;
    let slots = tokio::task::spawn_blocking(move || {
        let ix = Index::build(&events, from, to);
        free_slots(&ix, &windows, len, limit)
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("free-slot search failed: {e}")))?;
    Ok(Json(FreeSlotsOut {
        slots: slots
            .into_iter()
            .map(|(s, e)| Slot {
                start: fmt_ms(s),
                end: fmt_ms(e),
            })
            .collect(),
    }))
}
