//! `POST /schedules/preview`: the next instants of a rule, by the same code the expander uses.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::extract::Body;
use super::AppState;
use crate::domain::schedule::{local_time, parse_schedule, schedule_text, TimeCtx};
use crate::domain::{fmt_ms, to_ts};
use crate::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new().route("/schedules/preview", post(preview))
}

/// The body of `POST /schedules/preview`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PreviewIn {
    /// Required: DTSTART, an RFC 3339 time with an offset, or with `timezone` a local
    /// date-time without one (`"2026-03-29T02:30:00"`; gap forward, fold first).
    #[schema(schema_with = qhronos_schema::date_time, required = true)]
    start_time: Option<String>,
    /// IANA time zone the rule is evaluated in; default `UTC`.
    #[schema(schema_with = super::inputs::timezone)]
    timezone: Option<String>,
    /// An RRULE string or its JSON form; none: only `start_time` and `rdates`.
    #[schema(schema_with = super::inputs::schedule)]
    schedule: Option<Value>,
    /// Instants removed from the set (read like `start_time`).
    #[schema(schema_with = super::inputs::date_times)]
    exdates: Option<Vec<String>>,
    /// Instants added to the set (read like `start_time`).
    #[schema(schema_with = super::inputs::date_times)]
    rdates: Option<Vec<String>>,
    /// Only instants strictly after this (read like `start_time`).
    #[schema(schema_with = super::inputs::after)]
    after: Option<String>,
    /// How many instants (default 10, at most 1000).
    #[schema(schema_with = super::inputs::preview_limit)]
    limit: Option<usize>,
}

/// The answer of `POST /schedules/preview`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct PreviewOut {
    /// The next instants, in UTC, ascending.
    occurrences: Vec<String>,
    /// The canonical RRULE.
    schedule: Option<String>,
    /// The rule's JSON form.
    schedule_json: Option<recur::JsonSchedule>,
    /// The same instants as local times in `timezone` (RFC 3339 with that zone's offset).
    occurrences_local: Vec<String>,
    /// The schedule in English words with its zone: `"every weekday at 09:00, Europe/Berlin"`.
    schedule_text: String,
    timezone: String,
}

/// Preview a schedule
///
/// The next `limit` instants strictly after `after`, computed by the same code that plans
/// events: a rule that previews is a rule that saves. An invalid rule is a 400 naming the bad
/// part.
#[utoipa::path(
    post,
    path = "/schedules/preview",
    tag = "schedules",
    request_body = PreviewIn,
    responses(
        (status = 200, description = "The next instants", body = PreviewOut),
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub(super) async fn preview(
    State(_): State<AppState>,
    Body(p, _): Body<PreviewIn>,
) -> Result<Json<PreviewOut>, ApiError> {
    let bad = ApiError::BadRequest;
    let start = p.start_time.as_deref().ok_or_else(|| {
        bad("start_time is required (an RFC 3339 time, e.g. 2026-01-01T09:00:00Z)".into())
    })?;
    let ctx = TimeCtx {
        tz: p.timezone.as_deref(),
        day_time: None,
    };
    let start = ctx.parse("start_time", start).map_err(bad)?;
    let rule = match &p.schedule {
        Some(v) => parse_schedule(v).map_err(bad)?,
        None => None,
    };
    let exdates = ctx
        .parse_all("exdates", p.exdates.as_deref().unwrap_or_default())
        .map_err(bad)?;
    let rdates = ctx
        .parse_all("rdates", p.rdates.as_deref().unwrap_or_default())
        .map_err(bad)?;
    let after = p
        .after
        .as_deref()
        .map(|a| ctx.parse("after", a).map(to_ts).map_err(bad))
        .transpose()?;
    let limit = p.limit.unwrap_or(10);
    if !(1..=qhronos_schema::limits::PREVIEW_MAX).contains(&limit) {
        return Err(bad(format!("limit: {limit} is not from 1 to 1000")));
    }
    let tz = p.timezone.as_deref().unwrap_or("UTC").to_string();
    // Rule work is CPU work (a COUNT rule may number its instances from a start far back): it
    // runs on the blocking pool, under the step budget, never on an async worker.
    let (zone, r) = (tz.clone(), rule.clone());
    let instants = tokio::task::spawn_blocking(move || -> Result<Vec<i64>, String> {
        let rec = recur::Recurrence::new(
            to_ts(start),
            &zone,
            r,
            exdates.into_iter().map(to_ts).collect(),
            rdates.into_iter().map(to_ts).collect(),
        )
        .map_err(|e| e.to_string())?;
        let mut it = rec.cursor(after, None, recur::DEFAULT_BUDGET);
        let out: Vec<i64> = it
            .by_ref()
            .take(limit)
            .map(|t| t.as_millisecond())
            .collect();
        it.check().map_err(|e| format!("schedule: {e}"))?;
        Ok(out)
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("preview task failed: {e}")))?
    .map_err(bad)?;
    let local = instants
        .iter()
        .map(|&ms| {
            // As precise as the UTC form: milliseconds only when there are some.
            let f = if ms % 1000 == 0 {
                "%Y-%m-%dT%H:%M:%S%:z"
            } else {
                "%Y-%m-%dT%H:%M:%S%.3f%:z"
            };
            local_time(ms, &tz).strftime(f).to_string()
        })
        .collect();
    Ok(Json(PreviewOut {
        occurrences: instants.iter().map(|&ms| fmt_ms(ms)).collect(),
        occurrences_local: local,
        schedule_text: schedule_text(start, &tz, rule.as_ref()),
        schedule: rule.as_ref().map(|r| r.to_rrule_string()),
        schedule_json: rule.as_ref().map(|r| r.to_json()),
        timezone: tz,
    }))
}
