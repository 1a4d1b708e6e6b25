//! A scoped admin sees and touches only what lies inside its scope; idempotency keys belong
//! to the caller's identity.

use serde_json::{json, Value};

use crate::helpers::{in_ms, spawn_app, webhook_event};

/// Issues a token for `sub` and returns (token, jti).
async fn issue(
    app: &crate::helpers::TestApp,
    sub: &str,
    access: &str,
    scope: &[&str],
) -> (String, String) {
    let (s, v) = app
        .post(
            "/tokens",
            json!({"sub": sub, "access": access, "scope": scope, "expires_at": in_ms(3_600_000)}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    (
        v["token"].as_str().unwrap().to_string(),
        v["jti"].as_str().unwrap().to_string(),
    )
}

fn jtis(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["jti"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_scoped_admin_lists_and_revokes_only_tokens_inside_its_scope() {
    let app = spawn_app().await;
    let (admin, admin_jti) = issue(&app, "admin-a", "admin", &["team-a"]).await;
    let (_, inside) = issue(&app, "a1", "read", &["team-a"]).await;
    let (_, wider) = issue(&app, "ab", "read_write", &["team-a", "team-b"]).await;
    let (_, everything) = issue(&app, "all", "read", &[]).await;
    let (_, other) = issue(&app, "b1", "write", &["team-b"]).await;

    let (s, v) = app.req_as(Some(&admin), "GET", "/tokens", None).await;
    assert_eq!(s, 200, "{v}");
    let mut seen = jtis(&v);
    seen.sort();
    let mut want = vec![admin_jti.clone(), inside.clone()];
    want.sort();
    assert_eq!(seen, want, "{v}");
    // Pages stay inside the scope too.
    let (_, p1) = app
        .req_as(Some(&admin), "GET", "/tokens?limit=1", None)
        .await;
    let cursor = p1["next_cursor"].as_str().unwrap().to_string();
    let (_, p2) = app
        .req_as(
            Some(&admin),
            "GET",
            &format!("/tokens?limit=1&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(jtis(&p1).len() + jtis(&p2).len(), 2);
    assert!(p2["next_cursor"].is_null(), "{p2}");

    for jti in [&wider, &everything, &other] {
        let (s, v) = app
            .req_as(Some(&admin), "DELETE", &format!("/tokens/{jti}"), None)
            .await;
        assert_eq!(s, 404, "{v}");
    }
    let (_, all) = app.get("/tokens").await;
    assert!(all["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["revoked_at"].is_null()));
    let (s, _) = app
        .req_as(Some(&admin), "DELETE", &format!("/tokens/{inside}"), None)
        .await;
    assert_eq!(s, 204);
    // The master token (and an unscoped admin) still see every token.
    assert_eq!(jtis(&all).len(), 5);
}

#[tokio::test]
async fn a_scoped_admin_reads_only_audit_entries_inside_its_scope() {
    let app = spawn_app().await;
    let (admin, _) = issue(&app, "admin-a", "admin", &["team-a"]).await;
    let mut a = webhook_event("http://127.0.0.1:9/h", 3_600_000);
    a["tags"] = json!(["team-a"]);
    let a_id = app.create(a).await;
    let mut b = webhook_event("http://127.0.0.1:9/h", 3_600_000);
    b["tags"] = json!(["team-b"]);
    let b_id = app.create(b).await;
    let mut ab = webhook_event("http://127.0.0.1:9/h", 3_600_000);
    ab["tags"] = json!(["team-a", "team-b"]);
    let ab_id = app.create(ab).await;
    app.create(webhook_event("http://127.0.0.1:9/h", 3_600_000))
        .await;
    app.post(&format!("/events/{b_id}/pause"), json!({})).await;
    app.post(&format!("/events/{a_id}/pause"), json!({})).await;
    issue(&app, "b1", "read", &["team-b"]).await;

    let (s, v) = app.req_as(Some(&admin), "GET", "/audit", None).await;
    assert_eq!(s, 200, "{v}");
    let seen: Vec<(String, String)> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(
        seen.iter().all(|(_, t)| *t != b_id && *t != ab_id),
        "{seen:?}"
    );
    let actions: Vec<&str> = seen.iter().map(|(a, _)| a.as_str()).collect();
    // Newest first: its own pause, its event's creation, its own token's issue.
    assert_eq!(
        actions,
        ["event.pause", "event.create", "token.issue"],
        "{v}"
    );
    assert_eq!(seen[0].1, a_id);
    // Filters narrow inside the scope; they never widen it.
    let (_, f) = app
        .req_as(Some(&admin), "GET", &format!("/audit?target={b_id}"), None)
        .await;
    assert!(f["data"].as_array().unwrap().is_empty(), "{f}");
    let (_, all) = app.get("/audit").await;
    assert_eq!(all["data"].as_array().unwrap().len(), 8, "{all}");
}

#[tokio::test]
async fn an_idempotency_key_belongs_to_the_callers_identity() {
    let app = spawn_app().await;
    let (alice, _) = issue(&app, "alice", "write", &[]).await;
    let (alice_again, _) = issue(&app, "alice", "write", &[]).await;
    let (bob, _) = issue(&app, "bob", "write", &[]).await;
    let body = webhook_event("http://127.0.0.1:9/h", 3_600_000);
    let create = |token: String, body: Value| {
        let app = &app;
        async move {
            let r = app
                .client
                .post(app.url("/events"))
                .bearer_auth(token)
                .header("Idempotency-Key", "order-42")
                .json(&body)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    let (s, first) = create(alice.clone(), body.clone()).await;
    assert_eq!(s, 201, "{first}");
    // Another identity with the same key: its own new event, whatever the body.
    let (s, bobs) = create(bob.clone(), body.clone()).await;
    assert_eq!(s, 201, "{bobs}");
    assert_ne!(bobs["id"], first["id"]);
    let mut other = body.clone();
    other["name"] = json!("different");
    let (s, v) = create(bob, other).await;
    assert_eq!(s, 409, "bob's own key with another body: {v}");
    // The same identity (another token for the same sub): the same event.
    let (s, again) = create(alice_again, body.clone()).await;
    assert_eq!((s, &again["id"]), (200, &first["id"]), "{again}");
    let (s, master) = create(crate::helpers::TOKEN.to_string(), body).await;
    assert_eq!(s, 201, "{master}");
}
