//! The plan of one rule from one DTSTART in one zone: its BYxxx parts widened into sets, which
//! days of a period match them, and where a period lies; with the wall-clock helpers it uses.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::calendar::{
    civil_from_days, days_from_civil, days_in_month, days_in_year, week1_start, week_start,
    weekday, Civil, Weeks, MAX_YEAR, MIN_YEAR,
};
use crate::rule::{Frequency, Rule, Until};

/// Periods (or sub-daily steps) examined without finding an instance before giving up. The
/// Gregorian calendar repeats every 400 years (146 097 days = 20 871 weeks = 4 800 months), so
/// a calendar rule that finds nothing in one full cycle of periods never will.
pub(super) fn idle_budget(freq: Frequency) -> u64 {
    match freq {
        Frequency::Yearly => 402,
        Frequency::Monthly => 4_802,
        Frequency::Weekly => 20_873,
        Frequency::Daily => 146_099,
        _ => 250_000,
    }
}

/// A rule prepared for expansion from one DTSTART in one zone.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(super) freq: Frequency,
    pub(super) interval: i64,
    pub(super) tz: TimeZone,
    pub(crate) start: Timestamp,
    pub(super) start_s: i64,
    pub(super) nanos: i32,
    pub(super) sc: Civil,
    pub(super) months: [bool; 13],
    pub(super) has_months: bool,
    pub(super) week_nos: Vec<i64>,
    pub(super) year_days: Vec<i64>,
    pub(super) month_days: Vec<i64>,
    /// (ordinal, weekday 0 = Monday)
    pub(super) days: Vec<(Option<i64>, i64)>,
    /// Numbered weekdays count within the month (else within the year).
    pub(super) month_scope: bool,
    /// `day_ok` needs the day of the year (BYYEARDAY, or numbered weekdays counted in the year).
    pub(super) need_year: bool,
    /// Daily and longer: the times of day, sorted.
    pub(super) times: Vec<(i64, i64, i64)>,
    /// Sub-daily: expansion lists and limit filters.
    pub(super) exp_minutes: Vec<i64>,
    pub(super) exp_seconds: Vec<i64>,
    pub(super) f_hours: Vec<i64>,
    pub(super) f_minutes: Vec<i64>,
    pub(super) f_seconds: Vec<i64>,
    pub(super) set_pos: Vec<i64>,
    pub(crate) until: Option<Timestamp>,
    pub(super) until_day: Option<i64>,
    pub(super) count: Option<u64>,
    /// Exactly one instance per period, so period k holds instance number k + 1.
    pub(super) uniform: bool,
    pub(super) wkst: i64,
    /// Sub-daily: seconds between periods.
    pub(super) step: i64,
    /// Calendar COUNT rules: civil instance counts per year shape ([`Plan::skip_calendar`]).
    pub(super) memo: super::cycle::Memo,
}

pub(super) fn local_civil(tz: &TimeZone, t: Timestamp) -> Civil {
    let off = i64::from(tz.to_offset(t).seconds());
    Civil::from_local_seconds(t.as_second() + off)
}

/// Local wall-clock time -> instant, nonexistent times moved forward by the gap and ambiguous
/// ones taking the earlier instant (jiff's `compatible`, RFC 5545 §3.3.5).
pub(super) fn to_instant(
    tz: &TimeZone,
    day: i64,
    h: i64,
    mi: i64,
    s: i64,
    nanos: i32,
) -> Option<Timestamp> {
    let (y, m, d) = civil_from_days(day);
    if !(MIN_YEAR..=MAX_YEAR).contains(&y) {
        return None;
    }
    let dt = DateTime::new(
        y as i16, m as i8, d as i8, h as i8, mi as i8, s as i8, nanos,
    )
    .ok()?;
    tz.to_ambiguous_timestamp(dt).compatible().ok()
}

pub(super) fn widen<T: Copy + Into<i64>>(v: &[T]) -> Vec<i64> {
    v.iter().map(|&x| x.into()).collect()
}

