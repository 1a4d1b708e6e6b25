//! One calendar period (a day, week, month or year of a DAILY..YEARLY rule): its days, its
//! instants, and the number of instances it holds on the local wall clock.

use jiff::Timestamp;

use super::{select_positions, to_instant, Plan};
use crate::calendar::{
    civil_from_days, days_from_civil, days_in_month, days_in_year, week_start, Weeks, MAX_YEAR,
};
use crate::rule::Frequency;

/// The days of one calendar period.
pub(crate) enum Span {
    /// Past the last year the engine generates (or past UNTIL): the rule ends.
    Done,
    /// A period the rule skips whole (a month outside BYMONTH).
    Skip,
    /// `first_day`, length in days, week numbering when BYWEEKNO needs it.
    Days(i64, i64, Option<Weeks>),
}

/// `a / b` rounded up, `b > 0`.
pub(crate) fn ceil_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0)
}

impl Plan {
    /// The days of period `k` (k = 0 holds DTSTART).
    pub(crate) fn period_span(&self, k: i64) -> Span {
        let Some(step) = k.checked_mul(self.interval) else {
            return Span::Done;
        };
        let mut weeks = None;
        let (first_day, len) = match self.freq {
            Frequency::Yearly => {
                let y = self.sc.year + step;
                if y > MAX_YEAR {
                    return Span::Done;
                }
                if !self.week_nos.is_empty() {
                    weeks = Some(Weeks::new(y, self.wkst));
                }
                (days_from_civil(y, 1, 1), days_in_year(y))
            }
            Frequency::Monthly => {
                let mi = self.sc.year * 12 + (self.sc.month - 1) + step;
                let (y, m) = (mi.div_euclid(12), mi.rem_euclid(12) + 1);
                if y > MAX_YEAR {
                    return Span::Done;
                }
                if self.has_months && !self.months[m as usize] {
                    return Span::Skip;
                }
                (days_from_civil(y, m, 1), days_in_month(y, m))
            }
            Frequency::Weekly => (
                week_start(self.sc.day, self.wkst) + step.saturating_mul(7),
                7,
            ),
            _ => (self.sc.day.saturating_add(step), 1),
        };
        if first_day > days_from_civil(MAX_YEAR, 12, 31)
            || self.until_day.is_some_and(|u| first_day > u + 1)
        {
            return Span::Done;
        }
        Span::Days(first_day, len, weeks)
    }

    /// The days of a span that pass the date parts, ascending.
    fn period_dates(&self, first_day: i64, len: i64, weeks: Option<&Weeks>) -> Vec<i64> {
        let ok = |dn: i64| {
            let (y, m, md) = civil_from_days(dn);
            self.day_ok(dn, y, m, md, weeks)
        };
        if len <= 7 {
            (first_day..first_day + len).filter(|&d| ok(d)).collect()
        } else {
            let mut v = self.candidate_days(first_day, len);
            v.retain(|&d| ok(d));
            v
        }
    }

    /// The instants of period `k`, ascending and unique (`None`: the rule ends there).
    pub(crate) fn period_instants(&self, k: i64) -> Option<Vec<Timestamp>> {
        let (first_day, len, weeks) = match self.period_span(k) {
            Span::Done => return None,
            Span::Skip => return Some(Vec::new()),
            Span::Days(d, l, w) => (d, l, w),
        };
        let dates = self.period_dates(first_day, len, weeks.as_ref());
        if dates.is_empty() {
            return Some(Vec::new());
        }
        let mut cands: Vec<(i64, (i64, i64, i64))> =
            Vec::with_capacity(dates.len() * self.times.len());
        for &dn in &dates {
            for &t in &self.times {
                cands.push((dn, t));
            }
        }
        let cands = select_positions(cands, &self.set_pos);
        let mut out: Vec<Timestamp> = cands
            .into_iter()
            .filter_map(|(dn, (h, mi, s))| to_instant(&self.tz, dn, h, mi, s, self.nanos))
            .collect();
        out.sort_unstable();
        out.dedup();
        Some(out)
    }

    /// Instances of period `k` on the local wall clock: selected (day, time) pairs, before the
    /// zone maps them to instants (`None`: the rule ends there).
    pub(crate) fn civil_count(&self, k: i64) -> Option<u64> {
        let (first_day, len, weeks) = match self.period_span(k) {
            Span::Done => return None,
            Span::Skip => return Some(0),
            Span::Days(d, l, w) => (d, l, w),
        };
        let days = if len <= 7 {
            (first_day..first_day + len)
                .filter(|&dn| {
                    let (y, m, md) = civil_from_days(dn);
                    self.day_ok(dn, y, m, md, weeks.as_ref())
                })
                .count()
        } else {
            self.period_dates(first_day, len, weeks.as_ref()).len()
        };
        let n = (days * self.times.len()) as i64;
        if self.set_pos.is_empty() {
            return Some(n as u64);
        }
        let kept = super::set_positions(&self.set_pos, n).len() as u64;
        Some(kept)
    }

    /// The index of the period holding local day `d` (or the last one before it: DAILY
    /// periods with INTERVAL > 1 leave days out).
    pub(crate) fn period_of_day(&self, d: i64) -> i64 {
        let (y, m, _) = civil_from_days(d);
        let units = match self.freq {
            Frequency::Daily => d - self.sc.day,
            Frequency::Weekly => {
                (week_start(d, self.wkst) - week_start(self.sc.day, self.wkst)) / 7
            }
            Frequency::Monthly => (y * 12 + m - 1) - (self.sc.year * 12 + self.sc.month - 1),
            _ => y - self.sc.year,
        };
        units.div_euclid(self.interval)
    }

    /// Index (in units of the frequency, from DTSTART's) of the first unit whose first day
    /// lies in year `y`: the first day, week, month or the year itself.
    pub(crate) fn first_unit_of_year(&self, y: i64) -> i64 {
        match self.freq {
            Frequency::Daily => days_from_civil(y, 1, 1) - self.sc.day,
            Frequency::Weekly => ceil_div(
                days_from_civil(y, 1, 1) - week_start(self.sc.day, self.wkst),
                7,
            ),
            Frequency::Monthly => 12 * y - (self.sc.year * 12 + self.sc.month - 1),
            _ => y - self.sc.year,
        }
    }
}
