//! Workflows: "when an occurrence of a matching event reaches one of these states, fire this".
//!
//! A workflow's follow-up is written by [`write_follow_ups`] inside the transaction that
//! records its cause's outcome (`record_outcomes`, `settle_claim`, the pull-claim expiry), so a
//! cause that is recorded has its follow-ups and one that is not (rolled back, or fenced out as
//! a stale claim's outcome) has none. Each follow-up is keyed by (workflow, cause occurrence):
//! a repeated write makes nothing more. Matching reads the enabled workflows inside that
//! transaction (one small query per batch; nothing more when none is defined), so every node
//! sees a change of a workflow from its commit on, with no cache to keep in step.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::events::insert_event;
use super::sql::rows::{to_json, RowExt, EVENT_COLS};
use super::sql::{fetch_one, query, Col, Dialect, Kind, Push};
use super::{Backend, Result, StoreError};
use crate::config::RetryDefaults;
use crate::domain::action::Action;
use crate::domain::event::{Event, EventStatus};
use crate::domain::occurrence::OccStatus;
use crate::domain::policy::{MisfirePolicy, RetryPolicy};
use crate::domain::{fmt_ms, Millis};

/// The settings key under which the service keeps what follow-ups need from its configuration
/// ([`Runtime`]), written at start-up.
pub const RUNTIME_KEY: &str = "workflows.runtime";

/// What writing a follow-up needs from the configuration: kept in the store (see
/// [`RUNTIME_KEY`]) so that the outcome path reads it in its own transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runtime {
    /// A follow-up deeper than this in a chain of follow-ups is recorded as `missed`.
    pub max_depth: u32,
    /// The retry defaults a follow-up's attempt limit is resolved with.
    pub retry: RetryDefaults,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime {
            max_depth: 8,
            retry: RetryDefaults::default(),
        }
    }
}

/// The states of a cause a workflow can react to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CauseState {
    /// The occurrence was delivered.
    Completed,
    /// The occurrence used its last attempt.
    Failed,
    /// The occurrence was skipped (misfire policy, catch-up window, depth limit).
    Missed,
}

impl CauseState {
    /// The state of a finished occurrence, if a workflow can react to it.
    pub fn of(s: OccStatus) -> Option<CauseState> {
        match s {
            OccStatus::Completed => Some(CauseState::Completed),
            OccStatus::Failed => Some(CauseState::Failed),
            OccStatus::Missed => Some(CauseState::Missed),
            _ => None,
        }
    }
}

/// Which causes a workflow reacts to: occurrences of `event_id`, or of events carrying every
/// tag of `tags` (either or both), reaching one of the states in `on`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct When {
    /// Occurrences of this event (one of `event_id` or `tags`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    /// Occurrences of events carrying any of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The states that fire the workflow.
    pub on: Vec<CauseState>,
}

impl When {
    /// True when an occurrence of `event` reaching `state` is a cause of this.
    pub fn matches(&self, event: &Event, state: CauseState) -> bool {
        self.on.contains(&state) && self.matches_event(event.id, &event.tags)
    }

    /// True when an event with this id and these tags is one this watches (any state).
    pub fn matches_event(&self, id: Uuid, tags: &[String]) -> bool {
        self.event_id == Some(id)
            || (self.event_id.is_none()
                && !self.tags.is_empty()
                && self.tags.iter().all(|t| tags.contains(t)))
    }
}

/// A one-time event a follow-up creates: every field of an event but its timing (it fires
/// once, at the follow-up's time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventTemplate {
    /// The new event's name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// Its time zone.
    pub timezone: String,
    /// How it is delivered.
    pub action: Action,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its metadata (payload), which may use the cause in templates.
    pub metadata: Value,
    /// Its signing secret (generated when absent).
    pub hmac_secret: Option<String>,
    /// Its retry policy.
    pub retry: RetryPolicy,
    /// Its misfire policy.
    pub misfire: MisfirePolicy,
}

impl EventTemplate {
    /// The template of a validated event (its timing is dropped).
    pub fn of(e: &Event) -> EventTemplate {
        EventTemplate {
            name: e.name.clone(),
            description: e.description.clone(),
            timezone: e.timezone.clone(),
            action: e.action.clone(),
            tags: e.tags.clone(),
            metadata: e.metadata.clone(),
            hmac_secret: e.hmac_secret.clone(),
            retry: e.retry.clone(),
            misfire: e.misfire.clone(),
        }
    }

