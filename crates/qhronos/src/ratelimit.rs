//! Token-bucket rate limiting, one bucket per key (a token's identity, or a client IP).
//! Small enough to own: it gives the exact figures the `X-RateLimit-*` headers need.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::RateLimitConfig;

pub struct RateLimiter {
    burst: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// The outcome of one check, with what the headers report.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
    /// Seconds until one request is allowed (when refused).
    pub retry_after_secs: u64,
}

/// Buckets are swept when the map grows past this many keys (full buckets are dropped: they
/// hold no state a new bucket would not have).
const SWEEP_AT: usize = 10_000;

impl RateLimiter {
    /// `None` when rate limiting is off.
    pub fn new(cfg: &RateLimitConfig) -> Option<RateLimiter> {
        cfg.enabled.then(|| RateLimiter {
            burst: f64::from(cfg.burst),
            per_second: cfg.per_second,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    pub fn check_at(&self, key: &str, now: Instant) -> Decision {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > SWEEP_AT {
            let (burst, rate) = (self.burst, self.per_second);
            map.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let entry = map.entry(key.to_string()).or_insert((self.burst, now));
        let refill = now.duration_since(entry.1).as_secs_f64() * self.per_second;
        let mut tokens = (entry.0 + refill).min(self.burst);
        let allowed = tokens >= 1.0;
        if allowed {
            tokens -= 1.0;
        }
        *entry = (tokens, now);
        Decision {
            allowed,
            limit: self.burst as u32,
            remaining: tokens.floor().max(0.0) as u32,
            reset_secs: ((self.burst - tokens) / self.per_second).ceil() as u64,
            retry_after_secs: if allowed {
                0
            } else {
                ((1.0 - tokens) / self.per_second).ceil().max(1.0) as u64
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_the_burst_then_the_rate() {
        let l = RateLimiter::new(&RateLimitConfig {
            enabled: true,
            burst: 3,
            per_second: 2.0,
        })
        .unwrap();
        let t0 = Instant::now();
        for i in 0..3 {
            let d = l.check_at("k", t0);
            assert!(d.allowed);
            assert_eq!(d.remaining, 2 - i);
        }
        let d = l.check_at("k", t0);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, 1);
        assert!(l.check_at("other", t0).allowed, "buckets are per key");
        assert!(
            l.check_at("k", t0 + Duration::from_millis(600)).allowed,
            "refilled at 2/s"
        );
    }
}
