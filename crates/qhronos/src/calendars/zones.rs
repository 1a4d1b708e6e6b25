//! TZID → IANA zone. Real files name zones in many ways: IANA names (Google, Apple,
//! Thunderbird), Windows names (`W. Europe Standard Time`, Outlook and Exchange), Outlook's
//! display names (`(UTC+01:00) Amsterdam, Berlin, …`), prefixed names
//! (`/softwarestudio.org/Olson_20011030_5/America/Chicago`), and custom VTIMEZONE blocks with a
//! made-up TZID (`Customized Time Zone`). Each is mapped to an IANA zone so that the event's
//! rule is evaluated by `recur` with the real zone's history:
//!
//! 1. a name jiff's tz database knows;
//! 2. the VTIMEZONE's `X-LIC-LOCATION` / `X-MICROSOFT-CDO-TZID`, or the name through calcard's
//!    table of Windows and Outlook names (kept up to date by its maintainers, used by Stalwart);
//! 3. a VTIMEZONE whose rules match an IANA zone's offsets and transitions over 2025–2028
//!    (the observances' own RRULEs are expanded with `recur`). The well-known zones are tried
//!    first, so `Customized Time Zone` with US Eastern rules maps to America/New_York.
//!
//! A TZID that none of these resolves is refused by name for the events that use it.

use std::collections::HashMap;
use std::str::FromStr;

use calcard::common::timezone::Tz;
use calcard::icalendar::{ICalendar, ICalendarComponentType, ICalendarProperty, ICalendarValue};
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Zones tried first when a custom VTIMEZONE is matched by its rules (several IANA zones share
/// the same rules today; these are the names people expect).
const PREFERRED: [&str; 24] = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "America/Halifax",
    "America/Sao_Paulo",
    "America/Mexico_City",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "Europe/Helsinki",
    "Europe/Moscow",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Asia/Singapore",
    "Australia/Sydney",
    "Australia/Adelaide",
    "Australia/Brisbane",
    "Pacific/Auckland",
    "UTC",
];

/// What the file says about each TZID, resolved once per import.
#[derive(Debug)]
pub struct Zones {
    resolved: HashMap<String, Result<String, String>>,
}

/// The IANA name of `name` if jiff knows it (with a leading `/` removed).
fn iana(name: &str) -> Option<String> {
    let n = name.trim().trim_start_matches('/');
    TimeZone::get(n).ok().map(|_| n.to_string())
}

/// An offset property (`TZOFFSETTO:-0500`) in seconds.
fn offset(v: &ICalendarValue) -> Option<i32> {
    let ICalendarValue::PartialDateTime(p) = v else {
        return None;
    };
    let secs = i32::from(p.tz_hour?) * 3600 + i32::from(p.tz_minute.unwrap_or(0)) * 60;
    Some(if p.tz_minus { -secs } else { secs })
}

/// A date-time property value as a civil date-time (no zone).
pub fn civil(v: &ICalendarValue) -> Option<DateTime> {
    let ICalendarValue::PartialDateTime(p) = v else {
        return None;
    };
    jiff::civil::DateTime::new(
        i16::try_from(p.year?).ok()?,
        i8::try_from(p.month?).ok()?,
        i8::try_from(p.day?).ok()?,
        i8::try_from(p.hour.unwrap_or(0)).ok()?,
        i8::try_from(p.minute.unwrap_or(0)).ok()?,
        i8::try_from(p.second.unwrap_or(0).min(59)).ok()?,
        0,
    )
    .ok()
}

/// One transition: at `at` the offset becomes `to` (it was `from`).
#[derive(Debug, Clone, Copy)]
struct Transition {
    at: Timestamp,
    from: i32,
    to: i32,
}

