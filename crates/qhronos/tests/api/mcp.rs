//! `/mcp`: the MCP tools over streamable HTTP, end to end, behind the same gate as REST.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, TOKEN};

/// One JSON-RPC call to `/mcp` with `token`: (HTTP status, the JSON-RPC message).
pub(crate) async fn rpc(
    app: &TestApp,
    token: Option<&str>,
    method: &str,
    params: Value,
) -> (u16, Value) {
    let mut req = app
        .client
        .post(format!("http://{}/mcp", app.addr))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("mcp request");
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// A tool call: `Ok(structured result)` or `Err(the tool error's text)`.
pub(crate) async fn tool(
    app: &TestApp,
    token: &str,
    name: &str,
    args: Value,
) -> Result<Value, String> {
    let (s, v) = rpc(
        app,
        Some(token),
        "tools/call",
        json!({"name": name, "arguments": args}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let r = &v["result"];
    assert!(
        r.is_object(),
        "a tool problem is a tool error, not a protocol one: {v}"
    );
    if r["isError"] == true {
        return Err(r["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string());
    }
    Ok(r["structuredContent"].clone())
}

#[tokio::test]
async fn an_agent_schedules_is_woken_through_a_queue_and_acks() {
    let app = spawn_app().await;
    let (s, init) = rpc(
        &app,
        Some(TOKEN),
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}),
    )
    .await;
    assert_eq!(s, 200, "{init}");
    assert_eq!(init["result"]["serverInfo"]["name"], "qhronos");
    let (_, list) = rpc(&app, Some(TOKEN), "tools/list", json!({})).await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for n in [
        "schedule",
        "preview_schedule",
        "list_events",
        "get_event",
        "update_event",
        "pause_event",
        "resume_event",
        "cancel_event",
        "trigger_now",
        "list_deliveries",
        "retry_delivery",
        "claim",
        "ack",
        "whoami",
        "list_channels",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let me = tool(&app, TOKEN, "whoami", json!({})).await.unwrap();
    assert_eq!(me["kind"], "master", "{me}");

    let out = tool(
        &app,
        TOKEN,
        "schedule",
        json!({"name": "wake me", "in": "200ms", "deliver": {"queue": "agent"}, "payload": {"task": 7}, "tags": ["agents"]}),
    )
    .await
    .unwrap();
    let event_id = out["event"]["id"].as_str().unwrap().to_string();
    assert_eq!(out["next"].as_array().unwrap().len(), 1, "{out}");
    let claimed = tool(
        &app,
        TOKEN,
        "claim",
        json!({"queue": "agent", "wait": "5s"}),
    )
    .await
    .unwrap();
    let c = &claimed["data"][0];
    assert_eq!(c["event_id"], event_id.as_str(), "{claimed}");
    assert_eq!(c["payload"], json!({"task": 7}));
    let occ = c["occurrence_id"].as_str().unwrap();
    let receipt = c["receipt"].as_str().unwrap();
    tool(
        &app,
        TOKEN,
        "ack",
        json!({"occurrence_id": occ, "receipt": receipt}),
    )
    .await
    .unwrap();
    let d = tool(
        &app,
        TOKEN,
        "list_deliveries",
        json!({"event_id": event_id, "attempts": true}),
    )
    .await
    .unwrap();
    assert_eq!(d["data"][0]["status"], "completed", "{d}");
    let ch = tool(&app, TOKEN, "list_channels", json!({"tags": ["agents"]}))
        .await
        .unwrap();
    assert_eq!(ch["queues"][0]["queue"], "agent", "{ch}");
    assert_eq!(d["data"][0]["attempts"].as_array().unwrap().len(), 1, "{d}");
    // A stale receipt is the REST API's 409, as a tool error.
    let e = tool(
        &app,
        TOKEN,
        "ack",
        json!({"occurrence_id": occ, "receipt": receipt}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("409"), "{e}");
}

#[tokio::test]
async fn tools_keep_the_tokens_roles_scopes_and_the_rest_apis_messages() {
    let app = spawn_app().await;
    // No token: refused at the door, like REST.
    let (s, _) = rpc(&app, None, "tools/list", json!({})).await;
    assert_eq!(s, 401);

    let reader = app.token("read", &[]).await;
    let e = tool(
        &app,
        &reader,
        "schedule",
        json!({"name": "x", "in": "1h", "deliver": {"queue": "q"}}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("403"), "{e}");

    let team_a = app.token("read_write", &["team-a"]).await;
    let other = tool(
        &app,
        TOKEN,
        "schedule",
        json!({"name": "b's", "in": "1h", "deliver": {"queue": "q"}, "tags": ["team-b"]}),
    )
    .await
    .unwrap();
    let b_id = other["event"]["id"].as_str().unwrap();
    let e = tool(&app, &team_a, "get_event", json!({"id": b_id}))
        .await
        .unwrap_err();
    assert!(e.contains("404"), "another scope's event is not found: {e}");
    let mine = tool(
        &app,
        &team_a,
        "schedule",
        json!({"name": "standup", "rule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0", "timezone": "Europe/Berlin", "deliver": {"queue": "q"}, "tags": ["team-a"]}),
    )
    .await
    .unwrap();
    assert_eq!(
        mine["event"]["schedule_text"],
        "every weekday at 09:00, Europe/Berlin"
    );
    assert_eq!(mine["next"].as_array().unwrap().len(), 5);
    let listed = tool(&app, &team_a, "list_events", json!({})).await.unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");

    // The REST message, naming the field.
    let e = tool(
        &app,
        TOKEN,
        "preview_schedule",
        json!({"rule": "FREQ=DAILY;BYHOUR=25"}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("BYHOUR") && e.contains("400"), "{e}");

    // The audit log names the token behind the MCP call.
    let (_, audit) = app.get("/audit?action=event.create").await;
    let actors: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["actor"].as_str())
        .collect();
    assert!(
        actors.iter().any(|a| a.contains("read_write-user")),
        "{actors:?}"
    );
}

#[tokio::test]
async fn resources_and_prompts() {
    let app = spawn_app().await;
    let (_, r) = rpc(
        &app,
        Some(TOKEN),
        "resources/read",
        json!({"uri": "qhronos://docs/recurrence"}),
    )
    .await;
    assert!(
        r["result"]["contents"][0]["text"]
            .as_str()
            .unwrap()
            .contains("RRULE"),
        "{r}"
    );
    let id = app
        .create(crate::helpers::webhook_event(
            "http://127.0.0.1:9/h",
            600_000,
        ))
        .await;
    let (_, r) = rpc(
        &app,
        Some(TOKEN),
        "resources/read",
        json!({"uri": format!("qhronos://events/{id}")}),
    )
    .await;
    let text = r["result"]["contents"][0]["text"].as_str().unwrap();
    assert!(text.contains(&id), "{r}");
    let (_, p) = rpc(
        &app,
        Some(TOKEN),
        "prompts/get",
        json!({"name": "remind_me", "arguments": {"what": "stretch", "when": "in 20 minutes"}}),
    )
    .await;
    assert!(
        p["result"]["messages"][0]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("stretch"),
        "{p}"
    );
}

/// An MCP client of the SDK (`rmcp`'s client side), connected to `/mcp` with `token`.
async fn sdk_client(
    app: &TestApp,
    token: &str,
) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::ServiceExt;
    let config = StreamableHttpClientTransportConfig::with_uri(format!("http://{}/mcp", app.addr))
        .auth_header(token.to_string());
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("the SDK client initializes")
}

/// A tool call through the SDK client: `Ok(structured result)` or `Err(the tool error's text)`.
async fn sdk_tool(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    name: &'static str,
    args: Value,
) -> Result<Value, String> {
    let params = rmcp::model::CallToolRequestParams::new(name)
        .with_arguments(args.as_object().cloned().unwrap_or_default());
    let r = client
        .call_tool(params)
        .await
        .expect("a tool result, never a protocol error");
    if r.is_error == Some(true) {
        let content = serde_json::to_value(&r.content).unwrap();
        return Err(content[0]["text"].as_str().unwrap_or_default().to_string());
    }
    Ok(r.structured_content.unwrap_or(Value::Null))
}

/// The HMAC-SHA256 of `body` with `secret`, in hex (`X-Qhronos-Signature`).
fn hex_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    m.update(body);
    hex::encode(m.finalize().into_bytes())
}

#[tokio::test]
async fn an_sdk_client_schedules_a_webhook_that_arrives_signed_about_a_second_later() {
    let app = spawn_app().await;
    let receiver = crate::helpers::Receiver::start(vec![200]).await;
    let client = sdk_client(&app, TOKEN).await;
    let info = client.peer_info().expect("the server's initialize answer");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("qhronos")
    );
    let tools = client.list_all_tools().await.expect("tools/list");
    let schedule = tools
        .iter()
        .find(|t| t.name == "schedule")
        .expect("schedule is listed");
    assert_eq!(
        schedule.input_schema["additionalProperties"],
        Value::Bool(false)
    );
    assert!(tools.len() >= 13, "{}", tools.len());

    let asked = jiff::Timestamp::now();
    let out = sdk_tool(
        &client,
        "schedule",
        json!({"name": "wake me", "in": "1s", "deliver": {"webhook": receiver.url()}, "payload": {"task": "stand up"}}),
    )
    .await
    .unwrap();
    let secret = out["event"]["hmac_secret"]
        .as_str()
        .expect("the generated secret")
        .to_string();
    let got = receiver.wait_for(1, Duration::from_secs(10)).await;
    let r = &got[0];
    let waited = r.at.duration_since(asked).as_secs_f64();
    assert!((0.9..5.0).contains(&waited), "arrived after {waited}s");
    assert_eq!(r.json()["metadata"], json!({"task": "stand up"}));
    assert_eq!(r.json()["event_id"], out["event"]["id"]);
    assert_eq!(
        r.header("x-qhronos-signature"),
        hex_signature(&secret, &r.body),
        "signed with the event's secret"
    );
    assert!(r.header("webhook-signature").starts_with("v1,"));

    // A bad rule: a tool error naming the part, not a protocol error.
    let e = sdk_tool(
        &client,
        "schedule",
        json!({"name": "x", "rule": "FREQ=DAILY;BYMINUTE=75", "deliver": {"queue": "q"}}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("BYMINUTE") && e.contains("400"), "{e}");
    let e = sdk_tool(
        &client,
        "get_event",
        json!({"id": out["event"]["id"], "verbose": true}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("unknown argument 'verbose'"), "{e}");
    client.cancel().await.expect("closes");
}

#[tokio::test]
async fn sdk_clients_act_as_their_tokens() {
    let app = spawn_app().await;
    let reader = sdk_client(&app, &app.token("read", &[]).await).await;
    let e = sdk_tool(
        &reader,
        "schedule",
        json!({"name": "x", "in": "1h", "deliver": {"queue": "q"}}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("403"), "a read token cannot schedule: {e}");

    let master = sdk_client(&app, TOKEN).await;
    for (name, tag) in [("a's", "team-a"), ("b's", "team-b")] {
        sdk_tool(
            &master,
            "schedule",
            json!({"name": name, "in": "1h", "deliver": {"queue": "q"}, "tags": [tag]}),
        )
        .await
        .unwrap();
    }
    let team_a = sdk_client(&app, &app.token("read_write", &["team-a"]).await).await;
    let listed = sdk_tool(&team_a, "list_events", json!({})).await.unwrap();
    let names: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a's"], "a scoped token sees only its events");
    for c in [reader, master, team_a] {
        c.cancel().await.expect("closes");
    }
}
