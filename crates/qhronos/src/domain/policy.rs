//! Retry and misfire policies: what the event asked for (every field optional) and the
//! resolved policy after the configured defaults fill the gaps.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::duration::Dur;
use super::Millis;
use crate::config::{MisfireDefaults, RetryDefaults};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    #[default]
    Exponential,
    Fixed,
}

/// The retry settings of one event, as given; omitted fields take the configured defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, 1 to 100
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::api::inputs::max_attempts)]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::api::inputs::retry_timeout)]
    pub timeout: Option<Dur>,
}

/// Longest per-attempt timeout an event may ask for; the claim lease must outlast it.
pub const MAX_TIMEOUT: Duration = Duration::from_millis(qhronos_schema::limits::TIMEOUT_MAX_MS);

impl RetryPolicy {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == Some(0) {
            return Err("retry.max_attempts must be at least 1".into());
        }
        if let Some(m) = self.max_attempts {
            if u64::from(m) > qhronos_schema::limits::ATTEMPTS_MAX {
                return Err("retry.max_attempts must be at most 100".into());
            }
        }
        if let Some(t) = self.timeout {
            if t.0.is_zero() || t.0 > MAX_TIMEOUT {
                return Err("retry.timeout must be between 1ms and 60s".into());
            }
        }
        // An `initial_delay` above `max_delay` is not an error: `max_delay` caps every step
        // (`Retry::base_delay`), so each retry waits `max_delay`.
        Ok(())
    }

    pub fn resolve(&self, d: &RetryDefaults) -> Retry {
        Retry {
            max_attempts: self.max_attempts.unwrap_or(d.max_attempts),
            backoff: self.backoff.unwrap_or_default(),
            initial_delay: self.initial_delay.unwrap_or(d.initial_delay).0,
            max_delay: self.max_delay.unwrap_or(d.max_delay).0,
            timeout: self.timeout.unwrap_or(d.timeout).0.min(MAX_TIMEOUT),
        }
    }
}

/// A resolved retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub timeout: Duration,
}

/// The default exponential schedule, for an initial delay of 5 s: 5 s, 30 s, 2 m, 10 m, 30 m,
/// 1 h, 3 h, then 3 h. A different `initial_delay` scales the whole schedule by the same factor
/// (so `initial_delay: "50ms"` gives 50 ms, 300 ms, 1.2 s, …), and `max_delay` caps each step.
const EXPONENTIAL_SECS: [u32; 7] = [5, 30, 120, 600, 1800, 3600, 10800];

/// The latest instant an attempt is ever planned for: 9999-12-31T23:59:59.999Z, the end of what
/// RFC 3339 (and the API) can show. A delay past it waits until then instead.
pub const LATEST_INSTANT: Millis = 253_402_300_799_999;

/// `now + delay` without overflow: never before `now` (a wrapped sum would be a past instant,
/// and a hot retry loop), never after [`LATEST_INSTANT`].
pub fn instant_after(now: Millis, delay: Duration) -> Millis {
    let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    now.saturating_add(ms).min(LATEST_INSTANT.max(now))
}

impl Retry {
    /// The delay before attempt `failed + 1`, after `failed` failed attempts (1-based), with
    /// ±20 % jitter so that a burst of failures does not retry in lockstep; never more than
    /// `max_delay`.
    pub fn delay_after(&self, failed: u32) -> Duration {
        self.jittered(failed, rand::rng().random_range(0.8..=1.2))
    }

    /// The delay before the next attempt: the receiver's `Retry-After` when it sent one
    /// (capped by `max_delay`), else the backoff schedule.
    pub fn next_delay(&self, failed: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(ra) => ra.min(self.max_delay),
            None => self.delay_after(failed),
        }
    }

    /// The schedule's step without jitter: non-decreasing in `failed`, at most `max_delay`.
    /// Saturating arithmetic: a huge `initial_delay` caps at `max_delay`, it never panics.
    pub fn base_delay(&self, failed: u32) -> Duration {
        match self.backoff {
            Backoff::Fixed => self.initial_delay,
            Backoff::Exponential => {
                let idx = (failed.max(1) as usize - 1).min(EXPONENTIAL_SECS.len() - 1);
                // Every step is a whole multiple of the first (30 / 5 = 6, …).
                let factor = EXPONENTIAL_SECS[idx] / EXPONENTIAL_SECS[0];
                self.initial_delay.saturating_mul(factor)
            }
        }
        .min(self.max_delay)
    }

    /// [`Retry::base_delay`] times `jitter` (clamped to 0.8–1.2), capped by `max_delay`.
    pub fn jittered(&self, failed: u32, jitter: f64) -> Duration {
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.8, 1.2)
        } else {
            1.0
        };
        let base = self.base_delay(failed);
        Duration::try_from_secs_f64(base.as_secs_f64() * jitter)
            .unwrap_or(Duration::MAX)
            .min(self.max_delay)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MisfireKind {
    /// One late delivery for the newest missed instance; older ones are `missed`.
    #[default]
    FireOnce,
    /// Every missed instance is delivered late (within the catch-up window).
    FireAll,
    /// Missed instances are all `missed`.
    Skip,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MisfirePolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<MisfireKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up_window: Option<Dur>,
}

