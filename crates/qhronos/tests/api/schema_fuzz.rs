//! Requests generated from the OpenAPI document are accepted.
//!
//! An outside fuzzer that builds requests from `/openapi.json` found operations that refused
//! most of what their documented schema allowed. This test is that fuzzer: for each of those
//! operations it walks the documented schema (types, `format`s, `pattern`s, `enum`s, lengths,
//! ranges, `required`, `additionalProperties`, `oneOf`, `$ref`) to build many requests, sends
//! them to the real server, and counts the answers. A request that matches the schema must be
//! accepted: a 2xx (101 for the WebSocket upgrade), or a 4xx that is about the world rather than
//! the request's shape (404 for an unknown occurrence id, 422 for a delivery target the SSRF
//! guard refuses). A 400 means the schema allowed something the API refuses.

use std::collections::BTreeMap;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use crate::helpers::{spawn_app_with, TestApp, TOKEN};

/// Requests per operation.
const N: usize = 100;
/// The share of requests of each operation that must be accepted.
const MIN_ACCEPTED: f64 = 0.9;
/// The share that must be a 2xx (the rest of the accepted are 404s and the like, and 400s
/// for what no schema can say: a past `expires_at`, an unknown template).
const MIN_CREATED: f64 = 0.4;

/// A generator of JSON values that match a JSON Schema of the document.
pub struct Gen {
    rng: StdRng,
    runner: TestRunner,
    doc: Value,
}

/// Characters of strings without a pattern: what fuzzers like to send.
const CHARS: &[char] = &[
    'a', 'b', 'z', 'A', 'Q', '0', '7', ' ', ',', '-', '_', '.', '/', ':', '"', 'é', 'ß', '日',
    '🙂', '\t', '\n',
];

impl Gen {
    pub fn new(doc: Value, seed: u64) -> Gen {
        Gen {
            rng: StdRng::seed_from_u64(seed),
            runner: TestRunner::deterministic(),
            doc,
        }
    }

    fn coin(&mut self) -> bool {
        self.rng.random_bool(0.5)
    }

