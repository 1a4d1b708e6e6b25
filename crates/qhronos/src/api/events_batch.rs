//! `POST /events/batch`: up to 1,000 events in one transaction, all or none, with the errors of
//! the invalid items by index.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::event_io::EventIn;
use super::events::plan_event;
use super::extract::Body;
use super::AppState;
use crate::auth::Caller;
use crate::calendars::conflicts::Collision;
use crate::delivery::email::sender_of;
use crate::domain::event::Event;
use crate::domain::occurrence::NewOccurrence;
use crate::domain::template;
use crate::domain::{now_ms, Millis};
use crate::engine::plan::start_after;
use crate::error::ApiError;
use crate::store::By;

/// Most events in one `POST /events/batch`.
pub const BATCH_MAX: usize = qhronos_schema::limits::BATCH_MAX;
/// A batch of 1,000 events with some metadata does not fit the 1 MiB of other routes.
pub const BATCH_BODY_LIMIT: usize = 16 << 20;

/// The body of `POST /events/batch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchIn {
    /// 1 to 1,000 events, each as in `POST /events`.
    #[schema(schema_with = super::inputs::batch_events)]
    pub events: Vec<serde_json::Value>,
}

/// What `POST /events/batch` created, in the order of the request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchOut {
    pub count: usize,
    pub ids: Vec<Uuid>,
    /// In the order of `ids`: the signing secret generated for each event given without
    /// `hmac_secret` (shown only here), `null` for one that gave its own.
    pub hmac_secrets: Vec<Option<String>>,
    /// The items that overlap other events of a `free` calendar (or earlier items of the
    /// batch in it), by index: saved, and reported as a single create reports them. Empty
    /// when none does.
    pub conflicts: Vec<ItemConflictsOut>,
}

/// The collisions of one batch item.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ItemConflictsOut {
    pub index: usize,
    /// At most 50
    pub conflicts: Vec<Collision>,
}

