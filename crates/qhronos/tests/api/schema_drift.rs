//! The MCP tools' argument schemas and the OpenAPI document say the same thing where they
//! describe the same value: both come from `qhronos-schema`, and this test fails when one of
//! them stops using it.

use qhronos::api::openapi::document_json;
use qhronos_mcp::tools::list;
use serde_json::{Map, Value};

/// The document with its `$ref`s to component schemas resolved.
fn resolve(doc: &Value, v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                let name = r.trim_start_matches("#/components/schemas/");
                return resolve(doc, &doc["components"]["schemas"][name]);
            }
            Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), resolve(doc, v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| resolve(doc, v)).collect()),
        other => other.clone(),
    }
}

/// What a schema constrains: without the words for people.
fn constraints(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let kept: Map<String, Value> = m
                .iter()
                .filter(|(k, _)| {
                    !["description", "examples", "example", "default"].contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), constraints(v)))
                .collect();
            Value::Object(kept)
        }
        Value::Array(a) => Value::Array(a.iter().map(constraints).collect()),
        other => other.clone(),
    }
}

fn tool_arg(tool: &str, path: &[&str]) -> Value {
    let t = list().into_iter().find(|t| t.name == tool).expect("a tool");
    let mut v = t.schema;
    for p in path {
        v = v["properties"][*p].clone();
    }
    assert!(!v.is_null(), "{tool}.{path:?}");
    v
}

/// The `params` schema of the first `ActionIn` alternative of `kind`.
fn action_params(doc: &Value, kind: &str) -> Value {
    let alts = resolve(doc, &doc["components"]["schemas"]["ActionIn"]);
    alts["oneOf"]
        .as_array()
        .expect("alternatives")
        .iter()
        .find(|a| a["properties"]["type"]["enum"][0] == kind)
        .map(|a| a["properties"]["params"].clone())
        .expect("the kind")
}

fn param(doc: &Value, path: &str, method: &str, name: &str) -> Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| p["schema"].clone())
        .expect("the parameter")
}

#[test]
fn the_mcp_tools_and_the_openapi_document_agree() {
    let doc: Value = serde_json::from_str(&document_json()).expect("json");
    let s = &doc["components"]["schemas"];
    let event = &s["EventIn"]["properties"];
    let preview = &s["PreviewIn"]["properties"];
    let nack = &s["NackIn"]["properties"];
    let claim = |n| param(&doc, "/queues/{queue}/claim", "post", n);
    let pairs: Vec<(&str, Vec<&str>, Value)> = vec![
        ("schedule", vec!["name"], event["name"].clone()),
        ("schedule", vec!["at"], event["start_time"].clone()),
        ("schedule", vec!["start"], event["start_time"].clone()),
        ("schedule", vec!["in"], event["start_in"].clone()),
        ("schedule", vec!["tags"], event["tags"].clone()),
        ("schedule", vec!["payload"], event["metadata"].clone()),
        (
            "schedule",
            vec!["rule"],
            s["ScheduleIn"]["oneOf"][0].clone(),
        ),
        (
            "schedule",
            vec!["deliver", "webhook"],
            action_params(&doc, "webhook")["properties"]["url"].clone(),
        ),
        (
            "schedule",
            vec!["deliver", "queue"],
            action_params(&doc, "pull")["properties"]["queue"].clone(),
        ),
        (
            "schedule",
            vec!["deliver", "websocket"],
            action_params(&doc, "websocket")["properties"]["client_name"].clone(),
        ),
        (
            "schedule",
            vec!["deliver", "email", "to"],
            action_params(&doc, "email")["properties"]["to"].clone(),
        ),
        (
            "preview_schedule",
            vec!["rule"],
            s["ScheduleIn"]["oneOf"][0].clone(),
        ),
        (
            "preview_schedule",
            vec!["start"],
            preview["start_time"].clone(),
        ),
        ("preview_schedule", vec!["limit"], preview["limit"].clone()),
        ("claim", vec!["queue"], claim("queue")),
        ("claim", vec!["max"], claim("max")),
        ("claim", vec!["wait"], claim("wait")),
        ("claim", vec!["visibility"], claim("visibility")),
        ("ack", vec!["retry_after"], nack["retry_after"].clone()),
        (
            "get_event",
            vec!["id"],
            param(&doc, "/events/{id}", "get", "id"),
        ),
        (
            "retry_delivery",
            vec!["occurrence_id"],
            param(&doc, "/occurrences/{id}/retry", "post", "id"),
        ),
    ];
    for (tool, path, rest) in pairs {
        let rest = constraints(&resolve(&doc, &rest));
        let mcp = constraints(&tool_arg(tool, &path));
        assert!(
            rest.is_object() && rest.as_object().is_some_and(|m| !m.is_empty()),
            "{tool}.{path:?}: nothing in the document"
        );
        assert_eq!(mcp, rest, "{tool}.{path:?} differs from the document");
    }
    // Time zones: the document lists the names; the tools give agents a pattern that every
    // one of those names matches.
    let names = s["TimeZone"]["enum"].as_array().expect("the zone names");
    assert!(names.len() > 300, "{}", names.len());
    for tool in ["schedule", "preview_schedule"] {
        let pattern = tool_arg(tool, &["timezone"])["pattern"]
            .as_str()
            .expect("a pattern")
            .to_string();
        let re = regex_automata::dfa::regex::Regex::new(&pattern).expect("a regex");
        for n in names {
            let n = n.as_str().expect("a name");
            assert!(re.is_match(n), "{tool}.timezone refuses {n}");
        }
        assert!(event["timezone"].to_string().contains("TimeZone"));
    }
    // Every tool refuses what its schema does not list.
    for t in list() {
        assert_eq!(t.schema["additionalProperties"], false, "{}", t.name);
    }
}
