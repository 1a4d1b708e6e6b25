//! Local wall-clock times → instants, by the rule RFC 5545 §3.3.5 gives for DTSTART and that
//! the whole crate follows: a local time that does not exist (the spring-forward gap) is moved
//! forward by the length of the gap, and an ambiguous one (the fall-back fold) takes its first
//! instant. The service calls this for every time a client writes without an offset, so that a
//! local `start_time`, an EXDATE, an RDATE and a rule's own instances resolve alike.

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::error::RuleError;

fn zone(tz: &str) -> Result<TimeZone, RuleError> {
    TimeZone::get(tz.trim()).map_err(|_| {
        RuleError::TimeZone(format!(
            "unknown time zone '{tz}': expected an IANA name such as UTC, Europe/Berlin or America/New_York"
        ))
    })
}

/// The instant of the local date-time `dt` in the IANA zone `tz`: a time in the gap moves
/// forward by the gap (`02:30` on the day Berlin springs forward is `03:30` CEST), a time in
/// the fold is its first instant (`02:30` on the day Berlin falls back is `02:30` CEST).
pub fn resolve_local(dt: DateTime, tz: &str) -> Result<Timestamp, RuleError> {
    let zone = zone(tz)?;
    zone.to_ambiguous_timestamp(dt)
        .compatible()
        .map_err(|e| RuleError::Range(format!("local time {dt} in {tz}: {e}")))
}

/// The start of the local day `date` in `tz` (midnight, or the first instant after a gap that
/// swallows midnight).
pub fn start_of_day(date: Date, tz: &str) -> Result<Timestamp, RuleError> {
    resolve_local(date.to_datetime(jiff::civil::Time::midnight()), tz)
}

/// The local date-time of `t` in `tz`.
pub fn to_local(t: Timestamp, tz: &str) -> Result<DateTime, RuleError> {
    Ok(zone(tz)?.to_datetime(t))
}

/// A local date-time without an offset: `2026-03-29T02:30:00`, `2026-03-29T02:30`,
/// `2026-03-29 02:30:00` (fractions of a second allowed). `None` for anything else, an offset
/// or `Z` included: such a string is an instant, not a local time.
pub fn parse_local(s: &str) -> Option<DateTime> {
    let s = s.trim();
    // jiff's civil parser ignores a trailing offset; a local time must not have one.
    let time = s.get(11..)?;
    if time.contains(['Z', 'z', '+', '-', '[']) {
        return None;
    }
    s.parse::<DateTime>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn the_gap_moves_forward_and_the_fold_takes_the_first_instant() {
        let gap = parse_local("2026-03-29T02:30:00").unwrap();
        assert_eq!(
            resolve_local(gap, "Europe/Berlin").unwrap(),
            utc("2026-03-29T01:30:00Z")
        );
        let fold = parse_local("2026-10-25T02:30").unwrap();
        assert_eq!(
            resolve_local(fold, "Europe/Berlin").unwrap(),
            utc("2026-10-25T00:30:00Z")
        );
        let plain = parse_local("2026-07-01 09:00:00").unwrap();
        assert_eq!(
            resolve_local(plain, "America/New_York").unwrap(),
            utc("2026-07-01T13:00:00Z")
        );
    }

    #[test]
    fn a_string_with_an_offset_is_not_a_local_time() {
        assert!(parse_local("2026-03-29T02:30:00Z").is_none());
        assert!(parse_local("2026-03-29T02:30:00+02:00").is_none());
        assert!(parse_local("2026-03-29T02:30:00-05:00").is_none());
        assert!(parse_local("2026-03-29").is_none());
        assert!(parse_local("tomorrow").is_none());
    }

    #[test]
    fn a_day_that_starts_in_a_gap_starts_after_it() {
        // Santiago springs forward at midnight: 2026-09-06 starts at 01:00 local (-03).
        let d: Date = "2026-09-06".parse().unwrap();
        assert_eq!(
            start_of_day(d, "America/Santiago").unwrap(),
            utc("2026-09-06T04:00:00Z")
        );
        assert!(start_of_day(d, "Mars/Olympus").is_err());
    }
}
