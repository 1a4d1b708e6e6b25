//! Counting the instances of a calendar COUNT rule (DAILY, WEEKLY, MONTHLY, YEARLY with any BY
//! parts) that lie before an instant, without walking to it period by period.
//!
//! On the local wall clock the number of instances of a period depends only on the calendar:
//! the Gregorian calendar repeats every 400 years, and the periods that start in one year hold
//! the same number of instances in every year of the same shape: the weekday of January 1,
//! whether the year (and, for YEARLY, its neighbours: week numbering) is a leap year, and where
//! the rule's INTERVAL puts the first period of the year (its phase). So the count is a sum over
//! years of per-shape counts, each shape counted once per rule with the same period code the walk
//! uses ([`Plan::civil_count`]) and kept in the plan.
//!
//! The zone maps local times to instants: a fold never makes two local times one instant (the
//! earlier one is taken), but a gap moves the local times it skips forward by its length, onto
//! later local times that may also be instances (two instances become one) or across a period
//! boundary (out of order, which the walk then drops). Only gaps whose skipped local times hold
//! one of the rule's times of day can do that; the periods around each such gap, and the first
//! two periods (DTSTART, the instants before it), are walked exactly and replace their civil
//! counts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;

use super::period::ceil_div;
use super::{local_civil, Plan};
use crate::calendar::{days_from_civil, is_leap, weekday, MAX_YEAR};
use crate::rule::Frequency;

/// Offset changes looked at before giving the count up to the walk.
const MAX_TRANSITIONS: usize = 20_000;

/// What a plan keeps between calls: civil instance counts of the periods starting in one year,
/// by year shape, and the periods walked around gaps with their corrections.
#[derive(Debug, Clone, Default)]
pub(crate) struct Memo(pub(super) Arc<Mutex<Kept>>);

#[derive(Debug, Default)]
pub(crate) struct Kept {
    counts: HashMap<u64, u64>,
    /// Offset changes are scanned up to this instant (seconds).
    scanned: i64,
    /// Merged runs of periods walked exactly: (first, last, walked minus civil count).
    runs: Vec<(i64, i64, Option<i64>)>,
    /// Sub-daily counts ([`Plan::skip_counted`]).
    pub(super) segs: super::count::Segs,
}

/// How far past the asked instant offset changes are scanned at once (about 100 years).
pub(super) const SCAN_AHEAD: i64 = 100 * 31_556_952;

impl Plan {
    /// The shape of year `y` for this rule's periods starting in it at `phase`.
    fn year_key(&self, y: i64, phase: i64) -> u64 {
        let jan1 = weekday(days_from_civil(y, 1, 1)) as u64;
        let neighbours = self.freq == Frequency::Yearly || self.need_year;
        let (prev, next) = if neighbours {
            (is_leap(y - 1), is_leap(y + 1))
        } else {
            (false, false)
        };
        let flags = u64::from(is_leap(y)) | u64::from(prev) << 1 | u64::from(next) << 2;
        (phase as u64) << 6 | flags << 3 | jan1
    }

    /// Civil instances of periods `[a, b)`, one period at a time.
    fn civil_direct(&self, a: i64, b: i64) -> u64 {
        (a..b).map_while(|k| self.civil_count(k)).sum()
    }

    /// Civil instances of periods `[0, kb)`: whole years by shape, the ends period by period.
    fn civil_sum(&self, memo: &mut HashMap<u64, u64>, kb: i64) -> u64 {
        let i = self.interval;
        let mut sum = 0u64;
        let mut y = self.sc.year - 1;
        let mut u = self.first_unit_of_year(y);
        while y <= MAX_YEAR {
            let u1 = self.first_unit_of_year(y + 1);
            let (lo, hi) = (ceil_div(u, i), ceil_div(u1, i));
            if lo >= kb {
                break;
            }
            let (a, b) = (lo.max(0), hi.min(kb));
            if a < b {
                if a == lo && b == hi {
                    let key = self.year_key(y, lo * i - u);
                    sum += match memo.get(&key) {
                        Some(&c) => c,
                        None => {
                            let c = self.civil_direct(lo, hi);
                            memo.insert(key, c);
                            c
                        }
                    };
                } else {
                    sum += self.civil_direct(a, b);
                }
            }
            y += 1;
            u = u1;
        }
        sum
    }

