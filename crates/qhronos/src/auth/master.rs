//! Master-token authentication. Only a SHA-256 hash of the token is kept (in memory, and in the
//! store when the token was generated), and every comparison is constant-time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::Store;

const MASTER_HASH_KEY: &str = "master_token_sha256";
const DEFAULT_SECRET_KEY: &str = "default_hmac_secret";

#[derive(Clone)]
pub struct MasterToken {
    hash: [u8; 32],
}

/// Where the master token came from, for the start-up message.
pub enum TokenSource {
    Configured,
    /// Generated just now: the only time the plain token exists.
    Generated(String),
    /// Generated on an earlier start; only its hash is stored.
    Stored,
}

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// A random token with a recognisable prefix (so leaked ones can be found by scanners).
pub fn random_token(prefix: &str, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(buf))
}

impl MasterToken {
    pub fn verify(&self, presented: &str) -> bool {
        sha256(presented).ct_eq(&self.hash).into()
    }

    /// The configured token, or the stored hash of a generated one, or a new generated token.
    pub async fn init(
        store: &dyn Store,
        configured: Option<&str>,
    ) -> anyhow::Result<(MasterToken, TokenSource)> {
        if let Some(t) = configured.filter(|t| !t.is_empty()) {
            return Ok((MasterToken { hash: sha256(t) }, TokenSource::Configured));
        }
        if let Some(h) = store.get_setting(MASTER_HASH_KEY).await? {
            let hash: [u8; 32] = hex::decode(&h)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| anyhow::anyhow!("stored master token hash is corrupt"))?;
            return Ok((MasterToken { hash }, TokenSource::Stored));
        }
        Self::generate(store).await
    }

    /// Generates a new master token and stores its hash, replacing any earlier one.
    pub async fn generate(store: &dyn Store) -> anyhow::Result<(MasterToken, TokenSource)> {
        let token = random_token("qhm_", 32);
        let hash = sha256(&token);
        store
            .set_setting(MASTER_HASH_KEY, &hex::encode(hash))
            .await?;
        Ok((MasterToken { hash }, TokenSource::Generated(token)))
    }
}

/// The secret that signs webhooks of events without their own: random, made on first start.
pub async fn default_hmac_secret(store: &dyn Store) -> anyhow::Result<String> {
    // `whsec_` + standard base64, so Standard Webhooks libraries accept it as it is.
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    let fresh = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    );
    Ok(store.setting_or_insert(DEFAULT_SECRET_KEY, &fresh).await?)
}
