//! Planning: which instants of an event to materialise now, and where the expander resumes.
//! Pure functions over an event, so creation, updates, resumes and the expander all share them.

use crate::domain::event::Event;
use crate::domain::{to_ts, Millis};

/// Most occurrences one event materialises in one go; the rest wait for the next tick.
pub const MAX_PER_PASS: usize = 10_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Instants to materialise, ascending.
    pub instants: Vec<Millis>,
    /// The next instant after those (where the expander resumes); `None` when the set ends.
    pub next: Option<Millis>,
}

/// Instants in (`after`, `until`], at most `MAX_PER_PASS`, plus the one after them.
pub fn plan(event: &Event, after: Option<Millis>, until: Millis) -> Result<Plan, String> {
    let rec = event.recurrence()?;
    let mut it = rec.iter_after(after.map(to_ts)).map(|t| t.as_millisecond());
    let mut instants = Vec::new();
    let mut next = None;
    for t in it.by_ref() {
        if t > until || instants.len() >= MAX_PER_PASS {
            next = Some(t);
            break;
        }
        instants.push(t);
    }
    Ok(Plan { instants, next })
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
