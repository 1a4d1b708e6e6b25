//! The mergeable percentile sketch analytics keep for lateness and durations, and its stored
//! form: a JSON object of bin → count (`{"12":5,"40":1}`), merged by adding counts.

use std::fmt::Write as _;

use crate::domain::Millis;

/// The sketch's bin ratio: bin `b ≥ 1` holds values in `[γ^(b-1), γ^b)` ms.
pub const GAMMA: f64 = 1.1;
/// The largest relative error of a percentile read from a [`Sketch`]: `(γ−1)/(γ+1)`, 4.8 %.
pub const RELATIVE_ERROR: f64 = (GAMMA - 1.0) / (GAMMA + 1.0);
/// Bins above this are merged into it (values above ~10^16 ms).
const MAX_BIN: i64 = 400;

/// A mergeable percentile sketch: counts per log-scale bin. Bin 0 holds 0 (and negative values,
/// clamped); bin `b ≥ 1` holds `[γ^(b-1), γ^b)` ms. A percentile read from it is within
/// [`RELATIVE_ERROR`] of the sample at that rank (exact for 0 and for values below 10 ms).
#[derive(Debug, Clone, Default)]
pub struct Sketch {
    /// Count per bin, indexed by bin (no trailing zeros are significant).
    bins: Vec<i64>,
}

impl PartialEq for Sketch {
    fn eq(&self, other: &Self) -> bool {
        self.bins().eq(other.bins())
    }
}

impl Eq for Sketch {}

impl Sketch {
    /// The bin a value (ms) falls in.
    pub fn bin(v: Millis) -> i64 {
        if v <= 0 {
            return 0;
        }
        let b = 1 + ((v as f64).ln() / GAMMA.ln()).floor() as i64;
        b.clamp(1, MAX_BIN)
    }

    /// The value reported for a bin: the point of `[γ^(b-1), γ^b)` with the same relative error
    /// to both ends, kept within the integers the bin holds.
    fn value(b: i64) -> Millis {
        if b <= 0 {
            return 0;
        }
        let lo = GAMMA.powi((b - 1) as i32);
        let hi = lo * GAMMA;
        let r = (2.0 * lo * hi / (lo + hi)).round() as i64;
        let (lo_i, hi_i) = (lo.ceil() as i64, hi.ceil() as i64 - 1);
        if lo_i <= hi_i {
            r.clamp(lo_i, hi_i)
        } else {
            r
        }
    }

    /// Adds one value (ms).
    pub fn add(&mut self, v: Millis) {
        self.add_n(Self::bin(v), 1);
    }

    /// Adds `n` values to bin `b` (merging is adding bins); `b` is clamped to the bins there are.
    pub fn add_n(&mut self, b: i64, n: i64) {
        let i = b.clamp(0, MAX_BIN) as usize;
        if i >= self.bins.len() {
            self.bins.resize(i + 1, 0);
        }
        self.bins[i] += n;
    }

    /// Adds every bin of `other`.
    pub fn merge(&mut self, other: &Sketch) {
        if other.bins.len() > self.bins.len() {
            self.bins.resize(other.bins.len(), 0);
        }
        for (a, b) in self.bins.iter_mut().zip(&other.bins) {
            *a += b;
        }
    }

    /// How many values it holds.
    pub fn count(&self) -> i64 {
        self.bins.iter().sum()
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.bins.iter().all(|n| *n == 0)
    }

