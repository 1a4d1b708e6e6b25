//! Webhook signatures: the original's `X-Qhronos-Signature` and Standard Webhooks'
//! `webhook-signature`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut m = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// `X-Qhronos-Signature`: hex HMAC-SHA256 of the body, keyed with the secret string's bytes.
pub fn qhronos_signature(secret: &str, body: &[u8]) -> String {
    hex::encode(mac(secret.as_bytes(), &[body]))
}

/// The Standard Webhooks key: base64-decode of what follows `whsec_`, else the string's bytes.
fn standard_key(secret: &str) -> Vec<u8> {
    match secret.strip_prefix("whsec_") {
        Some(rest) => B64
            .decode(rest)
            .unwrap_or_else(|_| secret.as_bytes().to_vec()),
        None => secret.as_bytes().to_vec(),
    }
}

/// A new signing secret in the Standard Webhooks format: `whsec_` + base64 of 24 random bytes
/// (192 bits), which their libraries accept as it is.
pub fn generate_secret() -> String {
    let mut key = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
    format!("whsec_{}", B64.encode(key))
}

/// `webhook-signature`: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
pub fn standard_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let sig = mac(
        &standard_key(secret),
        &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
    );
    format!("v1,{}", B64.encode(sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_known_answer() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/testdata/standard-webhooks.json"
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        for t in v["vectors"].as_array().unwrap() {
            let got = standard_signature(
                t["secret"].as_str().unwrap(),
                t["webhook_id"].as_str().unwrap(),
                t["webhook_timestamp"].as_i64().unwrap(),
                t["body"].as_str().unwrap().as_bytes(),
            );
            assert_eq!(got, t["expected_signature"].as_str().unwrap());
        }
    }

    #[test]
    fn generated_secrets_are_standard_webhooks_secrets_and_differ() {
        let a = generate_secret();
        let key = B64.decode(a.strip_prefix("whsec_").unwrap()).unwrap();
        assert_eq!(key.len(), 24);
        assert_eq!(standard_key(&a), key);
        assert_ne!(a, generate_secret());
    }

    #[test]
    fn qhronos_signature_is_hex_hmac_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            qhronos_signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
