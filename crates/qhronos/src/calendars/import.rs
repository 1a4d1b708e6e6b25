//! VEVENTs → event bodies (`EventIn`, validated by the same code as `POST /events`), and the
//! plan of an import against the calendar's events: what is created, updated, removed,
//! unchanged or skipped, and why.
//!
//! Overrides (`RECURRENCE-ID`) are folded into their series: a cancelled instance becomes an
//! EXDATE, a moved one an EXDATE of the original instant and an RDATE at the new one. The set of
//! instants is then exactly the file's, evaluated by `recur` like every other event (and kept
//! by every later expansion, which a materialised occurrence moved once would not be).
//!
//! An override with its own length (DTEND / DURATION) or its own SUMMARY cannot be folded: an
//! event has one length and one name for all its instances. It becomes an event of its own — a
//! single instance with that start, length and title, `external_id` `UID#RECURRENCE-ID` — and
//! the series gets an EXDATE at the original instant. Re-importing keeps it in step by that id;
//! an export writes it as its own VEVENT (the same instants, not a RECURRENCE-ID override).

use std::collections::{BTreeMap, HashSet};

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::ics::{Parsed, VEvent, When};
use crate::api::event_io::EventIn;
use crate::domain::event::Event;

/// What imported events take where the file says nothing: how they are delivered, their tags,
/// policies, the zone of all-day and floating times, and the local time all-day events fire.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// The action of every imported event (as in `POST /events`); required to import
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Value>,
    /// Tags every imported event carries
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<Value>,
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub misfire: Option<Value>,
    /// The zone of all-day events and floating times (default: the file's X-WR-TIMEZONE, else
    /// UTC)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The local time all-day events fire at (`"HH:MM"`, default `"00:00"`)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fire_time: Option<String>,
}

impl Defaults {
    /// `over`'s fields where it has them, else these.
    pub fn overlay(&self, over: &Defaults) -> Defaults {
        Defaults {
            action: over.action.clone().or_else(|| self.action.clone()),
            tags: if over.tags.is_empty() {
                self.tags.clone()
            } else {
                over.tags.clone()
            },
            retry: over.retry.clone().or_else(|| self.retry.clone()),
            misfire: over.misfire.clone().or_else(|| self.misfire.clone()),
            timezone: over.timezone.clone().or_else(|| self.timezone.clone()),
            fire_time: over.fire_time.clone().or_else(|| self.fire_time.clone()),
        }
    }
}

/// A series (or single event) of the file, as a request body.
#[derive(Debug, Clone)]
pub struct Item {
    pub uid: String,
    pub line: usize,
    pub body: EventIn,
}

/// A VEVENT not taken, with why.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Skip {
    pub uid: Option<String>,
    /// The line of its `BEGIN:VEVENT` (1-based).
    pub line: usize,
    pub reason: String,
}

/// The VEVENTs of a file as bodies.
#[derive(Debug, Default)]
pub struct Mapped {
    pub items: Vec<Item>,
    pub skipped: Vec<Skip>,
}

fn rfc3339(t: Timestamp) -> String {
    t.to_string()
}

fn local_text(dt: jiff::civil::DateTime) -> String {
    dt.strftime("%Y-%m-%dT%H:%M:%S").to_string()
}

struct Ctx<'a> {
    p: &'a Parsed,
    floating: String,
}

impl Ctx<'_> {
    fn zone_of(&self, tzid: Option<&str>) -> Result<String, String> {
        match tzid {
            None => Ok(self.floating.clone()),
            Some(t) => self.p.zones.resolve(t),
        }
    }

    fn instant(&self, w: &When) -> Result<Timestamp, String> {
        match w {
            When::Utc(t) => Ok(*t),
            When::Date(d) => recur::start_of_day(*d, &self.floating).map_err(|e| e.to_string()),
            When::Local(dt, tz) => {
                let zone = self.zone_of(tz.as_deref())?;
                recur::resolve_local(*dt, &zone).map_err(|e| e.to_string())
            }
        }
    }

    /// A date or time of an all-day series as `EventIn` reads it.
    fn day_or_time(&self, w: &When, all_day: bool) -> Result<String, String> {
        match (w, all_day) {
            (When::Date(d), true) => Ok(d.to_string()),
            _ => self.instant(w).map(rfc3339),
        }
    }
}

