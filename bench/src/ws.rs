//! The WebSocket channel: one `client-hook` connection that acknowledges every event at once.
//! Lateness is measured at the client (the WebSocket hop included), against `scheduled_at`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::api::rfc3339_ms;
use crate::due::{plan_start, sleep_until_ns, wait_status};
use crate::receiver::{now_ns, Delivery};
use crate::stats::{self, account, table};
use crate::Harness;

const CLIENT: &str = "bench";

pub async fn websocket(h: &Harness, rate: u64, seconds: u64) -> anyhow::Result<()> {
    let n = (rate * seconds) as usize;
    let url = format!("{}/ws", h.api.base.replacen("http://", "ws://", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let hello = json!({"type": "client-hook", "client_name": CLIENT, "token": h.api.token});
    ws.send(Message::Text(hello.to_string().into())).await?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.as_str().contains("subscription registered") => {}
        other => bail!("subscription refused: {other:?}"),
    }
    let recs: Arc<Mutex<(Vec<Delivery>, HashSet<String>)>> = Default::default();
    let (mut sink, mut stream) = ws.split();
    let store = recs.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            let Message::Text(t) = msg else { continue };
            let arrival_ns = now_ns();
            let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                continue;
            };
            if v["type"] != "event" {
                continue;
            }
            let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
            let ack = json!({"type": "ack", "occurrence_id": v["occurrence_id"]});
            if sink
                .send(Message::Text(ack.to_string().into()))
                .await
                .is_err()
            {
                break;
            }
            let mut g = store.lock().unwrap();
            g.1.insert(s("occurrence_id"));
            g.0.push(Delivery {
                arrival_ns,
                scheduled_ns: v["scheduled_at"]
                    .as_str()
                    .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                    .map(|t| t.as_nanosecond()),
                occurrence_id: s("occurrence_id"),
                event_id: s("event_id"),
                webhook_id: s("occurrence_id"),
                attempt: 1,
            });
        }
    });

    let w = plan_start(h, n, Duration::from_secs(3)).await?;
    let step = 1e9 / rate as f64;
    let bodies: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "name": "ws",
                "start_time": rfc3339_ms(w + (i as f64 * step) as i128),
                "action": {"type": "websocket", "params": {"client_name": CLIENT}},
                "retry": {"max_attempts": 3, "initial_delay": "100ms"},
            })
        })
        .collect();
    let t = Instant::now();
    let ids = h.api.create_all(bodies, 32).await?;
    eprintln!(
        "[bench] created {} websocket events in {:.2} s; first due in {:.2} s",
        ids.len(),
        t.elapsed().as_secs_f64(),
        (w - now_ns()) as f64 / 1e9
    );
    sleep_until_ns(w).await;
    let deadline = Instant::now() + Duration::from_secs(seconds + 60);
    while recs.lock().unwrap().1.len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let completed = wait_status(h, |o| o["completed"].as_i64() >= Some(n as i64), 30).await?;
    reader.abort();
    let snapshot = recs.lock().unwrap().0.clone();
    let a = account(&snapshot, &ids);
    let mut rows = stats::lateness_rows(&a, n);
    rows.insert(0, ("rate x seconds", format!("{rate}/s x {seconds} s")));
    rows.push((
        "all recorded completed (acked)",
        if completed.is_some() { "yes" } else { "NO" }.into(),
    ));
    table("websocket", &rows);
    Ok(())
}
