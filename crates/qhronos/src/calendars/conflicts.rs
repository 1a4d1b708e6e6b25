//! Conflicts and free slots: an interval index over a calendar's occurrences in a window.
//!
//! Every event of the calendar that lasts (`duration`, or all-day) is expanded by `recur` over
//! the window into `[start, end)` intervals, sorted by start once. A probe interval `[s, e)`
//! then finds what it overlaps by two binary searches: only intervals that start in
//! `(s - longest, e)` can overlap it (`longest`: the longest interval in the index), so a
//! check costs `O(log n + k)` — k the intervals starting in that span — instead of comparing
//! every pair of occurrences.
//!
//! An index is built once per calendar and kept (see `api/conflicts.rs`): a write to one event
//! makes a new index from the old one in one merge pass ([`Index::updated`]) instead of
//! expanding every event again.

use std::collections::HashSet;

use jiff::civil::{Time, Weekday};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::event::Event;
use crate::domain::{fmt_ms, to_ts, Millis};

/// Most instances one event contributes to an index (a MINUTELY rule over 90 days would be
/// 130,000): past it the event's later instances are not checked.
const MAX_PER_EVENT: usize = 20_000;

/// One busy interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    pub start: Millis,
    pub end: Millis,
    /// Index of its event in [`Index::events`].
    pub event: usize,
}

/// The occurrences of a set of events in a window, sorted by start.
#[derive(Debug, Default, Clone)]
pub struct Index {
    /// Each indexed event's id and name, by position ([`Busy::event`]). An event removed by
    /// [`Index::updated`] keeps its place, with no interval.
    pub events: Vec<(Uuid, String)>,
    busy: Vec<Busy>,
    /// The longest interval ever indexed (an over-estimate after removals, which is safe).
    longest: Millis,
    /// The window the intervals were expanded over.
    pub from: Millis,
    pub to: Millis,
}

/// The intervals of one event in `[from, to)`.
pub fn intervals(e: &Event, from: Millis, to: Millis) -> Vec<(Millis, Millis)> {
    if e.duration.is_none() && e.all_day.is_none() {
        return Vec::new();
    }
    let Ok(rec) = e.recurrence() else {
        return Vec::new();
    };
    // Instances that started before `from` but still run are busy too.
    let back = e.duration.unwrap_or(crate::domain::event::DAY_MS).max(1);
    let after = to_ts(from.saturating_sub(back + 1));
    rec.iter_after(Some(after))
        .map(|t| t.as_millisecond())
        .take_while(|&t| t < to)
        .take(MAX_PER_EVENT)
        .filter_map(|t| e.ends_at(t).map(|end| (t, end)))
        .filter(|&(_, end)| end > from)
        .collect()
}

impl Index {
    /// The index of `events` over `[from, to)`.
    pub fn build<'a>(
        events: impl IntoIterator<Item = &'a Event>,
        from: Millis,
        to: Millis,
    ) -> Index {
        let mut ix = Index {
            from,
            to,
            ..Index::default()
        };
        ix.busy = ix.push_events(events);
        ix.busy.sort_unstable_by_key(|b| (b.start, b.end));
        ix
    }

    /// Expands `events` over the index's window, registers them in `events` and returns
    /// their intervals (unsorted).
    fn push_events<'a>(&mut self, events: impl IntoIterator<Item = &'a Event>) -> Vec<Busy> {
        let mut out = Vec::new();
        for e in events {
            let ivs = intervals(e, self.from, self.to);
            if ivs.is_empty() {
                continue;
            }
            let n = self.events.len();
            self.events.push((e.id, e.name.clone()));
            for (start, end) in ivs {
                self.longest = self.longest.max(end - start);
                out.push(Busy {
                    start,
                    end,
                    event: n,
                });
            }
        }
        out
    }

    /// This index with the intervals of the events `remove` taken out and those of `add`
    /// put in (an update is both), in one merge pass: `O(n + k log k)` for k new intervals,
    /// instead of expanding every event again.
    pub fn updated(&self, remove: &[Uuid], add: &[&Event]) -> Index {
        let gone: HashSet<usize> = self
            .events
            .iter()
            .enumerate()
            .filter(|(_, (id, _))| remove.contains(id) || add.iter().any(|e| e.id == *id))
            .map(|(n, _)| n)
            .collect();
        let mut ix = Index {
            events: self.events.clone(),
            busy: Vec::new(),
            longest: self.longest,
            from: self.from,
            to: self.to,
        };
        let mut new = ix.push_events(add.iter().copied());
        new.sort_unstable_by_key(|b| (b.start, b.end));
        let kept = self.busy.iter().filter(|b| !gone.contains(&b.event));
        let mut merged = Vec::with_capacity(self.busy.len() + new.len());
        let mut new = new.into_iter().peekable();
        for b in kept {
            while let Some(n) = new.next_if(|n| (n.start, n.end) < (b.start, b.end)) {
                merged.push(n);
            }
            merged.push(*b);
        }
        merged.extend(new);
        ix.busy = merged;
        ix
    }

    /// The position of each indexed event by id (the latest, after updates).
    pub fn positions(&self) -> std::collections::HashMap<Uuid, usize> {
        self.events
            .iter()
            .enumerate()
            .map(|(n, (id, _))| (*id, n))
            .collect()
    }

    /// Number of intervals.
    pub fn len(&self) -> usize {
        self.busy.len()
    }

    /// True when no interval is indexed.
    pub fn is_empty(&self) -> bool {
        self.busy.is_empty()
    }

    /// The intervals overlapping `[s, e)`.
    pub fn overlapping(&self, s: Millis, e: Millis) -> impl Iterator<Item = &Busy> {
        let lo = self
            .busy
            .partition_point(|b| b.start <= s.saturating_sub(self.longest));
        let hi = self.busy.partition_point(|b| b.start < e);
        self.busy[lo..hi.max(lo)]
            .iter()
            .filter(move |b| b.end > s && b.start < e)
    }

    /// The busy time in `[from, to)`, merged into disjoint intervals.
    pub fn merged(&self, from: Millis, to: Millis) -> Vec<(Millis, Millis)> {
        self.merged_but(from, to, &|_| false)
    }

    /// [`Index::merged`] leaving out the events at the positions `skip` says.
    pub fn merged_but(
        &self,
        from: Millis,
        to: Millis,
        skip: &dyn Fn(usize) -> bool,
    ) -> Vec<(Millis, Millis)> {
        let mut out: Vec<(Millis, Millis)> = Vec::new();
        for b in self.overlapping(from, to).filter(|b| !skip(b.event)) {
            let (s, e) = (b.start.max(from), b.end.min(to));
            match out.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        out
    }

    /// The nearest starts, before and after `at`, where `[start, start + len)` overlaps
    /// nothing in `[from, to)` (the events at the positions `skip` says left out); nearest
    /// first, at most `limit`.
    pub fn nearest_free(
        &self,
        at: Millis,
        len: Millis,
        (from, to): (Millis, Millis),
        skip: &dyn Fn(usize) -> bool,
        limit: usize,
    ) -> Vec<Millis> {
        // In each gap between busy stretches long enough, the start nearest to `at`.
        let mut cands = Vec::new();
        let mut cursor = from;
        for (s, e) in self
            .merged_but(from, to, skip)
            .into_iter()
            .chain(std::iter::once((to, to)))
        {
            if s - cursor >= len {
                cands.push(at.clamp(cursor, s - len));
            }
            cursor = cursor.max(e);
        }
        cands.sort_by_key(|&c| (c - at).abs());
        cands.truncate(limit);
        cands
    }
}