    /// The one-time event firing at `at`.
    fn event(&self, at: Millis, now: Millis) -> Event {
        Event {
            id: Uuid::now_v7(),
            name: self.name.clone(),
            description: self.description.clone(),
            start_time: at,
            timezone: self.timezone.clone(),
            schedule: None,
            exdates: Vec::new(),
            rdates: Vec::new(),
            duration: None,
            all_day: None,
            calendar_id: None,
            external_id: None,
            action: self.action.clone(),
            tags: self.tags.clone(),
            metadata: self.metadata.clone(),
            hmac_secret: self.hmac_secret.clone(),
            previous_secret: None,
            retry: self.retry.clone(),
            misfire: self.misfire.clone(),
            status: EventStatus::Active,
            next_fire_at: None,
            paused_reason: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// What a workflow does for each cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Then {
    /// A new occurrence of this existing event.
    Trigger(Uuid),
    /// A new one-time event.
    Create(Box<EventTemplate>),
}

/// A saved workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// The workflow's id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// What it reacts to.
    pub when: When,
    /// What it does then.
    pub then: Then,
    /// The follow-up is due this long after its cause's outcome was recorded.
    pub delay_ms: i64,
    /// For `create`: the event body as given, without its secret (what the API shows).
    pub body: Option<Value>,
    /// Disabled workflows fire nothing (and are left out of loop checks).
    pub enabled: bool,
    /// The tags the workflow concerns (its `when` tags, its events' tags): a scoped token sees
    /// the workflow when its scope covers them.
    pub tags: Vec<String>,
    /// The creator's scope (`None`: unscoped): only events within it are causes.
    pub scope: Option<Vec<String>>,
    /// When it was created.
    pub created_at: Millis,
    /// When it last changed.
    pub updated_at: Millis,
}

/// The part of a workflow stored as one JSON document.
#[derive(Serialize, Deserialize)]
struct Spec {
    when: When,
    then: Then,
    delay_ms: i64,
    #[serde(default)]
    body: Option<Value>,
}

/// Saved workflows, and what their follow-ups caused.
#[async_trait]
pub trait WorkflowStore: Send + Sync + 'static {
    /// Saves a new workflow; its follow-ups start with the next outcome recorded after the
    /// commit, on every node.
    async fn create_workflow(&self, w: &Workflow) -> Result<()>;
    /// One workflow by id.
    async fn get_workflow(&self, id: Uuid) -> Result<Option<Workflow>>;
    /// Workflows by id (creation order), after `after`, at most `limit`.
    async fn list_workflows(&self, after: Option<Uuid>, limit: i64) -> Result<Vec<Workflow>>;
    /// Every workflow (for the loop check at save).
    async fn all_workflows(&self) -> Result<Vec<Workflow>>;
    /// Replaces a workflow (by id); false when there is none.
    async fn update_workflow(&self, w: &Workflow) -> Result<bool>;
    /// Deletes a workflow; false when there is none. Follow-ups already written stay.
    async fn delete_workflow(&self, id: Uuid) -> Result<bool>;
    /// The follow-up occurrences `occurrence_id` caused, oldest first.
    async fn caused(&self, occurrence_id: Uuid) -> Result<Vec<Uuid>>;
}

const WF_COLS: &str = "id, name, spec, tags, scope, enabled, created_at, updated_at";

fn workflow_of(r: &impl RowExt) -> Result<Workflow> {
    let spec: Spec = r.json("spec")?;
    Ok(Workflow {
        id: r.id("id")?,
        name: r.text("name")?,
        when: spec.when,
        then: spec.then,
        delay_ms: spec.delay_ms,
        body: spec.body,
        enabled: r.int("enabled")? != 0,
        tags: r.json("tags")?,
        scope: r
            .opt_text("scope")?
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| super::sql::rows::corrupt("scope", e))?,
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
    })
}

fn spec_json(w: &Workflow) -> String {
    to_json(&Spec {
        when: w.when.clone(),
        then: w.then.clone(),
        delay_ms: w.delay_ms,
        body: w.body.clone(),
    })
}

#[async_trait]
impl<B: Backend> WorkflowStore for B {
    async fn create_workflow(&self, w: &Workflow) -> Result<()> {
        let mut q = query::<B::D>(format!("INSERT INTO workflows ({WF_COLS}) VALUES ("));
        q.val(w.id)
            .push(", ")
            .val(w.name.clone())
            .push(", ")
            .val(spec_json(w))
            .push(", ")
            .val(to_json(&w.tags))
            .push(", ")
            .val(w.scope.as_ref().map(to_json))
            .push(", ")
            .val(i64::from(w.enabled))
            .push(", ")
            .val(w.created_at)
            .push(", ")
            .val(w.updated_at)
            .push(")");
        let mut c = self.writes().acquire().await?;
        B::D::exec(q, &mut c).await?;
        Ok(())
    }

