//! The timer: a dedicated thread that holds claimed occurrences in a min-heap and hands each to
//! the launcher at its due time.
//!
//! It is a thread of its own, not a task, for two reasons: the async runtime's timer rounds
//! every sleep up to the next millisecond tick (so an occurrence would fire 0.5 ms late on
//! average before any work is done), and a thread that does nothing but wait cannot be delayed
//! by a claim query, a slow handler or a burst of deliveries. It waits on its command channel
//! with a timeout that ends at the next due time, so it wakes within the kernel's timer slack
//! (tens of microseconds), and it never fires early: an entry leaves the heap only once the
//! clock has reached its due time.
//!
//! Entries due at the same millisecond fire in the order they were held. The timer writes
//! nothing to the store: what it holds is only a copy of claims the store has; a `Forget`
//! drops the copy, and `Stop` hands every unfired claim back for release.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use uuid::Uuid;

use super::Forget;
use crate::domain::Millis;
use crate::store::Claimed;

/// Microseconds since the Unix epoch (the wall clock, as `scheduled_at` is; not monotonic:
/// a clock step moves every due time with it).
pub fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// When a held occurrence is due (ms since the epoch): its next attempt's time, or its
/// nominal time when it has none.
pub fn due_of(c: &Claimed) -> Millis {
    c.occ.next_attempt_at.unwrap_or(c.occ.scheduled_at)
}

/// What the timer thread is asked to do; commands are handled in the order they are sent.
pub enum Command {
    /// Hold these until their due time.
    Hold(Vec<Claimed>),
    /// Drop what the store has cancelled or moved.
    Forget(Forget),
    /// Stop, handing back everything not yet fired.
    Stop(tokio::sync::oneshot::Sender<Vec<Claimed>>),
}

/// How the rest of the engine talks to the timer thread.
#[derive(Clone)]
pub struct TimerHandle {
    tx: mpsc::Sender<Command>,
}

impl TimerHandle {
    /// Holds `batch` until each entry's due time ([`due_of`]); one already due fires at once.
    /// Never blocks (the channel is unbounded); after [`TimerHandle::stop`] the batch is dropped,
    /// its claims left to expire.
    pub fn hold(&self, batch: Vec<Claimed>) {
        if !batch.is_empty() {
            let _ = self.tx.send(Command::Hold(batch));
        }
    }

    /// Drops what `f` names from the heap, so it never fires; the claims dropped go to the
    /// `dropped` callback given to [`start`]. Never blocks; a no-op after stop.
    pub fn forget(&self, f: Forget) {
        let _ = self.tx.send(Command::Forget(f));
    }

    /// Stops the thread; returns the occurrences it held and had not fired (empty when it had
    /// already stopped). Nothing fires once this returns. Commands sent before it are handled
    /// first.
    pub async fn stop(&self) -> Vec<Claimed> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Command::Stop(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }
}

/// Starts the timer thread; `fire` is called on that thread for each occurrence whose time has
/// come, and `dropped` with the claims of held occurrences a `Forget` removed (still leased to
/// this node in the store); neither may block (they hand over to the async runtime).
pub fn start(
    fire: impl FnMut(Claimed) + Send + 'static,
    dropped: impl FnMut(Vec<(Uuid, i64)>) + Send + 'static,
) -> std::io::Result<TimerHandle> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("qhronos-timer".into())
        .spawn(move || Timer::default().run(&rx, fire, dropped, now_us))?;
    Ok(TimerHandle { tx })
}

/// The heap and the held occurrences, apart from the thread so that tests can drive it with
/// their own clock. Forgotten entries leave a stale heap entry behind that is skipped when it
/// comes up (lazy deletion), so a forget costs one pass over what is held, not over the heap.
#[derive(Default)]
pub struct Timer {
    heap: BinaryHeap<Reverse<(Millis, u64)>>,
    held: HashMap<u64, Claimed>,
    seq: u64,
}