/// One collision: an instance of the event checked overlaps an instance of another.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Collision {
    /// The checked event's instance
    pub at: String,
    pub ends_at: String,
    /// The other event
    pub event_id: Uuid,
    pub name: String,
    pub other_at: String,
    pub other_ends_at: String,
}

/// The collisions of `candidate` with the index (its own id left out), at most `limit`, and
/// the first colliding interval of the candidate.
pub fn collisions(
    ix: &Index,
    candidate: &[(Millis, Millis)],
    own: Uuid,
    limit: usize,
) -> (Vec<Collision>, Option<(Millis, Millis)>) {
    collisions_but(ix, candidate, &|n| ix.events[n].0 == own, limit)
}

/// [`collisions`] leaving out the events at the positions `skip` says (the event itself, the
/// events an import replaces, the later items of a batch).
pub fn collisions_but(
    ix: &Index,
    candidate: &[(Millis, Millis)],
    skip: &dyn Fn(usize) -> bool,
    limit: usize,
) -> (Vec<Collision>, Option<(Millis, Millis)>) {
    let mut out = Vec::new();
    let mut first = None;
    for &(s, e) in candidate {
        for b in ix.overlapping(s, e) {
            if skip(b.event) {
                continue;
            }
            let (id, name) = &ix.events[b.event];
            first.get_or_insert((s, e));
            if out.len() < limit {
                out.push(Collision {
                    at: fmt_ms(s),
                    ends_at: fmt_ms(e),
                    event_id: *id,
                    name: name.clone(),
                    other_at: fmt_ms(b.start),
                    other_ends_at: fmt_ms(b.end),
                });
            }
        }
        if out.len() >= limit {
            break;
        }
    }
    (out, first)
}

/// Working hours: the local windows `[start, end)` on `days` in `tz`, within `[from, to)`.
pub fn working_windows(
    days: &[Weekday],
    start: Time,
    end: Time,
    tz: &str,
    from: Millis,
    to: Millis,
) -> Result<Vec<(Millis, Millis)>, String> {
    let mut out = Vec::new();
    let mut day = recur::to_local(to_ts(from), tz)
        .map_err(|e| e.to_string())?
        .date()
        .yesterday()
        .map_err(|e| e.to_string())?;
    loop {
        let s = recur::resolve_local(day.to_datetime(start), tz)
            .map_err(|e| e.to_string())?
            .as_millisecond();
        if s >= to {
            break;
        }
        if days.contains(&day.weekday()) {
            let e = recur::resolve_local(day.to_datetime(end), tz)
                .map_err(|e| e.to_string())?
                .as_millisecond();
            let (s, e) = (s.max(from), e.min(to));
            if e > s {
                out.push((s, e));
            }
        }
        day = day.tomorrow().map_err(|e| e.to_string())?;
        if out.len() > 3660 {
            break;
        }
    }
    Ok(out)
}

/// `windows` minus the busy time of `ix`: the free stretches at least `len` long, at most
/// `limit`.
pub fn free_slots(
    ix: &Index,
    windows: &[(Millis, Millis)],
    len: Millis,
    limit: usize,
) -> Vec<(Millis, Millis)> {
    let mut out = Vec::new();
    for &(ws, we) in windows {
        let mut cursor = ws;
        for (bs, be) in ix.merged(ws, we) {
            if bs - cursor >= len {
                out.push((cursor, bs));
            }
            cursor = cursor.max(be);
        }
        if we - cursor >= len {
            out.push((cursor, we));
        }
        if out.len() >= limit {
            out.truncate(limit);
            break;
        }
    }
    out
}