    async fn get_workflow(&self, id: Uuid) -> Result<Option<Workflow>> {
        let mut q = query::<B::D>(format!("SELECT {WF_COLS} FROM workflows WHERE id = "));
        q.val(id);
        let mut c = self.reads().acquire().await?;
        fetch_one(q, &mut c)
            .await?
            .map(|r| workflow_of(&r))
            .transpose()
    }

    async fn list_workflows(&self, after: Option<Uuid>, limit: i64) -> Result<Vec<Workflow>> {
        let mut q = query::<B::D>(format!("SELECT {WF_COLS} FROM workflows WHERE id > "));
        q.val(after.map(|a| a.to_string()).unwrap_or_default())
            .push(" ORDER BY id LIMIT ")
            .val(limit);
        let mut c = self.reads().acquire().await?;
        B::D::fetch(q, &mut c)
            .await?
            .iter()
            .map(workflow_of)
            .collect()
    }

    async fn all_workflows(&self) -> Result<Vec<Workflow>> {
        let q = query::<B::D>(format!("SELECT {WF_COLS} FROM workflows ORDER BY id"));
        let mut c = self.reads().acquire().await?;
        B::D::fetch(q, &mut c)
            .await?
            .iter()
            .map(workflow_of)
            .collect()
    }

    async fn update_workflow(&self, w: &Workflow) -> Result<bool> {
        let mut q = query::<B::D>("UPDATE workflows SET name = ");
        q.val(w.name.clone())
            .push(", spec = ")
            .val(spec_json(w))
            .push(", tags = ")
            .val(to_json(&w.tags))
            .push(", scope = ")
            .val(w.scope.as_ref().map(to_json))
            .push(", enabled = ")
            .val(i64::from(w.enabled))
            .push(", updated_at = ")
            .val(w.updated_at)
            .push(" WHERE id = ")
            .val(w.id);
        let mut c = self.writes().acquire().await?;
        Ok(B::D::exec(q, &mut c).await? > 0)
    }

    async fn delete_workflow(&self, id: Uuid) -> Result<bool> {
        let mut q = query::<B::D>("DELETE FROM workflows WHERE id = ");
        q.val(id);
        let mut c = self.writes().acquire().await?;
        Ok(B::D::exec(q, &mut c).await? > 0)
    }

    async fn caused(&self, occurrence_id: Uuid) -> Result<Vec<Uuid>> {
        let mut q = query::<B::D>("SELECT id FROM occurrences WHERE caused_by_occurrence = ");
        q.val(occurrence_id).push(" ORDER BY id");
        let mut c = self.reads().acquire().await?;
        B::D::fetch(q, &mut c)
            .await?
            .iter()
            .map(|r| r.id("id"))
            .collect()
    }
}

/// An occurrence whose outcome was just recorded (in the transaction at hand).
#[derive(Debug, Clone)]
pub(super) struct Cause {
    pub occurrence_id: Uuid,
    pub event_id: Uuid,
    pub status: OccStatus,
    /// The cause's `scheduled_at` (with its id, the key `follow_ups` references).
    pub scheduled_at: Millis,
}

impl Cause {
    /// The finished occurrences among rows `RETURNING id, event_id, status, scheduled_at`.
    pub(super) fn from_rows(rows: &[impl RowExt]) -> Result<Vec<Cause>> {
        let mut out = Vec::new();
        for r in rows {
            let status = r.occ_status("status")?;
            if CauseState::of(status).is_some() {
                out.push(Cause {
                    occurrence_id: r.id("id")?,
                    event_id: r.id("event_id")?,
                    status,
                    scheduled_at: r.int("scheduled_at")?,
                });
            }
        }
        Ok(out)
    }
}

const FOLLOW_COLS: [Col; 15] = [
    ("id", Kind::Text),
    ("event_id", Kind::Text),
    ("scheduled_at", Kind::Int),
    ("status", Kind::Text),
    ("attempts", Kind::Int),
    ("attempt_limit", Kind::Int),
    ("next_attempt_at", Kind::Int),
    ("last_error", Kind::Text),
    ("completed_at", Kind::Int),
    ("created_at", Kind::Int),
    ("updated_at", Kind::Int),
    ("caused_by_workflow", Kind::Text),
    ("caused_by_occurrence", Kind::Text),
    ("cause", Kind::Text),
    ("depth", Kind::Int),
];

