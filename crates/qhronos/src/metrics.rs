//! Prometheus metrics. One registry per application (no global recorder), so that several
//! servers in one process (tests) keep their figures apart. Counters and histograms are atomics
//! updated on the hot path; queue depths and lags are read from the store when scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// completed | retry | failed | missed
    pub outcome: &'static str,
    /// webhook | apicall
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// A standard method or `other` (see `auth::gate::method_label`).
    pub method: &'static str,
    /// The route template (`/events/{id}`), or `unmatched`: never the raw path.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: &'static str,
    pub state: &'static str,
}

type HistFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs … ~26 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

pub struct Metrics {
    registry: Registry,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub attempt_duration: HistFamily<ActionLabel>,
    pub fire_lateness: Histogram,
    pub claim_batch: Histogram,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: HistFamily<RouteLabels>,
    pub rate_limited: Counter,
    pub occurrences: Family<StatusLabel, Gauge>,
    pub oldest_overdue: Gauge<f64, AtomicU64>,
    pub expander_lag: Gauge<f64, AtomicU64>,
    pub db_pool: Family<PoolLabels, Gauge>,
    pub retention_removed: Family<StatusLabel, Counter>,
    /// Scheduled backups that failed (written, checked or rotated).
    pub backup_failures: Counter,
    /// When the last scheduled backup succeeded (seconds since the epoch; 0: none yet).
    pub backup_last_success: Gauge<f64, AtomicU64>,
    /// Moving average of fire lateness in microseconds (for `/status`).
    pub fire_lag_avg_us: AtomicU64,
    /// `metrics.enabled`: when false nothing is recorded and `/metrics` answers 404.
    pub enabled: bool,
    /// The store's figures for `/status` and `/metrics`, read at most once a second.
    pub store_gauges: crate::gauge_cache::GaugeCache,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut r = Registry::default();
        let m = Metrics {
            deliveries: Family::default(),
            attempt_duration: Family::new_with_constructor(latency_histogram),
            fire_lateness: Histogram::new(exponential_buckets(0.0001, 2.0, 20)),
            claim_batch: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_histogram),
            rate_limited: Counter::default(),
            occurrences: Family::default(),
            oldest_overdue: Gauge::default(),
            expander_lag: Gauge::default(),
            db_pool: Family::default(),
            retention_removed: Family::default(),
            backup_failures: Counter::default(),
            backup_last_success: Gauge::default(),
            fire_lag_avg_us: AtomicU64::new(0),
            enabled: true,
            store_gauges: Default::default(),
            registry: Registry::default(),
        };
        r.register(
            "qhronos_deliveries",
            "Attempts and misfires by outcome (completed, retry, failed, missed) and action type",
            m.deliveries.clone(),
        );
        r.register(
            "qhronos_attempt_duration_seconds",
            "Duration of delivery attempts",
            m.attempt_duration.clone(),
        );
        r.register(
            "qhronos_fire_lateness_seconds",
            "Send time minus due time of first attempts",
            m.fire_lateness.clone(),
        );
        r.register(
            "qhronos_claim_batch_size",
            "Occurrences claimed per claim round trip",
            m.claim_batch.clone(),
        );
        r.register(
            "qhronos_http_requests",
            "HTTP requests by method, route and status",
            m.http_requests.clone(),
        );
        r.register(
            "qhronos_http_request_duration_seconds",
            "HTTP request latency by method and route",
            m.http_duration.clone(),
        );
        r.register(
            "qhronos_rate_limited",
            "Requests refused by the rate limiter",
            m.rate_limited.clone(),
        );
        r.register(
            "qhronos_occurrences",
            "Occurrences by status (read at scrape time)",
            m.occurrences.clone(),
        );
        r.register(
            "qhronos_oldest_overdue_seconds",
            "Age of the oldest pending occurrence past its due time",
            m.oldest_overdue.clone(),
        );
        r.register(
            "qhronos_expander_lag_seconds",
            "How far the earliest unexpanded instance lies inside the look-ahead window",
            m.expander_lag.clone(),
        );
        r.register(
            "qhronos_db_pool_connections",
            "Database pool connections by pool and state",
            m.db_pool.clone(),
        );
        r.register(
            "qhronos_retention_removed",
            "Rows removed by retention, by kind",
            m.retention_removed.clone(),
        );
        r.register(
            "qhronos_backup_failures",
            "Scheduled backups that failed (writing, integrity check or rotation)",
            m.backup_failures.clone(),
        );
        r.register(
            "qhronos_backup_last_success_timestamp_seconds",
            "When the last scheduled backup succeeded (0: none yet)",
            m.backup_last_success.clone(),
        );
        Metrics { registry: r, ..m }
    }

    pub fn claimed(&self, n: usize) {
        if self.enabled {
            self.claim_batch.observe(n as f64);
        }
    }

    /// `n` outcomes at once (instances the expander recorded as missed after a downtime).
    pub fn delivery_n(&self, outcome: &'static str, action: &'static str, n: u64) {
        if self.enabled {
            self.deliveries
                .get_or_create(&DeliveryLabels { outcome, action })
                .inc_by(n);
        }
    }

    pub fn delivery(&self, outcome: &'static str, action: &'static str) {
        if self.enabled {
            self.deliveries
                .get_or_create(&DeliveryLabels { outcome, action })
                .inc();
        }
    }

    /// One attempt finished after `ms` milliseconds with this outcome.
    pub fn attempted(&self, action: &'static str, ms: i64, outcome: &'static str) {
        if self.enabled {
            self.attempt_duration
                .get_or_create(&ActionLabel { action })
                .observe(ms as f64 / 1000.0);
            self.delivery(outcome, action);
        }
    }

    /// Records the lateness of a first attempt (histogram and moving average).
    pub fn fire_late(&self, late_us: i64) {
        if !self.enabled {
            return;
        }
        let us = late_us.max(0) as u64;
        self.fire_lateness.observe(us as f64 / 1e6);
        let old = self.fire_lag_avg_us.load(Ordering::Relaxed);
        // Weight 1/16: a figure that follows the last few hundred fires.
        let new = if old == 0 {
            us
        } else {
            old - old / 16 + us / 16
        };
        self.fire_lag_avg_us.store(new, Ordering::Relaxed);
    }

    /// A registry that records nothing (`metrics.enabled: false`).
    pub fn disabled() -> Metrics {
        Metrics {
            enabled: false,
            ..Metrics::new()
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