impl MisfirePolicy {
    pub fn resolve(&self, d: &MisfireDefaults) -> (MisfireKind, Duration) {
        (
            self.policy.unwrap_or_default(),
            self.catch_up_window.unwrap_or(d.catch_up_window).0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_is_the_documented_one_within_jitter() {
        let r = RetryPolicy::default().resolve(&RetryDefaults::default());
        for (n, secs) in [(1, 5.0), (2, 30.0), (3, 120.0), (7, 10800.0), (12, 10800.0)] {
            let d = r.delay_after(n).as_secs_f64();
            assert!(d >= secs * 0.8 - 1e-9 && d <= secs * 1.2 + 1e-9, "{n}: {d}");
        }
    }

    #[test]
    fn initial_delay_scales_and_max_delay_caps() {
        let p = RetryPolicy {
            initial_delay: Some(Dur::from_millis(50)),
            max_delay: Some(Dur::from_millis(200)),
            ..Default::default()
        };
        let r = p.resolve(&RetryDefaults::default());
        let d1 = r.delay_after(1).as_millis();
        assert!((40..=60).contains(&d1), "{d1}");
        let d3 = r.delay_after(3).as_millis();
        assert!((160..=240).contains(&d3), "{d3}");
    }

    mod arithmetic {
        use proptest::prelude::*;

        use super::super::*;

        fn any_duration() -> impl Strategy<Value = Duration> {
            prop_oneof![
                (0u64..100_000).prop_map(Duration::from_millis),
                any::<u64>().prop_map(Duration::from_millis),
                any::<u64>().prop_map(Duration::from_secs),
                Just(Duration::MAX),
                Just(Duration::ZERO),
            ]
        }

        fn any_retry() -> impl Strategy<Value = Retry> {
            (
                1u32..=100,
                prop_oneof![Just(Backoff::Exponential), Just(Backoff::Fixed)],
                any_duration(),
                any_duration(),
            )
                .prop_map(|(max_attempts, backoff, initial_delay, max_delay)| Retry {
                    max_attempts,
                    backoff,
                    initial_delay,
                    max_delay,
                    timeout: Duration::from_secs(10),
                })
        }

        proptest! {
            #[test]
            fn every_retry_delay_is_computed_without_panic_and_lands_at_or_after_now(
                r in any_retry(),
                failed in any::<u32>(),
                jitter in any::<f64>(),
                retry_after in proptest::option::of(any_duration()),
                now in prop_oneof![Just(0i64), 0i64..LATEST_INSTANT, Just(LATEST_INSTANT)],
            ) {
                let base = r.base_delay(failed);
                prop_assert!(base <= r.max_delay);
                let d = r.jittered(failed, jitter);
                prop_assert!(d <= r.max_delay);
                let next = r.next_delay(failed, retry_after);
                prop_assert!(next <= r.max_delay);
                for delay in [base, d, next, Duration::MAX] {
                    let at = instant_after(now, delay);
                    prop_assert!(at >= now, "{at} before {now}");
                    prop_assert!(at <= LATEST_INSTANT);
                }
            }

            #[test]
            fn the_backoff_never_shrinks_from_one_attempt_to_the_next(
                r in any_retry(),
                failed in 0u32..1000,
            ) {
                prop_assert!(r.base_delay(failed) <= r.base_delay(failed + 1));
                if r.backoff == Backoff::Exponential && r.initial_delay <= r.max_delay {
                    prop_assert!(r.base_delay(1) == r.initial_delay);
                }
            }
        }

        #[test]
        fn a_delay_as_long_as_time_itself_plans_the_last_instant_not_a_past_one() {
            let r = Retry {
                max_attempts: 8,
                backoff: Backoff::Exponential,
                initial_delay: Duration::MAX,
                max_delay: Duration::MAX,
                timeout: Duration::from_secs(10),
            };
            let now = 1_700_000_000_000;
            assert_eq!(instant_after(now, r.delay_after(7)), LATEST_INSTANT);
            let huge = Duration::from_millis(i64::MAX as u64 - 1);
            assert_eq!(instant_after(now, huge), LATEST_INSTANT);
        }
    }
}
