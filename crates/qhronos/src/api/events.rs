//! `/events`: create, read, list, update (the batch create is in `events_batch.rs`; delete,
//! pause, resume and trigger in `event_actions.rs`).

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::conflicts::calendars_of;
use super::event_io::{EventIn, EventOut};
use super::extract::{Body, Params};
use super::AppState;
use crate::auth::Caller;
use crate::delivery::email::sender_of;
use crate::domain::event::{Event, EventStatus};
use crate::domain::occurrence::NewOccurrence;
use crate::domain::template;
use crate::domain::{now_ms, Millis};
use crate::engine::plan::{plan, start_after};
use crate::error::ApiError;
use crate::store::{By, Created, EventFilter, SearchCursor};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/events", post(create_event).get(list_events))
        .route(
            "/events/batch",
            post(super::events_batch::create_events_batch)
                .layer(DefaultBodyLimit::max(super::events_batch::BATCH_BODY_LIMIT)),
        )
        .route(
            "/events/{id}",
            get(get_event)
                .put(update_event)
                .delete(super::event_actions::delete_event),
        )
        .route(
            "/events/{id}/pause",
            post(super::event_actions::pause_event),
        )
        .route(
            "/events/{id}/resume",
            post(super::event_actions::resume_event),
        )
        .route(
            "/events/{id}/trigger",
            post(super::event_actions::trigger_event),
        )
}

/// Most ids one `GET /events?ids=` names.
pub const IDS_MAX: usize = 200;

pub(super) fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("event '{id}' not found"))
}

/// Plans an active event from `after` up to the look-ahead window: the occurrences to insert
/// now, and the event's `next_fire_at`.
///
/// The rule work runs on the blocking pool under the step budget (a COUNT rule from a start far
/// back may have to number its instances): too costly is a 400 naming the part, never a
/// stalled worker.
pub(super) async fn plan_event(
    st: &AppState,
    e: &mut Event,
    after: Option<Millis>,
    now: Millis,
) -> Result<Vec<NewOccurrence>, ApiError> {
    if e.status != EventStatus::Active {
        e.next_fire_at = None;
        return Ok(Vec::new());
    }
    let until = now + st.config.engine.look_ahead.as_millis();
    // A one-time event (its start and at most 1,000 `rdates`) is planned in place: only a
    // rule can be costly, and the hop to the blocking pool costs two thread wake-ups a create.
    let p = if e.schedule.is_none() {
        plan(e, after, until).map_err(ApiError::BadRequest)?
    } else {
        let ev = e.clone();
        tokio::task::spawn_blocking(move || plan(&ev, after, until))
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("planning task failed: {e}")))?
            .map_err(ApiError::BadRequest)?
    };
    e.next_fire_at = p.next;
    let limit = e.retry.resolve(&st.config.retry).max_attempts;
    Ok(p.instants
        .iter()
        .map(|t| NewOccurrence::of(e, *t, limit))
        .collect())
}

/// A search page's cursor: `s<score>_<id>` of its last event within the ranked window,
/// `o<id>` past it.
fn parse_search_cursor(c: &str) -> Option<SearchCursor> {
    if let Some(id) = c.strip_prefix('o') {
        return Some(SearchCursor::Older {
            id: Uuid::parse_str(id).ok()?,
        });
    }
    let (score, id) = c.strip_prefix('s')?.rsplit_once('_')?;
    let score: f64 = score.parse().ok()?;
    if !score.is_finite() {
        return None;
    }
    Some(SearchCursor::Ranked {
        score,
        id: Uuid::parse_str(id).ok()?,
    })
}

/// The text of a search cursor (what [`parse_search_cursor`] reads).
fn search_cursor_text(c: SearchCursor) -> String {
    match c {
        SearchCursor::Ranked { score, id } => format!("s{score}_{id}"),
        SearchCursor::Older { id } => format!("o{id}"),
    }
}

pub(super) fn earliest(occs: &[NewOccurrence]) -> Option<Millis> {
    occs.iter().map(|o| o.scheduled_at).min()
}

