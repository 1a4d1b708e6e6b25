//! `/templates`: named, versioned templates that actions use by name (`"template": "<name>"`).
//!
//! Templates have no tags: every token with the read role may list, read and render them, and
//! every token with the write role may create, change and delete them. Deleting one that a live
//! event uses is a 409 naming the events (those outside the caller's scope only counted).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::extract::{Body, Params};
use super::AppState;
use crate::auth::Caller;
use crate::domain::action::{check_name, Action, TemplateVersion};
use crate::domain::event::Event;
use crate::domain::named_template::TemplateDef;
use crate::domain::{fmt_ms, now_ms};
use crate::error::ApiError;
use crate::store::templates::Fill;
use crate::store::{Template, TemplateDeleted};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/templates", post(create_template).get(list_templates))
        .route(
            "/templates/{name}",
            get(get_template)
                .put(update_template)
                .delete(delete_template),
        )
        .route("/templates/{name}/versions", get(list_versions))
        .route("/templates/{name}/render", post(render_template))
}

/// The body of `POST /templates`: a name and the first version's content.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "run-report", "kind": "email", "subject": "{{ event.name }} ran", "text": "Occurrence {{ occurrence.id }} at {{ occurrence.scheduled_at }}"}))]
pub struct TemplateIn {
    /// 1 to 128 of A-Z a-z 0-9 . _ -
    pub name: String,
    #[serde(flatten)]
    pub def: TemplateDef,
}

/// One version of a template.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TemplateOut {
    pub name: String,
    /// Numbered from 1; every `PUT` adds one.
    pub version: i64,
    #[serde(flatten)]
    pub def: TemplateDef,
    /// When the template was created.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When this version was saved, and who saved it.
    #[schema(format = DateTime)]
    pub saved_at: String,
    pub saved_by: String,
}

impl From<&Template> for TemplateOut {
    fn from(t: &Template) -> TemplateOut {
        TemplateOut {
            name: t.name.clone(),
            version: t.version,
            def: t.def.clone(),
            created_at: fmt_ms(t.created_at),
            saved_at: fmt_ms(t.saved_at),
            saved_by: t.actor.clone(),
        }
    }
}

/// A page of templates, by name.
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TemplatePage {
    pub data: Vec<TemplateOut>,
    /// Pass back as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The versions of a template, newest first.
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TemplateVersions {
    pub data: Vec<TemplateOut>,
}

/// The body of `POST /templates/{name}/render`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenderIn {
    /// The variables (`{"event": {…}, "occurrence": {…}, "metadata": {…}}`), laid over what an
    /// event named "example" would see at its first occurrence; default: the template's
    /// `sample`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub context: Option<Value>,
    /// The version to render; default: the newest.
    #[serde(default)]
    pub version: Option<i64>,
}

/// Where a template does not compile or render.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RenderError {
    /// `body` (or a path inside it, `body.items[0]`), `subject`, `text` or `html`.
    pub field: String,
    pub message: String,
    /// 1-based, in the field's source, when known.
    pub line: Option<usize>,
    /// 1-based, in characters, when known.
    pub column: Option<usize>,
}

/// The answer of `POST /templates/{name}/render`: the result, or the error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RenderOut {
    pub ok: bool,
    pub version: i64,
    /// `{"body": …}` or `{"subject", "text", "html"}`, rendered.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RenderError>,
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("template '{name}' not found"))
}

/// Checks the content and renders it once against its sample (or the default context), off
/// the async workers: a syntax error is a 400 naming the field, line and column.
async fn check_def(def: &TemplateDef) -> Result<(), ApiError> {
    def.validate().map_err(ApiError::BadRequest)?;
    let d = def.clone();
    tokio::task::spawn_blocking(move || d.render(None).map(drop))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("template check failed: {e}")))?
        .map_err(|(_, e)| ApiError::BadRequest(e.message))
}

fn summary(t: &Template) -> Value {
    json!({"name": t.name, "version": t.version, "kind": t.def.kind.as_str()})
}

