//! An iCalendar import into a calendar: parse (off the async workers), map each series to an
//! event body, validate it as `POST /events` would, compare with the calendar's events by UID,
//! and write creates, updates and removals in one transaction. Shared by `POST
//! /calendars/import` and the feed refresh.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::events::plan_event;
use super::AppState;
use crate::auth::Caller;
use crate::calendars::conflicts::Collision;
use crate::calendars::ics;
use crate::calendars::import::{map, same, Defaults, Skip};
use crate::delivery::email::sender_of;
use crate::domain::event::{Event, EventStatus};
use crate::domain::{template, Millis};
use crate::error::ApiError;
use crate::store::{By, Calendar, ImportWrite};

/// One event an import touched.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Touched {
    /// The VEVENT's UID (the event's `external_id`)
    pub uid: String,
    /// The event's id (with `dry_run`, of a create: the id it would have had)
    pub id: Uuid,
    pub name: String,
    /// The line of its `BEGIN:VEVENT`; none for a removal
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

/// What an import did (or, with `dry_run`, would do).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportOut {
    /// The calendar imported into (with `dry_run` and no calendar given: `null`)
    pub calendar_id: Option<Uuid>,
    pub dry_run: bool,
    pub created: Vec<Touched>,
    pub updated: Vec<Touched>,
    /// Events of this calendar whose UID vanished from the file (or became STATUS:CANCELLED)
    pub removed: Vec<Touched>,
    /// How many events were already as the file says
    pub unchanged: usize,
    /// Every VEVENT not taken, with why and its line
    pub skipped: Vec<Skip>,
    /// In a `free` calendar: the created or updated events that overlap others of the
    /// calendar (or earlier ones of the file), as a single create reports them
    pub conflicts: Vec<ImportConflicts>,
}

/// The collisions of one imported event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportConflicts {
    pub uid: String,
    pub id: Uuid,
    /// The line of its `BEGIN:VEVENT`
    pub line: Option<usize>,
    /// At most 50
    pub conflicts: Vec<Collision>,
}

impl ImportOut {
    /// `{created, updated, removed, unchanged, skipped}` counts.
    pub fn counts(&self) -> serde_json::Value {
        json!({
            "created": self.created.len(),
            "updated": self.updated.len(),
            "removed": self.removed.len(),
            "unchanged": self.unchanged,
            "skipped": self.skipped.len(),
        })
    }
}

/// One import's input.
pub struct ImportJob<'a> {
    pub text: &'a str,
    /// Over the calendar's stored defaults.
    pub over: &'a Defaults,
    pub dry_run: bool,
    /// Name the calendar after the file's X-WR-CALNAME.
    pub rename: bool,
    pub now: Millis,
}

