//! A recurrence set: DTSTART, an optional rule, EXDATEs and RDATEs.

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::error::RuleError;
use crate::expand::{Plan, RuleIter};
use crate::rule::Rule;

/// Most periods (or sub-daily steps) one [`Cursor`] examines by default: 30 to 100 ms of work
/// on one core (a DAILY rule walked from 1900 to 2100 is 73,000 periods), far more than any
/// rule needs from a recent DTSTART or a [`Mark`].
pub const DEFAULT_BUDGET: u64 = 500_000;

/// Where a rule's count stands: the rule has `index` instances up to and including `at`
/// (DTSTART is number 1; EXDATEs count, as RFC 5545 removes them after COUNT; RDATEs do not).
///
/// Kept by the caller and handed back to [`Recurrence::cursor`], it lets a COUNT rule resume
/// without counting again from DTSTART. It is only valid for the same DTSTART, zone and rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub at: Timestamp,
    pub index: u64,
}

/// The schedule of one event: every instant at which it fires.
///
/// DTSTART is an instant whose wall-clock time in `tz` anchors the rule, so "daily at 09:00
/// Europe/Berlin" stays at 09:00 local time across DST. The set is DTSTART, the rule's
/// instances (COUNT counts DTSTART as the first), plus RDATEs, minus EXDATEs.
#[derive(Debug, Clone)]
pub struct Recurrence {
    dtstart: Timestamp,
    tz_name: String,
    rule: Option<Rule>,
    plan: Option<Plan>,
    /// Sorted, unique.
    exdates: Vec<Timestamp>,
    /// Sorted, unique, none before DTSTART.
    rdates: Vec<Timestamp>,
}

impl Recurrence {
    /// Builds and checks a recurrence set.
    ///
    /// `tz` is an IANA zone name; an unknown one is an error naming it. A rule that can never
    /// produce an instance (e.g. `FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30`) is refused here rather
    /// than accepted as an event that silently never fires. RDATEs before DTSTART are dropped:
    /// DTSTART is the first instance of every schedule.
    pub fn new(
        dtstart: Timestamp,
        tz: &str,
        rule: Option<Rule>,
        exdates: Vec<Timestamp>,
        rdates: Vec<Timestamp>,
    ) -> Result<Recurrence, RuleError> {
        let zone = TimeZone::get(tz.trim()).map_err(|_| {
            RuleError::TimeZone(format!(
                "unknown time zone '{tz}': expected an IANA name such as UTC, Europe/Berlin or America/New_York"
            ))
        })?;
        let plan = match &rule {
            None => None,
            Some(r) => {
                let probe = Plan::new(r, dtstart, &zone, false);
                if RuleIter::new(&probe, None, false).next().is_none() {
                    return Err(RuleError::Never(format!(
                        "the rule {r} never produces an instance after the start time (searched a full 400-year calendar cycle, up to the year 9999): its parts cannot all be met together"
                    )));
                }
                Some(Plan::new(r, dtstart, &zone, true))
            }
        };
        let mut exdates = exdates;
        exdates.sort_unstable();
        exdates.dedup();
        let mut rdates: Vec<Timestamp> = rdates.into_iter().filter(|&t| t >= dtstart).collect();
        rdates.sort_unstable();
        rdates.dedup();
        Ok(Recurrence {
            dtstart,
            tz_name: tz.trim().to_string(),
            rule,
            plan,
            exdates,
            rdates,
        })
    }

    /// The anchor instant.
    pub fn dtstart(&self) -> Timestamp {
        self.dtstart
    }

    /// The IANA zone the rule is evaluated in.
    pub fn time_zone(&self) -> &str {
        &self.tz_name
    }

    /// The rule, if the schedule recurs.
    pub fn rule(&self) -> Option<&Rule> {
        self.rule.as_ref()
    }

    /// True when the schedule has a rule (it may still end through COUNT or UNTIL).
    pub fn is_recurring(&self) -> bool {
        self.rule.is_some()
    }

