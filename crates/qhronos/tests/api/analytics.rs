//! `GET /analytics` end to end: real deliveries to real receivers (some answer 500), then exact
//! counts by bucket, the failing targets, tag and event filters, and scoped tokens.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{in_ms, spawn_app, webhook_event, Receiver, TestApp, TOKEN};

/// The sum of a counter over every bucket of an answer.
fn total(v: &Value, k: &str) -> i64 {
    v["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| b[k].as_i64().expect("a count"))
        .sum()
}

/// (due, delivered, failed_attempts, retried, failed, missed) over the answer.
fn totals(v: &Value) -> [i64; 6] {
    [
        "due",
        "delivered",
        "failed_attempts",
        "retried",
        "failed",
        "missed",
    ]
    .map(|k| total(v, k))
}

fn range(bucket: &str) -> String {
    format!(
        "from={}&to={}&bucket={bucket}",
        in_ms(-2 * 3_600_000),
        in_ms(2 * 3_600_000)
    )
}

/// Waits until the event's only occurrence is in `status`.
async fn settled(app: &TestApp, id: &str, status: &str) {
    app.wait_occurrences(id, Duration::from_secs(10), |l| {
        l.len() == 1 && l[0]["status"] == status
    })
    .await;
}

/// Three events deliver at once (tag `green`); one answers 500 then 200, one 500 until its two
/// attempts are used (tag `red`). Returns (the failing event's id, its receiver's target).
async fn deliveries(app: &TestApp) -> (String, String, Vec<Receiver>) {
    let ok = Receiver::start(vec![200]).await;
    let flaky = Receiver::start(vec![500, 200]).await;
    let bad = Receiver::start(vec![500]).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut b = webhook_event(&ok.url(), 200);
        b["tags"] = json!(["green"]);
        ids.push((app.create(b).await, "completed"));
    }
    let mut b = webhook_event(&format!("{}?token=s3cret", flaky.url()), 200);
    b["tags"] = json!(["red"]);
    ids.push((app.create(b).await, "completed"));
    let mut b = webhook_event(&format!("{}?token=s3cret", bad.url()), 200);
    b["tags"] = json!(["red"]);
    b["retry"]["max_attempts"] = json!(2);
    let bad_id = app.create(b).await;
    ids.push((bad_id.clone(), "failed"));
    for (id, status) in &ids {
        settled(app, id, status).await;
    }
    let target = format!("{}/hook", bad.addr);
    (bad_id, target, vec![ok, flaky, bad])
}

