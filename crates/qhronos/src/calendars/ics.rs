//! iCalendar text → the VEVENTs Qhronos takes, with their line numbers. The text is parsed by
//! calcard (tolerant of what real clients write: folding, BOMs, X- properties, Outlook's
//! quirks); this module only picks out the properties that matter and keeps every value as the
//! file wrote it (a date, a UTC time, or a local time with its TZID), for `import.rs` to map.

use calcard::icalendar::{
    ICalendar, ICalendarComponentType, ICalendarParameterName, ICalendarParameterValue,
    ICalendarProperty, ICalendarStatus, ICalendarValue, ICalendarValueType,
};
use calcard::Entry;
use jiff::civil::{Date, DateTime};
use jiff::Timestamp;

use super::zones::{civil, Zones};

/// Largest file taken (bytes).
pub const MAX_BYTES: usize = 10 * 1024 * 1024;
/// Most components (VEVENT, VTIMEZONE, VALARM, …) in one file.
pub const MAX_COMPONENTS: usize = 10_000;

/// A time as the file wrote it.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    /// `VALUE=DATE`: a whole day.
    Date(Date),
    /// `…Z`: an instant.
    Utc(Timestamp),
    /// A local time in a zone (`TZID=`), or floating (no TZID: the calendar's zone).
    Local(DateTime, Option<String>),
}

/// One VEVENT.
#[derive(Debug, Clone, Default)]
pub struct VEvent {
    /// 1-based line of its `BEGIN:VEVENT`.
    pub line: usize,
    pub uid: Option<String>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub start: Option<When>,
    pub end: Option<When>,
    /// `DURATION` in seconds, and whether it is whole days (`P1D`, `P1W`).
    pub duration: Option<(i64, bool)>,
    /// The RRULE as text (RFC 5545 form), for `recur` to parse.
    pub rrule: Option<String>,
    pub rdates: Vec<When>,
    pub exdates: Vec<When>,
    pub recurrence_id: Option<When>,
    pub cancelled: bool,
    /// `X-QHRONOS-FIRE-TIME` (our own feeds): the local time an all-day event fires at.
    pub fire_time: Option<String>,
    /// `X-QHRONOS-TIMEZONE` (our own feeds): the zone whose days an all-day event spans.
    pub day_zone: Option<String>,
}

/// A parsed file.
#[derive(Debug)]
pub struct Parsed {
    /// `X-WR-CALNAME`.
    pub name: Option<String>,
    /// `X-WR-TIMEZONE`: the zone of floating times and all-day events, unless defaults say.
    pub zone: Option<String>,
    pub events: Vec<VEvent>,
    pub zones: Zones,
}

/// Why a file could not be read at all (a 400).
pub type ParseError = String;

/// The 1-based lines of `BEGIN:VEVENT`, in order, and the number of components; `Err` for a
/// file whose structure is broken. calcard reads on past a missing END or a line that is not
/// a property (it is built for mail clients' leniency), but an import must not: a truncated
/// file would look like a calendar whose events vanished, and removing them is wrong.
fn scan(text: &str) -> Result<(Vec<usize>, usize), ParseError> {
    let mut lines = Vec::new();
    let mut comps = 0;
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut seen_calendar = false;
    let last = text.lines().count();
    let cut = |n: usize| n == last && !text.ends_with('\n');
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let l = raw.trim_start_matches('\u{feff}').trim_end_matches('\r');
        if l.trim().is_empty() || l.starts_with(' ') || l.starts_with('\t') {
            continue;
        }
        if seen_calendar && cut(n) && !l.eq_ignore_ascii_case("END:VCALENDAR") {
            return Err(format!(
                "the file ends in the middle of line {n} (truncated?): expected END:VCALENDAR last"
            ));
        }
        if !seen_calendar && !l.to_ascii_uppercase().starts_with("BEGIN:VCALENDAR") {
            return Err(
                "the body is not an iCalendar object: expected BEGIN:VCALENDAR … END:VCALENDAR"
                    .into(),
            );
        }
        let name_end = l.find([':', ';']).ok_or_else(|| {
            format!(
                "line {n}: '{}' is not a property (NAME:value); a long line must continue on the next with a space or tab (wrong line folding?)",
                l.chars().take(60).collect::<String>()
            )
        })?;
        let name = &l[..name_end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(format!(
                "line {n}: '{}' is not a property name (letters, digits and '-'); wrong line folding?",
                name.chars().take(60).collect::<String>()
            ));
        }
        let value = l[name_end..]
            .trim_start_matches(':')
            .trim()
            .to_ascii_uppercase();
        if name.eq_ignore_ascii_case("BEGIN") {
            if value == "VCALENDAR" {
                seen_calendar = true;
            } else {
                comps += 1;
            }
            if value == "VEVENT" {
                lines.push(n);
            }
            if open.len() > 16 {
                return Err(format!("line {n}: components nested more than 16 deep"));
            }
            open.push((value, n));
        } else if name.eq_ignore_ascii_case("END") {
            match open.pop() {
                Some((v, _)) if v == value => {}
                Some((v, at)) => {
                    return Err(format!(
                        "line {n}: END:{value} closes BEGIN:{v} of line {at}"
                    ))
                }
                None => return Err(format!("line {n}: END:{value} without its BEGIN")),
            }
        }
    }
    if !seen_calendar {
        return Err(
            "the body is not an iCalendar object: expected BEGIN:VCALENDAR … END:VCALENDAR".into(),
        );
    }
    if let Some((v, at)) = open.last() {
        return Err(format!(
            "the file ends inside BEGIN:{v} of line {at} (truncated?): every BEGIN needs its END"
        ));
    }
    Ok((lines, comps))
}