    /// Follows `$ref`s into the document's components.
    fn resolve(&self, s: &Value) -> Value {
        let mut s = s.clone();
        while let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let mut at = &self.doc;
            for part in r.trim_start_matches("#/").split('/') {
                at = &at[part];
            }
            assert!(!at.is_null(), "dangling {r}");
            s = at.clone();
        }
        s
    }

    /// A value matching `schema`.
    pub fn value(&mut self, schema: &Value) -> Value {
        let s = self.resolve(schema);
        if let Some(c) = s.get("const") {
            return c.clone();
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            return e[self.rng.random_range(0..e.len())].clone();
        }
        for k in ["oneOf", "anyOf"] {
            if let Some(alts) = s.get(k).and_then(Value::as_array) {
                let alt = alts[self.rng.random_range(0..alts.len())].clone();
                return self.value(&alt);
            }
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            let mut merged = Map::new();
            for part in all {
                if let Value::Object(m) = self.resolve(part) {
                    for (k, v) in m {
                        match (merged.get_mut(&k), v) {
                            (Some(Value::Object(a)), Value::Object(b)) => a.extend(b),
                            (Some(Value::Array(a)), Value::Array(b)) => a.extend(b),
                            (_, v) => {
                                merged.insert(k, v);
                            }
                        }
                    }
                }
            }
            return self.value(&Value::Object(merged));
        }
        let types: Vec<String> = match &s["type"] {
            Value::String(t) => vec![t.clone()],
            Value::Array(ts) => ts
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
            _ if s.get("properties").is_some() => vec!["object".into()],
            _ if s.get("items").is_some() => vec!["array".into()],
            _ => vec![],
        };
        if types.is_empty() {
            return self.any_scalar();
        }
        let t = types[self.rng.random_range(0..types.len())].clone();
        match t.as_str() {
            "null" => Value::Null,
            "boolean" => Value::Bool(self.coin()),
            "integer" => {
                let lo = s["minimum"].as_i64().unwrap_or(-1_000_000);
                let hi = s["maximum"].as_i64().unwrap_or(1_000_000);
                json!(self.rng.random_range(lo..=hi))
            }
            "number" => {
                let lo = s["minimum"].as_f64().unwrap_or(-1e6);
                let hi = s["maximum"].as_f64().unwrap_or(1e6);
                json!(self.rng.random_range(lo..=hi))
            }
            "string" => Value::String(self.string(&s)),
            "array" => {
                let min = s["minItems"].as_u64().unwrap_or(0) as usize;
                let max = s["maxItems"].as_u64().map_or(min + 4, |m| m as usize);
                let n = self.rng.random_range(min..=max.min(min + 4));
                let items = s.get("items").cloned().unwrap_or(json!({}));
                let mut out: Vec<Value> = Vec::new();
                for _ in 0..n * 4 {
                    if out.len() == n {
                        break;
                    }
                    let v = self.value(&items);
                    if s["uniqueItems"] != true || !out.contains(&v) {
                        out.push(v);
                    }
                }
                Value::Array(out)
            }
            "object" => self.object(&s),
            other => panic!("unknown type {other}"),
        }
    }

    fn any_scalar(&mut self) -> Value {
        match self.rng.random_range(0..4) {
            0 => Value::Null,
            1 => Value::Bool(self.coin()),
            2 => json!(self.rng.random_range(-1000..1000)),
            _ => Value::String(self.free_string(0, 12)),
        }
    }

    fn object(&mut self, s: &Value) -> Value {
        let required: Vec<String> = s["required"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let mut out = Map::new();
        if let Some(props) = s["properties"].as_object() {
            for (k, ps) in props {
                if ps["readOnly"] == true {
                    continue;
                }
                if required.contains(k) || self.coin() {
                    let v = self.value(ps);
                    out.insert(k.clone(), v);
                }
            }
        }
        // Free-form members where the schema allows them.
        let extra = match s.get("additionalProperties") {
            Some(Value::Bool(false)) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            _ if s.get("properties").is_none() => Some(json!({})),
            _ => None,
        };
        if let Some(extra) = extra {
            let min = s["minProperties"].as_u64().unwrap_or(0) as usize;
            let max = s["maxProperties"].as_u64().map_or(min + 3, |m| m as usize);
            let n = self.rng.random_range(min..=max.min(min + 3));
            let names = s.get("propertyNames").cloned();
            while out.len() < n {
                let k = match &names {
                    Some(ns) => match self.value(ns) {
                        Value::String(k) => k,
                        other => other.to_string(),
                    },
                    None => self.free_string(1, 8),
                };
                let v = self.value(&extra);
                out.insert(k, v);
            }
        }
        Value::Object(out)
    }

    fn free_string(&mut self, min: usize, max: usize) -> String {
        let n = self.rng.random_range(min..=max.max(min));
        (0..n)
            .map(|_| CHARS[self.rng.random_range(0..CHARS.len())])
            .collect()
    }

    fn string(&mut self, s: &Value) -> String {
        let min = s["minLength"].as_u64().unwrap_or(0) as usize;
        let max = s["maxLength"].as_u64().map_or(usize::MAX, |m| m as usize);
        if let Some(p) = s["pattern"].as_str() {
            let p = p.strip_prefix('^').unwrap_or(p);
            let p = p.strip_suffix('$').unwrap_or(p);
            let strategy =
                proptest::string::string_regex(p).unwrap_or_else(|e| panic!("pattern {p}: {e}"));
            for _ in 0..50 {
                let v = strategy
                    .new_tree(&mut self.runner)
                    .expect("a value")
                    .current();
                let n = v.chars().count();
                if n >= min && n <= max {
                    return v;
                }
            }
            panic!("pattern {p} gives no string of {min} to {max} characters");
        }
        match s["format"].as_str() {
            Some("date-time") => self.date_time(),
            Some("date") => self.date_time()[..10].to_string(),
            Some("uuid") => uuid::Uuid::from_u128(self.rng.random()).to_string(),
            Some("uri") => format!("https://h{}.example/p", self.rng.random_range(0..1000)),
            Some("email") => format!("u{}@example.com", self.rng.random_range(0..1000)),
            _ => self.free_string(min, max.min(min + 24)),
        }
    }

    /// An RFC 3339 time of a year from 1900 to 2199, with some offset and sometimes a fraction.
    fn date_time(&mut self) -> String {
        let y = self.rng.random_range(1900..2200);
        let mo = self.rng.random_range(1..=12);
        let d = self.rng.random_range(1..=28);
        let (h, mi, se) = (
            self.rng.random_range(0..24),
            self.rng.random_range(0..60),
            self.rng.random_range(0..60),
        );
        let frac = if self.coin() {
            format!(".{:03}", self.rng.random_range(0..1000))
        } else {
            String::new()
        };
        let off = match self.rng.random_range(0..3) {
            0 => "Z".to_string(),
            1 => format!("+{:02}:{:02}", self.rng.random_range(0..14), 0),
            _ => format!("-{:02}:30", self.rng.random_range(0..12)),
        };
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{se:02}{frac}{off}")
    }
}

