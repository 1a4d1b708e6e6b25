//! Counting the instances of a COUNT rule that lie before an instant, without walking to it.
//!
//! A COUNT rule whose periods do not hold exactly one instance each must know how many
//! instances precede the first one it returns; walking from DTSTART to find out costs one step
//! per period (4 billion for `FREQ=SECONDLY;BYMONTH=1,...,12;COUNT=4000000000` from 1900).
//!
//! The class counted here: sub-daily rules with one instance per step — `SECONDLY`, `MINUTELY`
//! without `BYSECOND`, `HOURLY` without `BYMINUTE`/`BYSECOND`, no `BYSETPOS` — whose other parts
//! filter the local time of each step: days (BYMONTH, BYMONTHDAY, BYYEARDAY, plain BYDAY) and
//! times of day (BYHOUR, BYMINUTE, BYSECOND). A step is an instance when its own local date and
//! time pass, which is exactly what the walk checks; so elapsed time is cut at the zone's offset
//! changes into segments of one fixed offset, where local time is elapsed time plus a constant,
//! and in each segment the steps that fall in the allowed times of each selected local day are
//! counted with divisions. A fold visits local times twice and a gap skips them, as the walk
//! does. When the step divides a day, every whole day of a segment holds the same count, so a
//! segment costs one day's work plus the count of its selected days.

use jiff::Timestamp;

use super::cycle::SCAN_AHEAD;
use super::Plan;
use crate::calendar::{civil_from_days, days_in_month};
use crate::rule::Frequency;

/// Offset changes looked at before giving the count up to the walk (two a year for 400 years
/// is 800).
const MAX_TRANSITIONS: usize = 20_000;
/// The zone's offset changes after DTSTART, scanned once per plan, and the filtered steps of
/// the whole segments between them.
#[derive(Debug, Default)]
pub(crate) struct Segs {
    /// Offset changes are scanned up to this instant (seconds).
    scanned: i64,
    first_off: i64,
    /// (instant, offset after it).
    trans: Vec<(i64, i64)>,
    /// Index of the first change by part of the expansion's unit (`usize::MAX`: none).
    first_bad: usize,
    /// `pre[i]`: steps counted in the segments before change `i`.
    pre: Vec<i64>,
}

/// Allowed time-of-day intervals beyond which the walk is used.
const MAX_INTERVALS: usize = 4_096;
/// Rough work (intervals times days counted one by one) beyond which the walk is used.
const MAX_WORK: i64 = 4_000_000;
/// Longest segment kept without a cut (a mean Gregorian year, seconds).
const YEAR: i64 = 31_556_952;

impl Plan {
    /// True for the rules [`Plan::skip_counted`] counts: every sub-daily rule without BYWEEKNO
    /// (which sub-daily rules cannot have) or UNTIL.
    pub(crate) fn counts_by_day(&self) -> bool {
        self.freq.is_sub_daily() && self.week_nos.is_empty() && self.until.is_none()
    }

    /// The minute and second lists that filter a step's local time (the others expand it).
    fn filters(&self) -> (&[i64], &[i64]) {
        match self.freq {
            Frequency::Secondly => (&self.f_minutes, &self.f_seconds),
            Frequency::Minutely => (&self.f_minutes, &[]),
            _ => (&[], &[]),
        }
    }

    /// Instances each step that passes the filters yields, and the unit its expansion is laid
    /// out in (the step's local hour or minute; 1 when the step itself is the instance).
    fn per_step(&self) -> (u64, i64) {
        let (n, unit) = match self.freq {
            Frequency::Hourly if !(self.f_minutes.is_empty() && self.f_seconds.is_empty()) => {
                (self.exp_minutes.len() * self.exp_seconds.len(), 3600)
            }
            Frequency::Minutely if !self.f_seconds.is_empty() => (self.exp_seconds.len(), 60),
            _ => (1, 1),
        };
        let n = n as i64;
        if self.set_pos.is_empty() {
            return (n as u64, unit);
        }
        let kept = super::set_positions(&self.set_pos, n).len() as u64;
        (kept, unit)
    }

    /// The allowed local times of day as sorted, disjoint `[from, to)` second intervals.
    fn allowed_times(&self) -> Option<Vec<(i64, i64)>> {
        let all = |v: &[i64], n: i64| -> Vec<i64> {
            if v.is_empty() {
                (0..n).collect()
            } else {
                v.to_vec()
            }
        };
        let mut out: Vec<(i64, i64)> = Vec::new();
        fn push(out: &mut Vec<(i64, i64)>, a: i64, b: i64) {
            match out.last_mut() {
                Some(last) if last.1 == a => last.1 = b,
                _ => out.push((a, b)),
            }
        }
        let (f_minutes, f_seconds) = self.filters();
        let hours = all(&self.f_hours, 24);
        for &h in &hours {
            if f_minutes.is_empty() && f_seconds.is_empty() {
                push(&mut out, h * 3600, h * 3600 + 3600);
                continue;
            }
            for m in all(f_minutes, 60) {
                if f_seconds.is_empty() {
                    push(&mut out, h * 3600 + m * 60, h * 3600 + m * 60 + 60);
                    continue;
                }
                for &s in f_seconds.iter().filter(|&&s| s < 60) {
                    let t = h * 3600 + m * 60 + s;
                    push(&mut out, t, t + 1);
                }
                if out.len() > MAX_INTERVALS {
                    return None;
                }
            }
        }
        Some(out)
    }