/// The transitions a VTIMEZONE block defines within [2025, 2028), or the fixed offset when it
/// defines none there. Each observance's RRULE is expanded on the wall clock (evaluated in UTC,
/// where wall clock and instant agree) and shifted by its TZOFFSETFROM.
fn transitions(cal: &ICalendar, tz: usize) -> Option<(Vec<Transition>, Option<i32>)> {
    let lo: Timestamp = "2025-01-01T00:00:00Z".parse().ok()?;
    let hi: Timestamp = "2028-01-01T00:00:00Z".parse().ok()?;
    let mut out = Vec::new();
    let mut latest: Option<(DateTime, i32)> = None;
    for &child in &cal.components.get(tz)?.component_ids {
        let comp = cal.components.get(usize::try_from(child).ok()?)?;
        if !matches!(
            comp.component_type,
            ICalendarComponentType::Standard | ICalendarComponentType::Daylight
        ) {
            continue;
        }
        let mut start = None;
        let (mut from, mut to) = (None, None);
        let mut rule = None;
        let mut rdates = Vec::new();
        for e in &comp.entries {
            let v = e.values.first();
            match (&e.name, v) {
                (ICalendarProperty::Dtstart, Some(v)) => start = civil(v),
                (ICalendarProperty::Tzoffsetfrom, Some(v)) => from = offset(v),
                (ICalendarProperty::Tzoffsetto, Some(v)) => to = offset(v),
                (ICalendarProperty::Rrule, Some(ICalendarValue::RecurrenceRule(r))) => {
                    rule = recur::Rule::parse(&r.to_string()).ok();
                }
                (ICalendarProperty::Rdate, _) => rdates.extend(e.values.iter().filter_map(civil)),
                _ => {}
            }
        }
        let (start, from, to) = (start?, from?, to?);
        if latest.is_none_or(|(d, _)| start > d) {
            latest = Some((start, to));
        }
        let wall = |d: DateTime| TimeZone::UTC.to_timestamp(d).ok();
        let rec = recur::Recurrence::new(
            wall(start)?,
            "UTC",
            rule,
            Vec::new(),
            rdates.into_iter().filter_map(wall).collect(),
        )
        .ok()?;
        let after = Timestamp::from_second(lo.as_second() - 86_400 * 2).ok();
        for t in rec.cursor(after, None, recur::DEFAULT_BUDGET).take(16) {
            let at = Timestamp::from_second(t.as_second() - i64::from(from)).ok()?;
            if at >= hi {
                break;
            }
            if at >= lo {
                out.push(Transition { at, from, to });
            }
        }
    }
    out.sort_by_key(|t| t.at);
    Some((out, latest.map(|(_, to)| to)))
}

/// True when `zone` has exactly these transitions (and the fixed offset when there are none).
fn matches(zone: &TimeZone, ts: &[Transition], fixed: Option<i32>) -> bool {
    let off = |t: Timestamp| zone.to_offset(t).seconds();
    if ts.is_empty() {
        let Some(f) = fixed else { return false };
        return ["2026-01-15T12:00:00Z", "2026-07-15T12:00:00Z"]
            .iter()
            .filter_map(|s| s.parse::<Timestamp>().ok())
            .all(|t| off(t) == f);
    }
    ts.iter().all(|t| {
        let before = Timestamp::from_second(t.at.as_second() - 1);
        off(t.at) == t.to && before.is_ok_and(|b| off(b) == t.from)
    })
}

/// The IANA zone whose offsets follow a custom VTIMEZONE block.
fn by_rules(cal: &ICalendar, tz: usize) -> Option<String> {
    let (ts, fixed) = transitions(cal, tz)?;
    let rest = jiff::tz::db().available();
    let legacy = |n: &str| {
        !n.contains('/')
            || [
                "Etc/", "SystemV/", "US/", "posix/", "right/", "Canada/", "Mexico/", "Brazil/",
                "Chile/",
            ]
            .iter()
            .any(|p| n.starts_with(p))
    };
    PREFERRED
        .iter()
        .map(|s| s.to_string())
        .chain(rest.map(|n| n.as_str().to_string()).filter(|n| !legacy(n)))
        .find(|n| TimeZone::get(n).is_ok_and(|z| matches(&z, &ts, fixed)))
}

impl Zones {
    /// Resolves every VTIMEZONE of the file.
    pub fn new(cal: &ICalendar) -> Zones {
        let mut resolved = HashMap::new();
        for (i, comp) in cal.components.iter().enumerate() {
            if comp.component_type != ICalendarComponentType::VTimezone {
                continue;
            }
            let Some(tzid) = comp
                .entries
                .iter()
                .find_map(|e| match (&e.name, e.values.first()) {
                    (ICalendarProperty::Tzid, Some(ICalendarValue::Text(t))) => Some(t.clone()),
                    _ => None,
                })
            else {
                continue;
            };
            let known = iana(&tzid)
                .or_else(|| {
                    comp.timezone()
                        .and_then(|(_, tz)| tz.name())
                        .and_then(|n| iana(&n))
                })
                .or_else(|| by_rules(cal, i));
            let r = known.ok_or_else(|| {
                format!("TZID '{tzid}': its VTIMEZONE is not an IANA zone, a known Windows zone, or rules that match one")
            });
            resolved.insert(tzid, r);
        }
        Zones { resolved }
    }

    /// The IANA name of a TZID used by an event.
    pub fn resolve(&self, tzid: &str) -> Result<String, String> {
        if let Some(r) = self.resolved.get(tzid) {
            return r.clone();
        }
        iana(tzid)
            .or_else(|| Tz::from_str(tzid).ok().and_then(|t| t.name()).and_then(|n| iana(&n)))
            .ok_or_else(|| {
                format!("TZID '{tzid}' is unknown: not an IANA or Windows zone name, and the file has no VTIMEZONE for it")
            })
    }
}