/// Create an event
///
/// A one-time event (`start_time` only) or a series (`schedule`). `Idempotency-Key` makes a
/// retry return the same event (200 instead of 201); the same key with a different body is 409.
/// Keys belong to the caller's identity (the master token, or an issued token's `sub`): another
/// identity's same key makes another event.
#[utoipa::path(
    post,
    path = "/events",
    tag = "events",
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters; a retry with the same key and body returns the same event")),
    request_body = super::inputs::EventCreate,
    responses(
        (status = 201, description = "Created", body = EventOut),
        (status = 200, description = "Already created with this Idempotency-Key and body", body = EventOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 403, response = super::openapi::Forbidden),
        (status = 409, response = super::openapi::Conflict),
        (status = 422, response = super::openapi::Unprocessable),
    ),
)]
pub(super) async fn create_event(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Body(input, raw): Body<EventIn>,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let e = input
        .validate(Uuid::now_v7(), now, now)
        .map_err(ApiError::BadRequest)?;
    let e = template::check_off_thread(e)
        .await
        .map_err(ApiError::BadRequest)?;
    let mut e = super::templates::resolve_for_save(&st, e).await?;
    e.tags = caller.principal.scoped_tags(std::mem::take(&mut e.tags))?;
    e.action.send_as(sender_of(&caller.principal));
    st.check_target(&e.action).await?;
    let conflicts = super::conflicts::check(&st, &caller, &e).await?;
    let generated = super::secrets::ensure_own(&mut e);
    let after = start_after(&e, now);
    let mut occs = plan_event(&st, &mut e, after, now).await?;
    st.engine.lease_near(&e, &mut occs, now);
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "Idempotency-Key: expected 1 to 255 visible ASCII characters".into(),
                    )
                })?;
            // Keys belong to the caller's identity: another tenant's same key is another
            // key (it neither returns nor reveals this one's event).
            Some(caller.principal.idempotency_key(k))
        }
    };
    let hash = hex::encode(Sha256::digest(&raw));
    // The audit line is written in the create's own transaction (one commit, not two).
    let audit = AppState::audit_line(
        &caller,
        "event.create",
        Some(e.id.to_string()),
        &e.tags,
        summary(&e),
    );
    match st
        .store
        .create_event_audited(
            &e,
            &occs,
            key.as_deref().map(|k| (k, hash.as_str())),
            By::actor(&caller.principal.identity()),
            &audit,
        )
        .await?
    {
        Created::New => {
            st.engine.hold(&e, &occs, now);
            super::conflicts::after_write(&st, &calendars_of([&e]), &[], &[&e]).await;
            st.engine.expand_if_behind(e.next_fire_at);
            let mut out = EventOut::from(&e);
            out.hmac_secret = generated;
            out.conflicts = conflicts;
            Ok((StatusCode::CREATED, Json(out)).into_response())
        }
        Created::Existing {
            event,
            request_hash,
        } => {
            if request_hash.as_deref() != Some(hash.as_str())
                || !caller.principal.can_see(&event.tags)
            {
                return Err(ApiError::Conflict(
                    "Idempotency-Key was already used with a different request body; use a new key for a new event".into(),
                ));
            }
            // The same request again: the same answer, with the secret a lost 201 carried.
            let mut out = EventOut::from(event.as_ref());
            out.hmac_secret = event.hmac_secret.clone();
            Ok((StatusCode::OK, Json(out)).into_response())
        }
    }
}

