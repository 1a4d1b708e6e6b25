//! The request and response shapes of `/events`: `EventIn` (the body of a create or an update,
//! validated into a domain `Event`) and `EventOut` (what every answer shows of an event).

use recur::{JsonSchedule, Rule};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::action::{self, Action};
use crate::domain::event::{AllDay, Event, EventStatus};
use crate::domain::policy::{MisfirePolicy, RetryPolicy};
use crate::domain::schedule::{parse_schedule, schedule_text, TimeCtx};
use crate::domain::{fmt_ms, Millis};

/// A duration in milliseconds as the API writes it (`"45m"`, `"1d"`).
pub fn fmt_duration(ms: Millis) -> String {
    crate::domain::duration::Dur::from_millis(u64::try_from(ms).unwrap_or(0)).to_string()
}

/// Distinguishes a field that is absent (`None`) from one set to null (`Some(None)`), so that a
/// partial update can clear a field.
fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The body of `POST /events` and `PUT /events/{id}` (where every field is optional).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "standup", "start_time": "2026-12-01T09:00:00+01:00", "timezone": "Europe/Berlin", "schedule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", "action": {"type": "webhook", "params": {"url": "https://example.com/hook"}}, "tags": ["team"], "metadata": {"room": 4}}))]
pub struct EventIn {
    /// Required on create: 1 to 256 characters
    #[schema(schema_with = super::inputs::event_name)]
    pub name: Option<String>,
    /// Free text; `null` clears it
    #[serde(default, deserialize_with = "double_option")]
    pub description: Option<Option<String>>,
    /// Required on create (unless `start_in` or `start_date`): the one-time instant, or
    /// DTSTART of a series. RFC 3339 with an offset, or, when `timezone` is given, a local
    /// date-time without one (`"2026-03-29T02:30:00"`): a time in the spring-forward gap moves
    /// forward by the gap, one in the fall-back fold takes its first instant. (The schema
    /// states only the form with an offset: what matches it is always accepted.)
    #[schema(schema_with = super::inputs::start_time)]
    pub start_time: Option<String>,
    /// Instead of `start_time`, for an all-day event: the local date (`"2026-12-24"`) in
    /// `timezone` (required with it). It fires at `fire_time` on each of its days
    #[schema(schema_with = super::inputs::start_date)]
    pub start_date: Option<String>,
    /// With `start_date`: the local time of day it fires at, `"HH:MM"` or `"HH:MM:SS"`;
    /// default `"00:00"`
    #[schema(schema_with = super::inputs::fire_time)]
    pub fire_time: Option<String>,
    /// How long each occurrence lasts (`"45m"`, `"1h"`; for an all-day event whole days,
    /// `"2d"`, default one day): occurrences and webhooks carry `ends_at`. `null` clears it
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = super::inputs::event_duration)]
    pub duration: Option<Option<String>>,
    /// Instead of `duration`: when the first occurrence ends (same forms as `start_time`);
    /// stored as the duration
    #[schema(schema_with = super::inputs::end_time)]
    pub end_time: Option<String>,
    /// The calendar the event belongs to (see `/calendars`); `null` removes it
    #[serde(default, deserialize_with = "double_option")]
    pub calendar_id: Option<Option<Uuid>>,
    /// Instead of `start_time`: a delay from now, a whole number with a unit ms, s, m, h or d
    /// (`"20m"`, `"2h"`). Resolved once, when the request is handled, and stored as the instant
    /// (responses show `start_time`); giving both is a 400
    #[schema(schema_with = super::inputs::start_in)]
    pub start_in: Option<String>,
    /// IANA time zone the rule is evaluated in; default `UTC`
    #[schema(schema_with = super::inputs::timezone)]
    pub timezone: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = super::inputs::schedule)]
    pub schedule: Option<Option<Value>>,
    /// Instants removed from the set (at most 1000), read like `start_time`; for an all-day
    /// event also dates (`"2026-12-25"`)
    #[schema(schema_with = super::inputs::date_times)]
    pub exdates: Option<Vec<String>>,
    /// Instants added to the set (at most 1000), read like `exdates`
    #[schema(schema_with = super::inputs::date_times)]
    pub rdates: Option<Vec<String>>,
    /// How to deliver (required on create, unless the legacy `webhook` or `webhook_url` is
    /// given); only http and https URLs
    #[schema(schema_with = super::inputs::action)]
    pub action: Option<Value>,
    /// Legacy: a webhook URL.
    #[schema(schema_with = super::inputs::legacy_url)]
    pub webhook: Option<String>,
    /// Legacy: a webhook URL.
    #[schema(schema_with = super::inputs::legacy_url)]
    pub webhook_url: Option<String>,
    /// Tags for filtering and scopes: at most 64, each 1 to 128 characters, no commas
    #[schema(schema_with = super::inputs::tags)]
    pub tags: Option<Vec<String>>,
    /// Any JSON object (at most 64 KiB), sent in the webhook body
    #[schema(schema_with = super::inputs::metadata)]
    pub metadata: Option<Value>,
    /// Write-only signing secret (`whsec_` + base64, or any string). Omitted on create: one is
    /// generated and returned once, in `hmac_secret` of the 201. `null` on an update generates a
    /// new one (returned once in the 200)
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = super::inputs::secret)]
    pub hmac_secret: Option<Option<String>>,
    pub retry: Option<RetryPolicy>,
    pub misfire: Option<MisfirePolicy>,
    /// `active` (default) or `paused`
    #[schema(schema_with = super::inputs::event_status)]
    pub status: Option<String>,
}