/// The analytics answer once its totals are `want` (outcomes are written in batches: the last
/// may land a moment after the occurrence reads as settled).
async fn analytics_until(app: &TestApp, token: &str, query: &str, want: [i64; 6]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, v) = app
            .req_as(Some(token), "GET", &format!("/analytics?{query}"), None)
            .await;
        assert_eq!(s, 200, "{v}");
        if totals(&v) == want {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "totals {:?}, want {want:?}: {v:#}",
            totals(&v)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn deliveries_are_counted_exactly_with_their_failing_targets() {
    let app = spawn_app().await;
    let (bad_id, bad_target, _rx) = deliveries(&app).await;
    // 5 due; 4 delivered (3 + the flaky one's second attempt); 3 failed attempts, of which 2
    // were retried and 1 was the last.
    let want = [5, 4, 3, 2, 1, 0];
    let h = analytics_until(&app, TOKEN, &range("hour"), want).await;
    assert_eq!(h["bucket"], "hour");
    let n = h["buckets"].as_array().expect("buckets").len();
    assert!((4..=5).contains(&n), "4 hours widened to whole hours: {n}");
    let busy: Vec<&Value> = h["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .filter(|b| b["due"].as_i64() > Some(0))
        .collect();
    assert!(!busy.is_empty());
    for b in &busy {
        assert!(b["duration_ms"]["p50"].as_i64().is_some(), "{b}");
        assert!(b["lateness_ms"]["p99"].as_i64().is_some(), "{b}");
        assert!(
            b["start"].as_str().expect("start").ends_with(":00:00Z"),
            "{b}"
        );
    }
    let empty = &h["buckets"][0];
    assert_eq!(empty["lateness_ms"], json!({"p50": null, "p99": null}));

    let top = h["top_failing_targets"].as_array().expect("targets");
    assert_eq!(top.len(), 2, "{top:#?}");
    assert_eq!(top[0]["target"], bad_target, "no query string: {top:#?}");
    assert_eq!(top[0]["failed"], 2);
    assert_eq!(top[0]["last_error"], "HTTP 500");
    assert_eq!(top[1]["failed"], 1);
    assert!(!h.to_string().contains("s3cret"));

    // The same figures by minute and by day.
    analytics_until(&app, TOKEN, &range("minute"), want).await;
    analytics_until(&app, TOKEN, &range("day"), want).await;
    // By tag and by event.
    analytics_until(
        &app,
        TOKEN,
        &format!("{}&tags=green", range("hour")),
        [3, 3, 0, 0, 0, 0],
    )
    .await;
    let red = analytics_until(
        &app,
        TOKEN,
        &format!("{}&tags=red", range("hour")),
        [2, 1, 3, 2, 1, 0],
    )
    .await;
    assert_eq!(red["top_failing_targets"].as_array().map(Vec::len), Some(2));
    let one = format!("{}&event_id={bad_id}", range("hour"));
    analytics_until(&app, TOKEN, &one, [1, 0, 2, 1, 1, 0]).await;
    // A deleted event keeps its figures.
    let (s, _) = app.req("DELETE", &format!("/events/{bad_id}"), None).await;
    assert_eq!(s, 204);
    analytics_until(&app, TOKEN, &one, [1, 0, 2, 1, 1, 0]).await;
}

#[tokio::test]
async fn a_scoped_token_sees_its_tags_only() {
    let app = spawn_app().await;
    let (bad_id, _, _rx) = deliveries(&app).await;
    analytics_until(&app, TOKEN, &range("hour"), [5, 4, 3, 2, 1, 0]).await;
    let green = app.token("read", &["green"]).await;
    let g = analytics_until(&app, &green, &range("hour"), [3, 3, 0, 0, 0, 0]).await;
    assert_eq!(g["top_failing_targets"], json!([]));
    // Tags outside the scope match nothing; an event outside it is not found.
    analytics_until(&app, &green, &format!("{}&tags=red", range("hour")), [0; 6]).await;
    let (s, v) = app
        .req_as(
            Some(&green),
            "GET",
            &format!("/analytics?{}&event_id={bad_id}", range("hour")),
            None,
        )
        .await;
    assert_eq!(s, 404, "{v}");
    let red = app.token("read", &["red"]).await;
    analytics_until(&app, &red, &range("hour"), [2, 1, 3, 2, 1, 0]).await;
}

#[tokio::test]
async fn bad_ranges_and_buckets_are_refused_with_the_reason() {
    let app = spawn_app().await;
    for (q, says) in [
        ("bucket=week", "bucket"),
        (
            "from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z",
            "before",
        ),
        (
            "from=2030-01-01T00:00:00Z&to=2030-03-01T00:00:00Z&bucket=minute",
            "at most 10080",
        ),
        ("event_id=nope", "UUID"),
        (
            "event_id=0190b5a0-0000-7000-8000-000000000000&tags=a",
            "not both",
        ),
        ("limit=5", "unknown query parameter"),
    ] {
        let (s, v) = app.get(&format!("/analytics?{q}")).await;
        assert_eq!(s, 400, "{q}: {v}");
        assert!(v["error"].as_str().unwrap_or("").contains(says), "{q}: {v}");
    }
    // Defaults: the last 24 hours by the hour, every bucket present and empty.
    let (s, v) = app.get("/analytics").await;
    assert_eq!(s, 200, "{v}");
    let n = v["buckets"].as_array().map(Vec::len).unwrap_or(0);
    assert!((24..=25).contains(&n), "{n} buckets");
    assert_eq!(totals(&v), [0; 6]);
}