/// How the server answered the generated requests of one operation.
#[derive(Default)]
struct Tally {
    accepted: usize,
    /// 4xx about the world, not the request's shape (404, 409, 422).
    not_shape: usize,
    /// 400s for what no schema can say (see [`beyond_schema`]).
    beyond: usize,
    /// Their reasons.
    why_beyond: BTreeMap<&'static str, usize>,
    /// 400s by message (first 80 characters).
    refused: BTreeMap<String, usize>,
}

/// A 400 for what no JSON Schema can say: a named template that does not exist, a time that
/// must be in the future, a rule whose parts never meet (or end before they start); in a batch,
/// an item refused for such a reason or with a 404/409/422 of its own.
fn beyond_schema(body: &str) -> bool {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let says = |e: &Value| {
        let msg = e["error"].as_str().unwrap_or_default();
        REASONS.iter().any(|r| msg.contains(r))
    };
    match v["items"].as_array() {
        Some(items) => items
            .iter()
            .all(|i| matches!(i["status"].as_u64(), Some(404 | 409 | 422)) || says(i)),
        None => says(&v),
    }
}

const REASONS: [&str; 5] = [
    "no template named",
    "calendar_id: calendar",
    "has no version",
    "must be in the future",
    "never produces",
];

/// The first reason of [`REASONS`] a refusal gives (of a batch: its first item's).
fn reason(body: &str) -> &'static str {
    REASONS
        .iter()
        .find(|r| body.contains(*r))
        .copied()
        .unwrap_or("an item's 404/409/422")
}

/// The scalar as it goes into a path, query or header.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every `calendar_id` in `v` made `cal`: a calendar is a reference the schema cannot state
/// (a random UUID names none, and a batch with one such item is refused whole).
fn known_calendar(v: &mut Value, cal: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "calendar_id" && x.is_string() {
                    *x = Value::String(cal.to_string());
                } else {
                    known_calendar(x, cal);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| known_calendar(x, cal)),
        _ => {}
    }
}

/// One request of `method path` generated from the document (its calendar ids made `cal`),
/// sent; (status, body).
async fn send(
    app: &TestApp,
    g: &mut Gen,
    method: &str,
    path: &str,
    cal: &str,
) -> (u16, String, String) {
    let op = g.doc["paths"][path][method].clone();
    let mut url_path = path.to_string();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    for p in op["parameters"].as_array().cloned().unwrap_or_default() {
        if p["required"] != true && !g.coin() {
            continue;
        }
        let v = text(&g.value(&p["schema"]));
        let name = p["name"].as_str().expect("name").to_string();
        match p["in"].as_str() {
            Some("path") => {
                let enc: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
                url_path = url_path.replace(&format!("{{{name}}}"), &enc.replace('+', "%20"));
            }
            Some("query") => query.push((name, v)),
            // HTTP cannot carry every string in a header: such a value is not sent.
            Some("header") if reqwest::header::HeaderValue::from_str(&v).is_ok() => {
                headers.push((name, v))
            }
            Some("header") => {}
            other => panic!("parameter in {other:?}"),
        }
    }
    let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
    if !query.is_empty() {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &query {
            q.append_pair(k, v);
        }
        url_path = format!("{url_path}?{}", q.finish());
    }
    let mut req = app.client.request(m, app.url(&url_path)).bearer_auth(TOKEN);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let body_schema = &op["requestBody"]["content"]["application/json"]["schema"];
    let mut sent = Value::Null;
    if !body_schema.is_null() {
        sent = g.value(body_schema);
        known_calendar(&mut sent, cal);
        req = req.json(&sent);
    }
    let resp = req.send().await.expect("an answer");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, text, format!("{url_path} {sent}"))
}

