//! `qhronos mcp` driven by an MCP client of the SDK (`rmcp`'s client side) over the child's
//! stdin and stdout, as a desktop agent runs a local tool server.

use std::process::Stdio;
use std::time::Duration;

use qhronos::config::Config;
use qhronos::startup::Application;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

const TOKEN: &str = "mcp-stdio-master-token-0123456789";

/// qhronosd on port 0 with a temporary database and issued tokens; its address.
async fn server(dir: &std::path::Path) -> std::net::SocketAddr {
    let mut config = Config {
        port: 0,
        data_dir: dir.to_path_buf(),
        master_token: Some(TOKEN.to_string()),
        ..Default::default()
    };
    config.rate_limit.enabled = false;
    config.auth.jwt_secret = Some("mcp-stdio-jwt-signing-key-0123456789-abcdefgh".into());
    let app = Application::build(config).await.expect("the server starts");
    let addr = app.addr();
    tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    addr
}

/// `qhronos mcp` acting as `token`, with an SDK client on its stdio.
async fn agent(addr: std::net::SocketAddr, token: &str) -> RunningService<RoleClient, ()> {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_qhronos"))
        .arg("mcp")
        .env("QHRONOS_URL", format!("http://{addr}"))
        .env("QHRONOS_TOKEN", token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("qhronos mcp starts");
    let stdout = child.stdout.take().expect("stdout");
    let stdin = child.stdin.take().expect("stdin");
    // The child lives as long as the test's runtime; it ends when its stdin closes.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    ().serve((stdout, stdin))
        .await
        .expect("the SDK client initializes over stdio")
}

async fn tool(
    c: &RunningService<RoleClient, ()>,
    name: &'static str,
    args: Value,
) -> Result<Value, String> {
    let r = c
        .call_tool(
            CallToolRequestParams::new(name)
                .with_arguments(args.as_object().cloned().unwrap_or_default()),
        )
        .await
        .expect("a tool result, never a protocol error");
    if r.is_error == Some(true) {
        let content = serde_json::to_value(&r.content).expect("json");
        return Err(content[0]["text"].as_str().unwrap_or_default().to_string());
    }
    Ok(r.structured_content.unwrap_or(Value::Null))
}

/// A token issued by the master token over REST.
async fn issue(addr: std::net::SocketAddr, access: &str, scope: &[&str]) -> String {
    let r: Value = reqwest::Client::new()
        .post(format!("http://{addr}/tokens"))
        .bearer_auth(TOKEN)
        .json(&json!({"sub": format!("{access}-agent"), "access": access, "scope": scope, "expires_at": "2099-01-01T00:00:00Z"}))
        .send()
        .await
        .expect("POST /tokens")
        .json()
        .await
        .expect("json");
    r["token"].as_str().expect("a token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_over_stdio_is_woken_through_a_queue_and_keeps_its_tokens_limits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let addr = server(dir.path()).await;
    let master = agent(addr, TOKEN).await;
    let info = master.peer_info().expect("initialized");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("qhronos")
    );
    let tools = master.list_all_tools().await.expect("tools/list");
    for n in [
        "schedule",
        "preview_schedule",
        "list_deliveries",
        "claim",
        "ack",
    ] {
        assert!(tools.iter().any(|t| t.name == n), "{n} is listed");
    }

    // "Wake me in 300 ms" through a pull queue: no public URL needed.
    let out = tool(
        &master,
        "schedule",
        json!({"name": "wake me", "in": "300ms", "deliver": {"queue": "stdio-agent"}, "payload": {"task": 7}, "tags": ["team-a"]}),
    )
    .await
    .unwrap();
    let claimed = tool(
        &master,
        "claim",
        json!({"queue": "stdio-agent", "wait": "5s"}),
    )
    .await
    .unwrap();
    let c = &claimed["data"][0];
    assert_eq!(c["event_id"], out["event"]["id"], "{claimed}");
    assert_eq!(c["payload"], json!({"task": 7}));
    tool(
        &master,
        "ack",
        json!({"occurrence_id": c["occurrence_id"], "receipt": c["receipt"]}),
    )
    .await
    .unwrap();

    // A bad rule is a tool error naming the part.
    let e = tool(
        &master,
        "preview_schedule",
        json!({"rule": "FREQ=WEEKLY;BYDAY=XX"}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("BYDAY") && e.contains("400"), "{e}");

    // The child acts as its token: a read token cannot schedule; a scoped one sees its tags.
    tool(
        &master,
        "schedule",
        json!({"name": "b's", "in": "1h", "deliver": {"queue": "q"}, "tags": ["team-b"]}),
    )
    .await
    .unwrap();
    let reader = agent(addr, &issue(addr, "read", &[]).await).await;
    let e = tool(
        &reader,
        "schedule",
        json!({"name": "x", "in": "1h", "deliver": {"queue": "q"}}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("403"), "{e}");
    let team_a = agent(addr, &issue(addr, "read_write", &["team-a"]).await).await;
    let listed = tool(&team_a, "list_events", json!({})).await.unwrap();
    let names: Vec<&str> = listed["data"]
        .as_array()
        .expect("a page")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["wake me"]);
    for c in [master, reader, team_a] {
        tokio::time::timeout(Duration::from_secs(5), c.cancel())
            .await
            .expect("closes in time")
            .expect("closes");
    }
}
