//! The validated rule model and its canonical RRULE rendering.

use std::fmt;

use jiff::Timestamp;

use crate::error::RuleError;

/// How often the rule's periods repeat (RFC 5545 `FREQ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Frequency {
    Secondly,
    Minutely,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Frequency {
    /// All frequencies, shortest period first.
    pub const ALL: [Frequency; 7] = [
        Frequency::Secondly,
        Frequency::Minutely,
        Frequency::Hourly,
        Frequency::Daily,
        Frequency::Weekly,
        Frequency::Monthly,
        Frequency::Yearly,
    ];

    /// The RRULE spelling (`DAILY`).
    pub fn as_rrule(self) -> &'static str {
        match self {
            Frequency::Secondly => "SECONDLY",
            Frequency::Minutely => "MINUTELY",
            Frequency::Hourly => "HOURLY",
            Frequency::Daily => "DAILY",
            Frequency::Weekly => "WEEKLY",
            Frequency::Monthly => "MONTHLY",
            Frequency::Yearly => "YEARLY",
        }
    }

    /// Case-insensitive lookup of an RRULE or JSON spelling.
    pub fn from_name(s: &str) -> Option<Frequency> {
        Frequency::ALL
            .into_iter()
            .find(|f| f.as_rrule().eq_ignore_ascii_case(s))
    }

    /// True for the frequencies that step in elapsed time rather than on the calendar.
    pub fn is_sub_daily(self) -> bool {
        matches!(
            self,
            Frequency::Secondly | Frequency::Minutely | Frequency::Hourly
        )
    }
}

/// A day of the week; `Monday` is RFC 5545's default week start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

impl Weekday {
    const ALL: [Weekday; 7] = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];

    /// Two-letter RRULE code (`MO`).
    pub fn code(self) -> &'static str {
        ["MO", "TU", "WE", "TH", "FR", "SA", "SU"][self.index() as usize]
    }

    /// 0 = Monday .. 6 = Sunday.
    pub fn index(self) -> i64 {
        self as i64
    }

    /// Case-insensitive lookup of a two-letter code.
    pub fn from_code(s: &str) -> Option<Weekday> {
        Weekday::ALL
            .into_iter()
            .find(|w| w.code().eq_ignore_ascii_case(s))
    }
}

/// One `BYDAY` entry: a weekday, optionally the n-th (or n-th from last) of its month or year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WeekdayNum {
    /// `None` means every such weekday; `Some(-1)` the last one.
    pub ordinal: Option<i8>,
    pub weekday: Weekday,
}

impl fmt::Display for WeekdayNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ordinal {
            Some(n) => write!(f, "{n}{}", self.weekday.code()),
            None => f.write_str(self.weekday.code()),
        }
    }
}

/// The end of a rule: a calendar date (every instance on that local date is included) or an
/// instant (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Until {
    Date(jiff::civil::Date),
    Instant(Timestamp),
}

impl Until {
    fn to_rrule(self) -> String {
        match self {
            Until::Date(d) => d.strftime("%Y%m%d").to_string(),
            Until::Instant(t) => t.strftime("%Y%m%dT%H%M%SZ").to_string(),
        }
    }
}

/// A parsed and validated RFC 5545 recurrence rule.
///
/// Lists are stored sorted and without duplicates, `INTERVAL` defaults to 1 and `WKST` to Monday,
/// so two spellings of the same rule compare equal and render the same canonical string: the
/// service stores that string and compares rules with `==`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    pub(crate) freq: Frequency,
    pub(crate) interval: u32,
    pub(crate) count: Option<u32>,
    pub(crate) until: Option<Until>,
    pub(crate) by_second: Vec<u8>,
    pub(crate) by_minute: Vec<u8>,
    pub(crate) by_hour: Vec<u8>,
    pub(crate) by_day: Vec<WeekdayNum>,
    pub(crate) by_month_day: Vec<i8>,
    pub(crate) by_year_day: Vec<i16>,
    pub(crate) by_week_no: Vec<i8>,
    pub(crate) by_month: Vec<u8>,
    pub(crate) by_set_pos: Vec<i16>,
    pub(crate) wkst: Weekday,
}

impl Rule {
    /// The rule's frequency.
    pub fn frequency(&self) -> Frequency {
        self.freq
    }
    /// The interval between periods (at least 1).
    pub fn interval(&self) -> u32 {
        self.interval
    }
    /// `COUNT`, if the rule is bounded by a number of instances.
    pub fn count(&self) -> Option<u32> {
        self.count
    }
    /// `UNTIL`, if the rule is bounded in time.
    pub fn until(&self) -> Option<Until> {
        self.until
    }
    /// True when the rule has neither `COUNT` nor `UNTIL`, i.e. it never ends on its own.
    pub fn is_infinite(&self) -> bool {
        self.count.is_none() && self.until.is_none()
    }

