//! Expansion of one rule into instants: the RFC 5545 §3.3.10 expand/limit table.
//!
//! Daily and longer frequencies are generated on the local wall clock of the zone (so "09:00
//! every day" stays 09:00 across DST) and only then turned into instants. Hourly and shorter
//! frequencies step in elapsed time from DTSTART (so "every hour" neither skips nor doubles an
//! hour at a DST change) and their BYxxx parts filter on the local time of each step.

use std::collections::VecDeque;

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::calendar::{
    civil_from_days, days_from_civil, days_in_month, days_in_year, week1_start, week_start,
    weekday, Civil, Weeks, MAX_YEAR, MIN_YEAR,
};
use crate::rule::{Frequency, Rule, Until};

mod count;
mod cycle;
mod period;

/// Periods (or sub-daily steps) examined without finding an instance before giving up. The
/// Gregorian calendar repeats every 400 years (146 097 days = 20 871 weeks = 4 800 months), so
/// a calendar rule that finds nothing in one full cycle of periods never will.
fn idle_budget(freq: Frequency) -> u64 {
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
    freq: Frequency,
    interval: i64,
    tz: TimeZone,
    pub(crate) start: Timestamp,
    start_s: i64,
    nanos: i32,
    sc: Civil,
    months: [bool; 13],
    has_months: bool,
    week_nos: Vec<i64>,
    year_days: Vec<i64>,
    month_days: Vec<i64>,
    /// (ordinal, weekday 0 = Monday)
    days: Vec<(Option<i64>, i64)>,
    /// Numbered weekdays count within the month (else within the year).
    month_scope: bool,
    /// `day_ok` needs the day of the year (BYYEARDAY, or numbered weekdays counted in the year).
    need_year: bool,
    /// Daily and longer: the times of day, sorted.
    times: Vec<(i64, i64, i64)>,
    /// Sub-daily: expansion lists and limit filters.
    exp_minutes: Vec<i64>,
    exp_seconds: Vec<i64>,
    f_hours: Vec<i64>,
    f_minutes: Vec<i64>,
    f_seconds: Vec<i64>,
    set_pos: Vec<i64>,
    pub(crate) until: Option<Timestamp>,
    until_day: Option<i64>,
    count: Option<u64>,
    /// Exactly one instance per period, so period k holds instance number k + 1.
    uniform: bool,
    wkst: i64,
    /// Sub-daily: seconds between periods.
    step: i64,
    /// Calendar COUNT rules: civil instance counts per year shape ([`Plan::skip_calendar`]).
    memo: cycle::Memo,
}

fn local_civil(tz: &TimeZone, t: Timestamp) -> Civil {
    let off = i64::from(tz.to_offset(t).seconds());
    Civil::from_local_seconds(t.as_second() + off)
}

