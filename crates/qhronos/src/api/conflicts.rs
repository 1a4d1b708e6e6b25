//! Conflicts of an event with the other events of its calendar (checked on create and
//! update), and `POST /calendars/{id}/free-slots`. The index is in `calendars/conflicts.rs`.

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::calendars::visible_calendar;
use super::extract::Body;
use super::AppState;
use crate::auth::Caller;
use crate::calendars::conflicts::{
    collisions, free_slots, intervals, working_windows, Collision, Index,
};
use crate::domain::duration::Dur;
use crate::domain::event::Event;
use crate::domain::{fmt_ms, now_ms, parse_time, Millis};
use crate::error::ApiError;

/// Collisions listed in an answer.
const MAX_LISTED: usize = 50;

pub fn router() -> Router<AppState> {
    Router::new().route("/calendars/{id}/free-slots", post(free_slots_handler))
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
    let others: Vec<Event> = st
        .store
        .calendar_events(cal.id)
        .await?
        .into_iter()
        .filter(|o| o.id != e.id)
        .collect();
    let ev = e.clone();
    let (found, proposals) = tokio::task::spawn_blocking(move || {
        let ix = Index::build(&others, now, to);
        let mine = intervals(&ev, now, to);
        let (found, first) = collisions(&ix, &mine, ev.id, MAX_LISTED);
        let proposals: Vec<(Millis, Millis)> = first
            .map(|(s, e)| {
                ix.nearest_free(s, e - s, now, to, 3)
                    .into_iter()
                    .map(|p| (p, p + (e - s)))
                    .collect()
            })
            .unwrap_or_default();
        (found, proposals)
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("conflict check failed: {e}")))?;
    if cal.mode == "auto_plan" && !found.is_empty() {
        let proposals: Vec<_> = proposals
            .iter()
            .map(|(s, e)| json!({"start": fmt_ms(*s), "end": fmt_ms(*e)}))
            .collect();
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
