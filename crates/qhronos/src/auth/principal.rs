//! Who is calling, and what they may do.

use std::net::IpAddr;

use crate::error::ApiError;

pub use crate::domain::access::Access;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Read,
    Write,
    Admin,
    /// Only the master token.
    Master,
}

impl Need {
    pub fn as_str(self) -> &'static str {
        match self {
            Need::Read => "read",
            Need::Write => "write",
            Need::Admin => "admin",
            Need::Master => "the master token",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Principal {
    Master,
    Token {
        jti: String,
        sub: String,
        access: Access,
        /// Tags this token may see and touch; empty means every event.
        scope: Vec<String>,
    },
}

impl Principal {
    pub fn allows(&self, need: Need) -> bool {
        match self {
            Principal::Master => true,
            Principal::Token { access, .. } => matches!(
                (access, need),
                (Access::Admin, Need::Read | Need::Write | Need::Admin)
                    | (Access::ReadWrite, Need::Read | Need::Write)
                    | (Access::Read, Need::Read)
                    | (Access::Write, Need::Write)
            ),
        }
    }

    /// The rate-limit and audit identity.
    pub fn actor(&self) -> String {
        match self {
            Principal::Master => "master".into(),
            Principal::Token { jti, sub, .. } => format!("token:{jti} ({sub})"),
        }
    }

    /// Who owns what this caller names, such as an `Idempotency-Key`: the master token, or the
    /// subject (`sub`) of an issued token (so a token re-issued to the same subject keeps it).
    pub fn identity(&self) -> String {
        match self {
            Principal::Master => "master".into(),
            Principal::Token { sub, .. } => format!("sub:{sub}"),
        }
    }

    /// The stored form of an `Idempotency-Key`: this caller's identity (length-prefixed, so no
    /// two identities and keys make the same string) and the key.
    pub fn idempotency_key(&self, key: &str) -> String {
        let who = self.identity();
        format!("{}:{who}:{key}", who.len())
    }

    /// True when something tagged `tags` (a token's scope, an audit entry's tags) lies wholly
    /// inside this caller's scope: not empty, and every tag in it. Unscoped callers cover all.
    pub fn covers(&self, tags: &[String]) -> bool {
        match self.scope() {
            None => true,
            Some(scope) => !tags.is_empty() && tags.iter().all(|t| scope.contains(t)),
        }
    }

    /// `None`: unrestricted.
    pub fn scope(&self) -> Option<&[String]> {
        match self {
            Principal::Token { scope, .. } if !scope.is_empty() => Some(scope),
            _ => None,
        }
    }

    /// True when an event with these tags is inside the scope.
    pub fn can_see(&self, tags: &[String]) -> bool {
        match self.scope() {
            None => true,
            Some(scope) => tags.iter().any(|t| scope.contains(t)),
        }
    }

    /// The tags an event written by this caller gets: its own when inside the scope, the
    /// scope's when it has none; a tag outside the scope is refused.
    pub fn scoped_tags(&self, tags: Vec<String>) -> Result<Vec<String>, ApiError> {
        let Some(scope) = self.scope() else {
            return Ok(tags);
        };
        if tags.is_empty() {
            return Ok(scope.to_vec());
        }
        match tags.iter().find(|t| !scope.contains(t)) {
            Some(t) => Err(ApiError::Forbidden(format!(
                "tag '{t}' is outside this token's scope [{}]",
                scope.join(", ")
            ))),
            None => Ok(tags),
        }
    }

    /// Narrows a list filter to the scope: the requested tags inside it, or the whole scope.
    /// `None`: nothing can match.
    pub fn filter_tags(&self, requested: Vec<String>) -> Option<Vec<String>> {
        match self.scope() {
            None => Some(requested),
            Some(scope) if requested.is_empty() => Some(scope.to_vec()),
            Some(scope) => {
                let t: Vec<String> = requested
                    .into_iter()
                    .filter(|t| scope.contains(t))
                    .collect();
                (!t.is_empty()).then_some(t)
            }
        }
    }
}

/// The authenticated caller of a request, as handlers see it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub ip: Option<IpAddr>,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("missing token".into()))
    }
}