fn when(e: &calcard::icalendar::ICalendarEntry, v: &ICalendarValue) -> Option<When> {
    let ICalendarValue::PartialDateTime(p) = v else {
        return None;
    };
    let is_date = p.hour.is_none()
        || e.parameters(&ICalendarParameterName::Value)
            .any(|x| matches!(x, ICalendarParameterValue::Value(ICalendarValueType::Date)));
    let dt = civil(v)?;
    if is_date {
        return Some(When::Date(dt.date()));
    }
    if let Some(h) = p.tz_hour {
        let secs = i32::from(h) * 3600 + i32::from(p.tz_minute.unwrap_or(0)) * 60;
        let off = jiff::tz::Offset::from_seconds(if p.tz_minus { -secs } else { secs }).ok()?;
        return off.to_timestamp(dt).ok().map(When::Utc);
    }
    Some(When::Local(dt, e.tz_id().map(str::to_string)))
}

fn text(v: Option<&ICalendarValue>) -> Option<String> {
    match v {
        Some(ICalendarValue::Text(t)) => Some(t.clone()),
        _ => None,
    }
}

/// Parses a file. `Err` (a 400) when it is too big, has too many components, or is not an
/// iCalendar object at all (truncated, garbled); a VEVENT that is merely incomplete is kept
/// for `import.rs` to skip with its line.
pub fn parse(text_in: &str) -> Result<Parsed, ParseError> {
    if text_in.len() > MAX_BYTES {
        return Err(format!(
            "the file is {} bytes: at most {MAX_BYTES} (10 MiB)",
            text_in.len()
        ));
    }
    let (lines, comps) = scan(text_in)?;
    if comps > MAX_COMPONENTS {
        return Err(format!(
            "the file has {comps} components: at most {MAX_COMPONENTS}"
        ));
    }
    let cal: ICalendar = match ICalendar::parse(text_in) {
        Ok(c) => c,
        Err(e) => {
            return Err(match e {
                Entry::UnterminatedComponent(c) => format!(
                    "the file ends inside a {c} component (truncated?): every BEGIN needs its END"
                ),
                Entry::UnexpectedComponentEnd { expected, found } => format!(
                    "END:{} where END:{} was expected",
                    found.as_str(),
                    expected.as_str()
                ),
                Entry::InvalidLine(l) => format!("a line is not 'NAME:value': '{}' (lines longer than 75 octets must continue with a space or tab)", l.chars().take(80).collect::<String>()),
                Entry::TooManyComponents => format!("too many components: at most {MAX_COMPONENTS}"),
                _ => "the body is not an iCalendar object: expected BEGIN:VCALENDAR … END:VCALENDAR".into(),
            })
        }
    };
    let mut name = None;
    let mut zone = None;
    if let Some(root) = cal.components.first() {
        for e in &root.entries {
            if let ICalendarProperty::Other(n) = &e.name {
                if n.eq_ignore_ascii_case("X-WR-CALNAME") {
                    name = text(e.values.first());
                } else if n.eq_ignore_ascii_case("X-WR-TIMEZONE") {
                    zone = text(e.values.first());
                }
            }
        }
    }
    let zones = Zones::new(&cal);
    let mut events = Vec::new();
    for comp in cal
        .components
        .iter()
        .filter(|c| c.component_type == ICalendarComponentType::VEvent)
    {
        let mut ev = VEvent {
            line: lines.get(events.len()).copied().unwrap_or(0),
            ..VEvent::default()
        };
        for e in &comp.entries {
            let v = e.values.first();
            match &e.name {
                ICalendarProperty::Uid => ev.uid = text(v),
                ICalendarProperty::Summary => ev.summary = text(v),
                ICalendarProperty::Description => {
                    ev.description = text(v).filter(|d| !d.trim().is_empty())
                }
                ICalendarProperty::Dtstart => ev.start = v.and_then(|v| when(e, v)),
                ICalendarProperty::Dtend => ev.end = v.and_then(|v| when(e, v)),
                ICalendarProperty::RecurrenceId => ev.recurrence_id = v.and_then(|v| when(e, v)),
                ICalendarProperty::Duration => {
                    if let Some(ICalendarValue::Duration(d)) = v {
                        let days = i64::from(d.weeks) * 7 + i64::from(d.days);
                        let secs = days * 86_400
                            + i64::from(d.hours) * 3600
                            + i64::from(d.minutes) * 60
                            + i64::from(d.seconds);
                        let whole = d.hours == 0 && d.minutes == 0 && d.seconds == 0;
                        ev.duration = Some((if d.neg { -secs } else { secs }, whole));
                    }
                }
                ICalendarProperty::Rrule => {
                    if let Some(ICalendarValue::RecurrenceRule(r)) = v {
                        ev.rrule = Some(r.to_string());
                    }
                }
                ICalendarProperty::Rdate => {
                    ev.rdates.extend(e.values.iter().filter_map(|v| when(e, v)))
                }
                ICalendarProperty::Exdate => ev
                    .exdates
                    .extend(e.values.iter().filter_map(|v| when(e, v))),
                ICalendarProperty::Other(n) if n.eq_ignore_ascii_case(super::export::FIRE_TIME) => {
                    ev.fire_time = text(v)
                }
                ICalendarProperty::Other(n) if n.eq_ignore_ascii_case(super::export::DAY_ZONE) => {
                    ev.day_zone = text(v)
                }
                ICalendarProperty::Status => {
                    ev.cancelled =
                        matches!(v, Some(ICalendarValue::Status(ICalendarStatus::Cancelled)))
                }
                _ => {}
            }
        }
        events.push(ev);
    }
    Ok(Parsed {
        name,
        zone,
        events,
        zones,
    })
}