    /// Canonical RRULE text without the `RRULE:` prefix, parts in a fixed order with `FREQ`
    /// first, defaults (`INTERVAL=1`, `WKST=MO`) omitted. `Rule::parse` of it gives back `self`.
    pub fn to_rrule_string(&self) -> String {
        fn list<T: fmt::Display>(out: &mut String, name: &str, v: &[T]) {
            if v.is_empty() {
                return;
            }
            out.push(';');
            out.push_str(name);
            out.push('=');
            let parts: Vec<String> = v.iter().map(|x| x.to_string()).collect();
            out.push_str(&parts.join(","));
        }
        let mut out = format!("FREQ={}", self.freq.as_rrule());
        if self.interval != 1 {
            out.push_str(&format!(";INTERVAL={}", self.interval));
        }
        if let Some(c) = self.count {
            out.push_str(&format!(";COUNT={c}"));
        }
        if let Some(u) = self.until {
            out.push_str(&format!(";UNTIL={}", u.to_rrule()));
        }
        list(&mut out, "BYMONTH", &self.by_month);
        list(&mut out, "BYWEEKNO", &self.by_week_no);
        list(&mut out, "BYYEARDAY", &self.by_year_day);
        list(&mut out, "BYMONTHDAY", &self.by_month_day);
        list(&mut out, "BYDAY", &self.by_day);
        list(&mut out, "BYHOUR", &self.by_hour);
        list(&mut out, "BYMINUTE", &self.by_minute);
        list(&mut out, "BYSECOND", &self.by_second);
        list(&mut out, "BYSETPOS", &self.by_set_pos);
        if self.wkst != Weekday::Monday {
            out.push_str(&format!(";WKST={}", self.wkst.code()));
        }
        out
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rrule_string())
    }
}

/// The rule parts as written, before range and consistency checks. Both the RRULE parser and the
/// JSON form fill this in, so both are validated by the same code with the same messages.
#[derive(Debug, Default)]
pub(crate) struct Raw {
    /// Name parts in the JSON spelling (`by_month`) rather than the RRULE one (`BYMONTH`).
    pub json: bool,
    pub freq: Option<Frequency>,
    pub interval: Option<i64>,
    pub count: Option<i64>,
    pub until: Option<Until>,
    pub by_second: Vec<i64>,
    pub by_minute: Vec<i64>,
    pub by_hour: Vec<i64>,
    pub by_day: Vec<(Option<i64>, Weekday)>,
    pub by_month_day: Vec<i64>,
    pub by_year_day: Vec<i64>,
    pub by_week_no: Vec<i64>,
    pub by_month: Vec<i64>,
    pub by_set_pos: Vec<i64>,
    pub wkst: Option<Weekday>,
}

/// Rule part names in both spellings, for messages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Part {
    Freq,
    Interval,
    Count,
    Until,
    BySecond,
    ByMinute,
    ByHour,
    ByDay,
    ByMonthDay,
    ByYearDay,
    ByWeekNo,
    ByMonth,
    BySetPos,
}

impl Part {
    pub(crate) fn rrule(self) -> &'static str {
        match self {
            Part::Freq => "FREQ",
            Part::Interval => "INTERVAL",
            Part::Count => "COUNT",
            Part::Until => "UNTIL",
            Part::BySecond => "BYSECOND",
            Part::ByMinute => "BYMINUTE",
            Part::ByHour => "BYHOUR",
            Part::ByDay => "BYDAY",
            Part::ByMonthDay => "BYMONTHDAY",
            Part::ByYearDay => "BYYEARDAY",
            Part::ByWeekNo => "BYWEEKNO",
            Part::ByMonth => "BYMONTH",
            Part::BySetPos => "BYSETPOS",
        }
    }

    pub(crate) fn json(self) -> &'static str {
        match self {
            Part::Freq => "frequency",
            Part::Interval => "interval",
            Part::Count => "count",
            Part::Until => "until",
            Part::BySecond => "by_second",
            Part::ByMinute => "by_minute",
            Part::ByHour => "by_hour",
            Part::ByDay => "by_day",
            Part::ByMonthDay => "by_month_day",
            Part::ByYearDay => "by_year_day",
            Part::ByWeekNo => "by_week_no",
            Part::ByMonth => "by_month",
            Part::BySetPos => "by_set_pos",
        }
    }
}

