//! Events: the validated `Event` the engine, the store and delivery work with, and its status.
//! The API's request and response shapes (`EventIn`, which validates into an `Event`, and
//! `EventOut`) are in `api::event_io`.

use recur::{Recurrence, Rule};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::action::Action;
use super::policy::{MisfirePolicy, RetryPolicy};
use super::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    /// Firing as scheduled.
    Active,
    /// Not firing until resumed.
    Paused,
    /// Finished: a one-time event that fired, or a series that ended.
    Inactive,
    /// Deleted; kept only so that its occurrences stay visible.
    Deleted,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Active => "active",
            EventStatus::Paused => "paused",
            EventStatus::Inactive => "inactive",
            EventStatus::Deleted => "deleted",
        }
    }
    pub fn parse(s: &str) -> Result<EventStatus, String> {
        match s {
            "active" => Ok(EventStatus::Active),
            "paused" => Ok(EventStatus::Paused),
            "inactive" => Ok(EventStatus::Inactive),
            _ => Err(format!(
                "status '{s}' is unknown: expected active, paused or inactive"
            )),
        }
    }
}

/// One day in milliseconds (the unit of an all-day event's duration).
pub const DAY_MS: Millis = 86_400_000;

/// An all-day event: it spans whole local days from `start_date` and fires at `fire_time`
/// (local) on each of its days. Kept apart from `start_time` (which is the instant of
/// `start_date` at `fire_time`) so that the event reads back as the date it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllDay {
    pub start_date: jiff::civil::Date,
    pub fire_time: jiff::civil::Time,
}

/// A validated event (`api::event_io::EventIn::validate` makes one from a request body).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub start_time: Millis,
    pub timezone: String,
    /// The canonical RRULE, without the `RRULE:` prefix.
    pub schedule: Option<String>,
    pub exdates: Vec<Millis>,
    pub rdates: Vec<Millis>,
    /// How long each occurrence lasts (ms): `ends_at = scheduled_at + duration`. For an
    /// all-day event, whole days (default one), counted on the local calendar.
    pub duration: Option<Millis>,
    /// Set for an all-day event: the local date it starts on and the local time it fires at.
    pub all_day: Option<AllDay>,
    /// The calendar the event belongs to (imported, subscribed, or given for conflict checks).
    pub calendar_id: Option<Uuid>,
    /// The identity the event has outside Qhronos: the iCalendar UID it was imported from.
    pub external_id: Option<String>,
    pub action: Action,
    pub tags: Vec<String>,
    pub metadata: Value,
    pub hmac_secret: Option<String>,
    /// The secret before the last change, still signing until `previous_secret_until`
    /// (`None` inside: the server's default secret was in use).
    pub previous_secret: Option<(Option<String>, Millis)>,
    pub retry: RetryPolicy,
    pub misfire: MisfirePolicy,
    pub status: EventStatus,
    /// The next instance not yet materialised as an occurrence; `None` when the set is exhausted.
    pub next_fire_at: Option<Millis>,
    /// Why the engine paused the event (a receiver answered 410 Gone); `None` otherwise.
    pub paused_reason: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Event {
    /// The recurrence set of this event (its rule is re-parsed from the canonical string).
    pub fn recurrence(&self) -> Result<Recurrence, String> {
        let rule = match &self.schedule {
            Some(s) => Some(Rule::parse(s).map_err(|e| format!("schedule: {e}"))?),
            None => None,
        };
        let ts = |ms: &Millis| super::to_ts(*ms);
        Recurrence::new(
            ts(&self.start_time),
            &self.timezone,
            rule,
            self.exdates.iter().map(ts).collect(),
            self.rdates.iter().map(ts).collect(),
        )
        .map_err(|e| e.to_string())
    }

    /// When the occurrence at `at` ends: `at + duration`, or for an all-day event the start of
    /// the local day `days` after the occurrence's own day (a day is 23 or 25 hours across a
    /// DST change, so this is calendar arithmetic, not `at + 24h`). `None` without a duration.
    pub fn ends_at(&self, at: Millis) -> Option<Millis> {
        match (&self.all_day, self.duration) {
            (Some(_), d) => {
                let days = (d.unwrap_or(DAY_MS) / DAY_MS).max(1);
                let date = recur::to_local(super::to_ts(at), &self.timezone)
                    .ok()?
                    .date();
                let end = date.checked_add(jiff::Span::new().days(days)).ok()?;
                recur::start_of_day(end, &self.timezone)
                    .ok()
                    .map(|t| t.as_millisecond())
            }
            (None, Some(d)) => Some(at.saturating_add(d)),
            (None, None) => None,
        }
    }

    /// True when the timing of the series differs (so future occurrences must be re-planned).
    pub fn timing_differs(&self, other: &Event) -> bool {
        self.start_time != other.start_time
            || self.timezone != other.timezone
            || self.schedule != other.schedule
            || self.exdates != other.exdates
            || self.rdates != other.rdates
            || self.duration != other.duration
            || self.all_day != other.all_day
    }
}
