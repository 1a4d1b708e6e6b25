//! Expansion of one rule into instants: the RFC 5545 §3.3.10 expand/limit table.
//!
//! Daily and longer frequencies are generated on the local wall clock of the zone (so "09:00
//! every day" stays 09:00 across DST) and only then turned into instants. Hourly and shorter
//! frequencies step in elapsed time from DTSTART (so "every hour" neither skips nor doubles an
//! hour at a DST change) and their BYxxx parts filter on the local time of each step.

use std::collections::VecDeque;

use jiff::Timestamp;

use crate::calendar::{civil_from_days, days_from_civil, Civil, MAX_YEAR};
use crate::rule::Frequency;

mod count;
mod cycle;
mod period;
mod plan;

pub(crate) use plan::*;

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
mod tests;