impl Timer {
    /// The thread's loop: fires what is due by `clock` (µs since the epoch), then waits for a
    /// command until the next due time. Returns when the channel closes (every handle dropped)
    /// or on [`Command::Stop`].
    pub fn run(
        mut self,
        rx: &mpsc::Receiver<Command>,
        mut fire: impl FnMut(Claimed),
        mut dropped: impl FnMut(Vec<(Uuid, i64)>),
        clock: impl Fn() -> i64,
    ) {
        loop {
            self.fire_due(clock(), &mut fire);
            let command = match self.next_due() {
                None => match rx.recv() {
                    Ok(c) => c,
                    Err(_) => return,
                },
                Some(due) => {
                    let wait = due * 1000 - clock();
                    if wait <= 0 {
                        continue;
                    }
                    match rx.recv_timeout(Duration::from_micros(wait.unsigned_abs())) {
                        Ok(c) => c,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            };
            match command {
                Command::Hold(batch) => self.hold(batch),
                Command::Forget(f) => {
                    let ids = self.forget(f);
                    if !ids.is_empty() {
                        dropped(ids);
                    }
                }
                Command::Stop(reply) => {
                    let _ = reply.send(self.held.into_values().collect());
                    return;
                }
            }
        }
    }

    /// Adds `batch` to the heap, each entry under its [`due_of`]; ties fire in this order.
    pub fn hold(&mut self, batch: Vec<Claimed>) {
        for c in batch {
            self.seq += 1;
            self.heap.push(Reverse((due_of(&c), self.seq)));
            self.held.insert(self.seq, c);
        }
    }

    /// Drops held occurrences; returns their claims (`(id, lease_token)`).
    pub fn forget(&mut self, f: Forget) -> Vec<(Uuid, i64)> {
        let mut ids = Vec::new();
        self.held.retain(|_, c| {
            let keep = match f {
                Forget::Event { event_id, after } => {
                    c.event.id != event_id
                        || after
                            .is_some_and(|after| c.occ.attempts > 0 || c.occ.scheduled_at <= after)
                }
                Forget::Occurrence(id) => c.occ.id != id,
            };
            if !keep {
                ids.push((c.occ.id, c.token));
            }
            keep
        });
        if self.held.is_empty() {
            self.heap.clear();
        }
        ids
    }

    /// The earliest due time still held (entries of forgotten occurrences are skipped).
    fn next_due(&mut self) -> Option<Millis> {
        while let Some(Reverse((due, seq))) = self.heap.peek().copied() {
            if self.held.contains_key(&seq) {
                return Some(due);
            }
            self.heap.pop();
        }
        None
    }

    /// Fires everything due at or before `now_us`. Never early: an entry due at millisecond
    /// `t` fires only once the clock reads `t * 1000` microseconds or later.
    pub fn fire_due(&mut self, now_us: i64, fire: &mut impl FnMut(Claimed)) {
        while let Some(Reverse((due, seq))) = self.heap.peek().copied() {
            if due * 1000 > now_us {
                break;
            }
            self.heap.pop();
            if let Some(c) = self.held.remove(&seq) {
                fire(c);
            }
        }
    }

    /// Occurrences held and not yet fired (forgotten ones not counted).
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::event::Event;
    use crate::domain::occurrence::{OccStatus, Occurrence};

    fn claimed(event: &Arc<Event>, at: Millis) -> Claimed {
        Claimed {
            occ: Occurrence {
                id: Uuid::now_v7(),
                event_id: event.id,
                scheduled_at: at,
                status: OccStatus::Scheduled,
                attempts: 0,
                attempt_limit: 3,
                next_attempt_at: Some(at),
                last_error: None,
                created_at: 0,
                updated_at: 0,
                completed_at: None,
                ends_at: None,
                caused_by: None,
                cause: None,
            },
            event: event.clone(),
            lease_until: at + 1000,
            token: at + 7,
        }
    }

    fn event() -> Arc<Event> {
        let input: crate::api::event_io::EventIn = serde_json::from_value(serde_json::json!({
            "name": "t",
            "start_time": "2030-01-01T00:00:00Z",
            "action": {"type": "webhook", "params": {"url": "http://127.0.0.1:9/"}}
        }))
        .unwrap();
        Arc::new(input.validate(Uuid::now_v7(), 0, 0).unwrap())
    }

    #[test]
    fn fires_in_order_and_never_before_the_due_microsecond() {
        let e = event();
        let mut t = Timer::default();
        t.hold(vec![claimed(&e, 3), claimed(&e, 1), claimed(&e, 2)]);
        let mut fired = Vec::new();
        // One microsecond before the first due time: nothing.
        t.fire_due(999, &mut |c| fired.push(c.occ.scheduled_at));
        assert!(fired.is_empty());
        t.fire_due(1000, &mut |c| fired.push(c.occ.scheduled_at));
        assert_eq!(fired, vec![1]);
        t.fire_due(2999, &mut |c| fired.push(c.occ.scheduled_at));
        assert_eq!(fired, vec![1, 2]);
        t.fire_due(10_000, &mut |c| fired.push(c.occ.scheduled_at));
        assert_eq!(fired, vec![1, 2, 3]);
        assert!(t.is_empty());
    }

    #[test]
    fn forgotten_occurrences_never_fire() {
        let e = event();
        let other = event();
        let mut t = Timer::default();
        let a = claimed(&e, 5);
        let b = claimed(&other, 5);
        let c = claimed(&e, 9);
        let a_id = a.occ.id;
        t.hold(vec![a, b, c]);
        assert_eq!(t.forget(Forget::Occurrence(a_id)), vec![(a_id, 12)]);
        assert_eq!(
            t.forget(Forget::Event {
                event_id: e.id,
                after: Some(6),
            })
            .len(),
            1
        );
        assert_eq!(t.len(), 1);
        let mut fired = Vec::new();
        t.fire_due(100_000, &mut |c| fired.push(c.event.id));
        assert_eq!(fired, vec![other.id]);
    }

    #[test]
    fn the_thread_waits_for_the_clock_and_hands_back_what_it_holds() {
        use std::sync::atomic::{AtomicI64, Ordering};
        let e = event();
        let clock = Arc::new(AtomicI64::new(0));
        let (tx, rx) = mpsc::channel();
        let (fired_tx, fired_rx) = mpsc::channel();
        let c2 = clock.clone();
        let thread = std::thread::spawn(move || {
            Timer::default().run(
                &rx,
                move |c| {
                    let _ = fired_tx.send(c.occ.scheduled_at);
                },
                |_| {},
                move || c2.load(Ordering::SeqCst),
            )
        });
        tx.send(Command::Hold(vec![claimed(&e, 1), claimed(&e, 1_000_000)]))
            .unwrap();
        // The injected clock has not reached 1 ms: nothing fires however long we wait.
        assert!(fired_rx.recv_timeout(Duration::from_millis(30)).is_err());
        clock.store(1000, Ordering::SeqCst);
        assert_eq!(fired_rx.recv_timeout(Duration::from_secs(5)).unwrap(), 1);
        let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
        tx.send(Command::Stop(reply_tx)).unwrap();
        let rest = reply_rx.blocking_recv().unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].occ.scheduled_at, 1_000_000);
        thread.join().unwrap();
    }
}
