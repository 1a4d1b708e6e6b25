//! Builders for the suite: events made the way the API makes them (an `EventIn` body,
//! validated), occurrences, claims and outcomes, at chosen times.

use std::collections::HashSet;

use qhronos::api::event_io::EventIn;
use qhronos::domain::event::Event;
use qhronos::domain::occurrence::{Attempt, NewOccurrence, OccStatus, Occurrence};
use qhronos::domain::{fmt_ms, Millis};
use qhronos::store::*;
use serde_json::{json, Value};
use uuid::Uuid;

/// The suite's "now": 2030-03-17, far from any real clock, so nothing depends on one.
pub const T0: Millis = 1_900_000_000_000;
pub const SEC: Millis = 1_000;
pub const MIN: Millis = 60 * SEC;
pub const HOUR: Millis = 60 * MIN;
pub const DAY: Millis = 24 * HOUR;

/// The author of the suite's event writes.
pub const BY: By<'static> = By {
    actor: "master",
    restores: None,
};

/// Attempts each fixture occurrence may make.
pub const LIMIT: u32 = 3;

/// The body of a one-time webhook event at `at`; tests add fields before [`event`].
pub fn body(at: Millis) -> Value {
    json!({
        "name": "conformance",
        "start_time": fmt_ms(at),
        "action": {"type": "webhook", "params": {"url": "https://example.com/hook"}},
    })
}

/// Validates a body into an event created at `T0`, as `POST /events` does.
pub fn event(body: Value) -> Event {
    let input: EventIn = serde_json::from_value(body).expect("an event body");
    input
        .validate(Uuid::now_v7(), T0, T0)
        .expect("a valid event")
}

/// A one-time webhook event at `at`.
pub fn one_time(at: Millis) -> Event {
    event(body(at))
}

/// An event whose occurrences a pull client claims from `queue`.
pub fn pull(at: Millis, queue: &str) -> Event {
    let mut b = body(at);
    b["action"] = json!({"type": "pull", "params": {"queue": queue}});
    event(b)
}

/// A series (`FREQ=HOURLY` from `at`) with `next_fire_at` set past the given occurrences, as
/// the API leaves a series after planning its first window.
pub fn hourly(at: Millis, next_fire_at: Millis) -> Event {
    let mut b = body(at);
    b["schedule"] = json!("FREQ=HOURLY");
    let mut e = event(b);
    e.next_fire_at = Some(next_fire_at);
    e
}

pub fn occ(e: &Event, at: Millis) -> NewOccurrence {
    NewOccurrence::new(e.id, at, LIMIT)
}

pub fn occs(e: &Event, times: &[Millis]) -> Vec<NewOccurrence> {
    times.iter().map(|t| occ(e, *t)).collect()
}

/// Creates the event with these occurrences (no idempotency key).
pub async fn create(s: &dyn Store, e: &Event, o: &[NewOccurrence]) {
    match s.create_event(e, o, None, BY).await.expect("create_event") {
        Created::New => {}
        other => panic!("create_event without a key answered {other:?}"),
    }
}

/// One claim of the dispatcher, in the suite's terms.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub owner: &'a str,
    pub token: i64,
    pub now: Millis,
    /// Lease length from `now`.
    pub lease: Millis,
    /// Take over leases that ended before this (`Millis::MIN`: none).
    pub expired_before: Millis,
    pub limit: i64,
}

impl<'a> Claim<'a> {
    /// Claims what is due at `now`, leased for 30 s, taking over no lease.
    pub fn at(owner: &'a str, token: i64, now: Millis) -> Claim<'a> {
        Claim {
            owner,
            token,
            now,
            lease: 30 * SEC,
            expired_before: Millis::MIN,
            limit: 100,
        }
    }

    pub fn taking_over(mut self) -> Claim<'a> {
        self.expired_before = self.now;
        self
    }

    pub fn lease(mut self, lease: Millis) -> Claim<'a> {
        self.lease = lease;
        self
    }

    pub fn limit(mut self, limit: i64) -> Claim<'a> {
        self.limit = limit;
        self
    }
}

/// The only place the suite builds the store's claim argument (`ClaimDue`).
pub async fn claim(s: &dyn Store, c: Claim<'_>) -> Vec<Claimed> {
    let spec = ClaimDue {
        owner: c.owner,
        token: c.token,
        due_before: c.now,
        lease_until: c.now + c.lease,
        expired_before: c.expired_before,
        limit: c.limit,
        now: c.now,
    };
    s.claim_due(&spec).await.expect("claim_due")
}

/// The outcome of one attempt at a claimed occurrence, answered with HTTP `code`.
pub fn attempted(c: &Claimed, code: u16, next: Next, at: Millis) -> Outcome {
    Outcome::Attempted {
        occurrence_id: c.occ.id,
        event_id: c.occ.event_id,
        scheduled_at: c.occ.scheduled_at,
        attempt: Attempt {
            attempt: c.occ.attempts + 1,
            started_at: at,
            duration_ms: 7,
            status_code: Some(code),
            error: None,
            response: Some(format!("answer {code} to token {}", c.token)),
        },
        next,
        pause_event: None,
        token: c.token,
    }
}

pub async fn record(s: &dyn Store, owner: &str, outcomes: &[Outcome], now: Millis) {
    s.record_outcomes(owner, outcomes, now)
        .await
        .expect("record_outcomes");
}

/// The occurrence and its attempts; it must exist.
pub async fn get(s: &dyn Store, id: Uuid) -> (Occurrence, Vec<Attempt>) {
    s.get_occurrence(id)
        .await
        .expect("get_occurrence")
        .unwrap_or_else(|| panic!("occurrence {id} is gone"))
}

pub async fn status(s: &dyn Store, id: Uuid) -> OccStatus {
    get(s, id).await.0.status
}

/// Every occurrence of the event, newest first (one page).
pub async fn of_event(s: &dyn Store, event_id: Uuid) -> Vec<Occurrence> {
    s.list_occurrences(&OccFilter {
        event_id: Some(event_id),
        limit: 1000,
        ..Default::default()
    })
    .await
    .expect("list_occurrences")
}

/// The event's occurrence at `at`; it must exist.
pub async fn at(s: &dyn Store, event_id: Uuid, at: Millis) -> Occurrence {
    of_event(s, event_id)
        .await
        .into_iter()
        .find(|o| o.scheduled_at == at)
        .unwrap_or_else(|| panic!("event {event_id} has no occurrence at {}", fmt_ms(at)))
}

pub fn ids(c: &[Claimed]) -> HashSet<Uuid> {
    c.iter().map(|c| c.occ.id).collect()
}

/// Asserts that `pages` visited each of `expected` exactly once.
pub fn assert_each_once<T: std::hash::Hash + Eq + Clone + std::fmt::Debug>(
    visited: &[T],
    expected: &HashSet<T>,
    what: &str,
) {
    let seen: HashSet<T> = visited.iter().cloned().collect();
    assert_eq!(seen.len(), visited.len(), "{what}: a row came twice");
    assert_eq!(&seen, expected, "{what}: rows missing or extra");
}
