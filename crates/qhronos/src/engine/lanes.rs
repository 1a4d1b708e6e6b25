//! Per-target lanes: fired occurrences wait here, in the order they fired, for one of their
//! target's workers.
//!
//! A target (`host:port` of an HTTP action; every other channel shares one lane) has at most
//! `cap` workers at once; a worker takes the next waiting item of its lane when it finishes one,
//! and leaves when the lane is empty (the last one out removes the lane). So a burst of 100,000
//! occurrences to one receiver is 100,000 queue entries and `cap` tasks, not 100,000 tasks each
//! waiting on a semaphore, and a slow target's backlog never takes a worker from another one.
//!
//! The structure is plain data behind a mutex held only for a push or a pop; the launcher
//! ([`super::dispatcher::Launcher`]) spawns the workers.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// One target's waiting items and how many workers it has.
struct Lane<T> {
    waiting: VecDeque<T>,
    workers: usize,
}

/// The lanes of every target with work, keyed by target (`None`: the shared lane of the actions
/// without a URL).
pub struct Lanes<T> {
    lanes: Mutex<HashMap<Option<String>, Lane<T>>>,
}

impl<T> Default for Lanes<T> {
    fn default() -> Self {
        Lanes {
            lanes: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Lanes<T> {
    /// A fired item for `key`, whose lane has at most `cap` workers: returns it when the caller
    /// must start a worker for it (the lane had room; the worker is counted), or queues it
    /// behind the lane's earlier items and returns `None`.
    pub fn admit(&self, key: &Option<String>, item: T, cap: usize) -> Option<T> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let lane = lanes.entry(key.clone()).or_insert_with(|| Lane {
            waiting: VecDeque::new(),
            workers: 0,
        });
        if lane.workers < cap.max(1) {
            lane.workers += 1;
            Some(item)
        } else {
            lane.waiting.push_back(item);
            None
        }
    }

    /// A worker of `key`'s lane finished an item: the next one waiting (the worker goes on with
    /// it), or `None` when the lane is empty (the worker is uncounted and must stop; the last
    /// one removes the lane).
    pub fn next(&self, key: &Option<String>) -> Option<T> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let lane = lanes.get_mut(key)?;
        if let Some(item) = lane.waiting.pop_front() {
            return Some(item);
        }
        lane.workers = lane.workers.saturating_sub(1);
        if lane.workers == 0 {
            lanes.remove(key);
        }
        None
    }

    /// Items waiting for a worker, over every lane (for the tests).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        let lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        lanes.values().map(|l| l.waiting.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn a_lane_starts_at_most_cap_workers_and_hands_out_the_rest_in_order() {
        let lanes = Lanes::default();
        let a = key("a:80");
        assert_eq!(lanes.admit(&a, 1, 2), Some(1));
        assert_eq!(lanes.admit(&a, 2, 2), Some(2));
        assert_eq!(lanes.admit(&a, 3, 2), None);
        assert_eq!(lanes.admit(&a, 4, 2), None);
        assert_eq!(lanes.waiting(), 2);
        // The two workers take the waiting items in the order they fired, then stop.
        assert_eq!(lanes.next(&a), Some(3));
        assert_eq!(lanes.next(&a), Some(4));
        assert_eq!(lanes.next(&a), None);
        assert_eq!(lanes.waiting(), 0);
        // One worker is still counted: a new item queues rather than starting a third.
        assert_eq!(lanes.admit(&a, 5, 2), Some(5));
        assert_eq!(lanes.admit(&a, 6, 2), None);
        assert_eq!(lanes.next(&a), Some(6));
        assert_eq!(lanes.next(&a), None);
        assert_eq!(lanes.next(&a), None);
        // Both workers left: the lane is gone, and the next item starts a worker again.
        assert!(lanes.lanes.lock().unwrap().is_empty());
        assert_eq!(lanes.admit(&a, 7, 2), Some(7));
    }

    #[test]
    fn a_full_lane_does_not_hold_back_another_target() {
        let lanes = Lanes::default();
        let (slow, other) = (key("slow:443"), key("other:443"));
        assert_eq!(lanes.admit(&slow, 1, 1), Some(1));
        assert_eq!(lanes.admit(&slow, 2, 1), None);
        assert_eq!(lanes.admit(&other, 3, 1), Some(3));
        assert_eq!(lanes.admit(&None, 4, 1), Some(4));
        assert_eq!(lanes.next(&other), None);
        assert_eq!(lanes.next(&slow), Some(2));
    }

    #[test]
    fn a_cap_of_zero_still_lets_one_worker_run() {
        let lanes = Lanes::default();
        assert_eq!(lanes.admit(&None, 1, 0), Some(1));
        assert_eq!(lanes.admit(&None, 2, 0), None);
        assert_eq!(lanes.next(&None), Some(2));
    }
}
