//! Leases: the claims this node holds (in the timer, in flight, or with an outcome not yet
//! written), renewed while they are held.
//!
//! A claim's lease is short (`engine.lease`, seconds) so that the claims of a node that dies
//! come back to the others quickly; the renewer moves the lease of every claim the timer has
//! fired (queued for a delivery slot, in flight, or with its outcome not yet written) before it
//! runs out, so a long attempt (a slow receiver, an email, a WebSocket ack) keeps its claim
//! however long it takes. A claim still waiting in the timer is not renewed: the timer only
//! holds claims due within `engine.claim_horizon`, which the configuration keeps shorter than
//! the lease. Each claim carries a random token (`lease_token`): renewals, releases and
//! outcome writes name (owner, token), so a node whose claim was taken over after its lease ran
//! out writes nothing over the newer claim, and the launcher starts no attempt on a claim this
//! map no longer holds under the same token.
//!
//! On the embedded (single-process) store the lease is at least an hour (see
//! [`crate::engine::start`]), so renewal there is rare.
//!
//! After a store call failed (the database went away, or this node lost it), the claimer takes
//! over no expired lease for one lease period: the nodes that held them were most likely cut off
//! too, and get that period to renew their claims and write the outcomes they buffered, instead
//! of having them delivered a second time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use crate::domain::{now_ms, Millis};
use crate::store::{Renewal, Store};

#[derive(Debug, Clone, Copy)]
struct Held {
    token: i64,
    until: Millis,
    /// The timer fired it (it is queued for a delivery slot, in flight, or its outcome is not
    /// written yet): renewed from then on. Not while it waits in the timer, which holds claims
    /// due within the claim horizon, shorter than the lease: no renewal for the common case.
    started: bool,
}

/// The claims of this node, by occurrence id: one claim per occurrence (a newer claim of the
/// same row replaces the older one). Shared by the claimer, the launcher, the writer and the
/// renewer; every method takes a short lock and never waits for I/O.
pub struct Leases {
    /// The node's `lease_owner` (`node-<uuid>`), the owner every store call names.
    pub owner: String,
    /// The length of a claim's lease in ms (`engine.lease`, or at least an hour on the
    /// embedded store); at least 1.
    pub lease_ms: i64,
    held: Mutex<HashMap<Uuid, Held>>,
    /// When a store call of the engine last failed (ms; 0: never).
    last_failure: AtomicI64,
    /// The claimer stopped claiming because it holds its maximum.
    starved: std::sync::atomic::AtomicBool,
}

