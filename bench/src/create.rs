//! Scenarios about creating events: create-latency, create-rate, batch-create.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::api::truncate;
use crate::receiver::now_ns;
use crate::stats::{ms, pct, sort, table};
use crate::Harness;

/// Requests in flight at once in create-latency; a tick finding none free is skipped.
const LATENCY_MAX_IN_FLIGHT: usize = 512;
/// Upper bound on requests per client in create-rate (the time bound normally ends it first).
const MAX_PER_CLIENT: usize = 1_000_000;
const BATCH: usize = 1000;
const BATCH_CLIENTS: usize = 4;
const MAX_BATCHES: usize = 10_000;

fn p_rows(label: &'static str, v: &mut [f64]) -> Vec<(String, String)> {
    sort(v);
    vec![
        (format!("{label} p50 (ms)"), format!("{:.3}", pct(v, 50.0))),
        (format!("{label} p90 (ms)"), format!("{:.3}", pct(v, 90.0))),
        (format!("{label} p99 (ms)"), format!("{:.3}", pct(v, 99.0))),
        (
            format!("{label} max (ms)"),
            format!("{:.3}", v.last().copied().unwrap_or(f64::NAN)),
        ),
    ]
}

fn print(title: &str, rows: Vec<(String, String)>) {
    let rows: Vec<(&str, String)> = rows.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    table(title, &rows);
}

/// Far in the future, spread so that no two events share an instant.
fn far_future(i: usize) -> i128 {
    now_ns() + 30 * 86_400 * 1_000_000_000 + (i as i128 % 86_400_000) * 1_000_000
}

pub async fn latency(h: &Harness, rate: u64, seconds: u64) -> anyhow::Result<()> {
    let n = (rate * seconds) as usize;
    // event id -> (create call start, create call duration)
    let sent: Arc<Mutex<HashMap<String, (i128, i128)>>> = Arc::default();
    let errors = Arc::new(AtomicUsize::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let sem = Arc::new(Semaphore::new(LATENCY_MAX_IN_FLIGHT));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let hard_stop = Duration::from_secs(seconds + 5);
    let mut skipped = 0usize;
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        tick.tick().await;
        if started.elapsed() > hard_stop {
            break;
        }
        let Ok(permit) = sem.clone().try_acquire_owned() else {
            skipped += 1;
            continue;
        };
        let (api, sent, errors, first_error) = (
            h.api.clone(),
            sent.clone(),
            errors.clone(),
            first_error.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let t0 = now_ns();
            let body = api.event_body("due-now", t0);
            match api.create(&body).await {
                Ok(id) => {
                    sent.lock().unwrap().insert(id, (t0, now_ns() - t0));
                }
                Err(e) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    first_error.lock().unwrap().get_or_insert(e.to_string());
                }
            }
            drop(permit);
        }));
    }
    let sending = started.elapsed().as_secs_f64();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(60), t).await;
    }
    let sent = std::mem::take(&mut *sent.lock().unwrap());
    h.receiver
        .wait_for(sent.len(), Duration::from_secs(60), Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut first_arrival: HashMap<String, i128> = HashMap::new();
    for d in h.receiver.snapshot() {
        let e = first_arrival.entry(d.event_id).or_insert(d.arrival_ns);
        *e = (*e).min(d.arrival_ns);
    }
    let mut e2e = Vec::new();
    let mut call = Vec::new();
    let mut lost = 0;
    for (id, (t0, took)) in &sent {
        call.push(ms(*took));
        match first_arrival.get(id) {
            Some(a) => e2e.push(ms(a - t0)),
            None => lost += 1,
        }
    }
    let mut rows = vec![
        ("target".to_string(), format!("{rate}/s x {seconds} s")),
        (
            "created".into(),
            format!(
                "{} in {sending:.2} s ({:.0}/s)",
                sent.len(),
                sent.len() as f64 / sending
            ),
        ),
        ("skipped ticks (in-flight cap)".into(), skipped.to_string()),
        ("errors".into(), errors.load(Ordering::Relaxed).to_string()),
    ];
    rows.extend(p_rows("create call -> webhook", &mut e2e));
    rows.extend(p_rows("POST /events", &mut call));
    rows.push(("lost".into(), lost.to_string()));
    if let Some(e) = first_error.lock().unwrap().as_ref() {
        rows.push(("first error".into(), truncate(e, 300).to_string()));
    }
    print("create-latency", rows);
    Ok(())
}