/// A floating `UNTIL` (no `Z`, not a date) rewritten in UTC through the series' zone: RFC 5545
/// wants UTC there when DTSTART has a zone, and clients write both.
fn until_in_utc(rule: &str, zone: &str) -> String {
    rule.split(';')
        .map(|part| {
            let Some(v) = part.strip_prefix("UNTIL=") else {
                return part.to_string();
            };
            if v.ends_with('Z') || !v.contains('T') {
                return part.to_string();
            }
            let parsed = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%S", v)
                .ok()
                .and_then(|dt| recur::resolve_local(dt, zone).ok());
            match parsed {
                Some(t) => format!("UNTIL={}", t.strftime("%Y%m%dT%H%M%SZ")),
                None => part.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// How long a VEVENT says it lasts, in seconds (`None`: it does not say).
fn length(cx: &Ctx<'_>, ev: &VEvent) -> Result<Option<i64>, String> {
    let Some(start) = &ev.start else {
        return Ok(None);
    };
    Ok(match (start, &ev.end, ev.duration) {
        (When::Date(day), Some(When::Date(end)), _) => {
            Some(i64::from((*end - *day).get_days()) * 86_400)
        }
        (_, Some(end), _) => Some(cx.instant(end)?.as_second() - cx.instant(start)?.as_second()),
        (_, None, Some((secs, _))) => Some(secs),
        _ => None,
    })
}

/// Whether an override cannot be folded into its series: it has a length or a title of its
/// own (see the module comment).
fn own_instance(cx: &Ctx<'_>, master: &VEvent, o: &VEvent) -> Result<bool, String> {
    let title = |e: &VEvent| {
        e.summary
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    if title(o).is_some_and(|t| Some(t) != title(master)) {
        return Ok(true);
    }
    // A series that says nothing lasts a day (all-day) or nothing (RFC 5545 3.6.1).
    let implied = match master.start {
        Some(When::Date(_)) => 86_400,
        _ => 0,
    };
    let own = length(cx, o)?;
    Ok(own.is_some() && own != Some(length(cx, master)?.unwrap_or(implied)))
}

/// An override with its own length or title as a VEVENT of its own (see the module comment):
/// its `external_id` and the event.
fn instance_of(
    cx: &Ctx<'_>,
    uid: &str,
    master: &VEvent,
    o: &VEvent,
) -> Result<(String, VEvent), String> {
    let rid = o.recurrence_id.as_ref().ok_or("RECURRENCE-ID is missing")?;
    let all_day = matches!(master.start, Some(When::Date(_)));
    let key = format!("{uid}#{}", cx.day_or_time(rid, all_day)?);
    let mut single = o.clone();
    single.recurrence_id = None;
    single.rrule = None;
    single.rdates.clear();
    single.exdates.clear();
    single.uid = Some(key.clone());
    if single
        .summary
        .as_deref()
        .is_none_or(|s| s.trim().is_empty())
    {
        single.summary = master.summary.clone();
    }
    if single.description.is_none() {
        single.description = master.description.clone();
    }
    if single.end.is_none() && single.duration.is_none() {
        single.end = master.end.clone();
        single.duration = master.duration;
    }
    single.fire_time = single.fire_time.or_else(|| master.fire_time.clone());
    single.day_zone = single.day_zone.or_else(|| master.day_zone.clone());
    Ok((key, single))
}

/// One series: its master VEVENT and its overrides → a body, and the overrides that become
/// events of their own.
fn series<'a>(
    cx: &Ctx<'_>,
    d: &Defaults,
    master: &VEvent,
    overrides: &[&'a VEvent],
) -> Result<(Value, Vec<&'a VEvent>), String> {
    let start = master.start.as_ref().ok_or("DTSTART is missing")?;
    let mut body = Map::new();
    let name: String = master
        .summary
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("(no title)")
        .chars()
        .take(256)
        .collect();
    body.insert("name".into(), name.into());
    if let Some(desc) = &master.description {
        body.insert("description".into(), desc.clone().into());
    }
    let all_day = matches!(start, When::Date(_));
    let zone = match start {
        When::Date(day) => {
            body.insert("start_date".into(), day.to_string().into());
            if let Some(t) = master.fire_time.as_ref().or(d.fire_time.as_ref()) {
                body.insert("fire_time".into(), t.clone().into());
            }
            let days = match (&master.end, master.duration) {
                (Some(When::Date(end)), _) => (*end - *day).get_days().max(1),
                (_, Some((secs, true))) if secs > 0 => i32::try_from(secs / 86_400).unwrap_or(1),
                _ => 1,
            };
            body.insert("duration".into(), format!("{days}d").into());
            master
                .day_zone
                .clone()
                .filter(|z| jiff::tz::TimeZone::get(z).is_ok())
                .unwrap_or_else(|| cx.floating.clone())
        }
        When::Utc(t) => {
            body.insert("start_time".into(), rfc3339(*t).into());
            "UTC".to_string()
        }
        When::Local(dt, tz) => {
            body.insert("start_time".into(), local_text(*dt).into());
            cx.zone_of(tz.as_deref())?
        }
    };
    body.insert("timezone".into(), zone.clone().into());
    if !all_day {
        let begin = cx.instant(start)?;
        let secs = match (&master.end, master.duration) {
            (Some(end), _) => cx.instant(end)?.as_second() - begin.as_second(),
            (None, Some((s, _))) => s,
            (None, None) => 0,
        };
        if secs > 0 {
            body.insert("duration".into(), format!("{secs}s").into());
        }
    }
    if let Some(rule) = &master.rrule {
        body.insert("schedule".into(), until_in_utc(rule, &zone).into());
    }
    let mut exdates: Vec<String> = master
        .exdates
        .iter()
        .map(|w| cx.day_or_time(w, all_day))
        .collect::<Result<_, _>>()?;
    let mut rdates: Vec<String> = master
        .rdates
        .iter()
        .map(|w| cx.day_or_time(w, all_day))
        .collect::<Result<_, _>>()?;
    let mut own = Vec::new();
    for o in overrides {
        let Some(rid) = &o.recurrence_id else {
            continue;
        };
        let was = cx.day_or_time(rid, all_day)?;
        if o.cancelled {
            exdates.push(was);
            continue;
        }
        if o.start.is_some() && own_instance(cx, master, o)? {
            exdates.push(was);
            own.push(*o);
            continue;
        }
        let Some(now_at) = &o.start else { continue };
        let moved_to = cx.day_or_time(now_at, all_day)?;
        if cx.instant(now_at)? != cx.instant(rid)? {
            exdates.push(was);
            rdates.push(moved_to);
        }
    }
    if !exdates.is_empty() {
        body.insert("exdates".into(), exdates.into());
    }
    if !rdates.is_empty() {
        body.insert("rdates".into(), rdates.into());
    }
    let action = d.action.clone().ok_or(
        "defaults.action is required: how the imported events are delivered (e.g. {\"type\": \"webhook\", \"params\": {\"url\": \"https://…\"}})",
    )?;
    body.insert("action".into(), action);
    if !d.tags.is_empty() {
        body.insert("tags".into(), json!(d.tags));
    }
    if let Some(r) = &d.retry {
        body.insert("retry".into(), r.clone());
    }
    if let Some(m) = &d.misfire {
        body.insert("misfire".into(), m.clone());
    }
    Ok((Value::Object(body), own))
}

/// A body as `EventIn`.
fn event_in(v: Value) -> Result<EventIn, String> {
    serde_json::from_value::<EventIn>(v).map_err(|e| e.to_string())
}

/// Maps every series of the file; a VEVENT that cannot be taken is skipped with its line.
pub fn map(p: &Parsed, d: &Defaults) -> Mapped {
    let floating = d
        .timezone
        .clone()
        .or_else(|| {
            p.zone
                .clone()
                .filter(|z| jiff::tz::TimeZone::get(z).is_ok())
        })
        .unwrap_or_else(|| "UTC".to_string());
    let cx = Ctx { p, floating };
    let mut out = Mapped::default();
    // UID → (master, overrides), in file order.
    let mut by_uid: BTreeMap<usize, (String, Option<&VEvent>, Vec<&VEvent>)> = BTreeMap::new();
    let mut index: std::collections::HashMap<&str, usize> = Default::default();
    for ev in &p.events {
        let Some(uid) = ev.uid.as_deref().filter(|u| !u.trim().is_empty()) else {
            out.skipped.push(Skip {
                uid: None,
                line: ev.line,
                reason: "UID is missing: an event without one cannot be kept in step".into(),
            });
            continue;
        };
        let k = *index.entry(uid).or_insert(ev.line);
        let entry = by_uid
            .entry(k)
            .or_insert_with(|| (uid.to_string(), None, Vec::new()));
        if ev.recurrence_id.is_some() {
            entry.2.push(ev);
        } else if entry.1.is_some() {
            out.skipped.push(Skip {
                uid: Some(uid.to_string()),
                line: ev.line,
                reason: "a second VEVENT with this UID and no RECURRENCE-ID (the first is taken)"
                    .into(),
            });
        } else {
            entry.1 = Some(ev);
        }
    }
    let mut seen = HashSet::new();
    for (_, (uid, master, overrides)) in by_uid {
        let Some(master) = master else {
            for o in overrides {
                out.skipped.push(Skip {
                    uid: Some(uid.clone()),
                    line: o.line,
                    reason: "an override (RECURRENCE-ID) whose series is not in the file".into(),
                });
            }
            continue;
        };
        seen.insert(uid.clone());
        if master.cancelled {
            out.skipped.push(Skip {
                uid: Some(uid),
                line: master.line,
                reason: "STATUS:CANCELLED".into(),
            });
            continue;
        }
        let (body, own) = match series(&cx, d, master, &overrides) {
            Ok((v, own)) => (event_in(v), own),
            Err(reason) => (Err(reason), Vec::new()),
        };
        match body {
            Ok(body) => out.items.push(Item {
                uid: uid.clone(),
                line: master.line,
                body,
            }),
            Err(reason) => {
                out.skipped.push(Skip {
                    uid: Some(uid),
                    line: master.line,
                    reason,
                });
                continue;
            }
        }
        for o in own {
            let single = instance_of(&cx, &uid, master, o).and_then(|(key, ev)| {
                let (v, _) = series(&cx, d, &ev, &[])?;
                Ok((key, event_in(v)?))
            });
            match single {
                Ok((key, body)) => out.items.push(Item {
                    uid: key,
                    line: o.line,
                    body,
                }),
                Err(reason) => out.skipped.push(Skip {
                    uid: Some(uid.clone()),
                    line: o.line,
                    reason,
                }),
            }
        }
    }
    out
}

/// True when an imported event would not change `old` (so a re-import leaves it alone).
pub fn same(old: &Event, new: &Event) -> bool {
    old.name == new.name
        && old.description == new.description
        && !new.timing_differs(old)
        && old.action == new.action
        && old.tags == new.tags
        && old.retry == new.retry
        && old.misfire == new.misfire
}