use qhronos_schema::limits::{NAME_MAX as MAX_NAME, TAGS_MAX as MAX_TAGS, TAG_MAX as MAX_TAG};
const MAX_METADATA: usize = 64 * 1024;

impl EventIn {
    /// Applies `patch` on top of `self` (a partial update).
    pub fn merge(mut self, patch: EventIn) -> EventIn {
        macro_rules! take {
            ($($f:ident),*) => { $( if patch.$f.is_some() { self.$f = patch.$f; } )* };
        }
        if patch.start_time.is_some() || patch.start_in.is_some() || patch.start_date.is_some() {
            self.start_time = patch.start_time.clone();
            self.start_in = patch.start_in.clone();
            self.start_date = patch.start_date.clone();
            self.fire_time = patch.fire_time.clone();
        } else if patch.fire_time.is_some() {
            self.fire_time = patch.fire_time.clone();
        }
        if patch.duration.is_some() || patch.end_time.is_some() {
            self.duration = patch.duration.clone();
            self.end_time = patch.end_time.clone();
        }
        take!(
            name,
            description,
            calendar_id,
            timezone,
            schedule,
            exdates,
            rdates,
            tags,
            metadata,
            hmac_secret,
            retry,
            misfire,
            status
        );
        if patch.action.is_some() || patch.webhook.is_some() || patch.webhook_url.is_some() {
            let mut action = patch.action;
            if let (Some(new), Some(old)) = (action.as_mut(), self.action.as_ref()) {
                action::keep_stored_headers(new, old);
            }
            self.action = action;
            self.webhook = patch.webhook;
            self.webhook_url = patch.webhook_url;
        }
        self
    }

