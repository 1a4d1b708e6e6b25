//! Issued tokens: HS256 JWTs with `sub`, `access`, `scope`, `exp`, `iat`, `jti`, and optionally
//! `clients` (the WebSocket client names the token may register besides its `sub`). Every
//! request verifies signature and expiry (no leeway), and the `jti` against the revocation set,
//! which is updated at once on this node and re-read from the store every second for the
//! others. Long-lived connections (`GET /ws`) watch the set through `revocations()`.

use std::collections::HashSet;
use std::sync::RwLock;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::master::random_token;
use super::principal::{Access, Principal};
use crate::domain::Millis;
use crate::store::Store;

const KEY_SETTING: &str = "jwt_signing_key";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    access: Access,
    scope: Vec<String>,
    /// Seconds since the epoch, as RFC 7519 wants.
    exp: i64,
    iat: i64,
    jti: String,
    /// WebSocket client names this token may register (besides the one equal to `sub`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    clients: Vec<String>,
}

/// What a long-lived connection needs to know about its token beyond the principal.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The `clients` claim.
    pub clients: Vec<String>,
    /// When the token expires (`exp`, in milliseconds).
    pub expires_at: Millis,
}

pub struct Tokens {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
    revoked: RwLock<HashSet<String>>,
    /// Counts the revocations seen; bumped whenever the set grows.
    revocations: tokio::sync::watch::Sender<u64>,
}

impl Tokens {
    /// The key from configuration, or the stored one, or a new random one (stored).
    pub async fn init(store: &dyn Store, configured: Option<&str>) -> anyhow::Result<Tokens> {
        let key = match configured.filter(|k| !k.is_empty()) {
            Some(k) => k.to_string(),
            None => {
                store
                    .setting_or_insert(KEY_SETTING, &random_token("", 48))
                    .await?
            }
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let t = Tokens {
            enc: EncodingKey::from_secret(key.as_bytes()),
            dec: DecodingKey::from_secret(key.as_bytes()),
            validation,
            revoked: RwLock::new(HashSet::new()),
            revocations: tokio::sync::watch::Sender::new(0),
        };
        t.refresh(store).await?;
        Ok(t)
    }

    /// Signs a new token; returns it with its `jti`.
    pub fn issue(
        &self,
        sub: &str,
        access: Access,
        scope: &[String],
        expires_at: Millis,
        now: Millis,
    ) -> anyhow::Result<(String, String)> {
        self.issue_with_clients(sub, access, scope, &[], expires_at, now)
    }

    /// Signs a new token with a `clients` claim; returns it with its `jti`.
    pub fn issue_with_clients(
        &self,
        sub: &str,
        access: Access,
        scope: &[String],
        clients: &[String],
        expires_at: Millis,
        now: Millis,
    ) -> anyhow::Result<(String, String)> {
        let jti = Uuid::now_v7().to_string();
        let claims = Claims {
            sub: sub.to_string(),
            access,
            scope: scope.to_vec(),
            exp: expires_at.div_euclid(1000),
            iat: now.div_euclid(1000),
            jti: jti.clone(),
            clients: clients.to_vec(),
        };
        Ok((
            encode(&Header::new(Algorithm::HS256), &claims, &self.enc)?,
            jti,
        ))
    }

    /// The principal of a token, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Principal, &'static str> {
        self.verify_session(token).map(|(p, _)| p)
    }

    /// The principal of a token and what a long-lived connection needs of it.
    pub fn verify_session(&self, token: &str) -> Result<(Principal, Session), &'static str> {
        let data =
            decode::<Claims>(token, &self.dec, &self.validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => "token expired",
                ErrorKind::InvalidSignature => "token signature is invalid",
                ErrorKind::InvalidAlgorithm => "token algorithm is not HS256",
                _ => "token is malformed",
            })?;
        let c = data.claims;
        if self.is_revoked(&c.jti) {
            return Err("token revoked");
        }
        let session = Session {
            clients: c.clients,
            expires_at: c.exp.saturating_mul(1000),
        };
        Ok((
            Principal::Token {
                jti: c.jti,
                sub: c.sub,
                access: c.access,
                scope: c.scope,
            },
            session,
        ))
    }

    /// True when the token `jti` is revoked (as far as this node knows).
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.read().map(|r| r.contains(jti)).unwrap_or(true)
    }

    /// Changes whenever a revocation becomes known here: open connections re-check their token.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revocations.subscribe()
    }

    pub fn revoke_local(&self, jti: &str) {
        let added = self
            .revoked
            .write()
            .map(|mut r| r.insert(jti.to_string()))
            .unwrap_or(false);
        if added {
            self.revocations.send_modify(|n| *n += 1);
        }
    }

    /// Re-reads the revoked token ids from the store (revocations made by other nodes).
    pub async fn refresh(&self, store: &dyn Store) -> anyhow::Result<()> {
        let ids = store.revoked_jtis().await?;
        let before_after = self.revoked.write().map(|mut r| {
            let before = r.len();
            r.extend(ids);
            (before, r.len())
        });
        if let Ok((before, after)) = before_after {
            if after > before {
                self.revocations.send_modify(|n| *n += 1);
            }
        }
        Ok(())
    }
}
