//! The OpenAPI document (checked in, complete, served), the offline viewer, and request ids.

use std::collections::BTreeSet;
use std::path::PathBuf;

use qhronos::api::docs::ASSETS;
use qhronos::api::openapi::document_json;
use qhronos::auth::permissions::{PUBLIC, TABLE};
use serde_json::Value;

use crate::helpers::spawn_app;

fn checked_in() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

const REGENERATE: &str = "UPDATE_OPENAPI=1 cargo test -p qhronos --test api openapi";

/// `docs/openapi.json` is the generated document, byte for byte. With
/// `UPDATE_OPENAPI=1` this test rewrites it instead.
#[test]
fn the_checked_in_document_is_the_generated_one() {
    let generated = document_json();
    let path = checked_in();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    if on_disk != generated {
        let line = on_disk
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "its length".to_string(), |i| format!("line {}", i + 1));
        panic!(
            "docs/openapi.json differs from the document the code generates (first at {line}).\n\
             The API changed: regenerate the file with\n\n    {REGENERATE}\n\n\
             and commit it with the change."
        );
    }
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[test]
fn every_route_of_the_permission_table_is_documented_and_nothing_else() {
    let doc: Value = serde_json::from_str(&document_json()).expect("json");
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = operations(&doc);
    for (m, r, need) in TABLE {
        let key = (m.to_string(), r.to_string());
        assert!(ops.contains(&key), "{m} {r} is not in the document");
        let op = &doc["paths"][r][m.to_lowercase()];
        assert!(op.get("security").is_none(), "{m} {r}: global bearer");
        for code in ["401", "403", "429"] {
            assert!(op["responses"].get(code).is_some(), "{m} {r}: no {code}");
        }
        let says = op["description"].as_str().unwrap_or_default();
        assert!(says.contains(need.as_str()), "{m} {r}: {says}");
        if op.get("requestBody").is_some() {
            for code in ["400", "413"] {
                assert!(op["responses"].get(code).is_some(), "{m} {r}: no {code}");
            }
        }
        let success = op["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .any(|c| c.starts_with('2'));
        assert!(success, "{m} {r}: no success response");
    }
    for (m, p) in &ops {
        let listed = TABLE.iter().any(|(tm, tr, _)| tm == m && tr == p);
        assert!(
            listed || PUBLIC.contains(&p.as_str()),
            "{m} {p} is documented but neither in TABLE nor PUBLIC"
        );
        if PUBLIC.contains(&p.as_str()) {
            let op = &doc["paths"][p][m.to_lowercase()];
            assert_eq!(op["security"], serde_json::json!([]), "{m} {p}: no auth");
        }
    }
    for p in ["/health", "/status", "/openapi.json", "/docs"] {
        assert!(ops.contains(&("GET".into(), p.into())), "GET {p} missing");
        assert!(PUBLIC.contains(&p), "{p} is not public");
    }
    assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error"]));
    // Every reference resolves.
    let text = document_json();
    for part in text.split("\"$ref\": \"#/components/").skip(1) {
        let name = part.split('"').next().expect("ref");
        let (kind, name) = name.split_once('/').expect("kind/name");
        assert!(
            doc["components"][kind].get(name).is_some(),
            "dangling $ref {kind}/{name}"
        );
    }
}

#[tokio::test]
async fn the_document_is_served_without_a_token() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(r.text().await.unwrap(), document_json());
}

/// Every `src` and `href` value in an HTML page.
fn sources(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=", "href="] {
        for part in html.split(attr).skip(1) {
            let quote = part.chars().next().unwrap_or(' ');
            let value = if quote == '"' || quote == '\'' {
                part[1..].split(quote).next().unwrap_or_default()
            } else {
                part.split([' ', '>']).next().unwrap_or_default()
            };
            out.push(value.to_string());
        }
    }
    out
}

#[tokio::test]
async fn the_viewer_works_offline() {
    let app = spawn_app().await;
    let r = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains("<script"), "{html}");
    let srcs = sources(&html);
    assert!(srcs.len() >= 3, "{srcs:?}");
    for s in &srcs {
        assert!(
            !s.contains("://") && !s.starts_with("//"),
            "external source {s}"
        );
    }
    assert!(!html.contains("http://") && !html.contains("https://"));
    for asset in ASSETS {
        assert!(PUBLIC.contains(asset), "{asset} is not public");
        assert!(
            srcs.iter().any(|s| format!("/{s}") == *asset),
            "{asset} not used by the page"
        );
        let r = app.client.get(app.url(asset)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/"), "{asset}: {ct}");
        let body = r.text().await.unwrap();
        assert!(body.len() > 100, "{asset}");
        if asset.ends_with("init.js") {
            assert!(body.contains("openapi.json") && !body.contains("://"));
            assert!(body.contains("validatorUrl: null"), "{body}");
        }
    }
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-request-id")
        .expect("X-Request-Id on every response")
        .to_str()
        .unwrap()
        .to_string()
}

fn is_uuid_v7(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok_and(|u| u.get_version_num() == 7)
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = spawn_app().await;
    let get = |path: &str, id: Option<&str>| {
        let mut r = app.client.get(app.url(path));
        if let Some(id) = id {
            r = r.header("x-request-id", id);
        }
        r.send()
    };
    // Echoed when sane.
    let r = get("/health", Some("abc-123_DEF.456")).await.unwrap();
    assert_eq!(request_id(&r), "abc-123_DEF.456");
    let long = "x".repeat(128);
    assert_eq!(
        request_id(&get("/health", Some(&long)).await.unwrap()),
        long
    );
    // Generated when absent or not sane.
    let a = request_id(&get("/health", None).await.unwrap());
    let b = request_id(&get("/health", None).await.unwrap());
    assert!(is_uuid_v7(&a) && is_uuid_v7(&b) && a != b, "{a} {b}");
    for bad in ["x".repeat(129), "has space".into(), String::new()] {
        let id = request_id(&get("/health", Some(&bad)).await.unwrap());
        assert!(is_uuid_v7(&id), "{bad:?} -> {id}");
    }
    // On every kind of answer: refused by the gate, no route, a handler's error.
    let r = get("/events", Some("rid-401")).await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(request_id(&r), "rid-401");
    let r = get("/nowhere", None).await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(is_uuid_v7(&request_id(&r)));
    let r = app
        .client
        .get(app.url("/events/not-a-uuid"))
        .bearer_auth(crate::helpers::TOKEN)
        .header("x-request-id", "rid-404")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(request_id(&r), "rid-404");
}