    /// Does one of the rule's times of day fall in the local seconds `[a, b)`?
    fn times_in_window(&self, a: i64, b: i64) -> bool {
        let (d0, d1) = (a.div_euclid(86_400), (b - 1).div_euclid(86_400));
        if d1 - d0 > 2 {
            return true;
        }
        (d0..=d1).any(|d| {
            let lo = a.max(d * 86_400) - d * 86_400;
            let hi = b.min((d + 1) * 86_400) - d * 86_400;
            self.times.iter().any(|&(h, m, s)| {
                let x = h * 3600 + m * 60 + s;
                (lo..hi).contains(&x)
            })
        })
    }

    /// Instances the walk emits from periods `a..=b`, given that the period before `a` ends
    /// before all of them (DTSTART itself is emitted apart).
    fn walked(&self, a: i64, b: i64) -> u64 {
        let mut last = self.start;
        let mut n = 0;
        for k in a..=b {
            let Some(v) = self.period_instants(k) else {
                break;
            };
            for t in v {
                if t > last {
                    n += 1;
                    last = t;
                }
            }
        }
        n
    }

    /// For a calendar COUNT rule: a period at or before the one holding the first instance
    /// after `after`, and how many instances (DTSTART included) come before it. `None` for
    /// other rules or when the zone has too many offset changes; the caller then walks.
    pub(crate) fn skip_calendar(&self, after: Timestamp) -> Option<(i64, u64)> {
        if self.freq.is_sub_daily() || self.count.is_none() || self.until.is_some() {
            return None;
        }
        let mut k0 = self.period_near(after);
        if k0 < 2 {
            return None;
        }
        let mut kept = self.memo.0.lock().ok()?;
        let kept = &mut *kept;
        let limit = (local_civil(&self.tz, after).day + 3) * 86_400;
        if kept.runs.is_empty() || kept.scanned < limit {
            kept.scanned = limit.saturating_add(SCAN_AHEAD);
            kept.runs = self.gap_runs(kept.scanned)?;
        }
        // Never start the walk inside a run: its first periods would not see the run's
        // earlier instants.
        if let Some(&(a, ..)) = kept.runs.iter().find(|&&(a, b, _)| a <= k0 && k0 <= b) {
            k0 = a;
        }
        if k0 < 2 {
            return None;
        }
        let mut total = 1 + i128::from(self.civil_sum(&mut kept.counts, k0));
        for run in kept.runs.iter_mut().take_while(|r| r.0 < k0) {
            let (a, b) = (run.0, run.1);
            let c = *run.2.get_or_insert_with(|| {
                self.walked(a, b) as i64 - self.civil_direct(a, b + 1) as i64
            });
            total += i128::from(c);
        }
        Some((k0, u64::try_from(total).ok()?))
    }

    /// The runs of periods to walk exactly, up to offset changes before `limit` (seconds):
    /// the first two periods, and those around each gap that skips one of the rule's local
    /// times; merged and sorted. `None` past [`MAX_TRANSITIONS`].
    fn gap_runs(&self, limit: i64) -> Option<Vec<(i64, i64, Option<i64>)>> {
        let mut runs: Vec<(i64, i64)> = vec![(0, 1)];
        let mut off = i64::from(self.tz.to_offset(self.start).seconds());
        for (n, tr) in self.tz.following(self.start).enumerate() {
            let t = tr.timestamp().as_second();
            if t >= limit {
                break;
            }
            if n >= MAX_TRANSITIONS {
                return None;
            }
            let (old, new) = (off, i64::from(tr.offset().seconds()));
            off = new;
            if new > old && self.times_in_window(t + old, t + new) {
                let lo = self.period_of_day((t + old).div_euclid(86_400) - 1);
                let hi = self.period_of_day((t + new - 1).div_euclid(86_400) + 1);
                runs.push((lo.max(0), hi));
            }
        }
        runs.sort_unstable();
        let mut merged: Vec<(i64, i64, Option<i64>)> = Vec::with_capacity(runs.len());
        for (a, b) in runs {
            match merged.last_mut() {
                // Only overlapping runs merge: a gap moves instants within the days around it,
                // which all belong to its own run, so runs of different gaps do not interact
                // (merging adjacent ones made one run of every DST year for a YEARLY rule
                // with a time in each gap, walked whole on every call).
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b, None)),
            }
        }
        Some(merged)
    }
}
