//! The conflict indexes of calendars, kept between checks.
//!
//! Building a calendar's [`Index`] means expanding every event over the planning horizon (10,000
//! series: ~400,000 intervals, ~80 ms); probing it costs microseconds. So an index is built once
//! and kept here, tagged with the calendar's `events_gen` (a counter every write to the
//! calendar's events moves, in its transaction, on whichever node). A check uses the kept index
//! only when the calendar it just read has the same `events_gen` — an index built before a write
//! on another node is stale and rebuilt. After a write of its own a node brings its index up to
//! date in one merge pass ([`Index::updated`]) when the counter moved by exactly that write;
//! otherwise it drops it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::conflicts::Index;
use crate::domain::Millis;

/// Calendars whose index is kept (the least recently used is dropped past it): an index of
/// 10,000 series over 90 days holds ~10 MB.
const MAX_CALENDARS: usize = 32;

/// An index covers the horizon plus this, so that it serves the checks of this long.
pub const SLACK: Millis = 6 * 3_600_000;

struct Entry {
    gen: i64,
    ix: Arc<Index>,
    used: u64,
}

/// Kept indexes by calendar.
#[derive(Default)]
pub struct IndexCache {
    inner: Mutex<(HashMap<Uuid, Entry>, u64)>,
}

impl IndexCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<Uuid, Entry>, u64)> {
        // A panic while holding it cannot leave an entry half-written: recover the map.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kept index of `cal` if it was built at `gen` and covers `[from, to)`.
    pub fn get(&self, cal: Uuid, gen: i64, from: Millis, to: Millis) -> Option<Arc<Index>> {
        let mut g = self.lock();
        let (map, tick) = &mut *g;
        *tick += 1;
        let e = map.get_mut(&cal)?;
        if e.gen != gen || e.ix.from > from || e.ix.to < to {
            return None;
        }
        e.used = *tick;
        Some(e.ix.clone())
    }

    /// Keeps `ix`, built at `gen` (unless a newer one is kept already).
    pub fn put(&self, cal: Uuid, gen: i64, ix: Arc<Index>) {
        let mut g = self.lock();
        let (map, tick) = &mut *g;
        *tick += 1;
        if map.get(&cal).is_some_and(|e| e.gen > gen) {
            return;
        }
        if !map.contains_key(&cal) && map.len() >= MAX_CALENDARS {
            if let Some(old) = map.iter().min_by_key(|(_, e)| e.used).map(|(k, _)| *k) {
                map.remove(&old);
            }
        }
        map.insert(
            cal,
            Entry {
                gen,
                ix,
                used: *tick,
            },
        );
    }

    /// Whether an index of `cal` is kept.
    pub fn has(&self, cal: Uuid) -> bool {
        self.lock().0.contains_key(&cal)
    }

    /// Drops the index of `cal`.
    pub fn forget(&self, cal: Uuid) {
        self.lock().0.remove(&cal);
    }

    /// After one write of this node to the events of `cal`, which left its `events_gen` at
    /// `now_gen`: when the kept index is exactly one write behind (so that write was this one),
    /// `change` brings it up to date; when it is further behind, it is dropped.
    pub fn advance(&self, cal: Uuid, now_gen: i64, change: impl FnOnce(&Index) -> Index) {
        let (gen, ix) = {
            let mut g = self.lock();
            let Some(e) = g.0.get(&cal) else {
                return;
            };
            if e.gen == now_gen {
                return;
            }
            if e.gen + 1 != now_gen {
                g.0.remove(&cal);
                return;
            }
            (e.gen, e.ix.clone())
        };
        // The merge pass runs without the lock; a check meanwhile sees the old generation
        // in the store no more, so it does not use the old index either.
        let next = Arc::new(change(&ix));
        let mut g = self.lock();
        if let Some(e) = g.0.get_mut(&cal) {
            if e.gen == gen {
                e.gen = now_gen;
                e.ix = next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ix(from: Millis, to: Millis) -> Arc<Index> {
        Arc::new(Index::build([], from, to))
    }

    #[test]
    fn an_index_serves_only_its_generation_and_window() {
        let c = IndexCache::default();
        let cal = Uuid::now_v7();
        c.put(cal, 3, ix(100, 1000));
        assert!(c.get(cal, 3, 100, 1000).is_some());
        assert!(c.get(cal, 3, 500, 900).is_some());
        assert!(c.get(cal, 4, 100, 1000).is_none(), "written elsewhere");
        assert!(c.get(cal, 3, 50, 1000).is_none(), "starts too late");
        assert!(c.get(cal, 3, 500, 1001).is_none(), "ends too early");
    }

    #[test]
    fn advance_applies_one_write_and_drops_on_a_gap() {
        let c = IndexCache::default();
        let cal = Uuid::now_v7();
        c.put(cal, 1, ix(0, 10));
        c.advance(cal, 2, |i| i.updated(&[], &[]));
        assert!(c.get(cal, 2, 0, 10).is_some());
        c.advance(cal, 4, |i| i.updated(&[], &[]));
        assert!(!c.has(cal), "two writes behind: one was not ours");
    }

    #[test]
    fn the_least_recently_used_goes_first() {
        let c = IndexCache::default();
        let first = Uuid::now_v7();
        c.put(first, 0, ix(0, 10));
        for _ in 0..MAX_CALENDARS {
            c.put(Uuid::now_v7(), 0, ix(0, 10));
        }
        assert!(!c.has(first));
    }
}