/// Get an event
#[utoipa::path(
    get,
    path = "/events/{id}",
    tag = "events",
    params(("id" = String, Path, description = "The event id (a UUID)")),
    responses(
        (status = 200, description = "The event", body = EventOut),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn get_event(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<EventOut>, ApiError> {
    let e = st.visible_event(&caller, &raw).await?;
    let runs = st.store.run_summaries(&[e.id]).await?;
    let s = runs.first().map(|(_, s)| s);
    Ok(Json(EventOut::from(&e).with_runs(&e, s)))
}

/// List events
///
/// Newest first. `tags` matches events with any of them. With `q`, a full-text search: events
/// whose name, description, tags or metadata values contain every word of `q` as a word prefix
/// (`back` finds "Nightly backup"; case and accents ignored; punctuation and operators are only
/// separators), best match first (name counts most, then tags, description, metadata), ties
/// newest first; of more than 2,000 matches, the newest 2,000 are ranked and the older follow,
/// newest first. Its `next_cursor` says where the page ended (`s<score>_<id>` in the ranked part,
/// `o<id>` past it): pages have no gaps or repeats while the matching events do not change.
/// With `ids`, only those events (a client that holds ids, such as the dashboard's deliveries
/// page naming the events of a page of occurrences, fetches them in one request).
#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    params(
        ("tags" = Option<String>, Query, description = "Comma-separated tags: events with any of them"),
        ("status" = Option<String>, Query, description = "active, paused or inactive"),
        ("q" = Option<String>, Query, description = "Full-text search: every word as a prefix of a word of the name, description, tags or metadata values; results ranked"),
        ("ids" = Option<String>, Query, description = "Comma-separated event ids (UUIDs, at most 200): only these events, where the other filters and the token's scope let them through; unknown, deleted and unseen ids are left out. Not with `q`"),
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 50", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of events", body = super::openapi::EventPage),
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub(super) async fn list_events(
    State(st): State<AppState>,
    caller: Caller,
    p: Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    p.only(&["tags", "status", "q", "ids", "limit", "cursor"])?;
    let limit = p.limit()?;
    let ids = p.ids("ids", IDS_MAX)?;
    if ids.is_some() && p.get("q").is_some() {
        return Err(ApiError::BadRequest(
            "ids: cannot be combined with q; filter by one of them".into(),
        ));
    }
    let status = p
        .get("status")
        .map(EventStatus::parse)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let bad_cursor = |c: &str| {
        ApiError::BadRequest(format!(
            "cursor: '{c}' is not a cursor from a previous page of this list"
        ))
    };
    let Some(tags) = caller.principal.filter_tags(p.tags()) else {
        return Ok(Json(json!({ "data": [], "next_cursor": null })));
    };
    let mut f = EventFilter {
        tags,
        status,
        limit: limit + 1,
        before_id: None,
    };
    let (events, next) = match p.get("q") {
        Some(text) => {
            // Ranked, then older matches: the cursor says where the page ended.
            let after = p
                .get("cursor")
                .map(|c| parse_search_cursor(c).ok_or_else(|| bad_cursor(c)))
                .transpose()?;
            let mut found = st.store.search_events(text, &f, after).await?;
            let next = if found.len() as i64 > limit {
                found.truncate(limit as usize);
                found.last().map(|x| search_cursor_text(x.cursor))
            } else {
                None
            };
            (found.into_iter().map(|x| x.event).collect::<Vec<_>>(), next)
        }
        None => {
            f.before_id = p
                .get("cursor")
                .map(|c| Uuid::parse_str(c).map_err(|_| bad_cursor(c)))
                .transpose()?;
            let mut events = match &ids {
                Some(ids) => st.store.list_events_among(ids, &f).await?,
                None => st.store.list_events(&f).await?,
            };
            let next = if events.len() as i64 > limit {
                events.truncate(limit as usize);
                events.last().map(|e| e.id.to_string())
            } else {
                None
            };
            (events, next)
        }
    };
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let runs: std::collections::HashMap<Uuid, crate::store::RunSummary> =
        st.store.run_summaries(&ids).await?.into_iter().collect();
    let data: Vec<EventOut> = events
        .iter()
        .map(|e| EventOut::from(e).with_runs(e, runs.get(&e.id)))
        .collect();
    Ok(Json(json!({ "data": data, "next_cursor": next })))
}

/// Update an event
///
/// A partial update: only the fields given change; `null` clears `description` and `schedule`,
/// and makes a new generated `hmac_secret` (returned once, in this answer). An `apicall` action
/// without `headers` keeps the stored ones; a header given as `***` keeps its stored value. A change of `start_time`, `timezone`, `schedule`, `exdates` or `rdates`
/// re-plans future occurrences only.
#[utoipa::path(
    put,
    path = "/events/{id}",
    tag = "events",
    params(("id" = String, Path, description = "The event id (a UUID)")),
    request_body(content = EventIn, description = "The fields to change (every field optional)"),
    responses(
        (status = 200, description = "The updated event", body = EventOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Unprocessable),
    ),
)]
pub(super) async fn update_event(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(patch, _): Body<EventIn>,
) -> Result<Json<EventOut>, ApiError> {
    let old = st.visible_event(&caller, &raw).await?;
    apply_update(&st, &caller, old, patch, None).await
}

