//! `GET /agenda`: instants across events in a window, materialised and projected, in time
//! order, paged, scoped; and `GET /events?ids=`.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::helpers::{in_ms, spawn_app, TestApp};

const HOUR: i64 = 3_600_000;

fn enc(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

/// Every item of the agenda from `from` to `to`, page by page of `limit`.
async fn all_pages(app: &TestApp, token: Option<&str>, query: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/agenda?{query}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (s, v) = app
            .req_as(
                Some(token.unwrap_or(crate::helpers::TOKEN)),
                "GET",
                &path,
                None,
            )
            .await;
        assert_eq!(s, 200, "{path}: {v}");
        assert_eq!(v["incomplete"], false, "{v}");
        let page = v["data"].as_array().expect("data").clone();
        assert!(page.len() <= limit as usize);
        out.extend(page);
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

fn ats(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["at"].as_str().expect("at").to_string())
        .collect()
}

async fn preview(app: &TestApp, start: &str, schedule: &str, n: usize) -> Vec<String> {
    let (s, v) = app
        .post(
            "/schedules/preview",
            json!({"start_time": start, "schedule": schedule, "limit": n}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["occurrences"]
        .as_array()
        .expect("occurrences")
        .iter()
        .map(|t| t.as_str().expect("time").to_string())
        .collect()
}

#[tokio::test]
async fn the_agenda_joins_stored_occurrences_and_the_rule_beyond_the_look_ahead_window() {
    let app = spawn_app().await;
    // Every 10 minutes from 10 minutes on; the look-ahead window is one hour, so about six
    // instants are stored and the rest of the three hours comes from the rule.
    let start = in_ms(10 * 60_000);
    let id = app
        .create(json!({"name": "ten", "start_time": start, "schedule": "FREQ=MINUTELY;INTERVAL=10", "webhook": "http://127.0.0.1:9/h"}))
        .await;
    let to = jiff::Timestamp::from_millisecond(
        start.parse::<jiff::Timestamp>().unwrap().as_millisecond() + 3 * HOUR,
    )
    .unwrap()
    .to_string();
    let q = format!("from={}&to={}", enc(&start), enc(&to));
    let items = all_pages(&app, None, &q, 1000).await;
    let expected = preview(&app, &start, "FREQ=MINUTELY;INTERVAL=10", 18).await;
    assert_eq!(ats(&items), expected);
    let stored: Vec<&Value> = items.iter().filter(|i| i["status"] == "pending").collect();
    let projected: Vec<&Value> = items
        .iter()
        .filter(|i| i["status"] == "projected")
        .collect();
    assert_eq!(stored.len() + projected.len(), 18, "{items:#?}");
    assert!((5..=7).contains(&stored.len()), "{items:#?}");
    assert!(stored.iter().all(|i| i["occurrence_id"].is_string()));
    assert!(projected.iter().all(|i| i["occurrence_id"].is_null()));
    // Stored first, then projected: the rule takes over where the store ends.
    assert!(items[..stored.len()]
        .iter()
        .all(|i| i["status"] == "pending"));
    assert!(items
        .iter()
        .all(|i| i["event_id"] == id.as_str() && i["name"] == "ten"));
    // The stored ones are the event's occurrences.
    let (_, occs) = app.get(&format!("/events/{id}/occurrences")).await;
    let ids: HashSet<&str> = occs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert!(stored
        .iter()
        .all(|i| ids.contains(i["occurrence_id"].as_str().unwrap())));
    // Small pages give the same list, without gaps or repeats.
    assert_eq!(all_pages(&app, None, &q, 4).await, items);
}

#[tokio::test]
async fn the_agenda_is_in_time_order_across_events_and_within_the_token_scope() {
    let app = spawn_app().await;
    let a_start = in_ms(5 * 60_000);
    let b_start = in_ms(7 * 60_000);
    let a = app
        .create(json!({"name": "a", "start_time": a_start, "schedule": "FREQ=HOURLY", "tags": ["red"], "webhook": "http://127.0.0.1:9/h"}))
        .await;
    let b = app
        .create(json!({"name": "b", "start_time": b_start, "schedule": "FREQ=MINUTELY;INTERVAL=30", "tags": ["blue"], "webhook": "http://127.0.0.1:9/h"}))
        .await;
    // A one-time event far beyond the look-ahead window: projected from its start time.
    let once = app
        .create(json!({"name": "once", "start_time": in_ms(20 * HOUR), "tags": ["blue"], "webhook": "http://127.0.0.1:9/h"}))
        .await;
    // A paused series projects nothing.
    let paused = app
        .create(json!({"name": "paused", "start_time": in_ms(60_000), "schedule": "FREQ=MINUTELY", "tags": ["red"], "webhook": "http://127.0.0.1:9/h"}))
        .await;
    let (s, _) = app
        .post(&format!("/events/{paused}/pause"), json!({}))
        .await;
    assert_eq!(s, 200);
    let q = format!("to={}", enc(&in_ms(24 * HOUR)));
    let items = all_pages(&app, None, &q, 7).await;
    let times = ats(&items);
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
    let count = |id: &str| items.iter().filter(|i| i["event_id"] == id).count();
    assert_eq!(count(&paused), 0);
    assert_eq!(count(&once), 1);
    assert!((23..=24).contains(&count(&a)), "{}", count(&a));
    assert!((47..=48).contains(&count(&b)), "{}", count(&b));
    assert_eq!(
        items
            .iter()
            .filter(|i| i["event_id"] == once.as_str())
            .collect::<Vec<_>>()[0]["status"],
        "projected"
    );
    // A token scoped to `blue` sees b and the one-time event only; `tags` narrows too.
    let blue = app.token("read", &["blue"]).await;
    let seen = all_pages(&app, Some(&blue), &q, 100).await;
    assert!(!seen.is_empty());
    assert!(seen
        .iter()
        .all(|i| i["event_id"] == b.as_str() || i["event_id"] == once.as_str()));
    let red = all_pages(&app, None, &format!("{q}&tags=red"), 100).await;
    assert_eq!(red.len(), count(&a));
    let (_, v) = app
        .req_as(Some(&blue), "GET", &format!("/agenda?{q}&tags=red"), None)
        .await;
    assert_eq!(v["data"], json!([]), "{v}");
    // A cancelled occurrence is left out; a moved one shows at its new time.
    let (_, occs) = app.get(&format!("/events/{a}/occurrences")).await;
    let first = occs["data"].as_array().unwrap().last().unwrap().clone();
    let (s, _) = app
        .req(
            "DELETE",
            &format!("/occurrences/{}", first["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let after = all_pages(&app, None, &format!("{q}&tags=red"), 100).await;
    assert_eq!(after.len(), red.len() - 1);
    assert!(after.iter().all(|i| i["occurrence_id"] != first["id"]));
}

#[tokio::test]
async fn the_agenda_says_what_is_wrong_with_its_parameters() {
    let app = spawn_app().await;
    for (q, needle) in [
        (
            "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "is not after from",
        ),
        (
            "from=2026-01-01T00:00:00Z&to=2027-03-01T00:00:00Z",
            "longer than 400 days",
        ),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("cursor=nope", "cursor"),
        ("from=tomorrow", "from"),
        ("colour=red", "unknown query parameter 'colour'"),
    ] {
        let (s, v) = app.get(&format!("/agenda?{q}")).await;
        assert_eq!(s, 400, "{q}: {v}");
        assert!(
            v["error"].as_str().unwrap_or_default().contains(needle),
            "{q}: {v}"
        );
    }
    // Without parameters: a week from now, empty here.
    let (s, v) = app.get("/agenda").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!({"data": [], "next_cursor": null, "incomplete": false})
    );
}

#[tokio::test]
async fn events_can_be_listed_by_their_ids_within_the_token_scope() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for (i, tag) in ["red", "blue", "red"].iter().enumerate() {
        ids.push(
            app.create(json!({"name": format!("e{i}"), "start_time": in_ms(HOUR), "tags": [tag], "webhook": "http://127.0.0.1:9/h"}))
                .await,
        );
    }
    let unknown = "0190a1b2-0000-7000-8000-000000000000";
    let list = format!("{},{},{unknown},{}", ids[0], ids[1], ids[0]);
    let (s, v) = app.get(&format!("/events?ids={list}")).await;
    assert_eq!(s, 200, "{v}");
    let got: Vec<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[1].as_str(), ids[0].as_str()]);
    // With the other filters, paging and a scope.
    let (_, v) = app.get(&format!("/events?ids={list}&tags=red")).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    let (_, v) = app.get(&format!("/events?ids={list}&limit=1")).await;
    assert_eq!(v["data"][0]["id"], ids[1].as_str());
    let c = v["next_cursor"].as_str().unwrap().to_string();
    let (_, v) = app
        .get(&format!("/events?ids={list}&limit=1&cursor={c}"))
        .await;
    assert_eq!(v["data"][0]["id"], ids[0].as_str());
    assert_eq!(v["next_cursor"], Value::Null);
    let blue = app.token("read", &["blue"]).await;
    let (_, v) = app
        .req_as(Some(&blue), "GET", &format!("/events?ids={list}"), None)
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["id"], ids[1].as_str());
    // Deleted events are left out.
    let (s, _) = app
        .req("DELETE", &format!("/events/{}", ids[1]), None)
        .await;
    assert_eq!(s, 204);
    let (_, v) = app.get(&format!("/events?ids={list}")).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    // Bounded, and each a UUID; not with q.
    let many: Vec<String> = (0..201)
        .map(|i| format!("0190a1b2-0000-7000-8000-{i:012}"))
        .collect();
    for (q, needle) in [
        (format!("ids={}", many.join(",")), "at most 200"),
        ("ids=abc".to_string(), "'abc' is not an id"),
        (format!("ids={}&q=e0", ids[0]), "cannot be combined with q"),
    ] {
        let (s, v) = app.get(&format!("/events?{q}")).await;
        assert_eq!(s, 400, "{v}");
        assert!(
            v["error"].as_str().unwrap_or_default().contains(needle),
            "{v}"
        );
    }
}

#[tokio::test]
async fn an_occurrence_moved_onto_a_projected_instant_is_listed_once() {
    let app = spawn_app().await;
    let start = in_ms(10 * 60_000);
    let id = app
        .create(json!({"name": "hourly", "start_time": start, "schedule": "FREQ=HOURLY", "webhook": "http://127.0.0.1:9/h"}))
        .await;
    let instants = preview(&app, &start, "FREQ=HOURLY", 5).await;
    let (_, occs) = app.get(&format!("/events/{id}/occurrences")).await;
    let first = occs["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["scheduled_at"] == instants[0].as_str())
        .expect("the first instant is stored")
        .clone();
    // Onto the fourth instant, three hours on: beyond the look-ahead window, so the rule
    // projects it too.
    let (s, v) = app
        .req(
            "PATCH",
            &format!("/occurrences/{}", first["id"].as_str().unwrap()),
            Some(json!({"scheduled_at": instants[3]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let q = format!("from={}&to={}", enc(&start), enc(&in_ms(5 * HOUR)));
    let items = all_pages(&app, None, &q, 2).await;
    let at = ats(&items);
    assert!(!at.contains(&instants[0]), "{items:#?}");
    let moved: Vec<&Value> = items
        .iter()
        .filter(|i| i["at"] == instants[3].as_str())
        .collect();
    assert_eq!(moved.len(), 1, "{items:#?}");
    assert_eq!(moved[0]["occurrence_id"], first["id"]);
    assert_eq!(moved[0]["status"], "pending");
}
