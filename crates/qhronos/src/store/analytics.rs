//! Analytics: delivery counts and latency sketches by minute and hour, written with the
//! outcomes (in the transaction that records them), read without touching occurrences.
//!
//! Rows (`analytics`, see migrations `*_analytics.sql`) are keyed by (subject, grain, bucket
//! start, metric, bin): the subject is an event id, or `''` for every event; the grain a minute
//! or an hour. Each write adds to existing rows (one multi-row upsert per outcome batch), so
//! counts are exact and rows merge by addition. Latency and duration are kept as a
//! [`Sketch`]: a fixed log-scale histogram whose bins are rows of the same table, so merging
//! minutes into hours, hours into days, or events into a tag is a `SUM`.
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

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use uuid::Uuid;

use super::events::push_tags;
use super::sql::rows::RowExt;
use super::sql::{query, Col, Dialect, Kind, Push, Rows};
use super::{Backend, Result};
use crate::domain::action::Action;
use crate::domain::Millis;

/// A minute, in ms: the finest grain.
pub const MINUTE: Millis = 60_000;
/// An hour, in ms: the grain hour and day buckets are read from.
pub const HOUR: Millis = 3_600_000;
/// A day (UTC), in ms.
pub const DAY: Millis = 86_400_000;

/// The sketch's bin ratio: bin `b ≥ 1` holds values in `[γ^(b-1), γ^b)` ms.
pub const GAMMA: f64 = 1.1;
/// The largest relative error of a percentile read from a [`Sketch`]: `(γ−1)/(γ+1)`, 4.8 %.
pub const RELATIVE_ERROR: f64 = (GAMMA - 1.0) / (GAMMA + 1.0);
/// Bins above this are merged into it (values above ~10^16 ms).
const MAX_BIN: i64 = 400;

/// A mergeable percentile sketch: counts per log-scale bin. Bin 0 holds 0 (and negative values,
/// clamped); bin `b ≥ 1` holds `[γ^(b-1), γ^b)` ms. A percentile read from it is within
/// [`RELATIVE_ERROR`] of the sample at that rank (exact for 0 and for values below 10 ms).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sketch {
    bins: BTreeMap<i64, i64>,
}

impl Sketch {
    /// The bin a value (ms) falls in.
    pub fn bin(v: Millis) -> i64 {
        if v <= 0 {
            return 0;
        }
        let b = 1 + ((v as f64).ln() / GAMMA.ln()).floor() as i64;
        b.clamp(1, MAX_BIN)
    }

    /// The value reported for a bin: the point of `[γ^(b-1), γ^b)` with the same relative error
    /// to both ends, kept within the integers the bin holds.
    fn value(b: i64) -> Millis {
        if b <= 0 {
            return 0;
        }
        let lo = GAMMA.powi((b - 1) as i32);
        let hi = lo * GAMMA;
        let r = (2.0 * lo * hi / (lo + hi)).round() as i64;
        let (lo_i, hi_i) = (lo.ceil() as i64, hi.ceil() as i64 - 1);
        if lo_i <= hi_i {
            r.clamp(lo_i, hi_i)
        } else {
            r
        }
    }

    /// Adds one value (ms).
    pub fn add(&mut self, v: Millis) {
        self.add_n(Self::bin(v), 1);
    }

    /// Adds `n` values to bin `b` (merging is adding bins).
    pub fn add_n(&mut self, b: i64, n: i64) {
        *self.bins.entry(b).or_insert(0) += n;
    }

    /// How many values it holds.
    pub fn count(&self) -> i64 {
        self.bins.values().sum()
    }

    /// The `q` quantile (0 < q ≤ 1; 0.99 for p99), `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Millis> {
        let total = self.count();
        if total <= 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
        let mut seen = 0;
        for (b, n) in &self.bins {
            seen += n;
            if seen >= rank {
                return Some(Self::value(*b));
            }
        }
        self.bins.keys().next_back().map(|b| Self::value(*b))
    }

    /// The bins, ascending: `(bin, count)`.
    pub fn bins(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.bins.iter().map(|(b, n)| (*b, *n))
    }
}

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

/// Where an attempted occurrence went, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd {
    /// The attempt succeeded.
    Delivered,
    /// It failed and will be retried.
    Retried,
    /// It failed for good.
    Failed,
}

