//! Building the analytics rows of one write ([`Rollup`]) and adding them to the store inside
//! the caller's transaction ([`write_rollup`]).

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::sketch::Sketch;
use super::{HOUR, MINUTE};
use crate::domain::action::Action;
use crate::domain::Millis;
use crate::store::sql::rows::RowExt;
use crate::store::sql::{names, query, Col, Dialect, Kind, Rows};
use crate::store::Result;

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

/// The counters of a cell, in the order of [`COUNTERS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counter {
    Due = 0,
    Delivered,
    FailedAttempts,
    Retried,
    Failed,
    Missed,
}

/// The counter columns, in the order of [`Counter`].
pub(super) const COUNTERS: [&str; 6] = [
    "due",
    "delivered",
    "failed_attempts",
    "retried",
    "failed",
    "missed",
];

/// One cell's additions: counters and the two sketches.
#[derive(Debug, Default, Clone)]
struct Cell {
    counts: [i64; 6],
    lateness: Sketch,
    duration: Sketch,
}

/// Analytics rows being built for one write: added to, then written by one upsert.
#[derive(Debug, Default, Clone)]
pub struct Rollup {
    /// (subject: `None` for every event, grain, bucket start) → additions. `None` sorts first
    /// and a UUID sorts as its text does, so keys go out in the order of the table's primary
    /// key (writers lock rows in one order).
    cells: BTreeMap<(Option<Uuid>, Millis, Millis), Cell>,
    /// (event, when, error) of each failed attempt: the event's target is read when written.
    failures: Vec<(Uuid, Millis, Option<String>)>,
}

impl Rollup {
    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty() && self.failures.is_empty()
    }

    /// Applies `f` to the event's cell and every event's, at minute and hour grain.
    fn each(&mut self, event_id: Uuid, at: Millis, f: impl Fn(&mut Cell)) {
        for grain in [MINUTE, HOUR] {
            let start = at - at.rem_euclid(grain);
            for subject in [Some(event_id), None] {
                f(self.cells.entry((subject, grain, start)).or_default());
            }
        }
    }

    fn count(&mut self, event_id: Uuid, at: Millis, c: Counter) {
        self.each(event_id, at, |cell| cell.counts[c as usize] += 1);
    }

    /// An occurrence came due (its first outcome), with the lateness of its first attempt.
    pub fn due(&mut self, event_id: Uuid, scheduled_at: Millis, lateness: Option<Millis>) {
        self.count(event_id, scheduled_at, Counter::Due);
        if let Some(l) = lateness {
            self.each(event_id, scheduled_at, |cell| cell.lateness.add(l));
        }
    }

    /// An occurrence was skipped (missed).
    pub fn missed(&mut self, event_id: Uuid, scheduled_at: Millis, first: bool) {
        if first {
            self.due(event_id, scheduled_at, None);
        }
        self.count(event_id, scheduled_at, Counter::Missed);
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
        self.each(event_id, started_at, |cell| cell.duration.add(duration_ms));
        match end {
            AttemptEnd::Delivered => self.count(event_id, started_at, Counter::Delivered),
            AttemptEnd::Retried | AttemptEnd::Failed => {
                self.count(event_id, started_at, Counter::FailedAttempts);
                self.count(
                    event_id,
                    started_at,
                    if end == AttemptEnd::Retried {
                        Counter::Retried
                    } else {
                        Counter::Failed
                    },
                );
                self.failures.push((event_id, started_at, error));
            }
        }
    }
}

