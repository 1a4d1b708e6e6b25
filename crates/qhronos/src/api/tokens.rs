//! `/tokens`: issue (master only), list and revoke (admin) JWTs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{Body, Params};
use super::AppState;
use crate::auth::{Access, Caller};
use crate::domain::{fmt_ms, now_ms, parse_time, Millis};
use crate::error::ApiError;
use crate::store::TokenRecord;
use qhronos_schema::limits;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{jti}", delete(revoke_token))
}

/// The body of `POST /tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenIn {
    /// Required: who the token is for (1 to 256 characters).
    #[schema(schema_with = super::inputs::token_sub, required = true)]
    sub: Option<String>,
    /// Required.
    #[schema(value_type = super::openapi::AccessDoc, required = true)]
    access: Option<String>,
    /// Tags the token is limited to; empty: every event.
    #[serde(default)]
    #[schema(schema_with = super::inputs::scope)]
    scope: Vec<String>,
    /// WebSocket client names the token may register (`GET /ws` client hooks), besides the
    /// one equal to its `sub`; at most 100, each 1 to 128 of A-Z a-z 0-9 . _ -.
    #[serde(default)]
    #[schema(schema_with = super::inputs::clients)]
    clients: Vec<String>,
    /// Required: an RFC 3339 time in the future.
    #[schema(schema_with = super::inputs::expires_at, required = true)]
    expires_at: Option<String>,
    /// Only `jwt`.
    #[serde(rename = "type")]
    #[schema(schema_with = super::inputs::token_type)]
    kind: Option<String>,
}

/// Issue a token
///
/// The token is in this answer only.
#[utoipa::path(
    post,
    path = "/tokens",
    tag = "tokens",
    request_body = TokenIn,
    responses(
        (status = 201, description = "The token record with the token", body = super::openapi::TokenCreatedDoc),
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub(super) async fn create_token(
    State(st): State<AppState>,
    caller: Caller,
    Body(t, _): Body<TokenIn>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let bad = ApiError::BadRequest;
    let sub = t
        .sub
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.chars().count() <= qhronos_schema::limits::SUB_MAX)
        .ok_or_else(|| bad("sub is required (1 to 256 characters): who the token is for".into()))?;
    let access = Access::parse(
        t.access
            .as_deref()
            .ok_or_else(|| bad("access is required: read, write, read_write or admin".into()))?,
    )
    .map_err(bad)?;
    if let Some(k) = t.kind.as_deref().filter(|k| *k != "jwt") {
        return Err(bad(format!("type '{k}' is not supported: only \"jwt\"")));
    }
    for tag in &t.scope {
        if tag.trim().is_empty() || tag.contains(',') || tag.chars().count() > limits::TAG_MAX {
            return Err(bad(format!(
                "scope: '{tag}' is not a valid tag (1 to 128 characters, no commas)"
            )));
        }
    }
    if t.clients.len() > limits::CLIENTS_MAX {
        return Err(bad("clients: at most 100 client names".into()));
    }
    for c in &t.clients {
        crate::domain::action::check_name("clients", c).map_err(bad)?;
    }
    let now = now_ms();
    let expires_at = parse_time(
        "expires_at",
        t.expires_at
            .as_deref()
            .ok_or_else(|| bad("expires_at is required (an RFC 3339 time)".into()))?,
    )
    .map_err(bad)?
    .as_millisecond();
    if expires_at <= now {
        return Err(bad("expires_at must be in the future".into()));
    }
    let wanted = Wanted {
        sub,
        access,
        scope: &t.scope,
        clients: &t.clients,
        expires_at,
    };
    let (token, rec) = issue_token(&st, &caller, wanted, now).await?;
    let mut out = serde_json::to_value(&rec).unwrap_or_default();
    out["clients"] = json!(t.clients);
    out["token"] = Value::String(token);
    out["type"] = Value::String("jwt".into());
    Ok((StatusCode::CREATED, Json(out)))
}

/// What a token is issued for.
pub(super) struct Wanted<'a> {
    /// Who it is for.
    pub sub: &'a str,
    /// What it may do.
    pub access: Access,
    /// The tags it is limited to (empty: every event).
    pub scope: &'a [String],
    /// The WebSocket client names it may register.
    pub clients: &'a [String],
    /// When it stops working.
    pub expires_at: Millis,
}

/// Signs a token, keeps its record and audits the issue (`token.issue`): what `POST /tokens`
/// and a feed token (`POST /feeds`) share. Returns the token (shown once) and its record.
pub(super) async fn issue_token(
    st: &AppState,
    caller: &Caller,
    w: Wanted<'_>,
    now: Millis,
) -> Result<(String, TokenRecord), ApiError> {
    let (token, jti) =
        st.tokens
            .issue_with_clients(w.sub, w.access, w.scope, w.clients, w.expires_at, now)?;
    let rec = TokenRecord {
        jti: jti.clone(),
        sub: w.sub.to_string(),
        access: w.access,
        scope: w.scope.to_vec(),
        expires_at: w.expires_at,
        created_at: now,
        revoked_at: None,
    };
    st.store.create_token(&rec).await?;
    st.audit_in(
        caller,
        "token.issue",
        Some(jti),
        w.scope,
        json!({
            "sub": w.sub, "access": w.access, "scope": w.scope, "clients": w.clients,
            "expires_at": fmt_ms(w.expires_at),
        }),
    )
    .await;
    Ok((token, rec))
}

/// List issued tokens
///
/// Newest first, without the tokens themselves. An admin token with a scope lists only the
/// tokens whose scope lies inside its own (not empty, every tag in it).
#[utoipa::path(
    get,
    path = "/tokens",
    tag = "tokens",
    params(
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 50", minimum = 1, maximum = 1000),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of tokens", body = super::openapi::TokenPage),
        (status = 400, response = super::openapi::BadRequest),
    ),
)]
pub(super) async fn list_tokens(
    State(st): State<AppState>,
    caller: Caller,
    p: Params,
) -> Result<Json<Value>, ApiError> {
    p.only(&["limit", "cursor"])?;
    let limit = p.limit()?;
    let mut list = st
        .store
        .list_tokens(limit + 1, p.get("cursor"), caller.principal.scope())
        .await?;
    let next = if list.len() as i64 > limit {
        list.truncate(limit as usize);
        list.last().map(|t| t.jti.clone())
    } else {
        None
    };
    Ok(Json(json!({ "data": list, "next_cursor": next })))
}

/// Revoke a token
///
/// Refused from the next request on (other nodes re-read revocations every second). An admin
/// token with a scope may revoke only the tokens it lists; another is 404.
#[utoipa::path(
    delete,
    path = "/tokens/{jti}",
    tag = "tokens",
    params(("jti" = String, Path, description = "The token's id (`jti`)")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, response = super::openapi::NotFound),
    ),
)]
pub(super) async fn revoke_token(
    State(st): State<AppState>,
    caller: Caller,
    Path(jti): Path<String>,
) -> Result<StatusCode, ApiError> {
    let nf = || ApiError::NotFound(format!("token '{jti}' not found"));
    // Outside a scoped admin's scope, a token is not found (never 403: ids cannot be probed).
    let rec = st
        .store
        .get_token(&jti)
        .await?
        .filter(|t| caller.principal.covers(&t.scope))
        .ok_or_else(nf)?;
    if !st.store.revoke_token(&jti, now_ms()).await? {
        return Err(nf());
    }
    st.tokens.revoke_local(&jti);
    st.audit_in(
        &caller,
        "token.revoke",
        Some(jti.clone()),
        &rec.scope,
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