/// Analytics rows being built for one write: added to, then written by one upsert.
#[derive(Debug, Default, Clone)]
pub struct Rollup {
    /// (subject: `None` for every event, grain, bucket start, metric, bin) → count. `None`
    /// sorts first and a UUID sorts as its text does, so keys go out in the order of the
    /// table's primary key (writers lock rows in one order).
    cells: BTreeMap<(Option<Uuid>, Millis, Millis, &'static str, i64), i64>,
    /// (event, when, error) of each failed attempt: the event's target is read when written.
    failures: Vec<(Uuid, Millis, Option<String>)>,
}

impl Rollup {
    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty() && self.failures.is_empty()
    }

    /// Adds `n` to `metric`'s `bin` for the event and for all events, at minute and hour grain.
    pub fn add(&mut self, event_id: Uuid, at: Millis, metric: &'static str, bin: i64, n: i64) {
        for grain in [MINUTE, HOUR] {
            let start = at - at.rem_euclid(grain);
            for subject in [Some(event_id), None] {
                *self
                    .cells
                    .entry((subject, grain, start, metric, bin))
                    .or_insert(0) += n;
            }
        }
    }

    /// An occurrence came due (its first outcome), with the lateness of its first attempt.
    pub fn due(&mut self, event_id: Uuid, scheduled_at: Millis, lateness: Option<Millis>) {
        self.add(event_id, scheduled_at, "due", 0, 1);
        if let Some(l) = lateness {
            self.add(event_id, scheduled_at, "lateness", Sketch::bin(l), 1);
        }
    }

    /// An occurrence was skipped (missed).
    pub fn missed(&mut self, event_id: Uuid, scheduled_at: Millis, first: bool) {
        if first {
            self.due(event_id, scheduled_at, None);
        }
        self.add(event_id, scheduled_at, "missed", 0, 1);
    }

    /// An attempt: number `attempt` of an occurrence scheduled at `scheduled_at`, started at
    /// `started_at`, taking `duration_ms`, ending as `end` (with `error` when it failed).
    #[allow(clippy::too_many_arguments)]
    pub fn attempt(
        &mut self,
        event_id: Uuid,
        scheduled_at: Millis,
        attempt: i64,
        started_at: Millis,
        duration_ms: Millis,
        end: AttemptEnd,
        error: Option<String>,
    ) {
        if attempt == 1 {
            self.due(event_id, scheduled_at, Some(started_at - scheduled_at));
        }
        self.add(
            event_id,
            started_at,
            "duration",
            Sketch::bin(duration_ms),
            1,
        );
        match end {
            AttemptEnd::Delivered => self.add(event_id, started_at, "delivered", 0, 1),
            AttemptEnd::Retried | AttemptEnd::Failed => {
                self.add(event_id, started_at, "failed_attempts", 0, 1);
                self.add(
                    event_id,
                    started_at,
                    if end == AttemptEnd::Retried {
                        "retried"
                    } else {
                        "failed"
                    },
                    0,
                    1,
                );
                self.failures.push((event_id, started_at, error));
            }
        }
    }
}

/// An error as analytics keep it: at most 500 characters, URLs without their query strings.
fn scrub_error(e: &str) -> String {
    let mut out = String::with_capacity(e.len().min(500));
    let mut in_query = false;
    let mut in_url = false;
    let mut prev: Vec<char> = Vec::new();
    for ch in e.chars() {
        if ch.is_whitespace() || matches!(ch, ')' | '(' | '"' | '\'' | '<' | '>') {
            in_url = false;
            in_query = false;
        }
        prev.push(ch);
        if prev.len() > 3 {
            prev.remove(0);
        }
        if prev == [':', '/', '/'] {
            in_url = true;
        }
        if in_url && (ch == '?' || ch == '#') {
            in_query = true;
        }
        if !in_query {
            out.push(ch);
        }
        if out.chars().count() >= 500 {
            break;
        }
    }
    out
}

const CELL_COLS: [Col; 6] = [
    ("subject", Kind::Text),
    ("grain", Kind::Int),
    ("start", Kind::Int),
    ("metric", Kind::Text),
    ("bin", Kind::Int),
    ("n", Kind::Int),
];