    /// The `q` quantile (0 < q ≤ 1; 0.99 for p99), `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Millis> {
        let total = self.count();
        if total <= 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
        let mut seen = 0;
        for (b, n) in self.bins() {
            seen += n;
            if seen >= rank {
                return Some(Self::value(b));
            }
        }
        self.bins().last().map(|(b, _)| Self::value(b))
    }

    /// The bins that hold something, ascending: `(bin, count)`.
    pub fn bins(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.bins
            .iter()
            .enumerate()
            .filter(|(_, n)| **n != 0)
            .map(|(b, n)| (b as i64, *n))
    }

    /// The stored form: `{"bin":count,…}` (`{}` when empty).
    pub(crate) fn to_json(&self) -> String {
        let mut s = String::from("{");
        for (i, (b, n)) in self.bins().enumerate() {
            if i > 0 {
                s.push(',');
            }
            // Writing to a String cannot fail.
            let _ = write!(s, "\"{b}\":{n}");
        }
        s.push('}');
        s
    }

    /// Adds what one or more stored forms hold, written one after the other (`{…}{…}`, as the
    /// query's string aggregate leaves them; either store's spacing). `Err` names what was
    /// not a stored sketch.
    pub(crate) fn add_json(&mut self, text: &str) -> Result<(), String> {
        let bad = || format!("not a sketch: {:.60}", text);
        let mut key: Option<i64> = None;
        let mut depth = 0;
        let mut chars = text.bytes().peekable();
        while let Some(c) = chars.next() {
            match c {
                b'{' if depth == 0 => depth = 1,
                b'}' if depth == 1 && key.is_none() => depth = 0,
                b' ' | b',' | b':' | b'"' if depth == 1 => {}
                b'0'..=b'9' | b'-' if depth == 1 => {
                    let neg = c == b'-';
                    let mut v: i64 = if neg { 0 } else { i64::from(c - b'0') };
                    while let Some(d) = chars.peek().copied().filter(u8::is_ascii_digit) {
                        chars.next();
                        v = v
                            .checked_mul(10)
                            .and_then(|v| v.checked_add(i64::from(d - b'0')))
                            .ok_or_else(bad)?;
                    }
                    let v = if neg { -v } else { v };
                    match key.take() {
                        None => key = Some(v),
                        Some(b) => self.add_n(b, v),
                    }
                }
                _ => return Err(bad()),
            }
        }
        if depth != 0 || key.is_some() {
            return Err(bad());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sketch_percentiles_are_within_the_stated_error() {
        let mut s = Sketch::default();
        let vals: Vec<i64> = (0..10_000).map(|i| (i * 37) % 5_000 + 1).collect();
        for v in &vals {
            s.add(*v);
        }
        let mut sorted = vals.clone();
        sorted.sort_unstable();
        for q in [0.5, 0.9, 0.99] {
            let exact = sorted[((q * sorted.len() as f64).ceil() as usize).max(1) - 1] as f64;
            let got = s.quantile(q).expect("not empty") as f64;
            assert!(
                (got - exact).abs() / exact <= RELATIVE_ERROR + 1e-9,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(Sketch::default().quantile(0.5), None);
    }

    #[test]
    fn small_values_and_zero_are_exact() {
        for v in 0..10 {
            let mut s = Sketch::default();
            s.add(v);
            assert_eq!(s.quantile(0.5), Some(v));
        }
        let mut s = Sketch::default();
        s.add(-5);
        assert_eq!(s.quantile(0.99), Some(0));
    }

    #[test]
    fn merging_is_adding_bins() {
        let (mut a, mut b, mut all) = (Sketch::default(), Sketch::default(), Sketch::default());
        for v in 1..500 {
            a.add(v);
            all.add(v);
        }
        for v in 400..2_000 {
            b.add(v);
            all.add(v);
        }
        let mut by_bins = a.clone();
        for (bin, n) in b.bins() {
            by_bins.add_n(bin, n);
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(by_bins, all);
    }

    #[test]
    fn the_stored_form_round_trips_and_concatenations_add() {
        let mut s = Sketch::default();
        for v in [0, 3, 3, 250, 90_000] {
            s.add(v);
        }
        let json = s.to_json();
        let parsed: std::collections::BTreeMap<String, i64> =
            serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(parsed.values().sum::<i64>(), 5);
        let mut back = Sketch::default();
        back.add_json(&json).expect("parses");
        assert_eq!(back, s);
        // As PostgreSQL prints jsonb, and two objects as the string aggregate joins them.
        let mut two = Sketch::default();
        two.add_json(r#"{"0": 1, "12": 2}{"12":3,"40":1}{}"#)
            .expect("parses");
        assert_eq!(
            two.bins().collect::<Vec<_>>(),
            vec![(0, 1), (12, 5), (40, 1)]
        );
        assert_eq!(Sketch::default().to_json(), "{}");
        for bad in [
            "{\"1\":2",
            "[1,2]",
            "{\"1\"}",
            "{\"x\":1}",
            "{\"1\":99999999999999999999}",
        ] {
            assert!(Sketch::default().add_json(bad).is_err(), "{bad}");
        }
    }
}