/// Create a template
///
/// Its version 1. The strings are minijinja templates with the variables an action's inline
/// templates have (`event`, `occurrence`, `metadata`); they are compiled and rendered against
/// `sample` (or a default context) here, so an error is a 400 with its line and column.
#[utoipa::path(
    post,
    path = "/templates",
    tag = "templates",
    request_body = TemplateIn,
    responses(
        (status = 201, description = "Created", body = TemplateOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 409, response = super::openapi::Conflict),
    ),
)]
pub(super) async fn create_template(
    State(st): State<AppState>,
    caller: Caller,
    Body(input, _): Body<TemplateIn>,
) -> Result<Response, ApiError> {
    let name = check_name("name", &input.name).map_err(ApiError::BadRequest)?;
    check_def(&input.def).await?;
    let actor = caller.principal.actor();
    let t = st
        .store
        .create_template(&name, &input.def, &actor, now_ms())
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "template '{name}' exists: PUT /templates/{name} saves a new version"
            ))
        })?;
    st.audit(&caller, "template.create", Some(name), summary(&t))
        .await;
    Ok((StatusCode::CREATED, Json(TemplateOut::from(&t))).into_response())
}

/// List templates
///
/// The newest version of each, by name.
#[utoipa::path(
    get,
    path = "/templates",
    tag = "templates",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 50", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of templates", body = TemplatePage),
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub(super) async fn list_templates(
    State(st): State<AppState>,
    _caller: Caller,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    p.only(&["limit", "cursor"])?;
    let limit = p.limit()?;
    let mut list = st.store.list_templates(p.get("cursor"), limit + 1).await?;
    let next = if list.len() as i64 > limit {
        list.truncate(limit as usize);
        list.last().map(|t| t.name.clone())
    } else {
        None
    };
    let data: Vec<TemplateOut> = list.iter().map(TemplateOut::from).collect();
    Ok(Json(json!({"data": data, "next_cursor": next})))
}

fn version_param(p: &Params) -> Result<Option<i64>, ApiError> {
    p.get("version")
        .map(|v| match v.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(ApiError::BadRequest(format!(
                "version: '{v}' is not a version number (1, 2, …)"
            ))),
        })
        .transpose()
}