    /// Validates the body into an event with the given identity and times.
    pub fn validate(&self, id: Uuid, created_at: Millis, now: Millis) -> Result<Event, String> {
        let name = self
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .ok_or("name is required (a non-empty string)")?;
        if name.chars().count() > MAX_NAME {
            return Err(format!("name: at most {MAX_NAME} characters"));
        }
        let tz = self.timezone.as_deref();
        let all_day = self.all_day()?;
        let ctx = TimeCtx {
            tz,
            day_time: all_day.map(|a| a.fire_time),
        };
        let start_time = match (self.start_time.as_deref(), self.start_in.as_deref()) {
            (None, None) if all_day.is_some() => ctx.parse(
                "start_date",
                &all_day.map(|a| a.start_date.to_string()).unwrap_or_default(),
            )?,
            _ if all_day.is_some() => {
                return Err("start_date: give start_date (all-day) or start_time / start_in, not both".into())
            }
            (Some(_), Some(_)) => {
                return Err("start_time and start_in: give one of them, not both".into())
            }
            (Some(start), None) => ctx.parse("start_time", start)?,
            (None, Some(delay)) => {
                let d: crate::domain::duration::Dur = delay.parse().map_err(|e| {
                    format!("start_in: {e} (a whole number with a unit ms, s, m, h or d, e.g. \"20m\")")
                })?;
                now.saturating_add(d.as_millis())
            }
            (None, None) => {
                return Err("start_time is required (an RFC 3339 time, e.g. 2026-01-01T09:00:00Z), or start_in (a delay from now, e.g. \"20m\")".into())
            }
        };
        let timezone = self.timezone.clone().unwrap_or_else(|| "UTC".to_string());
        let rule = match &self.schedule {
            Some(Some(v)) => parse_schedule(v)?,
            _ => None,
        };
        let exdates = ctx.parse_all("exdates", self.exdates.as_deref().unwrap_or_default())?;
        let rdates = ctx.parse_all("rdates", self.rdates.as_deref().unwrap_or_default())?;
        let duration = self.duration_ms(&ctx, start_time, all_day.is_some())?;
        let action = match (&self.action, &self.webhook, &self.webhook_url) {
            (Some(a), None, None) => Action::parse(a)?,
            (None, Some(w), None) => Action::from_legacy("webhook", w)?,
            (None, None, Some(w)) => Action::from_legacy("webhook_url", w)?,
            (None, None, None) => {
                return Err("action is required: {\"type\": \"webhook\", \"params\": {\"url\": \"https://…\"}} (or the legacy 'webhook' URL field)".into())
            }
            _ => return Err("give only one of action, webhook and webhook_url".into()),
        };
        let mut tags = Vec::new();
        for t in self.tags.iter().flatten() {
            let t = t.trim();
            if t.is_empty() || t.chars().count() > MAX_TAG || t.contains(',') {
                return Err(format!(
                    "tags: '{t}' is not a valid tag (1 to {MAX_TAG} characters, no commas)"
                ));
            }
            if !tags.iter().any(|x| x == t) {
                tags.push(t.to_string());
            }
        }
        if tags.len() > MAX_TAGS {
            return Err(format!("tags: at most {MAX_TAGS}"));
        }
        if let Some(m) = &self.metadata {
            let size = serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX);
            if size > MAX_METADATA {
                return Err(format!(
                    "metadata: at most {} KiB of JSON ({size} bytes given)",
                    MAX_METADATA / 1024
                ));
            }
        }
        let metadata = match &self.metadata {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v.clone(),
            Some(_) => return Err("metadata: expected a JSON object".into()),
        };
        let hmac_secret = match &self.hmac_secret {
            Some(Some(s)) if s.is_empty() => return Err(
                "hmac_secret: must not be empty (omit it, and a secret is generated for the event)"
                    .into(),
            ),
            Some(Some(s)) => Some(s.clone()),
            _ => None,
        };
        let retry = self.retry.clone().unwrap_or_default();
        retry.validate()?;
        let status = match self.status.as_deref() {
            None => EventStatus::Active,
            Some(s) => EventStatus::parse(s)?,
        };
        let schedule = rule.as_ref().map(Rule::to_rrule_string);
        let event = Event {
            id,
            name: name.to_string(),
            description: self.description.clone().flatten(),
            start_time,
            timezone,
            schedule,
            exdates,
            rdates,
            duration,
            all_day,
            calendar_id: self.calendar_id.flatten(),
            external_id: None,
            action,
            tags,
            metadata,
            hmac_secret,
            previous_secret: None,
            retry,
            misfire: self.misfire.clone().unwrap_or_default(),
            status,
            next_fire_at: None,
            paused_reason: None,
            created_at,
            updated_at: now,
        };
        // Builds the recurrence once to reject unknown zones and rules that never occur.
        event.recurrence()?;
        // Templates are checked by the caller, off the async workers and under a budget that
        // a batch shares: `template::check_off_thread`, `template::check_batch_off_thread`.
        Ok(event)
    }
}

/// Longest duration of one occurrence: a year.
const MAX_DURATION: Millis = 366 * crate::domain::event::DAY_MS;