impl Plan {
    /// `limits`: honour COUNT and UNTIL (false to ask whether the rule can ever occur).
    pub(crate) fn new(rule: &Rule, start: Timestamp, tz: &TimeZone, limits: bool) -> Plan {
        let sc = local_civil(tz, start);
        let freq = rule.freq;
        let mut months = [false; 13];
        for &m in &rule.by_month {
            months[usize::from(m)] = true;
        }
        let mut has_months = !rule.by_month.is_empty();
        let mut month_days = widen(&rule.by_month_day);
        let mut days: Vec<(Option<i64>, i64)> = rule
            .by_day
            .iter()
            .map(|d| (d.ordinal.map(i64::from), d.weekday.index()))
            .collect();
        let no_day_parts = rule.by_week_no.is_empty()
            && rule.by_year_day.is_empty()
            && rule.by_month_day.is_empty()
            && rule.by_day.is_empty();
        if no_day_parts {
            match freq {
                Frequency::Yearly => {
                    if !has_months {
                        months[sc.month as usize] = true;
                        has_months = true;
                    }
                    month_days = vec![sc.mday];
                }
                Frequency::Monthly => month_days = vec![sc.mday],
                Frequency::Weekly => days = vec![(None, weekday(sc.day))],
                _ => {}
            }
        }
        let or_start = |v: &[u8], d: i64| if v.is_empty() { vec![d] } else { widen(v) };
        let hours = or_start(&rule.by_hour, sc.hour);
        let minutes = or_start(&rule.by_minute, sc.minute);
        let seconds: Vec<i64> = or_start(&rule.by_second, sc.second)
            .into_iter()
            .filter(|&s| s < 60)
            .collect();
        let mut times = Vec::new();
        for &h in &hours {
            for &m in &minutes {
                for &s in &seconds {
                    times.push((h, m, s));
                }
            }
        }
        let no_by = no_day_parts
            && rule.by_month.is_empty()
            && rule.by_hour.is_empty()
            && rule.by_minute.is_empty()
            && rule.by_second.is_empty()
            && rule.by_set_pos.is_empty();
        let uniform = no_by
            && match freq {
                Frequency::Monthly => sc.mday <= 28,
                Frequency::Yearly => !(sc.month == 2 && sc.mday == 29),
                _ => true,
            };
        let interval = i64::from(rule.interval);
        let unit = match freq {
            Frequency::Hourly => 3600,
            Frequency::Minutely => 60,
            _ => 1,
        };
        let until = if limits {
            rule.until.and_then(|u| match u {
                Until::Instant(t) => Some(t),
                Until::Date(d) => {
                    let next = days_from_civil(
                        i64::from(d.year()),
                        i64::from(d.month()),
                        i64::from(d.day()),
                    ) + 1;
                    to_instant(tz, next, 0, 0, 0, 0)
                        .and_then(|t| t.checked_sub(jiff::SignedDuration::from_nanos(1)).ok())
                }
            })
        } else {
            None
        };
        let until_day = until.map(|u| local_civil(tz, u).day);
        Plan {
            freq,
            interval,
            tz: tz.clone(),
            start,
            start_s: start.as_second(),
            nanos: start.subsec_nanosecond(),
            sc,
            months,
            has_months,
            week_nos: widen(&rule.by_week_no),
            year_days: widen(&rule.by_year_day),
            month_days,
            days,
            month_scope: freq == Frequency::Monthly || !rule.by_month.is_empty(),
            need_year: !rule.by_year_day.is_empty()
                || (freq != Frequency::Monthly
                    && rule.by_month.is_empty()
                    && rule.by_day.iter().any(|d| d.ordinal.is_some())),
            times,
            exp_minutes: minutes,
            exp_seconds: seconds,
            f_hours: widen(&rule.by_hour),
            f_minutes: widen(&rule.by_minute),
            f_seconds: widen(&rule.by_second),
            set_pos: widen(&rule.by_set_pos),
            until,
            until_day,
            count: if limits {
                rule.count.map(u64::from)
            } else {
                None
            },
            uniform,
            wkst: rule.wkst.index(),
            step: interval.saturating_mul(unit),
            memo: super::cycle::Memo::default(),
        }
    }

    /// Does a calendar day pass the date-level BYxxx parts?
    pub(super) fn day_ok(&self, dn: i64, y: i64, m: i64, md: i64, weeks: Option<&Weeks>) -> bool {
        if self.has_months && !self.months[m as usize] {
            return false;
        }
        let mlen = days_in_month(y, m);
        if !self.month_days.is_empty()
            && !self
                .month_days
                .iter()
                .any(|&x| x == md || x == md - mlen - 1)
        {
            return false;
        }
        let (yd, ylen) = if self.need_year {
            (dn - days_from_civil(y, 1, 1) + 1, days_in_year(y))
        } else {
            (0, 0)
        };
        if !self.year_days.is_empty()
            && !self
                .year_days
                .iter()
                .any(|&x| x == yd || x == yd - ylen - 1)
        {
            return false;
        }
        if !self.days.is_empty() {
            let wd = weekday(dn);
            let (idx, len) = if self.month_scope {
                (md - 1, mlen)
            } else {
                (yd - 1, ylen)
            };
            let ok = self.days.iter().any(|&(ord, w)| {
                w == wd
                    && match ord {
                        None => true,
                        Some(n) if n > 0 => idx / 7 + 1 == n,
                        Some(n) => -((len - 1 - idx) / 7 + 1) == n,
                    }
            });
            if !ok {
                return false;
            }
        }
        if !self.week_nos.is_empty() {
            let Some(w) = weeks else { return false };
            let (no, nweeks) = w.week_of(dn);
            if !self
                .week_nos
                .iter()
                .any(|&x| x == no || x == no - nweeks - 1)
            {
                return false;
            }
        }
        true
    }