/// Local wall-clock time -> instant, nonexistent times moved forward by the gap and ambiguous
/// ones taking the earlier instant (jiff's `compatible`, RFC 5545 §3.3.5).
fn to_instant(tz: &TimeZone, day: i64, h: i64, mi: i64, s: i64, nanos: i32) -> Option<Timestamp> {
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

fn widen<T: Copy + Into<i64>>(v: &[T]) -> Vec<i64> {
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
            memo: cycle::Memo::default(),
        }
    }

    /// Does a calendar day pass the date-level BYxxx parts?
    fn day_ok(&self, dn: i64, y: i64, m: i64, md: i64, weeks: Option<&Weeks>) -> bool {
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
    fn candidate_days(&self, first_day: i64, len: i64) -> Vec<i64> {
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
    fn linear(&self, from: Timestamp, to_s: i64) -> bool {
        self.tz
            .following(from)
            .next()
            .is_none_or(|tr| tr.timestamp().as_second() > to_s)
    }

    /// The period holding `after` minus one (a safe place to start when not counting).
    fn period_near(&self, after: Timestamp) -> i64 {
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

/// The distinct 0-based indices, ascending, that BYSETPOS `pos` keeps among `n` candidates
/// (1 is the first, -1 the last; positions outside the set are ignored).
pub(crate) fn set_positions(pos: &[i64], n: i64) -> Vec<i64> {
    let mut idx: Vec<i64> = pos
        .iter()
        .map(|&p| if p > 0 { p - 1 } else { n + p })
        .filter(|i| (0..n).contains(i))
        .collect();
    idx.sort_unstable();
    idx.dedup();
    idx
}

fn select_positions<T: Copy>(items: Vec<T>, pos: &[i64]) -> Vec<T> {
    if pos.is_empty() {
        return items;
    }
    set_positions(pos, items.len() as i64)
        .into_iter()
        .filter_map(|i| usize::try_from(i).ok().map(|i| items[i]))
        .collect()
}

/// Lazily yields the instants of one rule (DTSTART first), ascending and unique, honouring
/// COUNT and UNTIL.
#[derive(Debug)]
pub(crate) struct RuleIter<'a> {
    plan: &'a Plan,
    k: i64,
    buf: VecDeque<Timestamp>,
    last: Option<Timestamp>,
    produced: u64,
    idle: u64,
    /// Periods (or sub-daily steps) examined in total, for tests of the work done.
    pub(crate) steps: u64,
    /// Most periods (or sub-daily steps) this iterator may examine; past it the iterator ends
    /// with `exceeded` set, so a caller can tell "too costly" from "the rule ended".
    budget: u64,
    pub(crate) exceeded: bool,
    done: bool,
    pending_start: bool,
}

impl<'a> RuleIter<'a> {
    /// `after`: the caller only needs instants later than this; expansion skips ahead to it
    /// unless COUNT forces counting from DTSTART. `with_start`: emit DTSTART itself.
    pub(crate) fn new(plan: &'a Plan, after: Option<Timestamp>, with_start: bool) -> RuleIter<'a> {
        RuleIter::resume(plan, after, None, with_start, u64::MAX)
    }

    /// Like [`RuleIter::new`], resuming the count from `mark` (`(instant, n)`: the rule has
    /// `n` instances up to and including that instant) when it is at or before `after`, and
    /// examining at most `budget` periods.
    ///
    /// Where the count starts, cheapest first: a period index that numbers the instances
    /// (one instance per period), the mark, an arithmetic count of the instances before
    /// `after` ([`Plan::skip_counted`]), else a walk from DTSTART.
    pub(crate) fn resume(
        plan: &'a Plan,
        after: Option<Timestamp>,
        mark: Option<(Timestamp, u64)>,
        with_start: bool,
        budget: u64,
    ) -> RuleIter<'a> {
        let mut k = 0;
        let mut produced = 0;
        let mut last = None;
        if let Some(a) = after.filter(|&a| a >= plan.start) {
            let usable = mark.filter(|&(m, n)| m >= plan.start && m <= a && n >= 1);
            if plan.count.is_none() || plan.uniform {
                k = plan.period_near(a);
                produced = k.unsigned_abs();
            } else if let Some((m, n)) = usable {
                k = plan.period_near(m);
                produced = n;
                last = Some(m);
            } else if let Some((kk, n)) = plan.skip_counted(a).or_else(|| plan.skip_calendar(a)) {
                k = kk;
                produced = n;
            }
        }
        let done = plan.count.is_some_and(|c| produced >= c);
        RuleIter {
            plan,
            k,
            buf: VecDeque::new(),
            pending_start: with_start && k == 0 && last.is_none(),
            last,
            produced,
            idle: 0,
            steps: 0,
            budget,
            exceeded: false,
            done,
        }
    }

    /// The last instance produced and its number (DTSTART is number 1).
    pub(crate) fn mark(&self) -> Option<(Timestamp, u64)> {
        self.last.map(|l| (l, self.produced))
    }

    fn fill(&mut self) {
        self.idle += 1;
        self.steps += 1;
        let k = self.k;
        if self.plan.freq.is_sub_daily() {
            self.fill_sub_daily(k);
        } else {
            self.fill_calendar(k);
        }
    }

    fn fill_calendar(&mut self, k: i64) {
        self.k += 1;
        match self.plan.period_instants(k) {
            Some(v) => self.buf.extend(v),
            None => self.done = true,
        }
    }

    /// First period index whose step instant is at or after `t` (at least the next one).
    fn period_at(&self, k: i64, t: i64) -> i64 {
        let p = self.plan;
        let d = t - p.start_s;
        let kk = d.div_euclid(p.step) + i64::from(d.rem_euclid(p.step) != 0);
        kk.max(k + 1)
    }

    fn fill_sub_daily(&mut self, k: i64) {
        let p = self.plan;
        let Some(ps) = k.checked_mul(p.step).and_then(|x| x.checked_add(p.start_s)) else {
            self.done = true;
            return;
        };
        if p.until.is_some_and(|u| ps > u.as_second() + 86_400) {
            self.done = true;
            return;
        }
        let Ok(pt) = Timestamp::new(ps, 0) else {
            self.done = true;
            return;
        };
        let off = i64::from(p.tz.to_offset(pt).seconds());
        let c = Civil::from_local_seconds(ps + off);
        if c.year > MAX_YEAR {
            self.done = true;
            return;
        }
        if !p.day_ok(c.day, c.year, c.month, c.mday, None) {
            // Jump to the start of the next local day that passes the date parts, found with
            // plain calendar arithmetic rather than one zone lookup per day (a rare day filter
            // such as BYMONTHDAY=-1;BYMONTH=1,8,11 would otherwise cost a step per day; found by
            // fuzzing). The calendar repeats every 146 097 days, so a scan that long that finds
            // nothing means no later day ever passes.
            let last = days_from_civil(MAX_YEAR, 12, 31).min(c.day + 146_097);
            let mut d = c.day + 1;
            while d <= last {
                let (y, m, md) = civil_from_days(d);
                if p.day_ok(d, y, m, md, None) {
                    break;
                }
                d += 1;
            }
            if d > last {
                self.done = true;
                return;
            }
            match to_instant(&p.tz, d, 0, 0, 0, 0) {
                Some(mid) => self.k = self.period_at(k, mid.as_second()),
                None => self.done = true,
            }
            return;
        }
        let hour_start = ps - c.minute * 60 - c.second;
        // A BYHOUR/BYMINUTE/BYSECOND miss jumps straight to the next local time that could pass
        // the filter (the next allowed hour, minute or second, else the next hour, minute or
        // midnight) when the local clock runs without a UTC offset change until then, so a rare
        // rule (`FREQ=SECONDLY;INTERVAL=986;BYHOUR=8;BYMINUTE=0;BYSECOND=0`) costs a few steps
        // per day rather than one per minute (found by fuzzing). Across an offset change it
        // falls back to the next hour, minute or step, which is always safe.
        if !p.f_hours.is_empty() && !p.f_hours.contains(&c.hour) {
            let next_hour = hour_start + 3600;
            let target = match p.f_hours.iter().find(|&&h| h > c.hour) {
                Some(&h) => hour_start + (h - c.hour) * 3600,
                None => hour_start + (24 - c.hour) * 3600,
            };
            let to = if target > next_hour && p.linear(pt, target) {
                target
            } else {
                next_hour
            };
            self.k = self.period_at(k, to);
            return;
        }
        if p.freq != Frequency::Hourly
            && !p.f_minutes.is_empty()
            && !p.f_minutes.contains(&c.minute)
        {
            let next_minute = ps - c.second + 60;
            let target = match p.f_minutes.iter().find(|&&m| m > c.minute) {
                Some(&m) => hour_start + m * 60,
                None => hour_start + 3600,
            };
            let to = if target > next_minute && p.linear(pt, target) {
                target
            } else {
                next_minute
            };
            self.k = self.period_at(k, to);
            return;
        }
        self.k = k + 1;
        if p.freq == Frequency::Secondly
            && !p.f_seconds.is_empty()
            && !p.f_seconds.contains(&c.second)
        {
            let target = match p.f_seconds.iter().find(|&&s| s > c.second) {
                Some(&s) => ps - c.second + s.min(60),
                None => ps - c.second + 60,
            };
            if target > ps + 1 && p.linear(pt, target) {
                self.k = self.period_at(k, target);
            }
            return;
        }
        let cands: Vec<i64> = match p.freq {
            // Without BYMINUTE/BYSECOND to expand, the step itself is the instance (pure elapsed
            // time, even across a DST change of 30 minutes).
            Frequency::Hourly if p.f_minutes.is_empty() && p.f_seconds.is_empty() => vec![ps],
            Frequency::Minutely if p.f_seconds.is_empty() => vec![ps],
            Frequency::Hourly => {
                let mut v = Vec::with_capacity(p.exp_minutes.len() * p.exp_seconds.len());
                for &m in &p.exp_minutes {
                    for &s in &p.exp_seconds {
                        v.push(hour_start + m * 60 + s);
                    }
                }
                v
            }
            Frequency::Minutely => p.exp_seconds.iter().map(|&s| ps - c.second + s).collect(),
            _ => vec![ps],
        };
        let cands = select_positions(cands, &p.set_pos);
        self.buf.extend(
            cands
                .into_iter()
                .filter_map(|s| Timestamp::new(s, p.nanos).ok()),
        );
    }
}

impl Iterator for RuleIter<'_> {
    type Item = Timestamp;

    fn next(&mut self) -> Option<Timestamp> {
        if self.pending_start {
            self.pending_start = false;
            self.produced += 1;
            self.last = Some(self.plan.start);
            return Some(self.plan.start);
        }
        let budget = idle_budget(self.plan.freq);
        loop {
            if let Some(t) = self.buf.pop_front() {
                if t < self.plan.start || self.last.is_some_and(|l| t <= l) {
                    continue;
                }
                if self.plan.until.is_some_and(|u| t > u)
                    || self.plan.count.is_some_and(|c| self.produced >= c)
                {
                    self.done = true;
                    self.buf.clear();
                    return None;
                }
                self.produced += 1;
                self.last = Some(t);
                self.idle = 0;
                return Some(t);
            }
            if self.done || self.idle >= budget {
                self.done = true;
                return None;
            }
            if self.steps >= self.budget {
                self.exceeded = true;
                self.done = true;
                return None;
            }
            self.fill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::Rule;

    fn local(t: Timestamp, tz: &TimeZone) -> (i64, i64, i64) {
        let c = local_civil(tz, t);
        (c.hour, c.minute, c.second)
    }

    /// Sub-daily rules whose BYHOUR/BYMINUTE/BYSECOND jump ahead must give exactly the steps a
    /// plain walk keeps, including across DST changes (1 h, 30 min at Lord Howe, 2 h at Troll,
    /// midnight changes in Sao Paulo).
    #[test]
    fn filter_jumps_match_a_plain_walk_across_offset_changes() {
        let windows = [
            ("Europe/Berlin", "2026-03-28T12:00:00Z"),
            ("Europe/Berlin", "2026-10-24T12:00:00Z"),
            ("Australia/Lord_Howe", "2026-04-04T00:00:00Z"),
            ("Australia/Lord_Howe", "2026-10-03T00:00:00Z"),
            ("Antarctica/Troll", "2026-03-28T12:00:00Z"),
            ("Antarctica/Troll", "2026-10-24T12:00:00Z"),
            ("America/Sao_Paulo", "2018-02-16T12:00:00Z"),
            ("America/Sao_Paulo", "2018-11-03T12:00:00Z"),
        ];
        let rules: [(&str, i64); 15] = [
            ("FREQ=MINUTELY;INTERVAL=17;BYDAY=SU;BYHOUR=1,2,3", 1020),
            (
                "FREQ=SECONDLY;INTERVAL=601;BYMONTHDAY=29,5,18;BYHOUR=2,3",
                601,
            ),
            ("FREQ=MINUTELY;INTERVAL=13;BYHOUR=1", 780),
            ("FREQ=MINUTELY;INTERVAL=7;BYHOUR=3;BYMINUTE=1,2,3,30", 420),
            ("FREQ=SECONDLY;INTERVAL=97;BYHOUR=1;BYMINUTE=10,50", 97),
            ("FREQ=SECONDLY;INTERVAL=31;BYHOUR=0,23;BYMINUTE=10,45", 31),
            ("FREQ=MINUTELY;BYHOUR=2;BYMINUTE=10,20,40,50", 60),
            (
                "FREQ=SECONDLY;INTERVAL=7;BYHOUR=0,1,2,3,23;BYMINUTE=0,30,59;BYSECOND=0,13",
                7,
            ),
            (
                "FREQ=SECONDLY;INTERVAL=61;BYHOUR=1,2;BYMINUTE=0,1,2,3,4,5,30,45",
                61,
            ),
            ("FREQ=SECONDLY;INTERVAL=986;BYHOUR=2;BYMINUTE=0,31", 986),
            ("FREQ=SECONDLY;BYHOUR=2;BYMINUTE=30;BYSECOND=0,59", 1),
            ("FREQ=MINUTELY;BYHOUR=0,2,3;BYMINUTE=0,15,30,45", 60),
            (
                "FREQ=MINUTELY;INTERVAL=7;BYHOUR=1,2,23;BYMINUTE=1,2,3,30",
                420,
            ),
            ("FREQ=HOURLY;BYHOUR=0,2,3", 3600),
            ("FREQ=HOURLY;INTERVAL=5;BYHOUR=1,2,4", 18_000),
        ];
        for (zone, at) in windows {
            let tz = TimeZone::get(zone).unwrap();
            let start: Timestamp = at.parse().unwrap();
            let end = start.as_second() + 3 * 86_400;
            for (text, step) in rules {
                let rule = Rule::parse(text).unwrap();
                let plan = Plan::new(&rule, start, &tz, true);
                let got: Vec<Timestamp> = RuleIter::new(&plan, None, true)
                    .take_while(|t| t.as_second() < end)
                    .collect();
                let ok = |v: &[u8], x: i64| v.is_empty() || v.contains(&(x as u8));
                let mut want = vec![start];
                let mut s = start.as_second() + step;
                while s < end {
                    let t = Timestamp::new(s, 0).unwrap();
                    let (h, m, sec) = local(t, &tz);
                    let c = local_civil(&tz, t);
                    let day_ok = (rule.by_month_day.is_empty()
                        || rule.by_month_day.contains(&(c.mday as i8)))
                        && (rule.by_day.is_empty()
                            || rule
                                .by_day
                                .iter()
                                .any(|d| d.weekday.index() == weekday(c.day)));
                    if day_ok
                        && ok(&rule.by_hour, h)
                        && ok(&rule.by_minute, m)
                        && ok(&rule.by_second, sec)
                    {
                        want.push(t);
                    }
                    s += step;
                }
                assert_eq!(got, want, "{text} in {zone} from {at}");
            }
        }
    }

    /// The day-part shortcut lists every day a full scan of the period accepts.
    #[test]
    fn candidate_days_agree_with_a_full_scan() {
        let rules = [
            "FREQ=YEARLY;BYDAY=20MO",
            "FREQ=YEARLY;BYDAY=-1SU,2TU,FR",
            "FREQ=YEARLY;BYMONTH=3,11;BYDAY=TH,-2MO,1TU",
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29,-1,1",
            "FREQ=YEARLY;BYMONTHDAY=13;BYDAY=FR",
            "FREQ=YEARLY;BYYEARDAY=1,100,-1,-366,366",
            "FREQ=YEARLY;BYMONTH=4,12;BYYEARDAY=100,-20,360",
            "FREQ=YEARLY;BYWEEKNO=1,20,-1,53;BYDAY=MO,SU",
            "FREQ=YEARLY;BYWEEKNO=1,20,-1,53",
            "FREQ=YEARLY;BYWEEKNO=1;BYMONTH=12,1;WKST=SU",
            "FREQ=YEARLY;BYWEEKNO=52,53,-53;BYDAY=TH;WKST=TH",
            "FREQ=YEARLY;BYWEEKNO=53,-1,1,2;BYMONTHDAY=1,2,3,-1,-2,-3",
            "FREQ=YEARLY;BYWEEKNO=10,20;BYYEARDAY=60,-300",
            "FREQ=YEARLY;BYMONTH=1,6,7",
            "FREQ=YEARLY",
            "FREQ=MONTHLY;BYDAY=-1FR,1MO,3WE,5SA",
            "FREQ=MONTHLY;BYDAY=5FR,-5MO,SU",
            "FREQ=YEARLY;BYDAY=53MO,-53SU,52TH,-1WE",
            "FREQ=YEARLY;BYMONTH=2,12;BYDAY=5SU,-5MO,4TU",
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
            "FREQ=MONTHLY;BYMONTHDAY=-1,31,1,15;BYMONTH=2,4,5",
            "FREQ=MONTHLY;BYMONTHDAY=13;BYDAY=FR",
            "FREQ=MONTHLY",
        ];
        let start: Timestamp = "1999-12-31T10:00:00Z".parse().unwrap();
        for text in rules {
            let rule = Rule::parse(text).unwrap();
            let plan = Plan::new(&rule, start, &TimeZone::UTC, true);
            for y in 1999..2030 {
                let periods: Vec<(i64, i64)> = if rule.freq == Frequency::Yearly {
                    vec![(days_from_civil(y, 1, 1), days_in_year(y))]
                } else {
                    (1..=12)
                        .map(|m| (days_from_civil(y, m, 1), days_in_month(y, m)))
                        .collect()
                };
                let weeks = Weeks::new(y, plan.wkst);
                for (d0, len) in periods {
                    let ok = |dn: i64| {
                        let (yy, m, md) = civil_from_days(dn);
                        plan.day_ok(dn, yy, m, md, Some(&weeks))
                    };
                    let full: Vec<i64> = (d0..d0 + len).filter(|&d| ok(d)).collect();
                    let cands = plan.candidate_days(d0, len);
                    let short: Vec<i64> = cands.iter().copied().filter(|&d| ok(d)).collect();
                    assert_eq!(short, full, "{text} in {y}");
                    assert!(cands.windows(2).all(|w| w[0] < w[1]), "{text}");
                }
            }
        }
    }

    /// Fuzz finding (a 5 s timeout): a sub-daily rule whose filters rarely line up with its
    /// interval stepped through every minute of every matching hour, ~85 steps per day, so 200
    /// instants took millions of steps. Jumping to the next allowed time of day keeps it to a
    /// few steps per day.
    #[test]
    fn rare_sub_daily_filters_take_few_steps_per_day() {
        let rule =
            Rule::parse("FREQ=SECONDLY;INTERVAL=986;BYHOUR=8;BYMINUTE=0;BYSECOND=0").unwrap();
        let start = Timestamp::UNIX_EPOCH;
        let plan = Plan::new(&rule, start, &TimeZone::UTC, true);
        let mut it = RuleIter::new(&plan, None, true);
        let got: Vec<Timestamp> = it.by_ref().take(20).collect();
        // Reference: k * 986 s landing on 08:00:00 UTC.
        let want: Vec<Timestamp> = std::iter::once(0)
            .chain((1..).map(|k| k * 986).filter(|s| s % 86_400 == 28_800))
            .take(20)
            .map(|s| Timestamp::new(s, 0).unwrap())
            .collect();
        assert_eq!(got, want);
        let days = (got[19].as_second() / 86_400) as u64;
        assert!(it.steps <= 4 * days, "{} steps for {days} days", it.steps);
    }
}
