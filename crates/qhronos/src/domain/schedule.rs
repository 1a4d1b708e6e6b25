//! Schedule input shared by events and `POST /schedules/preview`: the same parsing, so a rule
//! that previews is a rule that saves.

use jiff::Timestamp;
use recur::{JsonSchedule, Rule};
use serde_json::Value;

use super::{parse_time_in, Millis};

const MAX_DATES: usize = 1000;

/// Instants are kept to the millisecond; a finer one is rounded up, never down, so that nothing
/// fires before the time asked for.
pub fn ceil_ms(t: Timestamp) -> Millis {
    let ns = t.as_nanosecond();
    let ms = ns.div_euclid(1_000_000) + i128::from(ns.rem_euclid(1_000_000) != 0);
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// How the times of one body are read: in which zone a local time is (none: an offset is
/// required), and for an all-day event the local time a bare date (`2026-12-25`) stands for.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeCtx<'a> {
    pub tz: Option<&'a str>,
    pub day_time: Option<jiff::civil::Time>,
}

impl TimeCtx<'_> {
    /// One time of `field`: RFC 3339, a local date-time (with a zone), or a date (all-day).
    pub fn parse(&self, field: &str, s: &str) -> Result<Millis, String> {
        if let (Some(tz), Some(time)) = (self.tz, self.day_time) {
            if let Ok(d) = s.trim().parse::<jiff::civil::Date>() {
                return recur::resolve_local(d.to_datetime(time), tz)
                    .map(ceil_ms)
                    .map_err(|e| format!("{field}: {e}"));
            }
        }
        parse_time_in(field, s, self.tz).map(ceil_ms)
    }

    /// Every time of a list, each error naming `field[i]`.
    pub fn parse_all(&self, field: &str, v: &[String]) -> Result<Vec<Millis>, String> {
        if v.len() > MAX_DATES {
            return Err(format!("{field}: at most {MAX_DATES} entries"));
        }
        v.iter()
            .enumerate()
            .map(|(i, s)| self.parse(&format!("{field}[{i}]"), s))
            .collect()
    }
}

pub fn parse_times(field: &str, v: &[String]) -> Result<Vec<Millis>, String> {
    TimeCtx::default().parse_all(field, v)
}

pub fn parse_schedule(v: &Value) -> Result<Option<Rule>, String> {
    let rule = match v {
        Value::Null => return Ok(None),
        // An empty rule is a mistake, not a one-time event: saying so beats firing once.
        Value::String(s) if s.trim().is_empty() => {
            return Err(
                "schedule: must not be empty: give an RRULE such as \"FREQ=DAILY\", or omit schedule (or give null) for a one-time event"
                    .into(),
            )
        }
        Value::String(s) => Rule::parse(s),
        Value::Object(_) => {
            let j: JsonSchedule =
                serde_json::from_value(v.clone()).map_err(|e| format!("schedule: {e}"))?;
            Rule::from_json(&j)
        }
        _ => return Err("schedule: expected an RRULE string or a JSON object".into()),
    };
    rule.map(Some).map_err(|e| format!("schedule: {e}"))
}

/// `start` (ms since the epoch) as a local date-time in `zone` (UTC for a zone jiff does not
/// know: events are only saved with known zones).
pub fn local_time(start: Millis, zone: &str) -> jiff::ZonedDateTime {
    let tz = jiff::tz::TimeZone::get(zone).unwrap_or(jiff::tz::TimeZone::UTC);
    Timestamp::from_millisecond(start)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned_datetime(tz)
}

/// The schedule in English, with its zone: `"every weekday at 09:00, Europe/Berlin"`; a
/// one-time event is `"once, at 2026-03-29 09:00, Europe/Berlin"`.
pub fn schedule_text(start: Millis, zone: &str, rule: Option<&Rule>) -> String {
    let local = local_time(start, zone);
    match rule {
        Some(r) => r.describe(local.datetime(), Some(zone)),
        None => format!("once, at {}, {zone}", local.strftime("%Y-%m-%d %H:%M")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_text_names_the_zone_and_local_time() {
        // 2026-03-02T08:00:00Z is 09:00 in Berlin (CET).
        let start = 1_772_438_400_000;
        let rule = Rule::parse("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR").ok();
        assert_eq!(
            schedule_text(start, "Europe/Berlin", rule.as_ref()),
            "every weekday at 09:00, Europe/Berlin"
        );
        assert_eq!(
            schedule_text(start, "Europe/Berlin", None),
            "once, at 2026-03-02 09:00, Europe/Berlin"
        );
    }
}