impl Raw {
    fn name(&self, p: Part) -> &'static str {
        if self.json {
            p.json()
        } else {
            p.rrule()
        }
    }

    /// "BYMONTH=13" or "by_month 13".
    fn show(&self, p: Part, v: impl fmt::Display) -> String {
        if self.json {
            format!("{} {v}", p.json())
        } else {
            format!("{}={v}", p.rrule())
        }
    }

    fn list<T: TryFrom<i64> + Ord + Copy>(
        &self,
        p: Part,
        vals: &[i64],
        lo: i64,
        hi: i64,
        allow_negative: bool,
        what: &str,
    ) -> Result<Vec<T>, RuleError> {
        let mut out = Vec::with_capacity(vals.len());
        for &v in vals {
            let ok = (lo..=hi).contains(&v) || (allow_negative && (-hi..=-lo).contains(&v));
            let converted = if ok { T::try_from(v).ok() } else { None };
            match converted {
                Some(x) => out.push(x),
                None => {
                    let range = if allow_negative {
                        format!("{lo} to {hi} or -{hi} to -{lo}")
                    } else {
                        format!("{lo} to {hi}")
                    };
                    return Err(RuleError::range(format!(
                        "{}: {what} are {range}",
                        self.show(p, v)
                    )));
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Range and consistency checks (RFC 5545 §3.3.10), producing the canonical rule.
    pub(crate) fn validate(self) -> Result<Rule, RuleError> {
        let freq = self.freq.ok_or_else(|| {
            RuleError::syntax(format!(
                "{} is required: expected one of SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY",
                self.name(Part::Freq)
            ))
        })?;
        let interval = match self.interval {
            None => 1,
            Some(i) if i < 1 => {
                return Err(RuleError::range(format!(
                    "{}: the interval must be a whole number of at least 1",
                    self.show(Part::Interval, i)
                )))
            }
            Some(i) => u32::try_from(i).map_err(|_| {
                RuleError::range(format!(
                    "{}: the interval must be at most {}",
                    self.show(Part::Interval, i),
                    u32::MAX
                ))
            })?,
        };
        let count = match self.count {
            None => None,
            Some(c) if c < 1 => {
                return Err(RuleError::range(format!(
                    "{}: the count must be a whole number of at least 1",
                    self.show(Part::Count, c)
                )))
            }
            Some(c) => Some(u32::try_from(c).map_err(|_| {
                RuleError::range(format!(
                    "{}: the count must be at most {}",
                    self.show(Part::Count, c),
                    u32::MAX
                ))
            })?),
        };
        if count.is_some() && self.until.is_some() {
            return Err(RuleError::conflict(format!(
                "{} and {} cannot be used together: give one or the other",
                self.name(Part::Count),
                self.name(Part::Until)
            )));
        }
        let by_second = self.list(Part::BySecond, &self.by_second, 0, 60, false, "seconds")?;
        let by_minute = self.list(Part::ByMinute, &self.by_minute, 0, 59, false, "minutes")?;
        let by_hour = self.list(Part::ByHour, &self.by_hour, 0, 23, false, "hours")?;
        let by_month_day = self.list(
            Part::ByMonthDay,
            &self.by_month_day,
            1,
            31,
            true,
            "days of the month",
        )?;
        let by_year_day = self.list(
            Part::ByYearDay,
            &self.by_year_day,
            1,
            366,
            true,
            "days of the year",
        )?;
        let by_week_no = self.list(
            Part::ByWeekNo,
            &self.by_week_no,
            1,
            53,
            true,
            "week numbers",
        )?;
        let by_month = self.list(Part::ByMonth, &self.by_month, 1, 12, false, "months")?;
        let by_set_pos = self.list(Part::BySetPos, &self.by_set_pos, 1, 366, true, "positions")?;
        let mut by_day = Vec::with_capacity(self.by_day.len());
        for &(ord, wd) in &self.by_day {
            let ordinal = match ord {
                None => None,
                Some(n) if (1..=53).contains(&n.abs()) => i8::try_from(n).ok(),
                Some(n) => {
                    return Err(RuleError::range(format!(
                    "{}: the number before the weekday is 1 to 53 or -53 to -1 (e.g. 1MO, -1FR)",
                    self.show(Part::ByDay, format!("{n}{}", wd.code()))
                )))
                }
            };
            by_day.push(WeekdayNum {
                ordinal,
                weekday: wd,
            });
        }
        by_day.sort_by_key(|d| (d.weekday, d.ordinal));
        by_day.dedup();

        let rule = Rule {
            freq,
            interval,
            count,
            until: self.until,
            by_second,
            by_minute,
            by_hour,
            by_day,
            by_month_day,
            by_year_day,
            by_week_no,
            by_month,
            by_set_pos,
            wkst: self.wkst.unwrap_or(Weekday::Monday),
        };
        self.check_combinations(&rule)?;
        Ok(rule)
    }

    fn check_combinations(&self, r: &Rule) -> Result<(), RuleError> {
        let f = r.freq;
        let freq_txt = self.show(Part::Freq, f.as_rrule());
        if !r.by_week_no.is_empty() && f != Frequency::Yearly {
            return Err(RuleError::conflict(format!(
                "{} can only be used with FREQ=YEARLY, not {freq_txt}",
                self.name(Part::ByWeekNo)
            )));
        }
        if !r.by_year_day.is_empty()
            && matches!(f, Frequency::Daily | Frequency::Weekly | Frequency::Monthly)
        {
            return Err(RuleError::conflict(format!(
                "{} cannot be used with {freq_txt}: use it with YEARLY (or HOURLY, MINUTELY, SECONDLY)",
                self.name(Part::ByYearDay)
            )));
        }
        if !r.by_month_day.is_empty() && f == Frequency::Weekly {
            return Err(RuleError::conflict(format!(
                "{} cannot be used with {freq_txt}: use BYDAY for weekly rules, or FREQ=MONTHLY",
                self.name(Part::ByMonthDay)
            )));
        }
        if let Some(d) = r.by_day.iter().find(|d| d.ordinal.is_some()) {
            if !matches!(f, Frequency::Monthly | Frequency::Yearly) {
                return Err(RuleError::conflict(format!(
                    "{}: a numbered weekday (like 1MO or -1FR) needs FREQ=MONTHLY or YEARLY, not {freq_txt}; use a plain weekday such as {}",
                    self.show(Part::ByDay, d), d.weekday.code()
                )));
            }
            if f == Frequency::Yearly && !r.by_week_no.is_empty() {
                return Err(RuleError::conflict(format!(
                    "{}: a numbered weekday cannot be combined with {}; use a plain weekday such as {}",
                    self.show(Part::ByDay, d),
                    self.name(Part::ByWeekNo),
                    d.weekday.code()
                )));
            }
            let month_scope =
                f == Frequency::Monthly || (f == Frequency::Yearly && !r.by_month.is_empty());
            if month_scope {
                if let Some(d) = r
                    .by_day
                    .iter()
                    .find(|d| d.ordinal.is_some_and(|n| n.abs() > 5))
                {
                    return Err(RuleError::Never(format!(
                        "{}: a month has at most 5 of any weekday, so the number must be 1 to 5 or -5 to -1",
                        self.show(Part::ByDay, d)
                    )));
                }
            }
        }
        let has_other_by = !(r.by_second.is_empty()
            && r.by_minute.is_empty()
            && r.by_hour.is_empty()
            && r.by_day.is_empty()
            && r.by_month_day.is_empty()
            && r.by_year_day.is_empty()
            && r.by_week_no.is_empty()
            && r.by_month.is_empty());
        if !r.by_set_pos.is_empty() && !has_other_by {
            return Err(RuleError::conflict(format!(
                "{} needs another BYxxx part to pick from (e.g. BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1)",
                self.name(Part::BySetPos)
            )));
        }
        // Days of the month that no selected month has (February 30th, April 31st, ...).
        if !r.by_month_day.is_empty() && f != Frequency::Weekly {
            let months: Vec<u8> = if r.by_month.is_empty() {
                (1..=12).collect()
            } else {
                r.by_month.clone()
            };
            let possible = months.iter().any(|&m| {
                let len = crate::calendar::days_in_month(2000, i64::from(m));
                r.by_month_day.iter().any(|&d| i64::from(d).abs() <= len)
            });
            if !possible {
                let days: Vec<String> = r.by_month_day.iter().map(|d| d.to_string()).collect();
                let ms: Vec<String> = months.iter().map(|m| m.to_string()).collect();
                return Err(RuleError::Never(format!(
                    "{} with {}: none of these months has such a day, so the rule would never occur",
                    self.show(Part::ByMonthDay, days.join(",")),
                    self.show(Part::ByMonth, ms.join(","))
                )));
            }
        }
        Ok(())
    }
}