/// The operations an outside fuzzer found refusing what their schema allowed.
const OPERATIONS: [(&str, &str); 7] = [
    ("post", "/events"),
    ("post", "/events/batch"),
    ("post", "/schedules/preview"),
    ("post", "/tokens"),
    ("post", "/queues/{queue}/claim"),
    ("post", "/occurrences/{id}/nack"),
    ("get", "/ws"),
];

#[tokio::test]
async fn requests_generated_from_the_openapi_document_are_accepted() {
    // Long polls end quickly: `wait` is capped by pull.max_wait.
    let app =
        spawn_app_with(|c| c.pull.max_wait = qhronos::domain::duration::Dur::from_millis(20)).await;
    let doc: Value = serde_json::from_str(&qhronos::api::openapi::document_json()).expect("json");
    // A free calendar: events put in it are saved (their overlaps listed).
    let (s, cal) = app
        .post("/calendars", serde_json::json!({"name": "fuzz"}))
        .await;
    assert_eq!(s, 201, "{cal}");
    let cal = cal["id"].as_str().expect("id").to_string();
    let mut report = Vec::new();
    let mut failed = Vec::new();
    for (i, (method, path)) in OPERATIONS.iter().enumerate() {
        let mut g = Gen::new(doc.clone(), 17 + i as u64);
        let mut t = Tally::default();
        let started = std::time::Instant::now();
        for _ in 0..N {
            let (status, body, sent) = send(&app, &mut g, method, path, &cal).await;
            assert!(status < 500, "{method} {sent}: {status} {body}");
            match status {
                101 | 200..=299 => t.accepted += 1,
                404 | 409 | 422 => t.not_shape += 1,
                _ if beyond_schema(&body) => {
                    t.beyond += 1;
                    *t.why_beyond.entry(reason(&body)).or_default() += 1;
                }
                _ => {
                    // A batch's answer names each invalid item's error.
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    let first = v["items"][0]["error"].as_str().or(v["error"].as_str());
                    let why = first.map_or(body.clone(), str::to_string);
                    let msg: String = format!("{status} {why}").chars().take(70).collect();
                    *t.refused.entry(msg).or_default() += 1;
                }
            }
        }
        let ok = (t.accepted + t.not_shape + t.beyond) as f64 / N as f64;
        let mut worst: Vec<(&String, &usize)> = t.refused.iter().collect();
        worst.sort_by(|a, b| b.1.cmp(a.1));
        report.push(format!(
            "{:>6} {:<24} accepted {:>5.1}% (2xx {}, 404/409/422 {}, beyond a schema {} {:?}, refused {}) in {:?}; most refused: {:?}",
            method.to_uppercase(),
            path,
            ok * 100.0,
            t.accepted,
            t.not_shape,
            t.beyond,
            t.why_beyond,
            N - t.accepted - t.not_shape - t.beyond,
            started.elapsed(),
            worst.iter().take(12).collect::<Vec<_>>()
        ));
        if ok < MIN_ACCEPTED {
            failed.push(format!("{method} {path}"));
        }
        // Not vacuous: most of what is accepted is created, except for nack, whose generated
        // occurrence ids never exist (a 404 before the body is read).
        if *path != "/occurrences/{id}/nack" && (t.accepted as f64) < MIN_CREATED * N as f64 {
            failed.push(format!("{method} {path}: only {} 2xx", t.accepted));
        }
    }
    println!("{}", report.join("\n"));
    assert!(
        failed.is_empty(),
        "these operations refuse what their schema allows: {failed:?}\n{}",
        report.join("\n")
    );
}