/// Imports `job.text` into `cal` (which the caller may see; a new calendar is written with the
/// import). Bad files are a 400; a VEVENT that cannot be taken is skipped and listed.
pub async fn import_into(
    st: &AppState,
    caller: &Caller,
    mut cal: Calendar,
    job: ImportJob<'_>,
) -> Result<ImportOut, ApiError> {
    let now = job.now;
    let stored: Defaults = super::calendars::defaults_of(&cal);
    let defaults = stored.overlay(job.over);
    if defaults.action.is_none() {
        return Err(ApiError::BadRequest(
            "defaults.action is required: how the imported events are delivered, e.g. {\"defaults\": {\"action\": {\"type\": \"webhook\", \"params\": {\"url\": \"https://…\"}}}} (or stored on the calendar)".into(),
        ));
    }
    // Parsing and zone matching are CPU work on up to 10 MiB: off the async workers.
    let text = job.text.to_string();
    let d = defaults.clone();
    let (parsed_name, mapped) = tokio::task::spawn_blocking(move || {
        ics::parse(&text).map(|p| (p.name.clone(), map(&p, &d)))
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("import task failed: {e}")))?
    .map_err(ApiError::BadRequest)?;
    if job.rename {
        if let Some(n) = parsed_name.filter(|n| !n.trim().is_empty()) {
            cal.name = n.trim().chars().take(256).collect();
        }
    }
    let existing: HashMap<String, Event> = st
        .store
        .calendar_events(cal.id)
        .await?
        .into_iter()
        .filter_map(|e| e.external_id.clone().map(|u| (u, e)))
        .collect();
    let mut out = ImportOut {
        calendar_id: (!job.dry_run || existing_calendar(st, cal.id).await?).then_some(cal.id),
        dry_run: job.dry_run,
        created: Vec::new(),
        updated: Vec::new(),
        removed: Vec::new(),
        unchanged: 0,
        skipped: mapped.skipped,
        conflicts: Vec::new(),
    };
    // UIDs that stay: in the file and not cancelled (a skipped one keeps its event as it was).
    let cancelled: HashSet<&str> = out
        .skipped
        .iter()
        .filter(|s| s.reason == "STATUS:CANCELLED")
        .filter_map(|s| s.uid.as_deref())
        .collect();
    let mut keep: HashSet<String> = out
        .skipped
        .iter()
        .filter_map(|s| s.uid.clone())
        .filter(|u| !cancelled.contains(u.as_str()))
        .collect();
    let mut w = ImportWrite::default();
    let mut checked_action = None;
    let by_actor = caller.principal.identity();
    for item in mapped.items {
        keep.insert(item.uid.clone());
        let old = existing.get(&item.uid);
        let id = old.map_or_else(Uuid::now_v7, |o| o.id);
        let created_at = old.map_or(now, |o| o.created_at);
        let mut e = match item.body.validate(id, created_at, now) {
            Ok(e) => e,
            Err(reason) => {
                out.skipped.push(Skip {
                    uid: Some(item.uid),
                    line: item.line,
                    reason,
                });
                continue;
            }
        };
        e.calendar_id = Some(cal.id);
        e.external_id = Some(item.uid.clone());
        e.tags = caller.principal.scoped_tags(std::mem::take(&mut e.tags))?;
        // Every event of one import has the defaults' action: checked and resolved once.
        match &checked_action {
            Some(a) => e.action = Clone::clone(a),
            None => {
                let probe = template::check_off_thread(e)
                    .await
                    .map_err(|m| ApiError::BadRequest(format!("defaults.{m}")))?;
                let mut probe = super::templates::resolve_for_save(st, probe).await?;
                probe.action.send_as(sender_of(&caller.principal));
                st.check_target(&probe.action).await?;
                checked_action = Some(probe.action.clone());
                e = probe;
            }
        }
        let touched = Touched {
            uid: item.uid.clone(),
            id,
            name: e.name.clone(),
            line: Some(item.line),
        };
        match old {
            Some(old) if same(old, &e) => out.unchanged += 1,
            Some(old) => {
                e.hmac_secret = old.hmac_secret.clone();
                e.previous_secret = old.previous_secret.clone();
                e.status = match old.status {
                    EventStatus::Paused => EventStatus::Paused,
                    _ => EventStatus::Active,
                };
                e.next_fire_at = old.next_fire_at;
                let replan = e.timing_differs(old) || old.status == EventStatus::Inactive;
                let occs = if replan && !job.dry_run {
                    plan_event(st, &mut e, Some(now - 1), now).await?
                } else {
                    Vec::new()
                };
                out.updated.push(touched);
                w.updates.push((e, replan.then_some(now), occs));
            }
            None => {
                super::secrets::ensure_own(&mut e);
                // An imported calendar's past is history: nothing before now is delivered.
                let occs = if job.dry_run {
                    Vec::new()
                } else {
                    plan_event(st, &mut e, Some(now - 1), now).await?
                };
                out.created.push(touched);
                w.creates.push((e, occs));
            }
        }
    }
    for (uid, e) in &existing {
        if !keep.contains(uid) {
            out.removed.push(Touched {
                uid: uid.clone(),
                id: e.id,
                name: e.name.clone(),
                line: None,
            });
            w.removes.push(e.id);
        }
    }
    out.removed.sort_by(|a, b| a.uid.cmp(&b.uid));
    out.skipped.sort_by_key(|s| s.line);
    out.conflicts = check_conflicts(st, caller, &cal, &w, &out).await?;
    if job.dry_run {
        return Ok(out);
    }
    cal.counts = Some(out.counts());
    cal.last_result = Some(format!(
        "ok: {} created, {} updated, {} removed, {} unchanged, {} skipped",
        out.created.len(),
        out.updated.len(),
        out.removed.len(),
        out.unchanged,
        out.skipped.len()
    ));
    cal.updated_at = now;
    let by = By {
        actor: &by_actor,
        restores: None,
    };
    st.store.apply_import(&cal, &w, now, by).await?;
    for (_, occs) in &w.creates {
        if let Some(t) = occs.iter().map(|o| o.scheduled_at).min() {
            st.engine.due_at(t);
        }
    }
    for (e, replan, occs) in &w.updates {
        st.engine.forget_event(e.id, *replan);
        if let Some(t) = occs.iter().map(|o| o.scheduled_at).min() {
            st.engine.due_at(t);
        }
    }
    for id in &w.removes {
        st.engine.forget_event(*id, None);
    }
    st.audit_in(
        caller,
        "calendar.import",
        Some(cal.id.to_string()),
        &cal.tags,
        out.counts(),
    )
    .await;
    Ok(out)
}