pub async fn rate(h: &Harness, clients: usize, seconds: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for c in 0..clients.max(1) {
        let (api, first_error) = (h.api.clone(), first_error.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0usize);
            for i in 0..MAX_PER_CLIENT {
                if Instant::now() >= deadline {
                    break;
                }
                let body = api.event_body("far", far_future(c * MAX_PER_CLIENT + i));
                let t0 = Instant::now();
                match api.create(&body).await {
                    Ok(_) => lat.push(t0.elapsed().as_secs_f64() * 1e3),
                    Err(e) => {
                        errors += 1;
                        first_error.lock().unwrap().get_or_insert(e.to_string());
                    }
                }
            }
            (lat, errors)
        }));
    }
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    let took = started.elapsed().as_secs_f64();
    let mut rows = vec![
        (
            "clients x seconds".to_string(),
            format!("{clients} x {seconds} s"),
        ),
        ("created".into(), lat.len().to_string()),
        (
            "creates/s".into(),
            format!("{:.0}", lat.len() as f64 / took),
        ),
        ("errors".into(), errors.to_string()),
    ];
    rows.extend(p_rows("POST /events", &mut lat));
    if let Some(e) = first_error.lock().unwrap().as_ref() {
        rows.push(("first error".into(), truncate(e, 300).to_string()));
    }
    let pending = h.api.count("pending").await.unwrap_or(-1);
    rows.push(("occurrences pending after".into(), pending.to_string()));
    print("create-rate", rows);
    Ok(())
}

fn batch_body(h: &Harness, seq: usize) -> Value {
    let events: Vec<Value> = (0..BATCH)
        .map(|i| h.api.event_body("batch", far_future(seq * BATCH + i)))
        .collect();
    json!({ "events": events })
}

/// Events a successful batch answer reports created: the length of its `data`/`events` array
/// or of the array it is, else the batch size.
fn created_in(v: &Value) -> usize {
    let arr = v
        .as_array()
        .or_else(|| v.get("data").and_then(Value::as_array))
        .or_else(|| v.get("events").and_then(Value::as_array))
        .or_else(|| v.get("ids").and_then(Value::as_array));
    arr.map_or(BATCH, Vec::len)
}

pub async fn batch(h: &Harness, seconds: u64) -> anyhow::Result<()> {
    let probe = h
        .api
        .post("/events/batch")
        .json(&batch_body(h, 0))
        .send()
        .await?;
    let code = probe.status().as_u16();
    let text = probe.text().await?;
    // 404/405: no such route. A permission gate that maps requests to route templates may
    // answer 403 "no permission rule" for a route that does not exist: the same thing.
    if code == 404 || code == 405 || (code == 403 && text.contains("no permission rule")) {
        println!("\nPOST /events/batch not available in this build");
        if code == 403 {
            println!("  (answered {code} {}, not 404/405)", truncate(&text, 200));
        }
        return Ok(());
    }
    if !(200..300).contains(&code) {
        anyhow::bail!(
            "POST /events/batch answered {code}: {}",
            truncate(&text, 300)
        );
    }
    let first = created_in(&serde_json::from_str(&text).unwrap_or(Value::Null));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let seq = Arc::new(AtomicUsize::new(1));
    let mut tasks = Vec::new();
    for _ in 0..BATCH_CLIENTS {
        let seq = seq.clone();
        let bodies: Vec<Value> = (0..4).map(|i| batch_body(h, 1000 + i)).collect();
        let api = h.api.clone();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut created, mut errors) = (Vec::new(), 0usize, 0usize);
            while Instant::now() < deadline {
                let s = seq.fetch_add(1, Ordering::Relaxed);
                if s >= MAX_BATCHES {
                    break;
                }
                let t0 = Instant::now();
                let r = api.post("/events/batch").json(&bodies[s % 4]).send().await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        created += created_in(&v);
                        lat.push(t0.elapsed().as_secs_f64() * 1e3);
                    }
                    _ => errors += 1,
                }
            }
            (lat, created, errors)
        }));
    }
    let (mut lat, mut created, mut errors) = (Vec::new(), 0, 0);
    for t in tasks {
        let (l, c, e) = t.await?;
        lat.extend(l);
        created += c;
        errors += e;
    }
    let took = started.elapsed().as_secs_f64();
    let mut rows = vec![
        (
            "batch size x clients".to_string(),
            format!("{BATCH} x {BATCH_CLIENTS}"),
        ),
        ("events created (timed)".into(), created.to_string()),
        ("events created by the probe".into(), first.to_string()),
        ("events/s".into(), format!("{:.0}", created as f64 / took)),
        ("failed batches".into(), errors.to_string()),
    ];
    rows.extend(p_rows("POST /events/batch", &mut lat));
    print("batch-create", rows);
    Ok(())
}