impl EventIn {
    /// `start_date` and `fire_time` read into an all-day start (needs `timezone`).
    fn all_day(&self) -> Result<Option<AllDay>, String> {
        let Some(date) = self.start_date.as_deref() else {
            if self.fire_time.is_some() {
                return Err("fire_time: only with start_date (an all-day event)".into());
            }
            return Ok(None);
        };
        if self.timezone.is_none() {
            return Err("start_date: an all-day event needs timezone (the IANA zone whose days it spans, e.g. Europe/Berlin)".into());
        }
        let start_date = date.trim().parse::<jiff::civil::Date>().map_err(|_| {
            format!("start_date: '{date}' is not a date: expected YYYY-MM-DD, e.g. 2026-12-24")
        })?;
        let fire_time = match self.fire_time.as_deref() {
            None => jiff::civil::Time::midnight(),
            Some(t) => t.trim().parse::<jiff::civil::Time>().map_err(|_| {
                format!(
                    "fire_time: '{t}' is not a time of day: expected HH:MM or HH:MM:SS, e.g. 09:00"
                )
            })?,
        };
        Ok(Some(AllDay {
            start_date,
            fire_time,
        }))
    }

    /// `duration` or `end_time` as milliseconds; whole days for an all-day event.
    fn duration_ms(
        &self,
        ctx: &TimeCtx<'_>,
        start: Millis,
        all_day: bool,
    ) -> Result<Option<Millis>, String> {
        let ms = match (self.duration.as_ref().and_then(Option::as_deref), self.end_time.as_deref()) {
            (Some(_), Some(_)) => {
                return Err("duration and end_time: give one of them, not both".into())
            }
            (None, None) => return Ok(None),
            (Some(d), None) => {
                let d: crate::domain::duration::Dur = d
                    .parse()
                    .map_err(|e| format!("duration: {e}"))?;
                d.as_millis()
            }
            (None, Some(_)) if all_day => {
                return Err("end_time: an all-day event takes duration in whole days (e.g. \"2d\"), not end_time".into())
            }
            (None, Some(end)) => ctx.parse("end_time", end)? - start,
        };
        if ms <= 0 {
            return Err(if self.end_time.is_some() {
                "end_time: must be after start_time".into()
            } else {
                "duration: must be more than zero".into()
            });
        }
        if ms > MAX_DURATION {
            return Err("duration: at most 366d".into());
        }
        if all_day && ms % crate::domain::event::DAY_MS != 0 {
            return Err("duration: an all-day event lasts whole days (e.g. \"1d\", \"2d\")".into());
        }
        Ok(Some(ms))
    }
}

impl From<&Event> for EventIn {
    /// The event as a request body, so that a partial update can be merged onto it.
    fn from(e: &Event) -> EventIn {
        EventIn {
            name: Some(e.name.clone()),
            description: Some(e.description.clone()),
            start_time: e.all_day.is_none().then(|| fmt_ms(e.start_time)),
            start_date: e.all_day.map(|a| a.start_date.to_string()),
            fire_time: e
                .all_day
                .map(|a| a.fire_time.strftime("%H:%M:%S").to_string()),
            duration: Some(e.duration.map(fmt_duration)),
            end_time: None,
            calendar_id: Some(e.calendar_id),
            start_in: None,
            timezone: Some(e.timezone.clone()),
            schedule: Some(e.schedule.clone().map(Value::String)),
            exdates: Some(e.exdates.iter().map(|m| fmt_ms(*m)).collect()),
            rdates: Some(e.rdates.iter().map(|m| fmt_ms(*m)).collect()),
            action: serde_json::to_value(&e.action).ok(),
            webhook: None,
            webhook_url: None,
            tags: Some(e.tags.clone()),
            metadata: Some(e.metadata.clone()),
            hmac_secret: Some(e.hmac_secret.clone()),
            retry: Some(e.retry.clone()),
            misfire: Some(e.misfire.clone()),
            status: Some(e.status.as_str().to_string()),
        }
    }
}