    /// Instances strictly after `after` (`None`: from DTSTART inclusive), ascending and unique,
    /// EXDATEs removed and RDATEs merged in.
    ///
    /// Lazy and cheap to start far in the future: without COUNT the rule skips arithmetically to
    /// the period holding `after`. It never loops forever: a rule that finds nothing for a full
    /// 400-year calendar cycle of periods ends.
    pub fn iter_after(&self, after: Option<Timestamp>) -> impl Iterator<Item = Timestamp> + '_ {
        self.cursor(after, None, u64::MAX)
    }

    /// [`Recurrence::iter_after`] that resumes the rule's count from `mark` (when it is at or
    /// before `after`) and examines at most `budget` periods (or sub-daily steps). When the
    /// budget runs out the cursor ends early and [`Cursor::check`] says so.
    pub fn cursor(&self, after: Option<Timestamp>, mark: Option<Mark>, budget: u64) -> Cursor<'_> {
        let rule_iter = self
            .plan
            .as_ref()
            .map(|p| RuleIter::resume(p, after, mark.map(|m| (m.at, m.index)), true, budget));
        let only_start = if self.plan.is_none() {
            Some(self.dtstart)
        } else {
            None
        };
        let ri = after.map_or(0, |a| self.rdates.partition_point(|&t| t <= a));
        let mark = rule_iter.as_ref().and_then(|r| r.mark());
        Cursor {
            rec: self,
            rule: rule_iter,
            peeked: None,
            peeked_mark: None,
            mark,
            only_start,
            ri,
            after,
            last: None,
        }
    }

    /// Instances in `(after, until]`, at most `limit` of them.
    pub fn between(
        &self,
        after: Option<Timestamp>,
        until: Timestamp,
        limit: usize,
    ) -> Vec<Timestamp> {
        self.iter_after(after)
            .take_while(|&t| t <= until)
            .take(limit)
            .collect()
    }
}

/// The instances of a [`Recurrence`] after some instant: an iterator that also tells how far
/// the rule's count has come ([`Cursor::mark`]) and whether it stopped on its budget.
pub struct Cursor<'a> {
    rec: &'a Recurrence,
    rule: Option<RuleIter<'a>>,
    peeked: Option<Timestamp>,
    /// The rule's mark with the peeked instance counted.
    peeked_mark: Option<(Timestamp, u64)>,
    /// The rule's mark over the instances consumed so far (returned, or removed by EXDATE or
    /// by `after`).
    mark: Option<(Timestamp, u64)>,
    /// DTSTART of a schedule without a rule, not yet emitted.
    only_start: Option<Timestamp>,
    ri: usize,
    after: Option<Timestamp>,
    last: Option<Timestamp>,
}

impl Cursor<'_> {
    fn peek_rule(&mut self) -> Option<Timestamp> {
        if self.peeked.is_none() {
            self.peeked = match (&mut self.rule, self.only_start) {
                (Some(r), _) => {
                    let t = r.next();
                    self.peeked_mark = r.mark();
                    t
                }
                (None, s) => s,
            };
            self.only_start = None;
        }
        self.peeked
    }

    /// The rule's count over every rule instance this cursor has consumed; `None` before the
    /// first one (unless it resumed from a mark) and for a schedule without a rule.
    pub fn mark(&self) -> Option<Mark> {
        self.mark.map(|(at, index)| Mark { at, index })
    }

    /// `Err` when the cursor ended because its budget ran out rather than because the schedule
    /// did: the message names the rule part that made it costly.
    pub fn check(&self) -> Result<(), RuleError> {
        let Some(r) = self.rule.as_ref().filter(|r| r.exceeded) else {
            return Ok(());
        };
        let steps = r.steps;
        let start = self.rec.dtstart.strftime("%Y-%m-%dT%H:%M:%SZ");
        Err(RuleError::TooCostly(match self.rec.rule.as_ref().and_then(|x| x.count()) {
            Some(c) => format!(
                "COUNT={c} is too costly to evaluate here: numbering the instances from the start time {start} took more than {steps} steps; give a later start_time, or UNTIL instead of COUNT"
            ),
            None => format!(
                "the rule is too costly to evaluate here: more than {steps} steps without reaching the answer"
            ),
        }))
    }
}

impl Iterator for Cursor<'_> {
    type Item = Timestamp;

    fn next(&mut self) -> Option<Timestamp> {
        loop {
            let r = self.peek_rule();
            let d = self.rec.rdates.get(self.ri).copied();
            let t = match (r, d) {
                (None, None) => return None,
                (Some(a), Some(b)) if b < a => {
                    self.ri += 1;
                    b
                }
                (Some(a), _) => {
                    self.peeked = None;
                    if self.rule.is_some() {
                        self.mark = self.peeked_mark;
                    }
                    a
                }
                (None, Some(b)) => {
                    self.ri += 1;
                    b
                }
            };
            if self.after.is_some_and(|a| t <= a) || self.last.is_some_and(|l| t <= l) {
                continue;
            }
            self.last = Some(t);
            if self.rec.exdates.binary_search(&t).is_ok() {
                continue;
            }
            return Some(t);
        }
    }
}