impl Leases {
    /// An empty map for `owner`, with leases of `lease_ms` (raised to 1 when smaller).
    pub fn new(owner: String, lease_ms: i64) -> Leases {
        Leases {
            owner,
            lease_ms: lease_ms.max(1),
            held: Mutex::new(HashMap::new()),
            last_failure: AtomicI64::new(0),
            starved: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Held>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts
        // and removals): go on with it.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers new claims `(id, token, lease_until)` (`lease_until` in ms since the epoch),
    /// not yet started (so not renewed). A claim of an id already held replaces it: the older
    /// token is no longer this node's.
    pub fn hold(&self, claims: impl IntoIterator<Item = (Uuid, i64, Millis)>) {
        let mut m = self.map();
        for (id, token, until) in claims {
            m.insert(
                id,
                Held {
                    token,
                    until,
                    started: false,
                },
            );
        }
    }

    /// Until when the claim `(id, token)` is this node's; `None` when it is not (any more).
    pub fn until(&self, id: Uuid, token: i64) -> Option<Millis> {
        self.map()
            .get(&id)
            .filter(|h| h.token == token)
            .map(|h| h.until)
    }

    /// The timer fired claim `(id, token)`: until when it is this node's (`None`: it is not any
    /// more). From now on it is renewed.
    pub fn start(&self, id: Uuid, token: i64) -> Option<Millis> {
        let mut m = self.map();
        let h = m.get_mut(&id).filter(|h| h.token == token)?;
        h.started = true;
        Some(h.until)
    }

    /// Forgets claims (`(id, token)`): their outcome is written, or they were handed back or
    /// abandoned. A later claim of the same row (another token) is kept.
    pub fn release(&self, claims: impl IntoIterator<Item = (Uuid, i64)>) {
        let mut m = self.map();
        for (id, token) in claims {
            if m.get(&id).is_some_and(|h| h.token == token) {
                m.remove(&id);
            }
        }
    }

    /// Claims held now: in the timer, queued for a slot, in flight, or awaiting their outcome
    /// write. The claimer's cap on a shared store counts these.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// True when this node holds no claim.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The claimer holds its maximum and waits for room: the writer wakes it
    /// ([`Leases::take_starved`]) once a batch of outcomes ends claims.
    pub fn set_starved(&self) {
        self.starved.store(true, Ordering::Relaxed);
    }

    /// True (once) when the claimer waits for room.
    pub fn take_starved(&self) -> bool {
        self.starved.swap(false, Ordering::Relaxed)
    }

    /// A store call of the engine failed at `now` (ms): for one lease period from then,
    /// [`Leases::expired_before`] takes over no expired lease.
    pub fn store_failed(&self, now: Millis) {
        self.last_failure.store(now, Ordering::Relaxed);
    }

    /// Expired leases ending before this may be taken over (`Millis::MIN`: none, for one lease
    /// period after a store failure).
    pub fn expired_before(&self, now: Millis) -> Millis {
        let failed = self.last_failure.load(Ordering::Relaxed);
        if failed > 0 && now.saturating_sub(failed) < self.lease_ms {
            Millis::MIN
        } else {
            now
        }
    }

    /// An attempt starts only while at least this much of its lease is left, in ms: an eighth
    /// of the lease, between 1 ms and 1 s (renewal keeps at least a quarter of the lease ahead
    /// while the store answers, so only a claim whose renewals failed falls below it).
    pub fn margin_ms(&self) -> i64 {
        (self.lease_ms / 8).clamp(1, 1_000)
    }

    /// How often the renewer runs: a quarter of the lease, at least 10 ms. Each pass renews
    /// the started claims with less than half a lease left to a full lease from then.
    pub fn renew_every(&self) -> Duration {
        Duration::from_millis((self.lease_ms / 4).max(10).unsigned_abs())
    }

    /// The started claims whose lease ends within half a lease of `now`: the ones to renew.
    fn to_renew(&self, now: Millis) -> Vec<(Uuid, i64)> {
        let soon = now.saturating_add(self.lease_ms / 2);
        self.map()
            .iter()
            .filter(|(_, h)| h.started && h.until < soon)
            .map(|(id, h)| (*id, h.token))
            .collect()
    }

    /// Applies a renewal: its `renewed` claims now run until `until`, its `busy` ones keep
    /// their lease (the next pass tries again); the other `asked` ones are lost.
    fn renewed(&self, asked: &[(Uuid, i64)], r: &Renewal, until: Millis) -> usize {
        let ok: std::collections::HashSet<&Uuid> = r.renewed.iter().collect();
        let busy: std::collections::HashSet<&Uuid> = r.busy.iter().collect();
        let mut lost = 0;
        let mut m = self.map();
        for (id, token) in asked {
            let Some(h) = m.get_mut(id).filter(|h| h.token == *token) else {
                continue;
            };
            if ok.contains(id) {
                h.until = h.until.max(until);
            } else if !busy.contains(id) {
                m.remove(id);
                lost += 1;
            }
        }
        lost
    }
}

/// Renews the leases of what this node holds, every quarter of a lease.
pub struct Renewer {
    /// Where the leases live.
    pub store: Arc<dyn Store>,
    /// The claims to renew; the renewer drops from it the ones the store no longer has.
    pub leases: Arc<Leases>,
}

impl Renewer {
    /// Renews forever, every [`Leases::renew_every`]; a failed pass is logged and the next one
    /// tries again (its claims keep whatever lease they had). Runs until aborted: shutdown stops
    /// it last, after the deliveries in flight and the writer's flush.
    pub async fn run(self) {
        let every = self.leases.renew_every();
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = self.renew_once(now_ms()).await {
                tracing::warn!(error = %e, held = self.leases.len(), "renewing leases failed");
            }
        }
    }

    /// One pass as of `now` (ms): renews the started claims with less than half a lease left
    /// to `now + lease_ms`, in one store call fenced by (owner, token); returns (renewed, lost).
    /// A lost claim (taken over, cancelled or finished) is forgotten here, so no attempt starts
    /// on it. On `Err` nothing is forgotten and the store failure is recorded
    /// ([`Leases::store_failed`]).
    pub async fn renew_once(&self, now: Millis) -> anyhow::Result<(usize, usize)> {
        let asked = self.leases.to_renew(now);
        if asked.is_empty() {
            return Ok((0, 0));
        }
        let until = now.saturating_add(self.leases.lease_ms);
        let renewed = match self
            .store
            .renew_leases(&self.leases.owner, &asked, until, now)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                self.leases.store_failed(now);
                return Err(e.into());
            }
        };
        let lost = self.leases.renewed(&asked, &renewed, until);
        if lost > 0 {
            tracing::warn!(
                lost,
                "claims were no longer this node's at renewal (taken over, cancelled or finished)"
            );
        }
        Ok((renewed.renewed.len(), lost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_is_known_by_its_token_and_a_later_claim_survives_an_old_release() {
        let l = Leases::new("node-x".into(), 4_000);
        let id = Uuid::now_v7();
        l.hold([(id, 1, 100)]);
        assert_eq!(l.until(id, 1), Some(100));
        assert_eq!(l.until(id, 2), None);
        // Claimed again (its lease ran out): the old claim's release leaves the new one.
        l.hold([(id, 2, 200)]);
        l.release([(id, 1)]);
        assert_eq!(l.until(id, 2), Some(200));
        l.release([(id, 2)]);
        assert!(l.is_empty());
    }

    #[test]
    fn only_started_leases_ending_within_half_a_lease_are_renewed_and_unrenewed_ones_are_lost() {
        let l = Leases::new("node-x".into(), 4_000);
        let (near, far, waiting) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        l.hold([(near, 1, 1_000), (far, 2, 5_000), (waiting, 3, 1_000)]);
        assert_eq!(l.start(near, 1), Some(1_000));
        assert_eq!(l.start(far, 2), Some(5_000));
        assert_eq!(l.start(far, 9), None);
        // `waiting` has not started: not renewed.
        let asked = l.to_renew(0);
        assert_eq!(asked, vec![(near, 1)]);
        let only = |renewed: Vec<Uuid>, busy: Vec<Uuid>| Renewal { renewed, busy };
        assert_eq!(l.renewed(&asked, &only(vec![near], vec![]), 4_000), 0);
        assert_eq!(l.until(near, 1), Some(4_000));
        // Busy (its row locked by the outcome writer): kept, lease unchanged.
        assert_eq!(l.renewed(&asked, &only(vec![], vec![near]), 8_000), 0);
        assert_eq!(l.until(near, 1), Some(4_000));
        assert_eq!(l.renewed(&[(far, 2)], &only(vec![], vec![]), 9_000), 1);
        assert_eq!(l.until(far, 2), None);
    }

    #[test]
    fn after_a_store_failure_no_expired_lease_is_taken_for_one_lease() {
        let l = Leases::new("node-x".into(), 4_000);
        assert_eq!(l.expired_before(10_000), 10_000);
        l.store_failed(10_000);
        assert_eq!(l.expired_before(13_999), Millis::MIN);
        assert_eq!(l.expired_before(14_000), 14_000);
    }
}