/// An error as analytics keep it: at most 500 characters, URLs without their query strings.
pub(super) fn scrub_error(e: &str) -> String {
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

const CELL_COLS: [Col; 11] = [
    ("subject", Kind::Text),
    ("grain", Kind::Int),
    ("start", Kind::Int),
    ("due", Kind::Int),
    ("delivered", Kind::Int),
    ("failed_attempts", Kind::Int),
    ("retried", Kind::Int),
    ("failed", Kind::Int),
    ("missed", Kind::Int),
    ("lateness", Kind::Text),
    ("duration", Kind::Text),
];

const TARGET_COLS: [Col; 6] = [
    ("event_id", Kind::Text),
    ("start", Kind::Int),
    ("target", Kind::Text),
    ("failed", Kind::Int),
    ("last_error", Kind::Text),
    ("last_at", Kind::Int),
];

/// (event, or `''` for every event; hour; target) of an `analytics_targets` row.
type TargetKey = (String, Millis, String);
/// (failed attempts, last error, when the last failed).
type TargetCell = (i64, Option<String>, Millis);

/// ` ON CONFLICT … DO UPDATE`: counters add, sketches merge bin by bin.
fn cell_upsert<D: Dialect>() -> String {
    let mut sets: Vec<String> = COUNTERS
        .iter()
        .map(|c| format!("{c} = analytics.{c} + excluded.{c}"))
        .collect();
    for s in ["lateness", "duration"] {
        sets.push(format!(
            "{s} = CASE WHEN excluded.{s} = '{{}}' THEN analytics.{s} \
             WHEN analytics.{s} = '{{}}' THEN excluded.{s} ELSE {} END",
            D::sum_json_counts(&format!("analytics.{s}"), &format!("excluded.{s}"))
        ));
    }
    format!(
        " ON CONFLICT (subject, grain, start) DO UPDATE SET {}",
        sets.join(", ")
    )
}

/// Writes a rollup inside the caller's transaction: one multi-row upsert of its cells (keys in
/// one order for every writer, the every-event rows last, so concurrent writers lock rows in the
/// same order; callers write it last in their transaction), and, when attempts failed, one
/// read of their events' actions and one upsert of the targets.
pub(crate) async fn write_rollup<D: Dialect>(c: &mut D::Connection, r: Rollup) -> Result<()> {
    // Every writer upserts the same few every-event rows (subject `''`) and holds their locks
    // until it commits: those go last (after the per-event rows, still in one order for all
    // writers), so that writers on several nodes wait for each other only for the end of a
    // transaction, not the whole of it.
    let (each, every): (Vec<_>, Vec<_>) = r.cells.into_iter().partition(|(k, _)| k.0.is_some());
    let mut cells = each.into_iter().chain(every).peekable();
    while cells.peek().is_some() {
        let rows: Rows = cells
            .by_ref()
            .take(D::max_rows(CELL_COLS.len()))
            .map(|((subject, grain, start), cell)| {
                let mut row = vec![
                    subject.map(|u| u.to_string()).unwrap_or_default().into(),
                    grain.into(),
                    start.into(),
                ];
                row.extend(cell.counts.iter().map(|n| (*n).into()));
                row.push(cell.lateness.to_json().into());
                row.push(cell.duration.to_json().into());
                row
            })
            .collect();
        let mut q = query::<D>(format!("INSERT INTO analytics ({})", names(&CELL_COLS)));
        D::push_insert_rows(&mut q, &CELL_COLS, rows);
        q.push(cell_upsert::<D>());
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
    // Each failure counts for its event and for every event (subject `''`), so an unfiltered
    // query reads one subject's rows.
    let mut agg: BTreeMap<TargetKey, TargetCell> = BTreeMap::new();
    for (event_id, at, error) in r.failures {
        let id = event_id.to_string();
        let Some(target) = targets.get(&id) else {
            continue;
        };
        let error = error.as_deref().map(scrub_error);
        for subject in [id, String::new()] {
            let e = agg
                .entry((subject, at - at.rem_euclid(HOUR), target.clone()))
                .or_insert((0, None, Millis::MIN));
            e.0 += 1;
            if at >= e.2 {
                e.1.clone_from(&error);
                e.2 = at;
            }
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
            names(&TARGET_COLS)
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

#[cfg(test)]
mod tests {
    use super::*;

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
