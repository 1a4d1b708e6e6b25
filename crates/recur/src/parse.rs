//! RRULE text -> [`Raw`] parts (syntax only; ranges and combinations are checked in `rule.rs`).

use jiff::Timestamp;

use crate::error::RuleError;
use crate::rule::{Frequency, Part, Raw, Rule, Until, Weekday};

const FREQS: &str = "SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY";
const KNOWN: [&str; 14] = [
    "FREQ",
    "INTERVAL",
    "COUNT",
    "UNTIL",
    "BYSECOND",
    "BYMINUTE",
    "BYHOUR",
    "BYDAY",
    "BYMONTHDAY",
    "BYYEARDAY",
    "BYWEEKNO",
    "BYMONTH",
    "BYSETPOS",
    "WKST",
];
const PARTS: &str = "FREQ, INTERVAL, COUNT, UNTIL, BYSECOND, BYMINUTE, BYHOUR, BYDAY, BYMONTHDAY, BYYEARDAY, BYWEEKNO, BYMONTH, BYSETPOS or WKST";

impl Rule {
    /// Parses an RRULE value such as `FREQ=WEEKLY;BYDAY=MO,WE`.
    ///
    /// The `RRULE:` prefix is optional and names and values are case-insensitive, because rules
    /// are typed by people and pasted from calendar files. Everything RFC 5545 forbids is
    /// rejected with a message naming the part, so a client can fix its input.
    pub fn parse(s: &str) -> Result<Rule, RuleError> {
        let mut text = s.trim();
        // `get`, not indexing: byte 6 may fall inside a multi-byte character (found by fuzzing).
        if text
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("RRULE:"))
        {
            text = text[6..].trim_start();
        }
        if text.is_empty() {
            return Err(RuleError::syntax(
                "the rule is empty: expected NAME=VALUE parts separated by ';', starting with FREQ (e.g. FREQ=DAILY)",
            ));
        }
        let text = text.strip_suffix(';').unwrap_or(text);
        let mut raw = Raw::default();
        let mut seen: Vec<String> = Vec::new();
        for part in text.split(';') {
            let part = part.trim();
            let Some((name, value)) = part.split_once('=') else {
                let upper = part.to_ascii_uppercase();
                if KNOWN.contains(&upper.as_str()) {
                    return Err(RuleError::syntax(format!(
                        "{upper} has no value: write it as {upper}=<value>"
                    )));
                }
                let shown = if part.is_empty() { "(empty)" } else { part };
                return Err(RuleError::syntax(format!(
                    "'{shown}' is not a NAME=VALUE rule part: expected parts like FREQ=DAILY separated by ';'"
                )));
            };
            let name = name.trim().to_ascii_uppercase();
            let value = value.trim();
            if seen.contains(&name) {
                return Err(RuleError::syntax(format!(
                    "{name} appears more than once: each rule part may be given only once"
                )));
            }
            if value.is_empty() {
                return Err(RuleError::syntax(format!("{name}= has no value")));
            }
            apply(&mut raw, &name, value)?;
            seen.push(name);
        }
        raw.validate()
    }
}

fn apply(raw: &mut Raw, name: &str, value: &str) -> Result<(), RuleError> {
    match name {
        "FREQ" => {
            raw.freq = Some(Frequency::from_name(value).ok_or_else(|| {
                RuleError::syntax(format!("unknown FREQ '{value}': expected {FREQS}"))
            })?)
        }
        "INTERVAL" => raw.interval = Some(unsigned(Part::Interval, value)?),
        "COUNT" => raw.count = Some(unsigned(Part::Count, value)?),
        "UNTIL" => raw.until = Some(parse_until(value)?),
        "BYSECOND" => raw.by_second = int_list(Part::BySecond, value, false)?,
        "BYMINUTE" => raw.by_minute = int_list(Part::ByMinute, value, false)?,
        "BYHOUR" => raw.by_hour = int_list(Part::ByHour, value, false)?,
        "BYMONTHDAY" => raw.by_month_day = int_list(Part::ByMonthDay, value, true)?,
        "BYYEARDAY" => raw.by_year_day = int_list(Part::ByYearDay, value, true)?,
        "BYWEEKNO" => raw.by_week_no = int_list(Part::ByWeekNo, value, true)?,
        "BYMONTH" => raw.by_month = int_list(Part::ByMonth, value, false)?,
        "BYSETPOS" => raw.by_set_pos = int_list(Part::BySetPos, value, true)?,
        "BYDAY" => {
            let mut out = Vec::new();
            for item in items(Part::ByDay, value)? {
                out.push(parse_weekday_num(item).ok_or_else(|| {
                    RuleError::syntax(format!(
                        "BYDAY={value}: '{item}' is not a weekday; expected MO, TU, WE, TH, FR, SA or SU, optionally numbered like 1MO or -1FR"
                    ))
                })?);
            }
            raw.by_day = out;
        }
        "WKST" => {
            raw.wkst = Some(Weekday::from_code(value).ok_or_else(|| {
                RuleError::syntax(format!(
                    "WKST={value}: expected a weekday MO, TU, WE, TH, FR, SA or SU"
                ))
            })?)
        }
        other => {
            return Err(RuleError::syntax(format!(
                "unknown rule part '{other}': expected {PARTS}"
            )))
        }
    }
    Ok(())
}