    fn day_selected(&self, d: i64) -> bool {
        let (y, m, md) = civil_from_days(d);
        self.day_ok(d, y, m, md, None)
    }

    /// Selected local days in `[d0, d1)`, a whole month at a time where the month decides.
    fn selected_days(&self, d0: i64, d1: i64) -> i64 {
        let whole_months =
            self.month_days.is_empty() && self.year_days.is_empty() && self.days.is_empty();
        if whole_months && !self.has_months {
            return (d1 - d0).max(0);
        }
        let weekdays_only = self.month_days.is_empty()
            && self.year_days.is_empty()
            && !self.has_months
            && self.days.iter().all(|&(ord, _)| ord.is_none());
        if weekdays_only && d1 > d0 {
            // Whole weeks hold each weekday once; the rest is looked at day by day.
            let weeks = (d1 - d0) / 7;
            let mut n = weeks * self.days.len() as i64;
            for d in d0 + weeks * 7..d1 {
                n += i64::from(self.day_selected(d));
            }
            return n;
        }
        // Only days of the month (and months) select: a whole month is counted from its length.
        let month_days_only = self.year_days.is_empty() && self.days.is_empty();
        let mut n = 0;
        let mut d = d0;
        while d < d1 {
            let (y, m, md) = civil_from_days(d);
            let len = days_in_month(y, m);
            if month_days_only && md == 1 && d + len <= d1 {
                if self.month_days.is_empty() {
                    if !self.has_months || self.months[m as usize] {
                        n += len;
                    }
                } else if !self.has_months || self.months[m as usize] {
                    let mut hit = [false; 32];
                    for &x in &self.month_days {
                        let i = if x > 0 { x } else { len + 1 + x };
                        if (1..=len).contains(&i) {
                            hit[i as usize] = true;
                        }
                    }
                    n += hit.iter().filter(|&&h| h).count() as i64;
                }
                d += len;
                continue;
            }
            if whole_months || (self.has_months && !self.months[m as usize]) {
                let end = (d + days_in_month(y, m) - md + 1).min(d1);
                if !self.has_months || self.months[m as usize] {
                    n += end - d;
                }
                d = end;
                continue;
            }
            n += i64::from(self.day_ok(d, y, m, md, None));
            d += 1;
        }
        n
    }

    /// For a COUNT rule of the class above: a period at or before the one holding the first
    /// instance after `after`, and how many instances (DTSTART included) come before it. `None`
    /// for other rules, or where counting would cost more than walking; the caller then walks.
    pub(crate) fn skip_counted(&self, after: Timestamp) -> Option<(i64, u64)> {
        if !self.counts_by_day() {
            return None;
        }
        let k0 = self.period_near(after);
        if k0 < 2 {
            return None;
        }
        let (per, unit) = self.per_step();
        let allowed = self.allowed_times()?;
        let step = self.step.max(1);
        let s0 = self.start_s;
        // Steps 1..k0 lie in (s0, bound).
        let bound = s0.checked_add(k0.checked_mul(step)?)?;
        if 86_400 % step != 0 {
            let days = (bound - s0) / 86_400 + 2;
            if days.saturating_mul(allowed.len() as i64) > MAX_WORK {
                return None;
            }
        }
        // Segments of one offset between the zone's offset changes, kept in the plan with the
        // steps of the whole ones counted, so a later call only counts the last one.
        let mut kept = self.memo.0.lock().ok()?;
        let segs = &mut kept.segs;
        if segs.pre.is_empty() || segs.scanned < bound {
            *segs = Segs::default();
            segs.first_bad = usize::MAX;
            segs.scanned = bound.saturating_add(SCAN_AHEAD);
            segs.first_off = i64::from(self.tz.to_offset(self.start).seconds());
            let mut off = segs.first_off;
            let mut at = s0;
            // Long spans of one offset are cut about every year too (a change to the same
            // offset), so the last, partial segment a call counts is short.
            let cut = |segs: &mut Segs, at: &mut i64, t: i64, off: i64| {
                while t - *at > YEAR && segs.trans.len() <= MAX_TRANSITIONS {
                    *at += YEAR;
                    segs.trans.push((*at, off));
                }
            };
            for tr in self.tz.following(self.start) {
                let t = tr.timestamp().as_second();
                if t >= segs.scanned || segs.trans.len() > MAX_TRANSITIONS {
                    break;
                }
                cut(segs, &mut at, t, off);
                at = t;
                let new = i64::from(tr.offset().seconds());
                // An expansion laid out in the step's local hour (minute) stays in step with
                // the steps only across offset changes of whole hours (minutes).
                if (new - off) % unit != 0 && segs.first_bad == usize::MAX {
                    segs.first_bad = segs.trans.len();
                }
                segs.trans.push((t, new));
                off = new;
            }
            let end = segs.scanned;
            cut(segs, &mut at, end, off);
            segs.pre = vec![0];
        }
        let idx = segs.trans.partition_point(|&(t, _)| t < bound);
        if idx > MAX_TRANSITIONS || segs.first_bad < idx {
            return None;
        }
        while segs.pre.len() <= idx {
            let i = segs.pre.len() - 1;
            let (from, off) = if i == 0 {
                (s0, segs.first_off)
            } else {
                segs.trans[i - 1]
            };
            let n = self.segment_steps(&allowed, from, segs.trans[i].0, off, i64::MAX);
            segs.pre.push(segs.pre[i] + n);
        }
        let (from, off) = if idx == 0 {
            (s0, segs.first_off)
        } else {
            segs.trans[idx - 1]
        };
        let total = segs.pre[idx] + self.segment_steps(&allowed, from, bound, off, k0);
        drop(kept);
        // Step 0 is walked: DTSTART, and the instances of its expansion after it.
        let first = super::RuleIter::resume(self, None, None, true, 1).count() as u64;
        first
            .checked_add(per.checked_mul(u64::try_from(total).ok()?)?)
            .map(|n| (k0, n))
    }