/// Get a template
///
/// The newest version, or the one asked for.
#[utoipa::path(
    get,
    path = "/templates/{name}",
    tag = "templates",
    params(
        ("name" = String, Path, description = "The template's name"),
        ("version" = Option<i64>, Query, description = "A version number; default the newest", minimum = 1),
    ),
    responses(
        (status = 200, description = "The template", body = TemplateOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn get_template(
    State(st): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
    p: Params,
) -> Result<Json<TemplateOut>, ApiError> {
    p.only(&["version"])?;
    let v = version_param(&p)?;
    let t = st
        .store
        .get_template(&name, v)
        .await?
        .ok_or_else(|| match v {
            Some(v) => ApiError::NotFound(format!("template '{name}' has no version {v}")),
            None => not_found(&name),
        })?;
    Ok(Json(TemplateOut::from(&t)))
}

/// List a template's versions
///
/// Newest first.
#[utoipa::path(
    get,
    path = "/templates/{name}/versions",
    tag = "templates",
    params(("name" = String, Path, description = "The template's name")),
    responses(
        (status = 200, description = "Its versions", body = TemplateVersions),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn list_versions(
    State(st): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let list = st.store.template_versions(&name).await?;
    if list.is_empty() {
        return Err(not_found(&name));
    }
    let data: Vec<TemplateOut> = list.iter().map(TemplateOut::from).collect();
    Ok(Json(json!({ "data": data })))
}

/// Save a new version of a template
///
/// The whole content (not a patch); its kind cannot change. Events pinned to an earlier
/// version keep it until they are updated; those with `"template_version": "latest"` use this
/// one from their next attempt.
#[utoipa::path(
    put,
    path = "/templates/{name}",
    tag = "templates",
    params(("name" = String, Path, description = "The template's name")),
    request_body = TemplateDef,
    responses(
        (status = 200, description = "The new version", body = TemplateOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn update_template(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(def, _): Body<TemplateDef>,
) -> Result<Json<TemplateOut>, ApiError> {
    let old = st
        .store
        .get_template(&name, None)
        .await?
        .ok_or_else(|| not_found(&name))?;
    if old.def.kind != def.kind {
        return Err(ApiError::BadRequest(format!(
            "kind: template '{name}' is of kind '{}' and its kind cannot change (events use it as that); create another template",
            old.def.kind.as_str()
        )));
    }
    check_def(&def).await?;
    let t = st
        .store
        .update_template(&name, &def, &caller.principal.actor(), now_ms())
        .await?
        .ok_or_else(|| not_found(&name))?;
    st.audit(&caller, "template.update", Some(name), summary(&t))
        .await;
    Ok(Json(TemplateOut::from(&t)))
}

/// Delete a template
///
/// With all its versions. Refused (409, naming them) while live events use it: change or
/// delete those first.
#[utoipa::path(
    delete,
    path = "/templates/{name}",
    tag = "templates",
    params(("name" = String, Path, description = "The template's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, response = super::openapi::NotFound),
        (status = 409, response = super::openapi::Conflict),
    ),
)]
pub(super) async fn delete_template(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    match st.store.delete_template(&name).await? {
        TemplateDeleted::Deleted => {
            st.audit(
                &caller,
                "template.delete",
                Some(name.clone()),
                json!({"name": name}),
            )
            .await;
            Ok(StatusCode::NO_CONTENT)
        }
        TemplateDeleted::NotFound => Err(not_found(&name)),
        TemplateDeleted::InUse(users) => {
            let (seen, hidden): (Vec<_>, Vec<_>) = users
                .iter()
                .partition(|u| caller.principal.can_see(&u.tags));
            let mut named: Vec<String> = seen
                .iter()
                .map(|u| format!("{} ({})", u.id, u.name))
                .collect();
            if !hidden.is_empty() {
                named.push(format!("{} outside your scope", hidden.len()));
            }
            Err(ApiError::Conflict(format!(
                "template '{name}' is used by live events: {}; change their action or delete them first",
                named.join(", ")
            )))
        }
    }
}

/// Render a template
///
/// Against `context` (default: its `sample`). A template that does not compile or render is
/// still a 200, with `ok: false` and the error's field, line and column.
#[utoipa::path(
    post,
    path = "/templates/{name}/render",
    tag = "templates",
    params(("name" = String, Path, description = "The template's name")),
    request_body(content = Option<RenderIn>, description = "Optional: the context and version"),
    responses(
        (status = 200, description = "The result or the error", body = RenderOut),
        (status = 400, response = super::openapi::BadRequest),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn render_template(
    State(st): State<AppState>,
    _caller: Caller,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<RenderOut>, ApiError> {
    let input: RenderIn = if body.iter().all(u8::is_ascii_whitespace) {
        RenderIn::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid request body: {e}")))?
    };
    if let Some(c) = &input.context {
        if !c.is_object() {
            return Err(ApiError::BadRequest(
                "context: expected an object (the template's variables)".into(),
            ));
        }
    }
    let t = st
        .store
        .get_template(&name, input.version)
        .await?
        .ok_or_else(|| not_found(&name))?;
    let def = t.def.clone();
    let ctx = input.context;
    let out = tokio::task::spawn_blocking(move || def.render(ctx.as_ref()))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("render task failed: {e}")))?;
    Ok(Json(match out {
        Ok(result) => RenderOut {
            ok: true,
            version: t.version,
            result: Some(result),
            error: None,
        },
        Err((field, e)) => RenderOut {
            ok: false,
            version: t.version,
            result: None,
            error: Some(RenderError {
                field,
                message: e.message,
                line: e.line,
                column: e.column,
            }),
        },
    }))
}

/// Resolves the named template of an event's action when it is saved: an unknown template
/// (or version) or one of the wrong kind is a 400 naming it; without a version asked for,
/// the newest is pinned. The templates are then compiled and rendered against the event, as
/// inline ones are. Events without a named template are returned as they are.
pub async fn resolve_for_save(st: &AppState, mut e: Event) -> Result<Event, ApiError> {
    let filled = filled_action(st, &mut e.action, true)
        .await
        .map_err(ApiError::BadRequest)?;
    let Some(action) = filled else {
        return Ok(e);
    };
    let mut check = e.clone();
    check.action = action;
    crate::domain::template::check_off_thread(check)
        .await
        .map_err(ApiError::BadRequest)?;
    Ok(e)
}

/// The action with its named template's text in place (`None`: it names none). With `pin`,
/// an action without a version gets the newest pinned. `Err` says what is wrong, naming the
/// template: unknown, no such version, or of another kind.
pub async fn filled_action(
    st: &AppState,
    action: &mut Action,
    pin: bool,
) -> Result<Option<Action>, String> {
    match crate::store::templates::fill(st.store.as_ref(), action).await {
        Ok(None) => Ok(None),
        Ok(Some((filled, version))) => {
            if pin && action.template_ref().is_some_and(|(_, v)| v.is_none()) {
                action.pin_template(TemplateVersion::Pinned(version));
            }
            Ok(Some(filled))
        }
        Err(Fill::Missing(m)) => Err(m),
        Err(Fill::Store(e)) => Err(format!("action.params.template: cannot be read now: {e}")),
    }
}
