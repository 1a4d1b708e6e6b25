//! `GET /me`: who the presented token is and what it may do, so that a client (the dashboard,
//! the CLI) offers only what will be allowed instead of learning it from 403s.

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::AppState;
use crate::auth::principal::Need;
use crate::auth::{Caller, Principal};

pub fn router() -> Router<AppState> {
    Router::new().route("/me", get(whoami))
}

/// What the caller may do, by the same rules the gate and the handlers apply.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Abilities {
    /// List and read events, occurrences, previews, analytics (routes that need `read`).
    pub read: bool,
    /// Create, change, pause, trigger, delete, retry (routes that need `write`).
    pub write: bool,
    /// List and revoke tokens, read the audit log (routes that need `admin`).
    pub admin: bool,
    /// Issue tokens (`POST /tokens`): the master token only.
    pub issue_tokens: bool,
    /// Take and list backups, read the configuration summary: the master token or an admin
    /// token without a scope.
    pub operate: bool,
}

/// The caller.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeOut {
    /// `master` or `token`.
    pub kind: &'static str,
    /// The token's subject; `null` for the master token.
    pub sub: Option<String>,
    /// The token's id (for `DELETE /tokens/{jti}`); `null` for the master token.
    pub jti: Option<String>,
    /// `read`, `write`, `read_write`, `admin`, or `master`.
    pub access: String,
    /// The tags the token is limited to; `null`: every event.
    pub scope: Option<Vec<String>>,
    pub can: Abilities,
}

/// Who am I
///
/// The presented token's identity, role and scope, and what it may do. Never the token itself.
#[utoipa::path(
    get,
    path = "/me",
    tag = "tokens",
    responses((status = 200, description = "The caller", body = MeOut)),
)]
pub(super) async fn whoami(caller: Caller) -> Json<MeOut> {
    let p = &caller.principal;
    let (kind, sub, jti, access) = match p {
        Principal::Master => ("master", None, None, "master".to_string()),
        Principal::Token {
            jti, sub, access, ..
        } => (
            "token",
            Some(sub.clone()),
            Some(jti.clone()),
            access.as_str().to_string(),
        ),
    };
    let admin = p.allows(Need::Admin);
    Json(MeOut {
        kind,
        sub,
        jti,
        access,
        scope: p.scope().map(<[String]>::to_vec),
        can: Abilities {
            read: p.allows(Need::Read),
            write: p.allows(Need::Write),
            admin,
            issue_tokens: p.allows(Need::Master),
            operate: admin && p.scope().is_none(),
        },
    })
}
