//! Percentiles over plain sorted vectors, and the delivery accounting every scenario shares.

use std::collections::{HashMap, HashSet};

use crate::receiver::Delivery;

/// Nearest-rank percentile of an ascending slice (`q` in 0..=100).
pub fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn sort(v: &mut [f64]) {
    v.sort_by(|a, b| a.total_cmp(b));
}

pub fn ms(ns: i128) -> f64 {
    ns as f64 / 1e6
}

/// Prints `label  value` rows, aligned.
pub fn table(title: &str, rows: &[(&str, String)]) {
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    println!("\n== {title} ==");
    for (k, v) in rows {
        println!("  {k:<w$}  {v}");
    }
}

/// What arrived, against what was expected.
pub struct Accounting {
    /// First arrival of each occurrence, in arrival order.
    pub firsts: Vec<Delivery>,
    /// Requests beyond the first for an occurrence id.
    pub duplicates: usize,
    /// Occurrence ids that arrived more than once.
    pub duplicated_ids: Vec<String>,
    /// Expected event ids that never arrived.
    pub lost: Vec<String>,
    /// Deliveries whose `webhook-id` header differs from the body's `occurrence_id`.
    pub id_mismatch: usize,
    /// Deliveries for events this run did not create.
    pub unexpected: usize,
}

pub fn account(recs: &[Delivery], expected_events: &[String]) -> Accounting {
    let want: HashSet<&str> = expected_events.iter().map(String::as_str).collect();
    // Deliveries of other events (the `pending` run's restart probes) are counted apart and
    // left out of the lateness and duplicate figures.
    let mut sorted: Vec<&Delivery> = recs
        .iter()
        .filter(|d| want.contains(d.event_id.as_str()))
        .collect();
    sorted.sort_by_key(|d| d.arrival_ns);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut firsts = Vec::new();
    let mut id_mismatch = 0;
    for d in &sorted {
        if d.webhook_id != d.occurrence_id {
            id_mismatch += 1;
        }
        let n = seen.entry(d.occurrence_id.as_str()).or_insert(0);
        *n += 1;
        if *n == 1 {
            firsts.push((*d).clone());
        }
    }
    let duplicated_ids = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k.to_string())
        .collect();
    let got: HashSet<&str> = recs.iter().map(|d| d.event_id.as_str()).collect();
    let lost = expected_events
        .iter()
        .filter(|e| !got.contains(e.as_str()))
        .cloned()
        .collect();
    let unexpected = recs
        .iter()
        .filter(|d| !want.contains(d.event_id.as_str()))
        .count();
    Accounting {
        duplicates: sorted.len() - firsts.len(),
        firsts,
        duplicated_ids,
        lost,
        id_mismatch,
        unexpected,
    }
}

/// Lateness (arrival − scheduled_at) of the first arrival of each occurrence, ms, ascending.
pub fn lateness_ms(firsts: &[Delivery]) -> Vec<f64> {
    let mut v: Vec<f64> = firsts
        .iter()
        .filter_map(|d| d.scheduled_ns.map(|s| ms(d.arrival_ns - s)))
        .collect();
    sort(&mut v);
    v
}

/// When the latest delivery was due, in seconds after the earliest due time of the run: tells a
/// late start from a stall in the middle.
fn latest_due(a: &Accounting) -> String {
    let due: Vec<(i128, i128)> = a
        .firsts
        .iter()
        .filter_map(|d| d.scheduled_ns.map(|s| (s, d.arrival_ns - s)))
        .collect();
    let (Some(first), Some(latest)) = (
        due.iter().map(|(s, _)| *s).min(),
        due.iter().max_by_key(|(_, late)| *late),
    ) else {
        return "-".into();
    };
    format!("{:.3}", (latest.0 - first) as f64 / 1e9)
}

/// The rows every delivery report has: lateness p50/p90/p99/max, early, lost, duplicates.
pub fn lateness_rows(a: &Accounting, expected: usize) -> Vec<(&'static str, String)> {
    let late = lateness_ms(&a.firsts);
    let early = late.iter().filter(|x| **x < 0.0).count();
    let mut rows = vec![
        ("expected", expected.to_string()),
        ("delivered (distinct)", a.firsts.len().to_string()),
        ("lateness p50 (ms)", format!("{:.3}", pct(&late, 50.0))),
        ("lateness p90 (ms)", format!("{:.3}", pct(&late, 90.0))),
        ("lateness p99 (ms)", format!("{:.3}", pct(&late, 99.0))),
        (
            "lateness max (ms)",
            format!("{:.3}", late.last().copied().unwrap_or(f64::NAN)),
        ),
        (
            "lateness min (ms)",
            format!("{:.3}", late.first().copied().unwrap_or(f64::NAN)),
        ),
        ("early (<0)", early.to_string()),
        (
            "late > 100 ms",
            late.iter().filter(|x| **x > 100.0).count().to_string(),
        ),
        ("latest: due at (s after the first due)", latest_due(a)),
        ("lost", a.lost.len().to_string()),
        ("duplicates", a.duplicates.to_string()),
    ];
    if a.id_mismatch > 0 {
        rows.push(("webhook-id != occurrence_id", a.id_mismatch.to_string()));
    }
    if a.unexpected > 0 {
        rows.push(("unexpected deliveries", a.unexpected.to_string()));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(pct(&v, 50.0), 50.0);
        assert_eq!(pct(&v, 99.0), 99.0);
        assert_eq!(pct(&v, 100.0), 100.0);
        assert_eq!(pct(&[7.0], 50.0), 7.0);
        assert!(pct(&[], 50.0).is_nan());
    }

    fn d(occ: &str, ev: &str, at: i128) -> Delivery {
        Delivery {
            arrival_ns: at,
            scheduled_ns: Some(0),
            occurrence_id: occ.into(),
            event_id: ev.into(),
            webhook_id: occ.into(),
            attempt: 1,
        }
    }

    #[test]
    fn counts_lost_and_duplicates() {
        let recs = vec![
            d("o1", "e1", 5),
            d("o1", "e1", 3),
            d("o2", "e2", -1_000_000),
            // Another run's (a restart probe): not in the lateness, not a duplicate.
            d("p1", "probe", 9_000_000_000),
            d("p1", "probe", 9_500_000_000),
        ];
        let a = account(&recs, &["e1".into(), "e2".into(), "e3".into()]);
        assert_eq!(a.unexpected, 2);
        assert_eq!(a.firsts.len(), 2);
        assert_eq!(a.duplicates, 1);
        assert_eq!(a.lost, vec!["e3".to_string()]);
        assert_eq!(a.firsts[0].occurrence_id, "o2");
        assert_eq!(a.firsts[1].arrival_ns, 3);
        assert_eq!(lateness_ms(&a.firsts), vec![-1.0, 0.000003]);
    }
}