/// Writes the follow-ups of `causes` (occurrences whose outcome this transaction recorded):
/// one per (enabled workflow, cause) that matches, due `delay` after `now`, or `missed` when it
/// would be deeper than the configured depth limit. Returns the earliest follow-up due, if any.
pub(super) async fn write_follow_ups<D: Dialect>(
    c: &mut D::Connection,
    causes: &[Cause],
    now: Millis,
) -> Result<Option<Millis>> {
    if causes.is_empty() {
        return Ok(None);
    }
    let q = query::<D>(format!(
        "SELECT {WF_COLS} FROM workflows WHERE enabled = 1 ORDER BY id"
    ));
    let workflows = D::fetch(q, c)
        .await?
        .iter()
        .map(workflow_of)
        .collect::<Result<Vec<_>>>()?;
    if workflows.is_empty() {
        return Ok(None);
    }
    let events = events_by_id::<D>(c, causes.iter().map(|x| x.event_id)).await?;
    let mut matches: Vec<(&Workflow, &Cause, &Event)> = Vec::new();
    for cause in causes {
        let (Some(event), Some(state)) =
            (events.get(&cause.event_id), CauseState::of(cause.status))
        else {
            continue;
        };
        for w in &workflows {
            // Seen by the workflow's creator (`Principal::can_see`): a tag in its scope.
            let in_scope = w
                .scope
                .as_ref()
                .is_none_or(|s| event.tags.iter().any(|t| s.contains(t)));
            if in_scope && w.when.matches(event, state) {
                matches.push((w, cause, event));
            }
        }
    }
    if matches.is_empty() {
        return Ok(None);
    }
    let runtime: Runtime = match fetch_one(
        {
            let mut q = query::<D>("SELECT value FROM settings WHERE key = ");
            q.val(RUNTIME_KEY);
            q
        },
        c,
    )
    .await?
    {
        Some(r) => serde_json::from_str(&r.text("value")?)
            .map_err(|e| super::sql::rows::corrupt(RUNTIME_KEY, e))?,
        None => Runtime::default(),
    };
    let ids: Vec<String> = matches
        .iter()
        .map(|(_, x, _)| x.occurrence_id.to_string())
        .collect();
    let mut depth: HashMap<Uuid, (i64, Value)> = HashMap::new();
    let mut last: HashMap<Uuid, Value> = HashMap::new();
    for chunk in ids.chunks(D::max_rows(1)) {
        let mut q = query::<D>(
            "SELECT id, scheduled_at, attempts, last_error, depth FROM occurrences WHERE ",
        );
        D::push_in(&mut q, "id", chunk.to_vec());
        for r in D::fetch(q, c).await? {
            let occ = json!({
                "scheduled_at": fmt_ms(r.int("scheduled_at")?),
                "attempts": r.int("attempts")?,
                "last_error": r.opt_text("last_error")?,
            });
            depth.insert(r.id("id")?, (r.int("depth")?, occ));
        }
        let mut q = query::<D>(
            "SELECT occurrence_id, attempt, started_at, duration_ms, status_code, error, response \
             FROM attempts WHERE ",
        );
        D::push_in(&mut q, "occurrence_id", chunk.to_vec());
        q.push(" ORDER BY attempt");
        for r in D::fetch(q, c).await? {
            let a = r.attempt()?;
            last.insert(
                r.id("occurrence_id")?,
                json!({
                    "attempt": a.attempt,
                    "started_at": fmt_ms(a.started_at),
                    "duration_ms": a.duration_ms,
                    "status_code": a.status_code,
                    "error": a.error,
                    "response": a.response,
                }),
            );
        }
    }
    let mut earliest: Option<Millis> = None;
    for (w, cause, event) in matches {
        // Written once per (workflow, cause): the first transaction to claim the pair in
        // `follow_ups` writes the follow-up (a unique index on `occurrences` cannot: on
        // PostgreSQL it is partitioned by time, and a unique index there must hold the key).
        let mut q = query::<D>("INSERT INTO follow_ups (workflow_id, cause_id, cause_at) VALUES (");
        q.val(w.id)
            .push(", ")
            .val(cause.occurrence_id)
            .push(", ")
            .val(cause.scheduled_at)
            .push(") ON CONFLICT DO NOTHING");
        if D::exec(q, c).await? == 0 {
            continue;
        }
        let (cause_depth, occ) = depth
            .get(&cause.occurrence_id)
            .cloned()
            .unwrap_or((0, json!({})));
        let mut occ = occ;
        if let Some(o) = occ.as_object_mut() {
            o.insert("id".into(), json!(cause.occurrence_id));
            o.insert("status".into(), json!(cause.status.as_str()));
        }
        let snapshot = json!({
            "workflow": {"id": w.id, "name": w.name},
            "event": {
                "id": event.id,
                "name": event.name,
                "description": event.description,
                "tags": event.tags,
                "metadata": event.metadata,
            },
            "occurrence": occ,
            "attempt": last.get(&cause.occurrence_id).cloned().unwrap_or_else(|| json!({})),
            "metadata": event.metadata,
        });
        let depth = cause_depth + 1;
        let too_deep = depth > i64::from(runtime.max_depth);
        let at = now + w.delay_ms;
        let target = match &w.then {
            Then::Trigger(id) => {
                let mut q = query::<D>(format!("SELECT {EVENT_COLS} FROM events WHERE id = "));
                q.val(*id).push(" AND status != 'deleted'");
                let Some(row) = fetch_one(q, c).await? else {
                    tracing::warn!(workflow = %w.id, event = %id, "workflow target event is gone; no follow-up");
                    continue;
                };
                let e = row.event()?;
                if !too_deep {
                    // A finished event has work again.
                    let mut q = query::<D>("UPDATE events SET status = 'active', updated_at = ");
                    q.val(now)
                        .push(" WHERE id = ")
                        .val(e.id)
                        .push(" AND status = 'inactive'");
                    D::exec(q, c).await?;
                }
                e
            }
            Then::Create(t) => {
                let mut e = t.event(at, now);
                if too_deep {
                    e.status = EventStatus::Inactive;
                }
                // Created by the engine on a workflow's behalf.
                insert_event::<D>(c, &e, &[], None, "system").await?;
                e
            }
        };
        let limit = i64::from(target.retry.resolve(&runtime.retry).max_attempts);
        let reason = too_deep.then(|| {
            format!(
                "workflow '{}': depth limit {} reached (workflows.max_depth); follow-up not fired",
                w.name, runtime.max_depth
            )
        });
        // Another occurrence of the event may hold this instant: the next free millisecond.
        let mut scheduled = at;
        loop {
            let row = vec![
                Uuid::now_v7().into(),
                target.id.into(),
                scheduled.into(),
                if too_deep { "missed" } else { "pending" }.into(),
                0i64.into(),
                limit.into(),
                (!too_deep).then_some(scheduled).into(),
                reason.clone().into(),
                too_deep.then_some(now).into(),
                now.into(),
                now.into(),
                w.id.into(),
                cause.occurrence_id.into(),
                to_json(&snapshot).into(),
                depth.into(),
            ];
            let mut q = query::<D>(format!(
                "INSERT INTO occurrences ({})",
                super::sql::names(&FOLLOW_COLS)
            ));
            D::push_insert_rows(&mut q, &FOLLOW_COLS, vec![row]);
            q.push(" ON CONFLICT DO NOTHING");
            if D::exec(q, c).await? > 0 {
                break;
            }
            if scheduled - at > 1_000 {
                return Err(StoreError::Internal(format!(
                    "no free instant for the follow-up of workflow {}",
                    w.id
                )));
            }
            scheduled += 1;
        }
        if !too_deep {
            earliest = Some(earliest.map_or(scheduled, |e: Millis| e.min(scheduled)));
        }
    }
    Ok(earliest)
}

/// The events with these ids (any status).
async fn events_by_id<D: Dialect>(
    c: &mut D::Connection,
    ids: impl Iterator<Item = Uuid>,
) -> Result<HashMap<Uuid, Event>> {
    let mut ids: Vec<String> = ids.map(|i| i.to_string()).collect();
    ids.sort();
    ids.dedup();
    let mut out = HashMap::new();
    for chunk in ids.chunks(D::max_rows(1)) {
        let mut q = query::<D>(format!("SELECT {EVENT_COLS} FROM events WHERE "));
        D::push_in(&mut q, "id", chunk.to_vec());
        for r in D::fetch(q, c).await? {
            let e = r.event()?;
            out.insert(e.id, e);
        }
    }
    Ok(out)
}
