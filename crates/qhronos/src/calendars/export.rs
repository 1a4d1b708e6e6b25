//! Events → an iCalendar feed that calendar apps subscribe to: one VEVENT per event (DTSTART
//! in its zone, DURATION, RRULE, EXDATE, RDATE), the instances a person moved or cancelled as
//! RECURRENCE-ID overrides, and a VTIMEZONE for every zone used, written from jiff's tz
//! database (each transition an observance), so an app without that zone still reads the
//! offsets right. Text is escaped and lines folded at 75 octets (RFC 5545 §3.1, §3.3.11).

use std::collections::{BTreeMap, BTreeSet};

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::domain::event::{Event, DAY_MS};
use crate::domain::{to_ts, Millis};
use crate::store::Override;

/// Most observances one VTIMEZONE lists.
const MAX_TRANSITIONS: usize = 400;

/// Our own property for the local time an all-day event fires at (iCalendar has no place for
/// it); `import.rs` reads it back, so a round trip keeps it.
pub const FIRE_TIME: &str = "X-QHRONOS-FIRE-TIME";
/// Our own property for the zone whose days an all-day event spans (a DATE has no zone).
pub const DAY_ZONE: &str = "X-QHRONOS-TIMEZONE";

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// One content line, folded at 75 octets (never inside a character), ended by CRLF.
fn line(out: &mut String, text: &str) {
    let mut width = 0;
    for c in text.chars() {
        let n = c.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
}

fn utc(ms: Millis) -> String {
    to_ts(ms).strftime("%Y%m%dT%H%M%SZ").to_string()
}

fn offset_text(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    format!("{sign}{:02}{:02}", a / 3600, a % 3600 / 60)
}

/// How one event writes its times: `DTSTART;TZID=…:local`, `…Z`, or `VALUE=DATE`.
struct Times<'a> {
    e: &'a Event,
    zone: Option<TimeZone>,
}

impl Times<'_> {
    fn prop(&self, name: &str, ms: Millis) -> String {
        if self.e.all_day.is_some() {
            let date = self
                .zone
                .as_ref()
                .map(|z| z.to_datetime(to_ts(ms)).date())
                .unwrap_or_else(|| TimeZone::UTC.to_datetime(to_ts(ms)).date());
            return format!("{name};VALUE=DATE:{}", date.strftime("%Y%m%d"));
        }
        match &self.zone {
            None => format!("{name}:{}", utc(ms)),
            Some(z) => format!(
                "{name};TZID={}:{}",
                self.e.timezone,
                z.to_datetime(to_ts(ms)).strftime("%Y%m%dT%H%M%S")
            ),
        }
    }

    fn length(&self, out: &mut String, start: Millis, ends_at: Option<Millis>) {
        if self.e.all_day.is_some() {
            let days = (self.e.duration.unwrap_or(DAY_MS) / DAY_MS).max(1);
            line(out, &format!("DURATION:P{days}D"));
        } else if let Some(end) = ends_at.or_else(|| self.e.ends_at(start)) {
            line(out, &format!("DURATION:PT{}S", (end - start).max(0) / 1000));
        }
    }
}

fn vtimezone(out: &mut String, name: &str, from: Millis, until: Millis) {
    let Ok(zone) = TimeZone::get(name) else {
        return;
    };
    line(out, "BEGIN:VTIMEZONE");
    line(out, &format!("TZID:{name}"));
    line(out, &format!("X-LIC-LOCATION:{name}"));
    let start = Timestamp::from_millisecond(from).unwrap_or(Timestamp::UNIX_EPOCH);
    let mut before = zone.to_offset(start);
    let mut n = 0;
    for t in zone.following(start) {
        if t.timestamp().as_millisecond() > until || n >= MAX_TRANSITIONS {
            break;
        }
        let kind = if t.dst().is_dst() {
            "DAYLIGHT"
        } else {
            "STANDARD"
        };
        let local = before.to_datetime(t.timestamp());
        line(out, &format!("BEGIN:{kind}"));
        line(out, &format!("DTSTART:{}", local.strftime("%Y%m%dT%H%M%S")));
        line(
            out,
            &format!("TZOFFSETFROM:{}", offset_text(before.seconds())),
        );
        line(
            out,
            &format!("TZOFFSETTO:{}", offset_text(t.offset().seconds())),
        );
        line(out, &format!("TZNAME:{}", escape(t.abbreviation())));
        line(out, &format!("END:{kind}"));
        before = t.offset();
        n += 1;
    }
    if n == 0 {
        // A zone without transitions in the span: one observance from before the first event.
        let local = before.to_datetime(start);
        line(out, "BEGIN:STANDARD");
        line(out, &format!("DTSTART:{}", local.strftime("%Y%m%dT%H%M%S")));
        line(
            out,
            &format!("TZOFFSETFROM:{}", offset_text(before.seconds())),
        );
        line(
            out,
            &format!("TZOFFSETTO:{}", offset_text(before.seconds())),
        );
        line(out, "END:STANDARD");
    }
    line(out, "END:VTIMEZONE");
}

