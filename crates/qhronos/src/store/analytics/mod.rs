//! Analytics: delivery counts and latency sketches by minute and hour, written with the
//! outcomes (in the transaction that records them), read without touching occurrences.
//!
//! Rows (`analytics`, see migrations `*_analytics*.sql`) are keyed by (subject, grain, bucket
//! start): the subject is an event id, or `''` for every event; the grain a minute or an hour.
//! A row holds the counters and two [`Sketch`]es (lateness, duration) as JSON objects of
//! bin → count. Each write adds to existing rows (one multi-row upsert per outcome batch:
//! counters add, sketches merge bin by bin in SQL), so counts are exact and rows merge by
//! addition. A query reads one row per bucket and subject, summed in SQL per bucket (the
//! sketches joined by a string aggregate and merged as they are parsed), so a 30-day hourly
//! query returns 720 rows whatever the traffic.
//!
//! What each counter counts, and in which minute:
//! - `due`: an occurrence at its first outcome (attempt 1, or missed), in the minute it was
//!   scheduled for; `lateness` (first attempt's start − scheduled time, 0 if early) likewise;
//! - `delivered`, `failed_attempts`, `retried`, `failed`: attempts, in the minute each started
//!   (`failed_attempts` = every attempt that did not deliver; of those, `retried` were followed
//!   by another attempt and `failed` were the last); `duration` likewise;
//! - `missed`: occurrences skipped by the misfire policy or the catch-up window, in the minute
//!   they were scheduled for.
//!
//! Only outcomes that apply are counted: one a fenced-out node writes (its claim was taken over)
//! changes nothing and counts nothing.

mod rollup;
mod sketch;

use std::collections::BTreeMap;

use async_trait::async_trait;
use uuid::Uuid;

pub(crate) use self::rollup::write_rollup;
pub use self::rollup::{AttemptEnd, Rollup};
pub use self::sketch::{Sketch, GAMMA, RELATIVE_ERROR};
use super::events::push_tags;
use super::sql::rows::RowExt;
use super::sql::{query, Dialect, Push};
use super::{Backend, Result, StoreError};
use crate::domain::Millis;

/// A minute, in ms: the finest grain.
pub const MINUTE: Millis = 60_000;
/// An hour, in ms: the grain hour and day buckets are read from.
pub const HOUR: Millis = 3_600_000;
/// A day (UTC), in ms.
pub const DAY: Millis = 86_400_000;

/// Query granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// Cells of one minute.
    Minute,
    /// Cells of one hour (kept for long ranges).
    Hour,
    /// UTC days.
    Day,
}

impl Granularity {
    /// The bucket width, ms.
    pub fn width(self) -> Millis {
        match self {
            Granularity::Minute => MINUTE,
            Granularity::Hour => HOUR,
            Granularity::Day => DAY,
        }
    }

    /// The stored grain the buckets are summed from.
    fn grain(self) -> Millis {
        match self {
            Granularity::Minute => MINUTE,
            Granularity::Hour | Granularity::Day => HOUR,
        }
    }
}

/// Which deliveries a query covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subjects {
    /// Every event's.
    All,
    /// One event's (also after it was deleted).
    Event(Uuid),
    /// Those of the events carrying any of these tags now (never empty).
    Tags(Vec<String>),
    /// None (a scoped caller asked for tags outside its scope).
    Nothing,
}

/// `GET /analytics`: buckets of `width` from `from` (rounded down to a bucket) to `to`
/// (rounded up), of `subjects`.
#[derive(Debug, Clone)]
pub struct AnalyticsQuery {
    /// The start of the range (rounded down to a bucket).
    pub from: Millis,
    /// The end of the range (rounded up to a bucket).
    pub to: Millis,
    /// The cells the query reads.
    pub granularity: Granularity,
    /// Which events: all, some, or those with some tags.
    pub subjects: Subjects,
    /// How many failing targets to return, most failures first.
    pub top: i64,
}

/// One bucket's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketStats {
    /// The bucket's start.
    pub start: Millis,
    /// Occurrences due in it.
    pub due: i64,
    /// Occurrences delivered.
    pub delivered: i64,
    /// Attempts that failed (retried or not).
    pub failed_attempts: i64,
    /// Attempts that failed and were retried.
    pub retried: i64,
    /// Occurrences that failed for good.
    pub failed: i64,
    /// Occurrences missed.
    pub missed: i64,
    /// Lateness (first attempt − due time, ms).
    pub lateness: Sketch,
    /// Attempt durations (ms).
    pub duration: Sketch,
}

/// A target with failed attempts in the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailingTarget {
    /// The target: URL host and path, email domains, WebSocket client or queue (never a secret or a query string).
    pub target: String,
    /// Failed attempts to it in the range (counted by the hour).
    pub failed: i64,
    /// The error of its latest failed attempt in the range.
    pub last_error: Option<String>,
}

/// What a query found: every bucket of the range, oldest first (empty ones too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analytics {
    /// Every bucket of the range, oldest first.
    pub buckets: Vec<BucketStats>,
    /// The targets with the most failed attempts.
    pub top_failing_targets: Vec<FailingTarget>,
}

