//! `/workflows`: "when an occurrence of X completes (fails, is missed), do Y" — declared, saved,
//! and run by the store inside the transaction that records the cause's outcome (see
//! `store::workflows`).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::extract::{id, Body, Params};
use super::AppState;
use crate::api::event_io::EventIn;
use crate::auth::Caller;
use crate::delivery::email::sender_of;
use crate::domain::duration::Dur;
use crate::domain::event::EventStatus;
use crate::domain::{fmt_ms, now_ms, template, Millis};
use crate::error::ApiError;
use crate::store::workflows::{CauseState, EventTemplate, Then, When};
use crate::store::Workflow;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/workflows", get(list_workflows).post(create_workflow))
        .route(
            "/workflows/{id}",
            get(get_workflow)
                .put(update_workflow)
                .delete(delete_workflow),
        )
}

/// The longest delay a follow-up may wait.
const MAX_DELAY_MS: i64 = 366 * 86_400_000;
const MAX_NAME: usize = 256;

/// The body of `POST /workflows` and `PUT /workflows/{id}` (a `PUT` replaces the whole workflow).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "report after backup", "when": {"event_id": "0190c5a0-0000-7000-8000-000000000001", "on": ["completed"]}, "then": {"trigger": "0190c5a0-0000-7000-8000-000000000002", "delay": "30s"}, "enabled": true}))]
pub struct WorkflowIn {
    /// 1 to 256 characters
    pub name: String,
    pub when: WhenIn,
    pub then: ThenIn,
    /// Default `true`; a disabled workflow fires nothing
    pub enabled: Option<bool>,
}

/// Which outcomes are causes: of one event (`event_id`) or of every event carrying all of
/// `tags` (give one of the two), reaching one of the states in `on`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhenIn {
    pub event_id: Option<String>,
    pub tags: Option<Vec<String>>,
    /// One or more of `completed`, `failed`, `missed`
    pub on: Vec<CauseState>,
}

/// What each cause fires: a new occurrence of an existing event (`trigger`: its id) or a new
/// one-time event (`create`: an event body as for `POST /events`, without `schedule`;
/// `start_time` may be left out), `delay` after the cause's outcome (default now). Templates in
/// its payload see the cause as `cause.event`, `cause.occurrence`, `cause.attempt`,
/// `cause.metadata` and `cause.workflow`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ThenIn {
    pub trigger: Option<String>,
    #[schema(value_type = Option<EventIn>)]
    pub create: Option<Value>,
    /// A duration such as `30s`, `5m`, `1h` (at most 366 days)
    pub delay: Option<String>,
}

/// A workflow as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WorkflowOut {
    pub id: Uuid,
    pub name: String,
    pub when: WhenOut,
    pub then: ThenOut,
    pub enabled: bool,
    /// The tags it concerns (its `when` tags and its events' tags): scoped tokens see it when
    /// one of them is in their scope
    pub tags: Vec<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WhenOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    pub tags: Vec<String>,
    pub on: Vec<CauseState>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ThenOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Uuid>,
    /// The event body as given, without its secret
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub create: Option<Value>,
    pub delay: String,
}

/// A page of workflows, oldest first. Pass `next_cursor` back as `cursor` for the next page;
/// `null` on the last page.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WorkflowPage {
    pub data: Vec<WorkflowOut>,
    pub next_cursor: Option<String>,
}

impl From<&Workflow> for WorkflowOut {
    fn from(w: &Workflow) -> Self {
        WorkflowOut {
            id: w.id,
            name: w.name.clone(),
            when: WhenOut {
                event_id: w.when.event_id,
                tags: w.when.tags.clone(),
                on: w.when.on.clone(),
            },
            then: ThenOut {
                trigger: match &w.then {
                    Then::Trigger(id) => Some(*id),
                    Then::Create(_) => None,
                },
                create: w.body.clone(),
                delay: Dur::from_millis(u64::try_from(w.delay_ms).unwrap_or(0)).to_string(),
            },
            enabled: w.enabled,
            tags: w.tags.clone(),
            created_at: fmt_ms(w.created_at),
            updated_at: fmt_ms(w.updated_at),
        }
    }
}