fn items(part: Part, value: &str) -> Result<Vec<&str>, RuleError> {
    let items: Vec<&str> = value.split(',').map(str::trim).collect();
    if items.iter().any(|i| i.is_empty()) {
        return Err(RuleError::syntax(format!(
            "{}={value}: empty list element; separate values with single commas",
            part.rrule()
        )));
    }
    Ok(items)
}

fn unsigned(part: Part, value: &str) -> Result<i64, RuleError> {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RuleError::syntax(format!(
            "{}={value}: expected a whole number of at least 1 (digits only)",
            part.rrule()
        )));
    }
    value
        .parse::<i64>()
        .map_err(|_| RuleError::range(format!("{}={value}: the number is too large", part.rrule())))
}

/// `1*DIGIT` with an optional sign when the part allows counting from the end.
fn signed(part: Part, value: &str, item: &str, allow_sign: bool) -> Result<i64, RuleError> {
    let (neg, digits) = match item.as_bytes().first() {
        Some(b'-') if allow_sign => (true, &item[1..]),
        Some(b'+') if allow_sign => (false, &item[1..]),
        _ => (false, item),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        let what = if allow_sign {
            "whole numbers (negative counts from the end)"
        } else {
            "whole numbers without a sign"
        };
        return Err(RuleError::syntax(format!(
            "{}={value}: '{item}' is not a number; expected {what} separated by commas",
            part.rrule()
        )));
    }
    let n: i64 = digits.parse().map_err(|_| {
        RuleError::range(format!("{}={value}: '{item}' is too large", part.rrule()))
    })?;
    Ok(if neg { -n } else { n })
}

fn int_list(part: Part, value: &str, allow_sign: bool) -> Result<Vec<i64>, RuleError> {
    items(part, value)?
        .into_iter()
        .map(|i| signed(part, value, i, allow_sign))
        .collect()
}

/// `[+|-]n` followed by a weekday code, e.g. `-1FR`, `+2MO`, `TU`.
pub(crate) fn parse_weekday_num(item: &str) -> Option<(Option<i64>, Weekday)> {
    let item = item.trim();
    if item.len() < 2 || !item.is_char_boundary(item.len() - 2) {
        return None;
    }
    let (num, code) = item.split_at(item.len() - 2);
    let wd = Weekday::from_code(code)?;
    if num.is_empty() {
        return Some((None, wd));
    }
    let (neg, digits) = match num.as_bytes()[0] {
        b'-' => (true, &num[1..]),
        b'+' => (false, &num[1..]),
        _ => (false, num),
    };
    if digits.is_empty() || digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    Some((Some(if neg { -n } else { n }), wd))
}

/// `YYYYMMDD` or `YYYYMMDDTHHMMSSZ`. A floating date-time (no `Z`) is refused: DTSTART always
/// has a time zone here, and RFC 5545 then requires UNTIL in UTC.
pub(crate) fn parse_until(value: &str) -> Result<Until, RuleError> {
    let bad = || {
        RuleError::syntax(format!(
            "UNTIL={value}: expected a date YYYYMMDD or a UTC date-time YYYYMMDDTHHMMSSZ (e.g. 20251231T235959Z)"
        ))
    };
    let v = value.to_ascii_uppercase();
    let b = v.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = v.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let date = || -> Result<jiff::civil::Date, RuleError> {
        let (y, m, d) = (
            digits(0..4).ok_or_else(bad)?,
            digits(4..6).ok_or_else(bad)?,
            digits(6..8).ok_or_else(bad)?,
        );
        jiff::civil::Date::new(y as i16, m as i8, d as i8).map_err(|_| {
            RuleError::range(format!(
                "UNTIL={value}: {y:04}-{m:02}-{d:02} is not a calendar date"
            ))
        })
    };
    match b.len() {
        8 => Ok(Until::Date(date()?)),
        15 if b[8] == b'T' => Err(RuleError::conflict(format!(
            "UNTIL={value}: a date-time UNTIL must be in UTC with a trailing Z (e.g. {value}Z), because the start time has a time zone; or give a date YYYYMMDD"
        ))),
        16 if b[8] == b'T' && b[15] == b'Z' => {
            let d = date()?;
            let (h, mi, s) = (
                digits(9..11).ok_or_else(bad)?,
                digits(11..13).ok_or_else(bad)?,
                digits(13..15).ok_or_else(bad)?,
            );
            if h > 23 || mi > 59 || s > 60 {
                return Err(RuleError::range(format!(
                    "UNTIL={value}: {h:02}:{mi:02}:{s:02} is not a time of day"
                )));
            }
            let secs = crate::calendar::days_from_civil(
                i64::from(d.year()),
                i64::from(d.month()),
                i64::from(d.day()),
            ) * 86_400
                + h * 3600
                + mi * 60
                + s.min(59);
            let t = Timestamp::new(secs, 0).map_err(|_| bad())?;
            Ok(Until::Instant(t))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzz finding: a multi-byte character straddling byte 6 made the `RRULE:` prefix check
    /// slice inside it and panic instead of returning an error.
    #[test]
    fn non_ascii_around_prefix_is_an_error_not_a_panic() {
        for text in [
            "FREFR\u{ae}=QYE=DA",
            "RRULE\u{e9}FREQ=DAILY",
            "\u{1f600}\u{1f600}",
            "ab\u{e9}\u{e9}\u{e9}",
        ] {
            assert!(Rule::parse(text).is_err(), "{text:?}");
        }
        assert!(Rule::parse("rrule:FREQ=DAILY").is_ok());
    }
}
