//! The JSON form of a rule, for API clients that prefer fields to RRULE text.

use serde::{Deserialize, Serialize};

use crate::error::RuleError;
use crate::rule::{Frequency, Raw, Rule, Until, Weekday};

/// A rule as JSON fields. Only `frequency` is required.
///
/// Numbers are read as wide integers and range-checked by the same validator as RRULE text, so a
/// bad value gets a message saying what is allowed instead of a generic deserialization error.
/// Unknown fields are refused so a typo (`by_days`) is not silently ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonSchedule {
    /// `secondly|minutely|hourly|daily|weekly|monthly|yearly` (case-insensitive on input).
    pub frequency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// Weekdays, optionally numbered: `["MO", "-1FR"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_day: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_month_day: Vec<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_month: Vec<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_year_day: Vec<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_week_no: Vec<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_hour: Vec<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_minute: Vec<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_second: Vec<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_set_pos: Vec<i64>,
    /// Week start, `MO` (default) .. `SU`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub week_start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// RFC 3339 instant (`2025-12-31T23:59:59Z`, any offset) or a date `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

fn nums<T: Copy + Into<i64>>(v: &[T]) -> Vec<i64> {
    v.iter().map(|&x| x.into()).collect()
}

impl Rule {
    /// The JSON form of this rule; `Rule::from_json` of it gives back `self`.
    pub fn to_json(&self) -> JsonSchedule {
        JsonSchedule {
            frequency: self.freq.as_rrule().to_ascii_lowercase(),
            interval: (self.interval != 1).then_some(i64::from(self.interval)),
            by_day: self.by_day.iter().map(|d| d.to_string()).collect(),
            by_month_day: nums(&self.by_month_day),
            by_month: nums(&self.by_month),
            by_year_day: nums(&self.by_year_day),
            by_week_no: nums(&self.by_week_no),
            by_hour: nums(&self.by_hour),
            by_minute: nums(&self.by_minute),
            by_second: nums(&self.by_second),
            by_set_pos: nums(&self.by_set_pos),
            week_start: (self.wkst != Weekday::Monday).then(|| self.wkst.code().to_string()),
            count: self.count.map(i64::from),
            until: self.until.map(|u| match u {
                Until::Date(d) => d.to_string(),
                Until::Instant(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            }),
        }
    }

    /// Builds a rule from its JSON form with the same validation as [`Rule::parse`].
    pub fn from_json(j: &JsonSchedule) -> Result<Rule, RuleError> {
        let freq = Frequency::from_name(j.frequency.trim()).ok_or_else(|| {
            RuleError::syntax(format!(
                "unknown frequency '{}': expected secondly, minutely, hourly, daily, weekly, monthly or yearly",
                j.frequency
            ))
        })?;
        let mut by_day = Vec::with_capacity(j.by_day.len());
        for d in &j.by_day {
            by_day.push(crate::parse::parse_weekday_num(d).ok_or_else(|| {
                RuleError::syntax(format!(
                    "by_day '{d}' is not a weekday: expected MO, TU, WE, TH, FR, SA or SU, optionally numbered like 1MO or -1FR"
                ))
            })?);
        }
        let wkst = match &j.week_start {
            None => None,
            Some(w) => Some(Weekday::from_code(w.trim()).ok_or_else(|| {
                RuleError::syntax(format!(
                    "week_start '{w}': expected a weekday MO, TU, WE, TH, FR, SA or SU"
                ))
            })?),
        };
        let until = match &j.until {
            None => None,
            Some(u) => Some(parse_json_until(u)?),
        };
        Raw {
            json: true,
            freq: Some(freq),
            interval: j.interval,
            count: j.count,
            until,
            by_second: j.by_second.clone(),
            by_minute: j.by_minute.clone(),
            by_hour: j.by_hour.clone(),
            by_day,
            by_month_day: j.by_month_day.clone(),
            by_year_day: j.by_year_day.clone(),
            by_week_no: j.by_week_no.clone(),
            by_month: j.by_month.clone(),
            by_set_pos: j.by_set_pos.clone(),
            wkst,
        }
        .validate()
    }
}

fn parse_json_until(u: &str) -> Result<Until, RuleError> {
    let s = u.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        // Whole seconds, like RRULE text, so both forms describe the same rule.
        let t = jiff::Timestamp::new(t.as_second(), 0).unwrap_or(t);
        return Ok(Until::Instant(t));
    }
    if s.len() == 10 {
        if let Ok(d) = s.parse::<jiff::civil::Date>() {
            return Ok(Until::Date(d));
        }
    }
    if !s.contains('-') {
        // Also accept the RRULE spelling (20251231T235959Z / 20251231).
        if let Ok(v) = crate::parse::parse_until(s) {
            return Ok(v);
        }
    }
    Err(RuleError::syntax(format!(
        "until '{u}': expected an RFC 3339 time with an offset (e.g. 2025-12-31T23:59:59Z) or a date YYYY-MM-DD"
    )))
}