fn not_found(raw: &str) -> ApiError {
    ApiError::NotFound(format!("workflow '{raw}' not found"))
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::BadRequest(msg.into())
}

fn check_tags(field: &str, tags: &[String]) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t = t.trim();
        if t.is_empty() || t.chars().count() > 128 || t.contains(',') {
            return Err(bad(format!(
                "{field}: '{t}' is not a valid tag (1 to 128 characters, no commas)"
            )));
        }
        if !out.iter().any(|x| x == t) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

/// An event the body names (`field`): it must exist and be visible to the caller.
async fn named_event(
    st: &AppState,
    caller: &Caller,
    field: &str,
    raw: &str,
) -> Result<crate::domain::event::Event, ApiError> {
    match st.visible_event(caller, raw).await {
        Ok(e) if e.status != EventStatus::Deleted => Ok(e),
        Ok(_) | Err(ApiError::NotFound(_)) => Err(bad(format!("{field}: event '{raw}' not found"))),
        Err(e) => Err(e),
    }
}

/// Validates a body into a workflow (as `POST /events` validates an event body for `create`).
async fn build(
    st: &AppState,
    caller: &Caller,
    input: WorkflowIn,
    id: Uuid,
    created_at: Millis,
    now: Millis,
) -> Result<Workflow, ApiError> {
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(bad(format!("name: 1 to {MAX_NAME} characters")));
    }
    let mut on: Vec<CauseState> = Vec::new();
    for s in input.when.on {
        if !on.contains(&s) {
            on.push(s);
        }
    }
    if on.is_empty() {
        return Err(bad(
            "when.on: give one or more of completed, failed, missed",
        ));
    }
    let mut tags: Vec<String> = Vec::new();
    let when =
        match (&input.when.event_id, &input.when.tags) {
            (Some(raw), None) => {
                let e = named_event(st, caller, "when.event_id", raw).await?;
                tags.extend(e.tags.iter().cloned());
                When {
                    event_id: Some(e.id),
                    tags: Vec::new(),
                    on,
                }
            }
            (None, Some(t)) if !t.is_empty() => {
                let t = check_tags("when.tags", t)?;
                let t = caller.principal.scoped_tags(t)?;
                tags.extend(t.iter().cloned());
                When {
                    event_id: None,
                    tags: t,
                    on,
                }
            }
            _ => return Err(bad(
                "when: give either event_id (one event) or tags (every event carrying all of them)",
            )),
        };
    let delay_ms = match input.then.delay.as_deref() {
        None => 0,
        Some(s) => s
            .parse::<Dur>()
            .map_err(|e| bad(format!("then.delay: {e}")))?
            .as_millis(),
    };
    if !(0..=MAX_DELAY_MS).contains(&delay_ms) {
        return Err(bad("then.delay: at most 366d"));
    }
    let (then, body) = match (&input.then.trigger, &input.then.create) {
        (Some(raw), None) => {
            let e = named_event(st, caller, "then.trigger", raw).await?;
            tags.extend(e.tags.iter().cloned());
            (Then::Trigger(e.id), None)
        }
        (None, Some(v)) => {
            let mut body = v.clone();
            let obj = body
                .as_object_mut()
                .ok_or_else(|| bad("then.create: expected an event body (a JSON object)"))?;
            if obj.get("schedule").is_some_and(|s| !s.is_null()) {
                return Err(bad(
                    "then.create: a workflow creates one-time events: leave schedule out",
                ));
            }
            // Its time is the follow-up's: a start_time, if given, only has to be valid.
            obj.entry("start_time")
                .or_insert_with(|| json!(fmt_ms(now)));
            let ein: EventIn = serde_json::from_value(body.clone())
                .map_err(|e| bad(format!("then.create: {e}")))?;
            let e = ein
                .validate(Uuid::now_v7(), now, now)
                .map_err(|e| bad(format!("then.create: {e}")))?;
            let mut e = template::check_off_thread(e)
                .await
                .map_err(|e| bad(format!("then.create: {e}")))?;
            e.tags = caller.principal.scoped_tags(std::mem::take(&mut e.tags))?;
            e.action.send_as(sender_of(&caller.principal));
            st.check_target(&e.action).await?;
            super::secrets::ensure_own(&mut e);
            tags.extend(e.tags.iter().cloned());
            let mut shown = v.clone();
            if let Some(o) = shown.as_object_mut() {
                o.remove("hmac_secret");
            }
            (Then::Create(Box::new(EventTemplate::of(&e))), Some(shown))
        }
        _ => {
            return Err(bad(
                "then: give either trigger (an event id) or create (an event body)",
            ))
        }
    };
    let mut seen = Vec::new();
    tags.retain(|t| {
        let new = !seen.contains(t);
        seen.push(t.clone());
        new
    });
    Ok(Workflow {
        id,
        name: name.to_string(),
        when,
        then,
        delay_ms,
        body,
        enabled: input.enabled.unwrap_or(true),
        tags,
        scope: caller.principal.scope().map(<[String]>::to_vec),
        created_at,
        updated_at: now,
    })
}