/// The response shape. `hmac_secret` is write-only: responses only say whether one is set.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventOut {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub start_time: String,
    pub timezone: String,
    pub schedule: Option<String>,
    pub schedule_json: Option<JsonSchedule>,
    /// The schedule in English words with its zone, for people: `"every weekday at 09:00,
    /// Europe/Berlin"`, `"once, at 2026-03-29 09:00, Europe/Berlin"`. Not for parsing: the
    /// RRULE (`schedule`) is the exact form.
    pub schedule_text: String,
    pub exdates: Vec<String>,
    pub rdates: Vec<String>,
    /// How long each occurrence lasts (`"45m"`), `null` without
    pub duration: Option<String>,
    /// When the first occurrence ends (`start_time + duration`; for an all-day event the
    /// start of the local day after its last day), `null` without a duration
    pub end_time: Option<String>,
    /// The local date of an all-day event, `null` for a timed one
    pub start_date: Option<String>,
    /// The local time an all-day event fires at on each of its days (`"09:00:00"`)
    pub fire_time: Option<String>,
    pub calendar_id: Option<Uuid>,
    /// The iCalendar UID an imported event came from
    pub external_id: Option<String>,
    pub action: Action,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub hmac_secret_set: bool,
    /// The event's generated signing secret: only in the answer that generated it (a create
    /// without `hmac_secret`, an update with `"hmac_secret": null`); afterwards a write token
    /// reads it with `GET /events/{id}/secret`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hmac_secret: Option<String>,
    pub retry: RetryPolicy,
    pub misfire: MisfirePolicy,
    pub status: EventStatus,
    /// Why the engine paused this event, e.g. "the receiver answered 410 Gone"; absent when a
    /// person paused it. Resuming clears it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// In `GET /events` and `GET /events/{id}`: when the next delivery attempt is due (the
    /// earliest pending occurrence, a retry included, else the series' next instance), `null`
    /// when nothing is coming (paused, finished).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_run_at: Option<Option<String>>,
    /// In the answer of a create or update of an event in a `free`-mode calendar: the
    /// occurrences (within `planning.horizon`) that overlap other events of the calendar
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<Vec<crate::calendars::conflicts::Collision>>,
    /// In `GET /events` and `GET /events/{id}`: how the latest finished occurrence ended,
    /// `null` before any has.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<LastOutcome>)]
    pub last_outcome: Option<Option<LastOutcome>>,
}

/// How an event's latest finished occurrence ended.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LastOutcome {
    /// `completed`, `failed` or `missed`.
    pub status: String,
    #[schema(format = DateTime)]
    pub scheduled_at: String,
    #[schema(format = DateTime)]
    pub finished_at: String,
}

impl EventOut {
    /// With `next_run_at` and `last_outcome`, from the event's run summary.
    pub fn with_runs(mut self, e: &Event, s: Option<&crate::store::RunSummary>) -> EventOut {
        let held = e.status != EventStatus::Active;
        let next = s
            .and_then(|s| s.next_attempt_at)
            .or(e.next_fire_at)
            .filter(|_| !held);
        self.next_run_at = Some(next.map(fmt_ms));
        self.last_outcome =
            Some(
                s.and_then(|s| s.last.as_ref())
                    .map(|(status, at, done)| LastOutcome {
                        status: status.clone(),
                        scheduled_at: fmt_ms(*at),
                        finished_at: fmt_ms(*done),
                    }),
            );
        self
    }
}

impl From<&Event> for EventOut {
    fn from(e: &Event) -> Self {
        let rule = e.schedule.as_deref().and_then(|s| Rule::parse(s).ok());
        EventOut {
            id: e.id,
            name: e.name.clone(),
            description: e.description.clone(),
            start_time: fmt_ms(e.start_time),
            timezone: e.timezone.clone(),
            schedule: e.schedule.clone(),
            schedule_json: rule.as_ref().map(|r| r.to_json()),
            schedule_text: schedule_text(e.start_time, &e.timezone, rule.as_ref()),
            exdates: e.exdates.iter().map(|m| fmt_ms(*m)).collect(),
            rdates: e.rdates.iter().map(|m| fmt_ms(*m)).collect(),
            duration: e.duration.map(fmt_duration),
            end_time: e.ends_at(e.start_time).map(fmt_ms),
            start_date: e.all_day.map(|a| a.start_date.to_string()),
            fire_time: e
                .all_day
                .map(|a| a.fire_time.strftime("%H:%M:%S").to_string()),
            calendar_id: e.calendar_id,
            external_id: e.external_id.clone(),
            action: e.action.masked(),
            tags: e.tags.clone(),
            metadata: e.metadata.clone(),
            hmac_secret_set: e.hmac_secret.is_some(),
            hmac_secret: None,
            retry: e.retry.clone(),
            misfire: e.misfire.clone(),
            status: e.status,
            paused_reason: e.paused_reason.clone(),
            created_at: fmt_ms(e.created_at),
            updated_at: fmt_ms(e.updated_at),
            next_run_at: None,
            last_outcome: None,
            conflicts: None,
        }
    }
}