    /// Steps k in `[1, k0)` in the segment `[a, b)` of one offset `off` whose local time passes
    /// the filters.
    fn segment_steps(&self, allowed: &[(i64, i64)], a: i64, b: i64, off: i64, k0: i64) -> i64 {
        if a >= b {
            return 0;
        }
        let step = self.step.max(1);
        let s0 = self.start_s;
        // Steps k in [1, k0) with s0 + k * step in [w0, w1).
        let steps_in = |w0: i64, w1: i64| -> i64 {
            let ceil = |x: i64| {
                let d = x - s0;
                if d <= 0 {
                    d.div_euclid(step) + i64::from(d.rem_euclid(step) != 0)
                } else {
                    (d - 1) / step + 1
                }
            };
            let lo = ceil(w0).max(1);
            let hi = ceil(w1).min(k0);
            (hi - lo).max(0)
        };
        // Steps in the allowed times of local day `d`, within [a, b).
        let in_day = |d: i64| -> i64 {
            let base = d * 86_400 - off;
            allowed
                .iter()
                .map(|&(x, y)| steps_in((base + x).max(a), (base + y).min(b)))
                .sum()
        };
        let first = (a + off).div_euclid(86_400);
        let last = (b - 1 + off).div_euclid(86_400);
        let mut total = 0;
        // Days cut by the segment's ends, counted one by one. (A segment within one local day
        // has that day once: counting it twice numbered rules whose `after` lies on DTSTART's
        // local day one too high; found by the property test from 1900.)
        let ends: &[i64] = if first == last {
            &[first]
        } else {
            &[first, last]
        };
        for &d in ends {
            if self.day_selected(d) {
                total += in_day(d);
            }
        }
        if last - first < 2 {
            return total;
        }
        if 86_400 % step == 0 {
            // Whole days of one offset hold the same steps: the step divides a day.
            return total + in_day(first + 1) * self.selected_days(first + 1, last);
        }
        // The steps of a day repeat every `cycle` days (the step then divides the time passed),
        // and a selection by weekday alone every 7: where that block is short, whole blocks
        // are counted once.
        let cycle = step / gcd(step, 86_400);
        let every_day = !self.has_months && self.month_days.is_empty() && self.year_days.is_empty();
        let block = if every_day && self.days.is_empty() {
            cycle
        } else if every_day && self.days.iter().all(|&(ord, _)| ord.is_none()) {
            cycle / gcd(cycle, 7) * 7
        } else {
            i64::MAX
        };
        let mut d = first + 1;
        if block <= 1_000 && last - d > block {
            let one: i64 = (d..d + block)
                .filter(|&x| self.day_selected(x))
                .map(&in_day)
                .sum();
            let blocks = (last - d) / block;
            total += one * blocks;
            d += blocks * block;
        }
        for d in d..last {
            if self.day_selected(d) {
                total += in_day(d);
            }
        }
        total
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a.abs()
    } else {
        gcd(b, a % b)
    }
}
