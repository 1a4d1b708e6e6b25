//! A webhook receiver for trying Qhronos out: prints every delivery and checks its signatures.
//!
//!     cargo run --example receiver -- --port 9000 --secret whsec_...
//!
//! Verification, as any receiver should do it: recompute the Standard Webhooks signature over
//! `webhook-id.webhook-timestamp.body` and compare in constant time; reject stale timestamps;
//! drop a `webhook-id` seen before (deliveries are at least once).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

#[derive(Clone)]
struct Rx {
    secret: Option<String>,
    seen: Arc<Mutex<HashSet<String>>>,
}

fn header<'a>(h: &'a HeaderMap, k: &str) -> &'a str {
    h.get(k).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// True when one of the space-separated `v1,<sig>` entries matches.
fn verify(secret: &str, h: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let id = header(h, "webhook-id");
    let ts = header(h, "webhook-timestamp");
    let t: i64 = ts.parse().map_err(|_| "missing webhook-timestamp")?;
    let now = jiff::Timestamp::now().as_second();
    if (now - t).abs() > 300 {
        return Err(format!(
            "timestamp {t} is more than 5 minutes away from now"
        ));
    }
    let key = match secret.strip_prefix("whsec_") {
        Some(b64) => STANDARD.decode(b64).map_err(|e| e.to_string())?,
        None => secret.as_bytes().to_vec(),
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    for sig in header(h, "webhook-signature").split(' ') {
        let Some(b64) = sig.strip_prefix("v1,") else {
            continue;
        };
        let Ok(given) = STANDARD.decode(b64) else {
            continue;
        };
        if bool::from(given.as_slice().ct_eq(expected.as_slice())) {
            return Ok(());
        }
    }
    Err(format!(
        "no signature matches (expected v1,{})",
        STANDARD.encode(expected)
    ))
}

async fn hook(State(rx): State<Rx>, h: HeaderMap, body: Bytes) -> StatusCode {
    let id = header(&h, "webhook-id").to_string();
    let verdict = match &rx.secret {
        Some(s) => match verify(s, &h, &body) {
            Ok(()) => "signature OK".to_string(),
            Err(e) => {
                println!("REJECTED {id}: {e}");
                return StatusCode::UNAUTHORIZED;
            }
        },
        None => "signature not checked (pass --secret)".to_string(),
    };
    let dup = !rx
        .seen
        .lock()
        .map(|mut s| s.insert(id.clone()))
        .unwrap_or(true);
    println!(
        "{} webhook-id={id} ({verdict}{})",
        jiff::Timestamp::now(),
        if dup { ", duplicate" } else { "" }
    );
    println!("  {}", String::from_utf8_lossy(&body));
    StatusCode::OK
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let port = arg("--port").unwrap_or_else(|| "9000".into());
    let rx = Rx {
        secret: arg("--secret"),
        seen: Default::default(),
    };
    let app = Router::new()
        .route("/{*path}", post(hook))
        .route("/", post(hook))
        .with_state(rx);
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("receiver listening on http://127.0.0.1:{port}/ (any path)");
    axum::serve(listener, app).await?;
    Ok(())
}