fn uid(e: &Event) -> String {
    e.external_id
        .clone()
        .unwrap_or_else(|| format!("{}@qhronos", e.id))
}

/// The feed of `events` (and their hand-made overrides), named `name`, written at `now`.
pub fn feed(name: &str, events: &[Event], overrides: &[Override], now: Millis) -> String {
    let mut out = String::new();
    line(&mut out, "BEGIN:VCALENDAR");
    line(&mut out, "VERSION:2.0");
    line(&mut out, "PRODID:-//Qhronos//Qhronos calendar feed//EN");
    line(&mut out, "CALSCALE:GREGORIAN");
    line(&mut out, "METHOD:PUBLISH");
    line(&mut out, &format!("X-WR-CALNAME:{}", escape(name)));
    // Zones in use, from a day before the earliest start to two years ahead.
    let mut zones: BTreeMap<&str, Millis> = BTreeMap::new();
    for e in events.iter().filter(|e| e.timezone != "UTC") {
        let z = zones.entry(e.timezone.as_str()).or_insert(e.start_time);
        *z = (*z).min(e.start_time);
    }
    let until = now + 2 * 366 * DAY_MS;
    for (zone, from) in &zones {
        vtimezone(
            &mut out,
            zone,
            from - DAY_MS,
            until.max(from + 2 * 366 * DAY_MS),
        );
    }
    let mut by_event: BTreeMap<uuid::Uuid, Vec<&Override>> = BTreeMap::new();
    for o in overrides {
        by_event.entry(o.event_id).or_default().push(o);
    }
    let stamp = utc(now);
    for e in events {
        let t = Times {
            e,
            zone: (e.timezone != "UTC")
                .then(|| TimeZone::get(&e.timezone).ok())
                .flatten(),
        };
        let uid = escape(&uid(e));
        line(&mut out, "BEGIN:VEVENT");
        line(&mut out, &format!("UID:{uid}"));
        line(&mut out, &format!("DTSTAMP:{stamp}"));
        line(&mut out, &format!("LAST-MODIFIED:{}", utc(e.updated_at)));
        line(&mut out, &format!("SUMMARY:{}", escape(&e.name)));
        if let Some(d) = &e.description {
            line(&mut out, &format!("DESCRIPTION:{}", escape(d)));
        }
        line(&mut out, &t.prop("DTSTART", e.start_time));
        if let Some(a) = &e.all_day {
            line(
                &mut out,
                &format!("{FIRE_TIME}:{}", a.fire_time.strftime("%H:%M:%S")),
            );
            line(&mut out, &format!("{DAY_ZONE}:{}", e.timezone));
        }
        t.length(&mut out, e.start_time, None);
        if let Some(rule) = &e.schedule {
            line(&mut out, &format!("RRULE:{rule}"));
        }
        let exdates: BTreeSet<Millis> = e.exdates.iter().copied().collect();
        for x in &exdates {
            line(&mut out, &t.prop("EXDATE", *x));
        }
        for r in &e.rdates {
            line(&mut out, &t.prop("RDATE", *r));
        }
        line(&mut out, "END:VEVENT");
        if e.schedule.is_none() {
            continue;
        }
        for o in by_event.get(&e.id).into_iter().flatten() {
            line(&mut out, "BEGIN:VEVENT");
            line(&mut out, &format!("UID:{uid}"));
            line(&mut out, &format!("DTSTAMP:{stamp}"));
            line(&mut out, &t.prop("RECURRENCE-ID", o.original));
            line(&mut out, &format!("SUMMARY:{}", escape(&e.name)));
            match o.moved_to {
                Some((at, ends)) => {
                    line(&mut out, &t.prop("DTSTART", at));
                    t.length(&mut out, at, ends);
                }
                None => {
                    line(&mut out, &t.prop("DTSTART", o.original));
                    line(&mut out, "STATUS:CANCELLED");
                }
            }
            line(&mut out, "END:VEVENT");
        }
    }
    line(&mut out, "END:VCALENDAR");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_a_character() {
        let mut out = String::new();
        line(&mut out, &format!("SUMMARY:{}", "é".repeat(60)));
        for l in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= 75, "{l}");
        }
        let unfolded = out.replace("\r\n ", "");
        assert_eq!(unfolded, format!("SUMMARY:{}\r\n", "é".repeat(60)));
        assert_eq!(escape("a;b,c\\d\ne"), "a\\;b\\,c\\\\d\\ne");
    }
}
