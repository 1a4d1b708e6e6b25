//! The JSON form of a rule, for API clients that prefer fields to RRULE text.

use serde::{Deserialize, Serialize};

use crate::error::RuleError;
use crate::rule::{Frequency, Raw, Rule, Until, Weekday};

/// A rule as JSON fields. Only `frequency` is required.
///
/// Numbers are read as wide integers and range-checked by the same validator as RRULE text, so a
/// bad value gets a message saying what is allowed instead of a generic deserialization error.
/// Unknown fields are refused so a typo (`by_days`) is not silently ignored.
///
/// With the `openapi` feature the type derives utoipa's `ToSchema`: the field doc comments
/// below are the descriptions an API document shows, so they are written for API clients.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(
        description = "The JSON form of an RRULE (RFC 5545): the same rule as fields, e.g. \
`{\"frequency\": \"weekly\", \"by_day\": [\"MO\", \"WE\"]}` is `FREQ=WEEKLY;BYDAY=MO,WE`. \
Only `frequency` is required; unknown fields are refused. Values are range-checked like RRULE \
text, and an error names the field and what it accepts.",
        example = json!({"frequency": "monthly", "by_day": ["MO", "TU", "WE", "TH", "FR"], "by_set_pos": [-1], "by_hour": [17]})
    )
)]
#[serde(deny_unknown_fields)]
pub struct JsonSchedule {
    /// `secondly`, `minutely`, `hourly`, `daily`, `weekly`, `monthly` or `yearly`
    /// (case-insensitive on input).
    #[cfg_attr(feature = "openapi", schema(example = "weekly"))]
    pub frequency: String,
    /// Every how many `frequency` units the rule repeats: 1 (the default) or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4294967295_i64))]
    pub interval: Option<i64>,
    /// Weekdays, optionally numbered: `["MO", "-1FR"]`. A number (1 to 53 or -53 to -1, from
    /// the end) counts within the month or year and needs `monthly` or `yearly`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_day: Vec<String>,
    /// Days of the month, 1 to 31 or -31 to -1 (from the end); not with `weekly`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_month_day: Vec<i64>,
    /// Months, 1 to 12.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_month: Vec<i64>,
    /// Days of the year, 1 to 366 or -366 to -1 (from the end); not with `daily`, `weekly` or
    /// `monthly`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_year_day: Vec<i64>,
    /// ISO 8601 week numbers, 1 to 53 or -53 to -1 (from the end); only with `yearly`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_week_no: Vec<i64>,
    /// Hours, 0 to 23 (local time in the event's time zone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_hour: Vec<i64>,
    /// Minutes, 0 to 59.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_minute: Vec<i64>,
    /// Seconds, 0 to 60.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_second: Vec<i64>,
    /// Which of the instances in each period to keep, 1 to 366 or -366 to -1 (`[-1]`: the
    /// last); needs another `by_*` field to pick from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_set_pos: Vec<i64>,
    /// Week start, `MO` (default) to `SU`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub week_start: Option<String>,
    /// How many instances in all (at least 1); not together with `until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 4294967295_i64))]
    pub count: Option<i64>,
    /// The end of the rule, inclusive: an RFC 3339 instant (`2025-12-31T23:59:59Z`, any offset)
    /// or a date `YYYY-MM-DD` (every instance on that local date is kept); not together with
    /// `count`.
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

/// The derived schema (feature `openapi`) against what the type really reads and writes.
#[cfg(all(test, feature = "openapi"))]
mod schema {
    use std::collections::BTreeSet;

    use serde_json::Value;
    use utoipa::PartialSchema;

    use super::JsonSchedule;
    use crate::Rule;

    /// Every field set, written out without `..Default::default()` so that a new field does
    /// not compile here until it is added.
    fn full() -> JsonSchedule {
        JsonSchedule {
            frequency: "yearly".into(),
            interval: Some(2),
            by_day: vec!["MO".into()],
            by_month_day: vec![1],
            by_month: vec![1],
            by_year_day: vec![1],
            by_week_no: vec![1],
            by_hour: vec![9],
            by_minute: vec![0],
            by_second: vec![0],
            by_set_pos: vec![1],
            week_start: Some("SU".into()),
            count: Some(3),
            until: Some("2030-01-01".into()),
        }
    }

    fn schema() -> Value {
        serde_json::to_value(JsonSchedule::schema()).expect("the schema serialises")
    }

    #[test]
    fn the_schema_has_exactly_the_fields_the_type_serialises() {
        let written = serde_json::to_value(full()).expect("serialises");
        let fields: BTreeSet<&String> = written.as_object().expect("an object").keys().collect();
        let schema = schema();
        let properties: BTreeSet<&String> = schema["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .collect();
        assert_eq!(properties, fields);
        assert_eq!(schema["required"], serde_json::json!(["frequency"]));
        assert_eq!(schema["additionalProperties"], Value::Bool(false));
        // What is written is read back: the names are the input names too.
        let back: JsonSchedule = serde_json::from_value(written).expect("reads back");
        assert_eq!(back, full());
    }

    #[test]
    fn the_schema_example_is_a_valid_rule() {
        let example = schema()["example"].clone();
        let j: JsonSchedule =
            serde_json::from_value(example).expect("the example is a JsonSchedule");
        Rule::from_json(&j).expect("the example is a valid rule");
    }
}