/// Refuses a workflow that would close a loop the definitions show: its follow-up's event
/// is a cause of a workflow whose follow-up … is a cause of it again.
async fn refuse_loops(st: &AppState, w: &Workflow) -> Result<(), ApiError> {
    if !w.enabled {
        return Ok(());
    }
    let mut all: Vec<Workflow> = st
        .store
        .all_workflows()
        .await?
        .into_iter()
        .filter(|x| x.enabled && x.id != w.id)
        .collect();
    all.push(w.clone());
    // What each workflow's follow-up is: an existing event (with its tags now) or a new one.
    let mut produced: HashMap<Uuid, (Option<Uuid>, Vec<String>)> = HashMap::new();
    for x in &all {
        let p = match &x.then {
            Then::Trigger(id) => (
                Some(*id),
                st.store.event_tags(*id).await?.unwrap_or_default(),
            ),
            Then::Create(t) => (None, t.tags.clone()),
        };
        produced.insert(x.id, p);
    }
    let leads_to = |a: &Workflow, b: &Workflow| -> bool {
        let Some((id, tags)) = produced.get(&a.id) else {
            return false;
        };
        match id {
            Some(id) => b.when.matches_event(*id, tags),
            None => {
                b.when.event_id.is_none()
                    && !b.when.tags.is_empty()
                    && b.when.tags.iter().all(|t| tags.contains(t))
            }
        }
    };
    // Depth-first from the new workflow: a path back to it is a loop.
    let start = all.len() - 1;
    let mut stack: Vec<(usize, Vec<usize>)> = vec![(start, vec![start])];
    let mut visited = vec![false; all.len()];
    while let Some((i, path)) = stack.pop() {
        for (j, b) in all.iter().enumerate() {
            if !leads_to(&all[i], b) {
                continue;
            }
            if j == start {
                let names: Vec<&str> = path
                    .iter()
                    .chain(std::iter::once(&start))
                    .map(|k| all[*k].name.as_str())
                    .collect();
                return Err(bad(format!(
                    "this workflow would make a loop: {} (each one's follow-up is a cause of the next)",
                    names.join(" ⇒ ")
                )));
            }
            if !visited[j] {
                visited[j] = true;
                let mut p = path.clone();
                p.push(j);
                stack.push((j, p));
            }
        }
    }
    Ok(())
}

/// The workflow if it exists and the caller's scope covers it; otherwise 404.
async fn visible(st: &AppState, caller: &Caller, raw: &str) -> Result<Workflow, ApiError> {
    match st.store.get_workflow(id("workflow", raw)?).await? {
        Some(w) if caller.principal.can_see(&w.tags) => Ok(w),
        _ => Err(not_found(raw)),
    }
}

fn summary(w: &Workflow) -> Value {
    json!({
        "name": w.name,
        "when": {"event_id": w.when.event_id, "tags": w.when.tags, "on": w.when.on},
        "then": match &w.then {
            Then::Trigger(id) => json!({"trigger": id}),
            Then::Create(t) => json!({"create": {"name": t.name, "tags": t.tags}}),
        },
        "delay_ms": w.delay_ms,
        "enabled": w.enabled,
    })
}

