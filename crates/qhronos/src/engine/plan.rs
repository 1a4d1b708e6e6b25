//! Planning: which instants of an event to materialise now, and where the expander resumes.
//! Pure functions over an event, so creation, updates, resumes and the expander all share them.
//!
//! All of it is CPU work on a rule (a COUNT rule may have to number its instances from a start
//! time far back): callers run it off the async workers (`spawn_blocking`), and every call is
//! bounded by a step budget, past which the answer is an error naming the costly rule part.

use recur::{Mark, Recurrence, DEFAULT_BUDGET};

use crate::domain::event::Event;
use crate::domain::{fmt_ms, to_ts, Millis};

/// Most occurrences one event materialises in one go; the rest wait for the next tick.
pub const MAX_PER_PASS: usize = 10_000;

/// Most skipped instants written as one `missed` row each; more than that make one row that
/// stands for all of them (with their number and range in `last_error`).
pub const MAX_MISSED_ROWS: usize = 1_000;

/// Steps allowed for counting skipped instants after a long downtime (a SECONDLY rule down
/// for a month is 2.6 million instants): a few seconds of one blocking thread, once.
const MISSED_COUNT_BUDGET: u64 = 40_000_000;

/// What to materialise of an event now, and where the next pass resumes. Instants are ms
/// since the epoch (UTC).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Instants to materialise, ascending.
    pub instants: Vec<Millis>,
    /// The next instant after those (where the expander resumes); `None` when the set ends.
    pub next: Option<Millis>,
    /// The rule's count over its instances before `next` (see [`recur::Mark`]), stored with
    /// the event so the next pass resumes the numbering instead of counting from the start.
    pub mark: Option<(Millis, i64)>,
}

fn to_mark(m: (Millis, i64)) -> Option<Mark> {
    Some(Mark {
        at: to_ts(m.0),
        index: u64::try_from(m.1).ok()?,
    })
}

fn from_mark(m: Mark) -> Option<(Millis, i64)> {
    Some((m.at.as_millisecond(), i64::try_from(m.index).ok()?))
}

fn costly(e: recur::RuleError) -> String {
    format!("schedule: {e}")
}

/// Instants in (`after`, `until`] (ms; `after: None`: from the rule's start), at most
/// [`MAX_PER_PASS`], ascending, plus the one after them. `Err` names the rule part that is too
/// costly to evaluate (past the step budget) or why the stored rule cannot be read.
pub fn plan(event: &Event, after: Option<Millis>, until: Millis) -> Result<Plan, String> {
    plan_from(event, after, None, until)
}

/// [`plan`] resuming the rule's count from `mark` (the event's stored one), so a COUNT rule
/// is not numbered again from its start. A `mark` later than `after` (or with a negative
/// count) is ignored: the count starts afresh instead of going wrong.
pub fn plan_from(
    event: &Event,
    after: Option<Millis>,
    mark: Option<(Millis, i64)>,
    until: Millis,
) -> Result<Plan, String> {
    let rec = event.recurrence()?;
    plan_rec(&rec, after, mark, until)
}

fn plan_rec(
    rec: &Recurrence,
    after: Option<Millis>,
    mark: Option<(Millis, i64)>,
    until: Millis,
) -> Result<Plan, String> {
    let mut it = rec.cursor(after.map(to_ts), mark.and_then(to_mark), DEFAULT_BUDGET);
    let mut instants = Vec::new();
    let mut next = None;
    let mut before = it.mark();
    while let Some(t) = it.next() {
        let t = t.as_millisecond();
        if t > until || instants.len() >= MAX_PER_PASS {
            next = Some(t);
            break;
        }
        instants.push(t);
        before = it.mark();
    }
    it.check().map_err(costly)?;
    Ok(Plan {
        instants,
        next,
        mark: before.and_then(from_mark).or(mark),
    })
}

/// The instants of a series that the expander skips because they are older than the
/// catch-up window: each of them becomes a `missed` occurrence, so nothing is dropped
/// without a trace.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Skipped {
    /// `(instant, reason)` of each row to write: every skipped instant, or one row for all of
    /// them when there are more than [`MAX_MISSED_ROWS`].
    pub rows: Vec<(Millis, String)>,
    /// How many instants were skipped.
    pub count: u64,
    /// The count mark past them, for planning what follows.
    pub mark: Option<(Millis, i64)>,
}

/// The instants in (`after`, `floor`] (`after` = the stored `next_fire_at` minus 1),
/// resuming the count from `mark`; `window` names the catch-up window in the reasons. Counting
/// has a larger budget than planning (a long downtime of a SECONDLY rule); when even that runs
/// out, the one summary row says "at least" and the returned mark is `None`.
pub fn skipped(
    event: &Event,
    after: Millis,
    mark: Option<(Millis, i64)>,
    floor: Millis,
    window: &str,
) -> Result<Skipped, String> {
    let rec = event.recurrence()?;
    let mut it = rec.cursor(
        Some(to_ts(after)),
        mark.and_then(to_mark),
        MISSED_COUNT_BUDGET,
    );
    let mut all = Vec::new();
    let mut count: u64 = 0;
    let mut last = None;
    let mut before = it.mark();
    while let Some(t) = it.next() {
        let t = t.as_millisecond();
        if t > floor {
            break;
        }
        count += 1;
        last = Some(t);
        if all.len() <= MAX_MISSED_ROWS {
            all.push(t);
        }
        before = it.mark();
    }
    let why = |t: Millis| {
        format!(
            "missed: {} was older than the catch-up window ({window}) when the expander caught up after a downtime",
            fmt_ms(t)
        )
    };
    let rows = match (all.first(), last) {
        (Some(&first), Some(last)) if all.len() > MAX_MISSED_ROWS => {
            let more = if it.check().is_err() { "at least " } else { "" };
            vec![(
                first,
                format!(
                    "missed: {more}{count} instances from {} to {} were older than the catch-up window ({window}) when the expander caught up after a downtime; this one row stands for all of them",
                    fmt_ms(first),
                    fmt_ms(last)
                ),
            )]
        }
        _ => all.iter().map(|&t| (t, why(t))).collect(),
    };
    // A count cut short by the budget leaves the mark unknown: planning counts afresh.
    let mark = if it.check().is_ok() {
        before.and_then(from_mark).or(mark)
    } else {
        None
    };
    Ok(Skipped { rows, count, mark })
}

/// Where planning starts for an event that is new, changed or resumed at `now`.
///
/// A one-time event (no rule) keeps all its instants, even past ones: "wake me at T" created a
/// moment after T still fires, at once. A series with a start in the past begins at `now`:
/// registering "every day since 2020" must not replay six years of instances.
pub fn start_after(event: &Event, now: Millis) -> Option<Millis> {
    if event.schedule.is_none() || event.start_time > now {
        None
    } else {
        Some(now - 1)
    }
}
