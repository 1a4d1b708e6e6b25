//! Counting the instances of a COUNT rule that lie before an instant, without walking to it.
//!
//! A COUNT rule whose periods do not hold exactly one instance each must know how many
//! instances precede the first one it returns; walking from DTSTART to find out costs one step
//! per period (4 billion for `FREQ=SECONDLY;BYMONTH=1,...,12;COUNT=4000000000` from 1900).
//!
//! The class counted here: sub-daily rules with one instance per step (no BYHOUR, BYMINUTE,
//! BYSECOND or BYSETPOS) whose other parts only select days (BYMONTH, BYMONTHDAY, BYYEARDAY,
//! plain BYDAY). Their instances are the steps that fall on a selected local day, so the count
//! is, for each run of consecutive selected days, the number of steps between the first instant
//! of the run and the first instant after it: one division per run. The first instant of a
//! local day is its local midnight in the zone, found with plain arithmetic far from an offset
//! change and through the zone near one (a midnight in a DST gap begins at the end of the gap,
//! as the expansion does). A zone whose fold or gap straddles a local midnight (local days would
//! not follow elapsed time) is left to the walk.

use jiff::Timestamp;

use super::{local_civil, to_instant, Plan};
use crate::calendar::{civil_from_days, days_in_month};

/// Offset changes looked at before giving the count up to the walk (two a year for 400 years
/// is 800).
const MAX_TRANSITIONS: usize = 20_000;

/// First instant (unix seconds) of each local day, asked in ascending order of days.
struct DayStarts<'a> {
    plan: &'a Plan,
    /// (instant, offset after) of each offset change after DTSTART.
    trans: &'a [(i64, i64)],
    next: usize,
    off: i64,
}

impl DayStarts<'_> {
    fn at(&mut self, day: i64) -> Option<i64> {
        let guess = day.checked_mul(86_400)? - self.off;
        match self.trans.get(self.next) {
            Some(&(t, _)) if guess + 2 * 86_400 >= t => {
                let exact = to_instant(&self.plan.tz, day, 0, 0, 0, 0)?.as_second();
                while let Some(&(t, off)) = self.trans.get(self.next) {
                    if t > exact {
                        break;
                    }
                    self.off = off;
                    self.next += 1;
                }
                Some(exact)
            }
            // No offset change within two days: local midnight is `off` away from UTC.
            _ => Some(guess),
        }
    }
}

impl Plan {
    /// True for the rules [`Plan::skip_counted`] counts.
    pub(crate) fn counts_by_day(&self) -> bool {
        self.freq.is_sub_daily()
            && self.f_hours.is_empty()
            && self.f_minutes.is_empty()
            && self.f_seconds.is_empty()
            && self.set_pos.is_empty()
            && self.week_nos.is_empty()
            && self.until.is_none()
    }

    /// For a COUNT rule of the class above: a period at or before the one holding the first
    /// instance after `after`, and how many instances (DTSTART included) come before it. `None`
    /// for other rules, or where the count would not be exact; the caller then walks.
    pub(crate) fn skip_counted(&self, after: Timestamp) -> Option<(i64, u64)> {
        if !self.counts_by_day() {
            return None;
        }
        let k0 = self.period_near(after);
        if k0 < 2 {
            return None;
        }
        let step = self.step.max(1);
        let s0 = self.start_s;
        // Steps 1..k0 lie in (s0, bound).
        let bound = s0.checked_add(k0.checked_mul(step)?)?;
        let before = |x: i64| -> i64 {
            let d = x - s0;
            let c = if d <= 0 { 0 } else { (d - 1) / step + 1 };
            c.clamp(1, k0) - 1
        };
        let mut trans = Vec::new();
        for tr in self.tz.following(self.start) {
            let t = tr.timestamp().as_second();
            if t > bound + 3 * 86_400 {
                break;
            }
            if trans.len() >= MAX_TRANSITIONS {
                return None;
            }
            let prev = Timestamp::new(t - 1, 0).ok()?;
            let (a, b) = (
                i64::from(self.tz.to_offset(prev).seconds()),
                i64::from(tr.offset().seconds()),
            );
            // The local times skipped (gap) or repeated (fold) by this change must stay within
            // one local day, else local days do not follow elapsed time.
            let (lo, hi) = ((t + a).min(t + b), (t + a).max(t + b));
            if hi > lo && lo.div_euclid(86_400) != (hi - 1).div_euclid(86_400) {
                return None;
            }
            trans.push((t, b));
        }
        let mut starts = DayStarts {
            plan: self,
            trans: &trans,
            next: 0,
            off: i64::from(self.tz.to_offset(self.start).seconds()),
        };
        let first_day = self.sc.day;
        let last_day = local_civil(&self.tz, Timestamp::new(bound, 0).ok()?).day;
        let whole_months =
            self.month_days.is_empty() && self.year_days.is_empty() && self.days.is_empty();
        let mut total: i64 = 0;
        let mut run: Option<i64> = None;
        let mut d = first_day;
        while d <= last_day {
            let (y, m, md) = civil_from_days(d);
            let (pass, span) = if self.has_months && !self.months[m as usize] {
                (false, days_in_month(y, m) - md + 1)
            } else if whole_months {
                (true, days_in_month(y, m) - md + 1)
            } else {
                (self.day_ok(d, y, m, md, None), 1)
            };
            // `run`: the first instant of the current run of selected days.
            match (pass, run) {
                (true, None) => run = Some(starts.at(d)?),
                (false, Some(a)) => {
                    total += before(starts.at(d)?) - before(a);
                    run = None;
                }
                _ => {}
            }
            d += span;
        }
        if let Some(a) = run {
            total += before(bound) - before(a);
        }
        Some((k0, 1 + u64::try_from(total).ok()?))
    }
}
