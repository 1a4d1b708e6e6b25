//! Retry and misfire policies: what the event asked for (every field optional) and the
//! resolved policy after the configured defaults fill the gaps.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::duration::Dur;
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delay: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
}

/// Longest per-attempt timeout an event may ask for; the claim lease must outlast it.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

impl RetryPolicy {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == Some(0) {
            return Err("retry.max_attempts must be at least 1".into());
        }
        if let Some(m) = self.max_attempts {
            if m > 100 {
                return Err("retry.max_attempts must be at most 100".into());
            }
        }
        if let Some(t) = self.timeout {
            if t.0.is_zero() || t.0 > MAX_TIMEOUT {
                return Err("retry.timeout must be between 1ms and 60s".into());
            }
        }
        if let (Some(i), Some(m)) = (self.initial_delay, self.max_delay) {
            if i > m {
                return Err("retry.initial_delay must not exceed retry.max_delay".into());
            }
        }
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
const EXPONENTIAL_SECS: [u64; 7] = [5, 30, 120, 600, 1800, 3600, 10800];

impl Retry {
    /// The delay before attempt `failed + 1`, after `failed` failed attempts (1-based), with
    /// ±20 % jitter so that a burst of failures does not retry in lockstep.
    pub fn delay_after(&self, failed: u32) -> Duration {
        let base = match self.backoff {
            Backoff::Fixed => self.initial_delay,
            Backoff::Exponential => {
                let idx = (failed.max(1) as usize - 1).min(EXPONENTIAL_SECS.len() - 1);
                let factor = EXPONENTIAL_SECS[idx] as f64 / EXPONENTIAL_SECS[0] as f64;
                self.initial_delay.mul_f64(factor)
            }
        }
        .min(self.max_delay);
        let jitter = rand::rng().random_range(0.8..=1.2);
        base.mul_f64(jitter).min(self.max_delay.mul_f64(1.2))
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
}