    /// Days of the period `[first_day, first_day + len)` that might pass [`Plan::day_ok`],
    /// ascending: a superset of the days that do, computed from the day parts instead of by
    /// looking at every day (a yearly rule otherwise examines 365 days for one instance). Periods
    /// of a week or less are listed whole.
    pub(super) fn candidate_days(&self, first_day: i64, len: i64) -> Vec<i64> {
        let end = first_day + len;
        if len <= 7 {
            return (first_day..end).collect();
        }
        // The ranges to look in: the selected months of a year, else the whole period.
        let (y0, m0, _) = civil_from_days(first_day);
        let mut month_buf = [(0i64, 0i64); 12]; // (first day, length) of each month
        let mut nm = 0;
        let mut m = m0;
        let mut d = first_day;
        while d < end && nm < 12 {
            let ml = days_in_month(y0, m);
            if !self.has_months || self.months[m as usize] {
                month_buf[nm] = (d, ml);
                nm += 1;
            }
            d += ml;
            m += 1;
        }
        let months = &month_buf[..nm];
        let mut out: Vec<i64> = Vec::with_capacity(64);
        if !self.week_nos.is_empty() {
            // The days of the selected weeks, in the week-numbering years that overlap this year
            // (Dec 29-31 can be week 1 of the next one, Jan 1-3 week 52/53 of the previous one).
            for wy in y0 - 1..=y0 + 1 {
                let w1 = week1_start(wy, self.wkst);
                let nweeks = (week1_start(wy + 1, self.wkst) - w1) / 7;
                for &n in &self.week_nos {
                    let i = if n > 0 { n - 1 } else { nweeks + n };
                    if (0..nweeks).contains(&i) {
                        out.extend((w1 + i * 7..w1 + i * 7 + 7).filter(|&dn| {
                            months.iter().any(|&(d0, ml)| (d0..d0 + ml).contains(&dn))
                        }));
                    }
                }
            }
        } else if !self.month_days.is_empty() {
            for &(d0, ml) in months {
                for &x in &self.month_days {
                    let i = if x > 0 { x - 1 } else { ml + x };
                    if (0..ml).contains(&i) {
                        out.push(d0 + i);
                    }
                }
            }
        } else if !self.year_days.is_empty() {
            let ylen = days_in_year(y0);
            for &x in &self.year_days {
                let i = if x > 0 { x - 1 } else { ylen + x };
                let dn = first_day + i;
                if (0..ylen).contains(&i)
                    && months.iter().any(|&(d0, ml)| (d0..d0 + ml).contains(&dn))
                {
                    out.push(dn);
                }
            }
        } else if !self.days.is_empty() {
            for &(ord, w) in &self.days {
                match ord {
                    None => {
                        for &(d0, ml) in months {
                            let f = d0 + (w - weekday(d0)).rem_euclid(7);
                            out.extend((f..d0 + ml).step_by(7));
                        }
                    }
                    // Numbered weekdays count within each month (month scope) or the year.
                    Some(n) => {
                        let nth = |s0: i64, sl: i64| -> Option<i64> {
                            let dn = if n > 0 {
                                s0 + (w - weekday(s0)).rem_euclid(7) + (n - 1) * 7
                            } else {
                                let last = s0 + sl - 1;
                                last - (weekday(last) - w).rem_euclid(7) + (n + 1) * 7
                            };
                            (s0..s0 + sl).contains(&dn).then_some(dn)
                        };
                        if self.month_scope {
                            out.extend(months.iter().filter_map(|&(d0, ml)| nth(d0, ml)));
                        } else if let Some(dn) = nth(first_day, len) {
                            if months.iter().any(|&(d0, ml)| (d0..d0 + ml).contains(&dn)) {
                                out.push(dn);
                            }
                        }
                    }
                }
            }
        } else {
            for &(d0, ml) in months {
                out.extend(d0..d0 + ml);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// True when the zone's UTC offset does not change after `from` up to `to_s` (seconds), so
    /// local wall-clock time advances exactly with elapsed time over that span.
    pub(super) fn linear(&self, from: Timestamp, to_s: i64) -> bool {
        self.tz
            .following(from)
            .next()
            .is_none_or(|tr| tr.timestamp().as_second() > to_s)
    }

    /// The period holding `after` minus one (a safe place to start when not counting).
    pub(super) fn period_near(&self, after: Timestamp) -> i64 {
        let k = if self.freq.is_sub_daily() {
            (after.as_second() - self.start_s).div_euclid(self.step.max(1))
        } else {
            let a = local_civil(&self.tz, after);
            let s = self.sc;
            let diff = match self.freq {
                Frequency::Daily => a.day - s.day,
                Frequency::Weekly => {
                    (week_start(a.day, self.wkst) - week_start(s.day, self.wkst)) / 7
                }
                Frequency::Monthly => (a.year * 12 + a.month) - (s.year * 12 + s.month),
                _ => a.year - s.year,
            };
            diff.div_euclid(self.interval)
        };
        (k - 1).max(0)
    }
}