/// The conflict check of an import: the events it creates or changes, in the order of the
/// file, each as if created or updated on its own against the calendar as the import leaves
/// it (without the events it removes) and the events before it in the file. In an `auto_plan`
/// calendar any overlap refuses the whole import (409 listing each event's collisions, by UID
/// and line; nothing changes, and a subscription's fetch fails and keeps the events as they
/// were); in a `free` one they are reported.
async fn check_conflicts(
    st: &AppState,
    caller: &Caller,
    cal: &Calendar,
    w: &ImportWrite,
    out: &ImportOut,
) -> Result<Vec<ImportConflicts>, ApiError> {
    let touched: HashMap<Uuid, &Touched> = out
        .created
        .iter()
        .chain(&out.updated)
        .map(|t| (t.id, t))
        .collect();
    let mut items: Vec<&Event> = w
        .creates
        .iter()
        .map(|(e, _)| e)
        .chain(w.updates.iter().map(|(e, _, _)| e))
        .collect();
    items.sort_by_key(|e| touched.get(&e.id).and_then(|t| t.line));
    let found = super::conflicts::check_many(st, caller, &items, &w.removes, Some(cal))
        .await
        .map_err(|(_, e)| e)?;
    let mut listed = Vec::new();
    let mut refused = Vec::new();
    for c in found {
        let e = items[c.item];
        let uid = e.external_id.clone().unwrap_or_default();
        let line = touched.get(&e.id).and_then(|t| t.line);
        if c.auto_plan {
            refused.push(json!({
                "uid": uid,
                "line": line,
                "status": 409,
                "error": format!(
                    "overlaps {} occurrence(s) in auto_plan calendar '{}'",
                    c.conflicts.len(),
                    cal.name
                ),
                "conflicts": c.conflicts,
                "proposals": c.proposals,
            }));
        } else {
            listed.push(ImportConflicts {
                uid,
                id: e.id,
                line,
                conflicts: c.conflicts,
            });
        }
    }
    if !refused.is_empty() {
        let k = refused.len();
        return Err(ApiError::Items {
            message: format!(
                "{k} imported event(s) overlap others in auto_plan calendar '{}'; nothing was imported",
                cal.name
            ),
            items: refused,
        });
    }
    Ok(listed)
}

async fn existing_calendar(st: &AppState, id: Uuid) -> Result<bool, ApiError> {
    Ok(st.store.get_calendar(id).await?.is_some())
}
