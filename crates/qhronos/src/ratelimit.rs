//! Token-bucket rate limiting, one bucket per key (a token's identity, or a client IP).
//! Small enough to own: it gives the exact figures the `X-RateLimit-*` headers need.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::RateLimitConfig;

pub struct RateLimiter {
    tokens: Figures,
    anonymous: Figures,
    /// Whether the master token is limited (with the issued tokens' figures).
    master: bool,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

#[derive(Debug, Clone, Copy)]
struct Figures {
    burst: f64,
    per_second: f64,
}

/// Who is asking, which decides the bucket's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Master,
    /// An issued token.
    Token,
    /// No valid token: keyed by client IP.
    Anonymous,
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
            tokens: Figures {
                burst: f64::from(cfg.burst),
                per_second: cfg.per_second,
            },
            anonymous: Figures {
                burst: f64::from(cfg.anonymous.burst),
                per_second: cfg.anonymous.per_second,
            },
            master: cfg.master,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// The sustained rate of this class of caller.
    pub fn per_second(&self, class: Class) -> f64 {
        self.figures(class).map_or(f64::INFINITY, |f| f.per_second)
    }

    fn figures(&self, class: Class) -> Option<Figures> {
        match class {
            Class::Master if !self.master => None,
            Class::Master | Class::Token => Some(self.tokens),
            Class::Anonymous => Some(self.anonymous),
        }
    }

    /// One request of `key`; `None` when this class of caller is not limited.
    pub fn check_at(&self, key: &str, class: Class, now: Instant) -> Option<Decision> {
        let Figures { burst, per_second } = self.figures(class)?;
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > SWEEP_AT {
            // A bucket refilled to its class's burst holds nothing a new one would not; the
            // smaller burst is used, so no full anonymous bucket stays behind.
            let full = self.tokens.burst.min(self.anonymous.burst);
            let rate = self.tokens.per_second.min(self.anonymous.per_second);
            map.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < full
            });
        }
        let entry = map.entry(key.to_string()).or_insert((burst, now));
        let refill = now.duration_since(entry.1).as_secs_f64() * per_second;
        let mut tokens = (entry.0 + refill).min(burst);
        let allowed = tokens >= 1.0;
        if allowed {
            tokens -= 1.0;
        }
        *entry = (tokens, now);
        Some(Decision {
            allowed,
            limit: burst as u32,
            remaining: tokens.floor().max(0.0) as u32,
            reset_secs: ((burst - tokens) / per_second).ceil() as u64,
            retry_after_secs: if allowed {
                0
            } else {
                ((1.0 - tokens) / per_second).ceil().max(1.0) as u64
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter(master: bool) -> RateLimiter {
        RateLimiter::new(&RateLimitConfig {
            enabled: true,
            burst: 3,
            per_second: 2.0,
            anonymous: crate::config::BucketConfig {
                burst: 1,
                per_second: 1.0,
            },
            master,
        })
        .unwrap()
    }

    #[test]
    fn a_bucket_allows_the_burst_then_the_rate() {
        let l = limiter(false);
        let t0 = Instant::now();
        for i in 0..3 {
            let d = l.check_at("k", Class::Token, t0).unwrap();
            assert!(d.allowed);
            assert_eq!(d.remaining, 2 - i);
        }
        let d = l.check_at("k", Class::Token, t0).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after_secs, 1);
        assert!(
            l.check_at("other", Class::Token, t0).unwrap().allowed,
            "buckets are per key"
        );
        assert!(
            l.check_at("k", Class::Token, t0 + Duration::from_millis(600))
                .unwrap()
                .allowed,
            "refilled at 2/s"
        );
    }

    #[test]
    fn the_master_token_is_exempt_unless_configured_and_anonymous_callers_have_their_own_figures() {
        let t0 = Instant::now();
        let l = limiter(false);
        assert!((0..100).all(|_| l.check_at("master", Class::Master, t0).is_none()));
        let l = limiter(true);
        let n = (0..10)
            .filter(|_| l.check_at("master", Class::Master, t0).unwrap().allowed)
            .count();
        assert_eq!(
            n, 3,
            "limited like an issued token when rate_limit.master is set"
        );
        let a = l.check_at("ip:1", Class::Anonymous, t0).unwrap();
        assert_eq!((a.allowed, a.limit), (true, 1));
        assert!(!l.check_at("ip:1", Class::Anonymous, t0).unwrap().allowed);
    }
}
