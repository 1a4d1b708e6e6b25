//! Property tests: arbitrary JSON and arbitrary strings at every write route never produce a
//! 500 or a panic.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TOKEN};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("FREQ=DAILY;COUNT=3"),
            Just("2030-01-01T00:00:00Z"),
            Just("http://127.0.0.1:9/x"),
            Just("webhook"),
            Just("FREQ=SECONDLY;BYSETPOS=-1"),
            Just("Europe/Berlin"),
            Just("5s"),
            Just("read")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("name".to_string()),
                    Just("start_time".to_string()),
                    Just("schedule".to_string()),
                    Just("action".to_string()),
                    Just("type".to_string()),
                    Just("params".to_string()),
                    Just("url".to_string()),
                    Just("webhook".to_string()),
                    Just("tags".to_string()),
                    Just("metadata".to_string()),
                    Just("retry".to_string()),
                    Just("timezone".to_string()),
                    Just("frequency".to_string()),
                    Just("interval".to_string()),
                    Just("scheduled_at".to_string()),
                    Just("sub".to_string()),
                    Just("access".to_string()),
                    Just("expires_at".to_string()),
                    Just("limit".to_string()),
                    ".{0,8}".prop_map(|s| s)
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn arbitrary_bodies_at_write_routes_never_cause_a_500() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(spawn_app());
    let (event_id, occ_id) = rt.block_on(async {
        let id = app.create(json!({"name": "x", "start_time": crate::helpers::in_ms(600_000), "webhook": "http://127.0.0.1:9/x"})).await;
        let (_, o) = app.get(&format!("/events/{id}/occurrences")).await;
        (id, o["data"][0]["id"].as_str().unwrap().to_string())
    });
    let routes = [
        ("POST", "/events".to_string()),
        ("PUT", format!("/events/{event_id}")),
        ("PATCH", format!("/occurrences/{occ_id}")),
        ("POST", "/schedules/preview".to_string()),
        ("POST", "/tokens".to_string()),
    ];
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    runner
        .run(&(arb_json(), ".{0,60}", 0..routes.len()), |(v, raw, i)| {
            let (m, path) = &routes[i];
            let (s1, s2) = rt.block_on(async {
                let s1 = app.req(m, path, Some(v.clone())).await.0;
                let s2 = app
                    .client
                    .request(
                        reqwest::Method::from_bytes(m.as_bytes()).unwrap(),
                        app.url(path),
                    )
                    .bearer_auth(TOKEN)
                    .body(raw.clone())
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                (s1, s2)
            });
            prop_assert!(s1 < 500, "{m} {path} {v} -> {s1}");
            prop_assert!(s2 < 500, "{m} {path} {raw:?} -> {s2}");
            Ok(())
        })
        .unwrap();
}