/// Create a workflow
///
/// When an occurrence of a matching event reaches one of the `on` states, the follow-up fires
/// after `delay`: one per cause, written in the same transaction as the cause's outcome. A
/// loop the definitions show (A ⇒ B ⇒ A, also through tags) is refused with a 400 naming it;
/// a chain deeper than `workflows.max_depth` is cut at run time (that follow-up is `missed`).
/// A scoped token may only name events and tags inside its scope.
#[utoipa::path(
    post,
    path = "/workflows",
    tag = "workflows",
    request_body = WorkflowIn,
    responses(
        (status = 201, description = "Created", body = WorkflowOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 403, response = super::openapi::Forbidden),
        (status = 422, response = super::openapi::Unprocessable),
    ),
)]
pub(super) async fn create_workflow(
    State(st): State<AppState>,
    caller: Caller,
    Body(input, _): Body<WorkflowIn>,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let w = build(&st, &caller, input, Uuid::now_v7(), now, now).await?;
    refuse_loops(&st, &w).await?;
    st.store.create_workflow(&w).await?;
    st.audit_in(
        &caller,
        "workflow.create",
        Some(w.id.to_string()),
        &w.tags,
        summary(&w),
    )
    .await;
    Ok((StatusCode::CREATED, Json(WorkflowOut::from(&w))).into_response())
}

/// List workflows
#[utoipa::path(
    get,
    path = "/workflows",
    tag = "workflows",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 50", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of workflows", body = WorkflowPage),
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub(super) async fn list_workflows(
    State(st): State<AppState>,
    caller: Caller,
    p: Params,
) -> Result<Json<WorkflowPage>, ApiError> {
    p.only(&["limit", "cursor"])?;
    let limit = p.limit()?;
    let (items, next) = super::extract::visible_page(
        p.id_cursor()?,
        limit,
        |from, n| {
            let store = st.store.clone();
            Box::pin(async move { Ok(store.list_workflows(from, n).await?) })
        },
        |x| x.id,
        |x| caller.principal.can_see(&x.tags),
    )
    .await?;
    let data: Vec<WorkflowOut> = items.iter().map(WorkflowOut::from).collect();
    Ok(Json(WorkflowPage {
        data,
        next_cursor: next,
    }))
}

/// Get a workflow
#[utoipa::path(
    get,
    path = "/workflows/{id}",
    tag = "workflows",
    params(("id" = String, Path, description = "The workflow id (a UUID)")),
    responses(
        (status = 200, description = "The workflow", body = WorkflowOut),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn get_workflow(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<WorkflowOut>, ApiError> {
    Ok(Json(WorkflowOut::from(&visible(&st, &caller, &raw).await?)))
}

/// Replace a workflow
///
/// The whole definition, validated as on create (loops included); outcomes recorded after the
/// change follow the new one.
#[utoipa::path(
    put,
    path = "/workflows/{id}",
    tag = "workflows",
    params(("id" = String, Path, description = "The workflow id (a UUID)")),
    request_body = WorkflowIn,
    responses(
        (status = 200, description = "The workflow as saved", body = WorkflowOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 403, response = super::openapi::Forbidden),
        (status = 404, response = super::openapi::NotFound),
        (status = 422, response = super::openapi::Unprocessable),
    ),
)]
pub(super) async fn update_workflow(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
    Body(input, _): Body<WorkflowIn>,
) -> Result<Json<WorkflowOut>, ApiError> {
    let old = visible(&st, &caller, &raw).await?;
    let w = build(&st, &caller, input, old.id, old.created_at, now_ms()).await?;
    refuse_loops(&st, &w).await?;
    if !st.store.update_workflow(&w).await? {
        return Err(not_found(&raw));
    }
    st.audit_in(
        &caller,
        "workflow.update",
        Some(w.id.to_string()),
        &w.tags,
        summary(&w),
    )
    .await;
    Ok(Json(WorkflowOut::from(&w)))
}

/// Delete a workflow
///
/// It fires nothing from then on; follow-ups it already wrote stay.
#[utoipa::path(
    delete,
    path = "/workflows/{id}",
    tag = "workflows",
    params(("id" = String, Path, description = "The workflow id (a UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn delete_workflow(
    State(st): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    let w = visible(&st, &caller, &raw).await?;
    if !st.store.delete_workflow(w.id).await? {
        return Err(not_found(&raw));
    }
    st.audit_in(
        &caller,
        "workflow.delete",
        Some(w.id.to_string()),
        &w.tags,
        json!({ "name": w.name }),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