/// ` AND <col>` restricted to the subjects (for the per-event rows).
fn push_subjects<D: Dialect>(q: &mut sqlx::QueryBuilder<D>, col: &str, s: &Subjects) {
    match s {
        Subjects::All => {
            q.push(format!(" AND {col} = ''"));
        }
        Subjects::Event(id) => {
            q.push(format!(" AND {col} = ")).val(*id);
        }
        Subjects::Tags(tags) => push_tags(q, col, tags),
        Subjects::Nothing => {
            q.push(" AND 1 = 0");
        }
    }
}

/// Delivery analytics.
#[async_trait]
pub trait AnalyticsStore: Send + Sync + 'static {
    /// The figures of `q`'s range: every bucket, oldest first, summed from the stored rows (no
    /// occurrence is read), and the targets with the most failed attempts in the range (its
    /// hours). Counts are exact; percentiles are read from the merged sketches.
    async fn analytics(&self, q: &AnalyticsQuery) -> Result<Analytics>;
    /// Adds a rollup in its own transaction (outcome paths write theirs inside their own).
    async fn add_rollup(&self, r: Rollup) -> Result<()>;
    /// Deletes analytics rows of buckets that started before `before`, `batch` rows a
    /// statement; returns how many went.
    async fn purge_analytics(&self, before: Millis, batch: i64) -> Result<u64>;
}

#[async_trait]
impl<B: Backend> AnalyticsStore for B {
    async fn analytics(&self, a: &AnalyticsQuery) -> Result<Analytics> {
        let width = a.granularity.width();
        let grain = a.granularity.grain();
        let from = a.from - a.from.rem_euclid(width);
        let to = a.to + (width - a.to.rem_euclid(width)) % width;
        let mut buckets: BTreeMap<Millis, BucketStats> = BTreeMap::new();
        let mut t = from;
        while t < to {
            buckets.insert(
                t,
                BucketStats {
                    start: t,
                    ..BucketStats::default()
                },
            );
            t += width;
        }
        // One row per bucket: the subjects' rows summed (for one subject, buckets as wide as
        // the stored cells are its rows, read in the primary key's order), the sketches joined
        // into one text and merged as it is parsed.
        let b = match width == grain {
            true => "start".to_string(),
            false => format!("start - (start % {width})"),
        };
        let sums: Vec<String> = rollup::COUNTERS
            .iter()
            .map(|c| format!("CAST(SUM({c}) AS BIGINT) AS {c}"))
            .collect();
        let mut q = query::<B::D>(format!(
            "SELECT {b} AS b, {}, {} AS lateness, {} AS duration \
             FROM analytics WHERE grain = {grain} AND start >= ",
            sums.join(", "),
            B::D::concat_agg("lateness"),
            B::D::concat_agg("duration"),
        ));
        q.val(from).push(" AND start < ").val(to);
        push_subjects(&mut q, "subject", &a.subjects);
        q.push(format!(" GROUP BY {b}"));
        let mut c = self.reads().acquire().await?;
        for r in B::D::fetch(q, &mut c).await? {
            let Some(s) = buckets.get_mut(&r.int("b")?) else {
                continue;
            };
            s.due += r.int("due")?;
            s.delivered += r.int("delivered")?;
            s.failed_attempts += r.int("failed_attempts")?;
            s.retried += r.int("retried")?;
            s.failed += r.int("failed")?;
            s.missed += r.int("missed")?;
            for (col, sketch) in [("lateness", &mut s.lateness), ("duration", &mut s.duration)] {
                if let Some(t) = r.opt_text(col)? {
                    sketch.add_json(&t).map_err(StoreError::Corrupt)?;
                }
            }
        }
        let (tfrom, tto) = (
            from - from.rem_euclid(HOUR),
            to + (HOUR - to.rem_euclid(HOUR)) % HOUR,
        );
        let push_range = |q: &mut sqlx::QueryBuilder<B::D>| {
            q.push(" WHERE start >= ")
                .val(tfrom)
                .push(" AND start < ")
                .val(tto);
            push_subjects(q, "event_id", &a.subjects);
        };
        // One pass: each target's failures and the error of its latest failed attempt.
        let mut q = query::<B::D>(format!(
            "SELECT target, CAST(SUM(failed) AS BIGINT) AS failed, {} FROM analytics_targets",
            B::D::latest_in_group("last_error", "last_at")
        ));
        push_range(&mut q);
        q.push(" GROUP BY target ORDER BY failed DESC, target LIMIT ")
            .val(a.top);
        let mut top: Vec<FailingTarget> = Vec::new();
        for r in B::D::fetch(q, &mut c).await? {
            top.push(FailingTarget {
                target: r.text("target")?,
                failed: r.int("failed")?,
                last_error: r.opt_text("last_error")?,
            });
        }
        Ok(Analytics {
            buckets: buckets.into_values().collect(),
            top_failing_targets: top,
        })
    }

    async fn add_rollup(&self, r: Rollup) -> Result<()> {
        let mut tx = self.writes().begin().await?;
        write_rollup::<B::D>(&mut tx, r).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn purge_analytics(&self, before: Millis, batch: i64) -> Result<u64> {
        let mut total = 0;
        for (table, key) in [
            ("analytics", "subject, grain, start"),
            ("analytics_targets", "event_id, start, target"),
        ] {
            loop {
                let mut q = query::<B::D>(format!(
                    "DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table} WHERE start < "
                ));
                q.val(before).push(" LIMIT ").val(batch).push(")");
                let n = {
                    let mut w = self.writes().acquire().await?;
                    B::D::exec(q, &mut w).await?
                };
                total += n;
                if n < batch as u64 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        Ok(total)
    }
}
