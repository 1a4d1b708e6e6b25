//! `GET /analytics`: delivery figures by minute, hour or day, read from the rollups the outcome
//! writes keep (see `store::analytics`), never from the occurrences.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::extract::Params;
use super::AppState;
use crate::auth::Caller;
use crate::domain::{fmt_ms, now_ms};
use crate::error::ApiError;
use crate::store::{AnalyticsQuery, BucketStats, Granularity, Sketch, Subjects};

pub fn router() -> Router<AppState> {
    Router::new().route("/analytics", get(get_analytics))
}

/// Most buckets one answer has (a week of minutes).
pub const MAX_BUCKETS: i64 = 10_080;
/// How many failing targets an answer lists.
const TOP: i64 = 10;

/// Two percentiles of a bucket's values, in ms; `null` when it has none.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Percentiles {
    pub p50: Option<i64>,
    pub p99: Option<i64>,
}

impl From<&Sketch> for Percentiles {
    fn from(s: &Sketch) -> Self {
        Percentiles {
            p50: s.quantile(0.5),
            p99: s.quantile(0.99),
        }
    }
}

/// One bucket's figures. Counts are exact; percentiles are within 4.8 % of the exact value.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AnalyticsBucket {
    /// The bucket's first instant (UTC).
    #[schema(format = DateTime)]
    pub start: String,
    /// Occurrences scheduled in the bucket that reached their first outcome (an attempt or a miss).
    pub due: i64,
    /// Attempts started in the bucket that delivered.
    pub delivered: i64,
    /// Attempts started in the bucket that did not deliver (`retried` + `failed`).
    pub failed_attempts: i64,
    /// Failed attempts followed by another attempt.
    pub retried: i64,
    /// Failed attempts that were the last: the occurrence went to the dead-letter list.
    pub failed: i64,
    /// Occurrences scheduled in the bucket that were skipped (misfire policy, catch-up window).
    pub missed: i64,
    /// First attempt's start minus the scheduled time, of the occurrences due in the bucket.
    pub lateness_ms: Percentiles,
    /// How long the attempts started in the bucket took.
    pub duration_ms: Percentiles,
}

impl From<&BucketStats> for AnalyticsBucket {
    fn from(b: &BucketStats) -> Self {
        AnalyticsBucket {
            start: fmt_ms(b.start),
            due: b.due,
            delivered: b.delivered,
            failed_attempts: b.failed_attempts,
            retried: b.retried,
            failed: b.failed,
            missed: b.missed,
            lateness_ms: (&b.lateness).into(),
            duration_ms: (&b.duration).into(),
        }
    }
}

/// A target with failed attempts in the range.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FailingTargetOut {
    /// A URL's host and path (no credentials, no query), `email:<domains>`, `ws:<client>` or
    /// `queue:<name>`.
    pub target: String,
    /// Failed attempts to it in the range's hours.
    pub failed: i64,
    /// The error of the latest of them (URLs in it without their query strings).
    pub last_error: Option<String>,
}

/// Delivery analytics over a range.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AnalyticsOut {
    /// The range covered: `from` rounded down and `to` rounded up to whole buckets.
    #[schema(format = DateTime)]
    pub from: String,
    #[schema(format = DateTime)]
    pub to: String,
    /// `minute`, `hour` or `day` (UTC days).
    pub bucket: String,
    /// Every bucket of the range, oldest first (empty ones too).
    pub buckets: Vec<AnalyticsBucket>,
    /// At most 10 targets, most failed attempts first.
    pub top_failing_targets: Vec<FailingTargetOut>,
}

/// Delivery analytics
///
/// Counts and latency percentiles per bucket, and the targets failing most, from rollups kept
/// with every outcome (for `retention.analytics`, 400 days by default: longer than the
/// occurrences). A scoped token sees the figures of the events carrying its tags only.
#[utoipa::path(
    get,
    path = "/analytics",
    tag = "analytics",
    params(
        ("from" = Option<String>, Query, description = "RFC 3339; default `to` minus 24 hours"),
        ("to" = Option<String>, Query, description = "RFC 3339; default now"),
        ("bucket" = Option<String>, Query, description = "`minute`, `hour` (default) or `day`; at most 10,080 buckets an answer"),
        ("tags" = Option<String>, Query, description = "Comma-separated tags: events with any of them, as they are tagged now (a deleted event has none)"),
        ("event_id" = Option<String>, Query, description = "One event's figures (also after it was deleted); not with `tags`. 404 when a scoped token cannot see it"),
    ),
    responses(
        (status = 200, description = "The figures", body = AnalyticsOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn get_analytics(
    State(st): State<AppState>,
    caller: Caller,
    p: Params,
) -> Result<Json<AnalyticsOut>, ApiError> {
    p.only(&["from", "to", "bucket", "tags", "event_id"])?;
    let granularity = match p.get("bucket").unwrap_or("hour") {
        "minute" => Granularity::Minute,
        "hour" => Granularity::Hour,
        "day" => Granularity::Day,
        other => {
            return Err(ApiError::BadRequest(format!(
                "bucket: '{other}' is not minute, hour or day"
            )))
        }
    };
    let to = p.time("to")?.unwrap_or_else(now_ms);
    let from = p.time("from")?.unwrap_or(to - 86_400_000);
    if from >= to {
        return Err(ApiError::BadRequest("from: must be before to".to_string()));
    }
    let w = granularity.width();
    let (from, to) = (from - from.rem_euclid(w), to + (w - to.rem_euclid(w)) % w);
    let n = (to - from) / w;
    if n > MAX_BUCKETS {
        return Err(ApiError::BadRequest(format!(
            "from, to: {n} buckets asked for, at most {MAX_BUCKETS}: use a shorter range or a larger bucket"
        )));
    }
    let tags = p.tags();
    let subjects = match p.get("event_id") {
        Some(raw) => {
            if !tags.is_empty() {
                return Err(ApiError::BadRequest(
                    "event_id, tags: give one of them, not both".to_string(),
                ));
            }
            let nf = || ApiError::NotFound(format!("event '{raw}' not found"));
            let id = uuid::Uuid::parse_str(raw)
                .map_err(|_| ApiError::BadRequest(format!("event_id: '{raw}' is not a UUID")))?;
            // Deleted events keep their figures; an unscoped caller may also ask about one
            // retention has removed.
            match st.store.event_tags(id).await? {
                Some(t) if caller.principal.can_see(&t) => Subjects::Event(id),
                None if caller.principal.scope().is_none() => Subjects::Event(id),
                _ => return Err(nf()),
            }
        }
        None => match caller.principal.filter_tags(tags) {
            Some(t) if t.is_empty() => Subjects::All,
            Some(t) => Subjects::Tags(t),
            // Tags outside the scope: nothing matches.
            None => Subjects::Nothing,
        },
    };
    let a = st
        .store
        .analytics(&AnalyticsQuery {
            from,
            to,
            granularity,
            subjects,
            top: TOP,
        })
        .await?;
    Ok(Json(AnalyticsOut {
        from: fmt_ms(from),
        to: fmt_ms(to),
        bucket: match granularity {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
        .to_string(),
        buckets: a.buckets.iter().map(AnalyticsBucket::from).collect(),
        top_failing_targets: a
            .top_failing_targets
            .into_iter()
            .map(|t| FailingTargetOut {
                target: t.target,
                failed: t.failed,
                last_error: t.last_error,
            })
            .collect(),
    }))
}
