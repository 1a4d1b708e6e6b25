//! Issued tokens (without their secret part) and their revocation.

use async_trait::async_trait;

use super::sql::rows::{to_json, RowExt};
use super::sql::{fetch_one, query, Dialect, Push, Val};
use super::{Backend, Change, Result};
use crate::domain::Millis;

/// An issued token, without its secret part.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenRecord {
    /// The token's id (its JWT `jti`).
    pub jti: String,
    /// Who it is for (its JWT `sub`).
    pub sub: String,
    /// Its role.
    pub access: crate::domain::access::Access,
    /// The tags it is limited to; empty: every event.
    pub scope: Vec<String>,
    #[serde(with = "crate::domain::ms_rfc3339")]
    /// When it stops being accepted.
    pub expires_at: Millis,
    #[serde(with = "crate::domain::ms_rfc3339")]
    /// When it was issued.
    pub created_at: Millis,
    #[serde(with = "crate::domain::ms_rfc3339::option")]
    /// When it was revoked, if it was.
    pub revoked_at: Option<Millis>,
}

/// Issued tokens.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Records a newly issued token (its `jti` is unique).
    async fn create_token(&self, t: &TokenRecord) -> Result<()>;
    /// Newest first (by `jti`), after `before_jti`. `within`: only tokens whose scope is not
    /// empty and lies inside it (what a scoped admin may see).
    async fn list_tokens(
        &self,
        limit: i64,
        before_jti: Option<&str>,
        within: Option<&[String]>,
    ) -> Result<Vec<TokenRecord>>;
    /// A token by its `jti`, revoked or not.
    async fn get_token(&self, jti: &str) -> Result<Option<TokenRecord>>;
    /// False when the token is unknown; revoking twice is harmless (the first time is kept).
    /// Every node learns of it when it commits.
    async fn revoke_token(&self, jti: &str, now: Millis) -> Result<bool>;
    /// Every revoked `jti`.
    async fn revoked_jtis(&self) -> Result<Vec<String>>;
}

#[async_trait]
impl<B: Backend> TokenStore for B {
    async fn create_token(&self, t: &TokenRecord) -> Result<()> {
        let mut q = query::<B::D>(
            "INSERT INTO tokens (jti, sub, access, scope, expires_at, created_at) VALUES (",
        );
        let vals: [Val; 6] = [
            t.jti.clone().into(),
            t.sub.clone().into(),
            t.access.as_str().into(),
            to_json(&t.scope).into(),
            t.expires_at.into(),
            t.created_at.into(),
        ];
        q.vals(vals).push(")");
        let mut c = self.writes().acquire().await?;
        B::D::exec(q, &mut c).await?;
        Ok(())
    }

    async fn list_tokens(
        &self,
        limit: i64,
        before: Option<&str>,
        within: Option<&[String]>,
    ) -> Result<Vec<TokenRecord>> {
        let mut q = query::<B::D>("SELECT * FROM tokens WHERE 1 = 1");
        if let Some(b) = before {
            q.push(" AND jti < ").val(b);
        }
        if let Some(scope) = within {
            B::D::push_within(&mut q, "tokens.scope", scope);
        }
        q.push(" ORDER BY jti DESC LIMIT ").val(limit);
        let mut c = self.reads().acquire().await?;
        B::D::fetch(q, &mut c)
            .await?
            .iter()
            .map(|r| r.token())
            .collect()
    }

    async fn get_token(&self, jti: &str) -> Result<Option<TokenRecord>> {
        let mut q = query::<B::D>("SELECT * FROM tokens WHERE jti = ");
        q.val(jti);
        let mut c = self.reads().acquire().await?;
        fetch_one(q, &mut c).await?.map(|r| r.token()).transpose()
    }

    async fn revoke_token(&self, jti: &str, now: Millis) -> Result<bool> {
        let mut q = query::<B::D>("UPDATE tokens SET revoked_at = COALESCE(revoked_at, ");
        q.val(now).push(") WHERE jti = ").val(jti);
        let mut tx = self.writes().begin().await?;
        let n = B::D::exec(q, &mut tx).await?;
        if n > 0 {
            B::announce(&mut tx, &Change::Tokens).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn revoked_jtis(&self) -> Result<Vec<String>> {
        let q = query::<B::D>("SELECT jti FROM tokens WHERE revoked_at IS NOT NULL");
        let mut c = self.reads().acquire().await?;
        B::D::fetch(q, &mut c)
            .await?
            .iter()
            .map(|r| r.text("jti"))
            .collect()
    }
}
