//! Issued tokens: HS256 JWTs with `sub`, `access`, `scope`, `exp`, `iat`, `jti`. Every request
//! verifies signature and expiry (no leeway), and the `jti` against the revocation set, which is
//! updated at once on this node and re-read from the store every second for the others.

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
}

pub struct Tokens {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
    revoked: RwLock<HashSet<String>>,
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
        let jti = Uuid::now_v7().to_string();
        let claims = Claims {
            sub: sub.to_string(),
            access,
            scope: scope.to_vec(),
            exp: expires_at.div_euclid(1000),
            iat: now.div_euclid(1000),
            jti: jti.clone(),
        };
        Ok((
            encode(&Header::new(Algorithm::HS256), &claims, &self.enc)?,
            jti,
        ))
    }

    /// The principal of a token, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Principal, &'static str> {
        let data =
            decode::<Claims>(token, &self.dec, &self.validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => "token expired",
                ErrorKind::InvalidSignature => "token signature is invalid",
                ErrorKind::InvalidAlgorithm => "token algorithm is not HS256",
                _ => "token is malformed",
            })?;
        let c = data.claims;
        if self
            .revoked
            .read()
            .map(|r| r.contains(&c.jti))
            .unwrap_or(true)
        {
            return Err("token revoked");
        }
        Ok(Principal::Token {
            jti: c.jti,
            sub: c.sub,
            access: c.access,
            scope: c.scope,
        })
    }

    pub fn revoke_local(&self, jti: &str) {
        if let Ok(mut r) = self.revoked.write() {
            r.insert(jti.to_string());
        }
    }

    /// Re-reads the revoked token ids from the store (revocations made by other nodes).
    pub async fn refresh(&self, store: &dyn Store) -> anyhow::Result<()> {
        let ids = store.revoked_jtis().await?;
        if let Ok(mut r) = self.revoked.write() {
            r.extend(ids);
        }
        Ok(())
    }
}