const TARGET_COLS: [Col; 6] = [
    ("event_id", Kind::Text),
    ("start", Kind::Int),
    ("target", Kind::Text),
    ("failed", Kind::Int),
    ("last_error", Kind::Text),
    ("last_at", Kind::Int),
];

/// (event, hour, target) of an `analytics_targets` row.
type TargetKey = (String, Millis, String);
/// (failed attempts, last error, when the last failed).
type TargetCell = (i64, Option<String>, Millis);

/// Writes a rollup inside the caller's transaction: one multi-row upsert of its cells (keys in
/// order, so concurrent writers lock rows in the same order), and, when attempts failed, one
/// read of their events' actions and one upsert of the targets.
pub(super) async fn write_rollup<D: Dialect>(c: &mut D::Connection, r: Rollup) -> Result<()> {
    let mut cells = r.cells.into_iter().peekable();
    while cells.peek().is_some() {
        let rows: Rows = cells
            .by_ref()
            .take(D::max_rows(CELL_COLS.len()))
            .map(|((subject, grain, start, metric, bin), n)| {
                vec![
                    subject.map(|u| u.to_string()).unwrap_or_default().into(),
                    grain.into(),
                    start.into(),
                    metric.into(),
                    bin.into(),
                    n.into(),
                ]
            })
            .collect();
        let mut q = query::<D>(format!(
            "INSERT INTO analytics ({})",
            super::sql::names(&CELL_COLS)
        ));
        D::push_insert_rows(&mut q, &CELL_COLS, rows);
        q.push(
            " ON CONFLICT (subject, grain, start, metric, bin) DO UPDATE SET n = analytics.n + excluded.n",
        );
        D::exec(q, c).await?;
    }
    if r.failures.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<String> = r.failures.iter().map(|f| f.0.to_string()).collect();
    ids.sort();
    ids.dedup();
    let mut targets: HashMap<String, String> = HashMap::new();
    for chunk in ids.chunks(D::max_rows(1)) {
        let mut q = query::<D>("SELECT id, action FROM events WHERE ");
        D::push_in(&mut q, "id", chunk.to_vec());
        for row in D::fetch(q, c).await? {
            let target = match row.json::<Action>("action") {
                Ok(a) => a.target(),
                Err(_) => "unknown".to_string(),
            };
            targets.insert(row.text("id")?, target);
        }
    }
    let mut agg: BTreeMap<TargetKey, TargetCell> = BTreeMap::new();
    for (event_id, at, error) in r.failures {
        let id = event_id.to_string();
        let Some(target) = targets.get(&id) else {
            continue;
        };
        let e = agg
            .entry((id, at - at.rem_euclid(HOUR), target.clone()))
            .or_insert((0, None, Millis::MIN));
        e.0 += 1;
        if at >= e.2 {
            e.1 = error.as_deref().map(scrub_error);
            e.2 = at;
        }
    }
    let mut rows = agg.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Rows = rows
            .by_ref()
            .take(D::max_rows(TARGET_COLS.len()))
            .map(|((event_id, start, target), (failed, err, at))| {
                vec![
                    event_id.into(),
                    start.into(),
                    target.into(),
                    failed.into(),
                    err.into(),
                    at.into(),
                ]
            })
            .collect();
        let mut q = query::<D>(format!(
            "INSERT INTO analytics_targets ({})",
            super::sql::names(&TARGET_COLS)
        ));
        D::push_insert_rows(&mut q, &TARGET_COLS, chunk);
        q.push(format!(
            " ON CONFLICT (event_id, start, target) DO UPDATE SET \
             failed = analytics_targets.failed + excluded.failed, \
             last_error = CASE WHEN excluded.last_at >= analytics_targets.last_at \
             THEN excluded.last_error ELSE analytics_targets.last_error END, \
             last_at = {}(analytics_targets.last_at, excluded.last_at)",
            D::GREATEST
        ));
        D::exec(q, c).await?;
    }
    Ok(())
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
        // Buckets as wide as the stored cells group by `start` itself, in the primary key's
        // order, so the rows are summed as they are read (no sort of the range's rows).
        let b = match width == grain {
            true => "start".to_string(),
            false => format!("start - (start % {width})"),
        };
        let mut q = query::<B::D>(format!(
            "SELECT {b} AS b, metric, bin, CAST(SUM(n) AS BIGINT) AS n \
             FROM analytics WHERE grain = {grain} AND start >= "
        ));
        q.val(from).push(" AND start < ").val(to);
        push_subjects(&mut q, "subject", &a.subjects);
        q.push(format!(" GROUP BY {b}, metric, bin"));
        let mut c = self.reads().acquire().await?;
        for r in B::D::fetch(q, &mut c).await? {
            let Some(s) = buckets.get_mut(&r.int("b")?) else {
                continue;
            };
            let n = r.int("n")?;
            match r.text("metric")?.as_str() {
                "due" => s.due += n,
                "delivered" => s.delivered += n,
                "failed_attempts" => s.failed_attempts += n,
                "retried" => s.retried += n,
                "failed" => s.failed += n,
                "missed" => s.missed += n,
                "lateness" => s.lateness.add_n(r.int("bin")?, n),
                "duration" => s.duration.add_n(r.int("bin")?, n),
                _ => {}
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
            match &a.subjects {
                Subjects::All => {}
                s => push_subjects(q, "event_id", s),
            }
        };
        let mut q = query::<B::D>(
            "SELECT target, CAST(SUM(failed) AS BIGINT) AS failed FROM analytics_targets",
        );
        push_range(&mut q);
        q.push(" GROUP BY target ORDER BY failed DESC, target LIMIT ")
            .val(a.top);
        let mut top: Vec<FailingTarget> = Vec::new();
        for r in B::D::fetch(q, &mut c).await? {
            top.push(FailingTarget {
                target: r.text("target")?,
                failed: r.int("failed")?,
                last_error: None,
            });
        }
        if !top.is_empty() {
            let mut q = query::<B::D>("SELECT target, last_error, last_at FROM analytics_targets");
            push_range(&mut q);
            q.push(" AND ");
            B::D::push_in(
                &mut q,
                "target",
                top.iter().map(|t| t.target.clone()).collect(),
            );
            let mut latest: HashMap<String, (Millis, Option<String>)> = HashMap::new();
            for r in B::D::fetch(q, &mut c).await? {
                let at = r.int("last_at")?;
                let e = latest
                    .entry(r.text("target")?)
                    .or_insert((Millis::MIN, None));
                if at >= e.0 {
                    *e = (at, r.opt_text("last_error")?);
                }
            }
            for t in &mut top {
                t.last_error = latest.remove(&t.target).and_then(|l| l.1);
            }
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
            ("analytics", "subject, grain, start, metric, bin"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sketch_percentiles_are_within_the_stated_error() {
        let mut s = Sketch::default();
        let vals: Vec<i64> = (0..10_000).map(|i| (i * 37) % 5_000 + 1).collect();
        for v in &vals {
            s.add(*v);
        }
        let mut sorted = vals.clone();
        sorted.sort_unstable();
        for q in [0.5, 0.9, 0.99] {
            let exact = sorted[((q * sorted.len() as f64).ceil() as usize).max(1) - 1] as f64;
            let got = s.quantile(q).expect("not empty") as f64;
            assert!(
                (got - exact).abs() / exact <= RELATIVE_ERROR + 1e-9,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(Sketch::default().quantile(0.5), None);
    }

    #[test]
    fn small_values_and_zero_are_exact() {
        for v in 0..10 {
            let mut s = Sketch::default();
            s.add(v);
            assert_eq!(s.quantile(0.5), Some(v));
        }
        let mut s = Sketch::default();
        s.add(-5);
        assert_eq!(s.quantile(0.99), Some(0));
    }

    #[test]
    fn merging_is_adding_bins() {
        let (mut a, mut b, mut all) = (Sketch::default(), Sketch::default(), Sketch::default());
        for v in 1..500 {
            a.add(v);
            all.add(v);
        }
        for v in 400..2_000 {
            b.add(v);
            all.add(v);
        }
        for (bin, n) in b.bins() {
            a.add_n(bin, n);
        }
        assert_eq!(a, all);
    }

    #[test]
    fn errors_lose_query_strings_and_length() {
        assert_eq!(
            scrub_error(
                "error sending request for url (https://h.example/p?token=s3cret#x): timed out"
            ),
            "error sending request for url (https://h.example/p): timed out"
        );
        assert_eq!(scrub_error(&"x".repeat(2_000)).len(), 500);
    }
}