/// An update of `old` by `patch`, as `PUT /events/{id}` makes it (validation, re-planning,
/// the engine told, audited); with `restores`, a restore of that version
/// (`POST /events/{id}/versions/{n}/restore`).
pub(super) async fn apply_update(
    st: &AppState,
    caller: &Caller,
    old: Event,
    patch: EventIn,
    restores: Option<i64>,
) -> Result<Json<EventOut>, ApiError> {
    let raw = old.id.to_string();
    let id = old.id;
    let now = now_ms();
    let actor = caller.principal.identity();
    let by = By {
        actor: &actor,
        restores,
    };
    let cleared_secret = matches!(patch.hmac_secret, Some(None));
    let new = EventIn::from(&old)
        .merge(patch)
        .validate(id, old.created_at, now)
        .map_err(ApiError::BadRequest)?;
    let new = template::check_off_thread(new)
        .await
        .map_err(ApiError::BadRequest)?;
    let mut new = super::templates::resolve_for_save(st, new).await?;
    // Not a field a caller sets: an imported event keeps its UID.
    new.external_id = old.external_id.clone();
    new.tags = caller
        .principal
        .scoped_tags(std::mem::take(&mut new.tags))?;
    new.action.send_as(sender_of(&caller.principal));
    if new.action != old.action {
        st.check_target(&new.action).await?;
    }
    let conflicts = if new.timing_differs(&old) || new.calendar_id != old.calendar_id {
        super::conflicts::check(st, caller, &new).await?
    } else {
        None
    };
    new.next_fire_at = old.next_fire_at;
    // A changed secret: the old one keeps signing too for the grace period.
    let grace = st.config.auth.secret_rotation_grace.as_millis();
    let generated = super::secrets::on_update(&old, &mut new, cleared_secret, now, grace);
    let resumed = old.status != EventStatus::Active && new.status == EventStatus::Active;
    let paused = old.status == EventStatus::Active && new.status == EventStatus::Paused;
    let replan = new.timing_differs(&old) || resumed;
    let occs = if replan {
        let after = start_after(&new, now);
        plan_event(st, &mut new, after, now).await?
    } else {
        Vec::new()
    };
    if !st
        .store
        .update_event(&new, replan.then_some(now), &occs, by)
        .await?
    {
        return Err(not_found(&raw));
    }
    let cals = calendars_of([&old, &new]);
    super::conflicts::after_write(st, &cals, &[id], &[&new]).await;
    if paused {
        st.store.set_paused(id, true, None, &[], now, by).await?;
        st.engine.forget_event(id, None);
    } else if replan {
        st.engine.forget_event(id, Some(now));
        if let Some(t) = earliest(&occs) {
            st.engine.due_at(t);
        }
    } else {
        // Same times, other content (target, secret, payload): what the timer holds was
        // claimed with the old event; it goes back to the store and is claimed again as it is.
        st.engine.forget_event(id, None);
        st.engine.due_at(now);
    }
    let e = st
        .store
        .get_event(id)
        .await?
        .ok_or_else(|| not_found(&raw))?;
    // About both the old and the new tags: a scoped admin reads it only when it covers both.
    let tags = super::audit::union([&old.tags, &e.tags]);
    let (action, summary) = match restores {
        None => (
            "event.update",
            json!({ "changed": changed_fields(&old, &e) }),
        ),
        Some(n) => (
            "event.restore",
            json!({ "version": n, "changed": changed_fields(&old, &e) }),
        ),
    };
    st.audit_in(caller, action, Some(id.to_string()), &tags, summary)
        .await;
    let mut out = EventOut::from(&e);
    out.hmac_secret = generated;
    out.conflicts = conflicts;
    Ok(Json(out))
}

/// What the audit log keeps of a new event: never the secret, the metadata or the headers.
fn summary(e: &Event) -> serde_json::Value {
    json!({
        "name": e.name,
        "tags": e.tags,
        "action": serde_json::to_value(&e.action).ok().and_then(|a| a.get("type").cloned()),
        "schedule": e.schedule,
        "start_time": crate::domain::fmt_ms(e.start_time),
    })
}

/// Names of the fields an update changed (the secret only as `hmac_secret`).
fn changed_fields(old: &Event, new: &Event) -> Vec<String> {
    let a = serde_json::to_value(EventOut::from(old)).unwrap_or_default();
    let b = serde_json::to_value(EventOut::from(new)).unwrap_or_default();
    let mut changed: Vec<String> = match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => b
            .iter()
            .filter(|(k, v)| {
                k.as_str() != "updated_at"
                    && k.as_str() != "hmac_secret_set"
                    && a.get(*k) != Some(v)
            })
            .map(|(k, _)| k.clone())
            .collect(),
        _ => Vec::new(),
    };
    // Responses mask apicall header values: a change of one alone is still a change.
    if old.action != new.action && !changed.iter().any(|c| c == "action") {
        changed.push("action".into());
    }
    if old.hmac_secret != new.hmac_secret {
        changed.push("hmac_secret".into());
    }
    changed
}