/// Create many events at once
///
/// Up to 1,000 events, each as in `POST /events`, created in one transaction: all or none.
/// When any is invalid, nothing is created and the 400 answer lists each invalid item with its
/// index, status and error. `Idempotency-Key` is not supported here.
///
/// Events with a `calendar_id` are checked for conflicts as if created one by one in the order
/// given (each against its calendar and the items before it): in an `auto_plan` calendar an
/// overlapping item refuses the whole batch (409, `items` with each one's conflicts and
/// proposals); in a `free` calendar the batch is saved and `conflicts` lists them.
#[utoipa::path(
    post,
    path = "/events/batch",
    tag = "events",
    request_body = BatchIn,
    responses(
        (status = 201, description = "All created; ids in the order of the request", body = BatchOut),
        (status = 400, description = "Invalid batch or items; nothing was created. `items` lists each invalid one: `{index, status, error}`", body = Object, example = json!({"error": "1 of 2 events is invalid; nothing was created", "items": [{"index": 1, "status": 400, "error": "name: must not be empty"}]})),
        (status = 403, response = super::openapi::Forbidden),
        (status = 409, description = "Items overlap other events of an auto_plan calendar; nothing was created. `items` lists each: `{index, status, error, conflicts, proposals}`", body = Object),
    ),
)]
pub(super) async fn create_events_batch(
    State(st): State<AppState>,
    caller: Caller,
    Body(input, _): Body<BatchIn>,
) -> Result<Response, ApiError> {
    let n = input.events.len();
    if n == 0 || n > BATCH_MAX {
        return Err(ApiError::BadRequest(format!(
            "events: expected 1 to {BATCH_MAX} events, got {n}"
        )));
    }
    let now = now_ms();
    let mut targets: HashMap<String, Result<(), ApiError>> = HashMap::new();
    let mut ready = Vec::with_capacity(n);
    let mut secrets = Vec::with_capacity(n);
    let mut invalid = Vec::new();
    for (index, raw) in input.events.into_iter().enumerate() {
        match prepare_item(&st, &caller, raw, now, &mut targets).await {
            Ok((item, secret)) => {
                ready.push(item);
                secrets.push(secret);
            }
            Err(e) => invalid.push(json!({
                "index": index,
                "status": e.status().as_u16(),
                "error": e.to_string(),
            })),
        }
    }
    if !invalid.is_empty() {
        let k = invalid.len();
        return Err(ApiError::Items {
            message: format!(
                "{k} of {n} events {} invalid; nothing was created",
                if k == 1 { "is" } else { "are" }
            ),
            items: invalid,
        });
    }
    // Every item is valid, so an item's place in `ready` is its index in the request.
    let mut ready = template::check_batch_off_thread(ready, |(e, _)| e)
        .await
        .map_err(|(index, error)| ApiError::Items {
            message: format!("1 of {n} events is invalid; nothing was created"),
            items: vec![json!({"index": index, "status": 400, "error": error})],
        })?;
    let conflicts = check_conflicts(&st, &caller, &ready).await?;
    for (e, occs) in ready.iter_mut() {
        st.engine.lease_near(e, occs, now);
    }
    let actor = caller.principal.identity();
    st.store.create_events(&ready, By::actor(&actor)).await?;
    let events: Vec<&Event> = ready.iter().map(|(e, _)| e).collect();
    let cals = super::conflicts::calendars_of(events.iter().copied());
    super::conflicts::after_write(&st, &cals, &[], &events).await;
    for (e, occs) in &ready {
        st.engine.hold(e, occs, now);
    }
    st.engine
        .expand_if_behind(ready.iter().filter_map(|(e, _)| e.next_fire_at).min());
    let ids: Vec<Uuid> = ready.iter().map(|(e, _)| e.id).collect();
    let tags = super::audit::union(ready.iter().map(|(e, _)| &e.tags));
    st.audit_in(
        &caller,
        "event.create_batch",
        None,
        &tags,
        json!({"count": n, "ids": ids}),
    )
    .await;
    let out = BatchOut {
        count: n,
        ids,
        hmac_secrets: secrets,
        conflicts,
    };
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// The conflict check of the items (see `create_events_batch`): the 409 when an item overlaps
/// in an `auto_plan` calendar, else what to report.
async fn check_conflicts(
    st: &AppState,
    caller: &Caller,
    ready: &[(Event, Vec<NewOccurrence>)],
) -> Result<Vec<ItemConflictsOut>, ApiError> {
    let n = ready.len();
    let events: Vec<&Event> = ready.iter().map(|(e, _)| e).collect();
    let found = super::conflicts::check_many(st, caller, &events, &[], None)
        .await
        .map_err(|(item, e)| match item {
            Some(index) => ApiError::Items {
                message: format!("1 of {n} events is invalid; nothing was created"),
                items: vec![json!({"index": index, "status": 400, "error": e.to_string()})],
            },
            None => e,
        })?;
    let refused: Vec<_> = found
        .iter()
        .filter(|c| c.auto_plan)
        .map(|c| {
            json!({
                "index": c.item,
                "status": 409,
                "error": format!("overlaps {} occurrence(s) in its auto_plan calendar", c.conflicts.len()),
                "conflicts": c.conflicts,
                "proposals": c.proposals,
            })
        })
        .collect();
    if !refused.is_empty() {
        let k = refused.len();
        return Err(ApiError::Items {
            message: format!(
                "{k} of {n} events overlap other events of an auto_plan calendar; nothing was created"
            ),
            items: refused,
        });
    }
    Ok(found
        .into_iter()
        .map(|c| ItemConflictsOut {
            index: c.item,
            conflicts: c.conflicts,
        })
        .collect())
}

/// One item of a batch: parsed, validated, scoped, target-checked and planned.
async fn prepare_item(
    st: &AppState,
    caller: &Caller,
    raw: serde_json::Value,
    now: Millis,
    targets: &mut HashMap<String, Result<(), ApiError>>,
) -> Result<((Event, Vec<NewOccurrence>), Option<String>), ApiError> {
    let input: EventIn = serde_json::from_value(raw)
        .map_err(|e| ApiError::BadRequest(format!("invalid event: {e}")))?;
    let e = input
        .validate(Uuid::now_v7(), now, now)
        .map_err(ApiError::BadRequest)?;
    let mut e = super::templates::resolve_for_save(st, e).await?;
    e.tags = caller.principal.scoped_tags(std::mem::take(&mut e.tags))?;
    e.action.send_as(sender_of(&caller.principal));
    // Most batches aim at a few targets: check each one once.
    let url = serde_json::to_string(&e.action).unwrap_or_default();
    if !targets.contains_key(&url) {
        let verdict = st.check_target(&e.action).await;
        targets.insert(url.clone(), verdict);
    }
    if let Some(Err(err)) = targets.get(&url) {
        return Err(ApiError::Unprocessable(err.to_string()));
    }
    let secret = super::secrets::ensure_own(&mut e);
    let after = start_after(&e, now);
    let occs = plan_event(st, &mut e, after, now).await?;
    Ok(((e, occs), secret))
}
