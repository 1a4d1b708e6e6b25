use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::helpers::{in_ms, spawn_app, webhook_event, Receiver};

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

#[tokio::test]
async fn a_one_time_event_is_delivered_once_on_time_with_both_signatures_valid() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut body = webhook_event(&rx.url(), 300);
    body["hmac_secret"] = json!(secret);
    body["metadata"] = json!({"order": 42});
    body["tags"] = json!(["billing"]);
    let due = body["start_time"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    let id = app.create(body).await;

    let got = rx.wait_for(1, Duration::from_secs(5)).await;
    let r = &got[0];
    // Never early, and well within the 1 s goal of this issue.
    let late = r.at.duration_since(due).as_millis();
    assert!((0..1000).contains(&late), "lateness {late} ms");

    let v = r.json();
    assert_eq!(v["event_id"], id);
    assert_eq!(v["name"], "test event");
    assert_eq!(v["metadata"]["order"], 42);
    assert_eq!(v["tags"], json!(["billing"]));
    assert_eq!(v["attempt"], 1);
    assert_eq!(
        v["scheduled_at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap(),
        due
    );
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "event_id",
            "occurrence_id",
            "name",
            "description",
            "scheduled_at",
            "dispatched_at",
            "attempt",
            "metadata",
            "tags"
        ]
    );

    // X-Qhronos-Signature: hex HMAC of the body keyed with the secret string's bytes.
    assert_eq!(
        r.header("x-qhronos-signature"),
        hex::encode(hmac(secret.as_bytes(), &r.body))
    );
    // Standard Webhooks: base64 HMAC of "id.timestamp.body" keyed with the decoded whsec_ key.
    let wid = r.header("webhook-id");
    assert_eq!(wid, v["occurrence_id"].as_str().unwrap());
    let ts = r.header("webhook-timestamp");
    let key = base64::engine::general_purpose::STANDARD
        .decode(&secret["whsec_".len()..])
        .unwrap();
    let signed = [wid.as_bytes(), b".", ts.as_bytes(), b".", &r.body].concat();
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(hmac(&key, &signed))
    );
    assert_eq!(r.header("webhook-signature"), expected);

    let occs = app
        .wait_occurrences(&id, Duration::from_secs(3), |l| {
            l.len() == 1 && l[0]["status"] == "completed"
        })
        .await;
    let (_, detail) = app
        .get(&format!("/occurrences/{}", occs[0]["id"].as_str().unwrap()))
        .await;
    assert_eq!(detail["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(detail["attempts"][0]["status_code"], 200);
    assert_eq!(detail["attempts"][0]["response"], "receiver says hi");
    // Delivered exactly once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.received().len(), 1);
    let (_, ev) = app.get(&format!("/events/{id}")).await;
    assert_eq!(ev["status"], "inactive");
    assert_eq!(ev["hmac_secret_set"], true);
    assert!(
        ev.get("hmac_secret").is_none(),
        "secret must not be returned"
    );
}

#[tokio::test]
async fn an_event_created_without_a_secret_is_signed_with_a_random_one() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    app.create(webhook_event(&rx.url(), 0)).await;
    let r = &rx.wait_for(1, Duration::from_secs(5)).await[0];
    let sig = r.header("x-qhronos-signature");
    assert_eq!(sig.len(), 64);
    // Not keyed with an empty or well-known secret.
    for guess in ["", "secret", "default", "qhronos"] {
        assert_ne!(sig, hex::encode(hmac(guess.as_bytes(), &r.body)));
    }
}

#[tokio::test]
async fn a_receiver_that_fails_twice_then_succeeds_gets_three_attempts_recorded() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![500, 503, 200]).await;
    let id = app.create(webhook_event(&rx.url(), 0)).await;
    let got = rx.wait_for(3, Duration::from_secs(5)).await;
    let attempts: Vec<i64> = got
        .iter()
        .map(|r| r.json()["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    // The same webhook-id on every retry: receivers deduplicate with it.
    assert!(got
        .iter()
        .all(|r| r.header("webhook-id") == got[0].header("webhook-id")));
    let occs = app
        .wait_occurrences(&id, Duration::from_secs(3), |l| {
            l.first().is_some_and(|o| o["status"] == "completed")
        })
        .await;
    let (_, d) = app
        .get(&format!("/occurrences/{}", occs[0]["id"].as_str().unwrap()))
        .await;
    let codes: Vec<i64> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 503, 200]);
    assert_eq!(d["attempt_count"], 3);
}

#[tokio::test]
async fn exhausted_retries_fail_and_the_retry_endpoint_redrives_to_completed() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![500, 500, 200]).await;
    let mut body = webhook_event(&rx.url(), 0);
    body["retry"]["max_attempts"] = json!(2);
    let id = app.create(body).await;
    let occs = app
        .wait_occurrences(&id, Duration::from_secs(5), |l| {
            l.first().is_some_and(|o| o["status"] == "failed")
        })
        .await;
    let occ = occs[0]["id"].as_str().unwrap().to_string();
    assert_eq!(occs[0]["last_error"], "HTTP 500");
    let (s, _) = app
        .post(&format!("/occurrences/{occ}/retry"), json!({}))
        .await;
    assert_eq!(s, 200);
    app.wait_occurrences(&id, Duration::from_secs(5), |l| {
        l[0]["status"] == "completed"
    })
    .await;
    let (_, d) = app.get(&format!("/occurrences/{occ}")).await;
    assert_eq!(d["attempts"].as_array().unwrap().len(), 3);
    // Retrying a completed occurrence is a conflict, with the reason.
    let (s, v) = app
        .post(&format!("/occurrences/{occ}/retry"), json!({}))
        .await;
    assert_eq!(s, 409, "{v}");
    assert!(v["error"]
        .as_str()
        .unwrap()
        .contains("only failed or missed"));
}

#[tokio::test]
async fn redirects_are_failures_and_410_ends_retries_at_once() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![302]).await;
    let mut body = webhook_event(&rx.url(), 0);
    body["retry"]["max_attempts"] = json!(2);
    let id = app.create(body).await;
    let occs = app
        .wait_occurrences(&id, Duration::from_secs(5), |l| {
            l.first().is_some_and(|o| o["status"] == "failed")
        })
        .await;
    assert!(occs[0]["last_error"]
        .as_str()
        .unwrap()
        .contains("redirects are not followed"));
    assert_eq!(rx.received().len(), 2);

    let gone = Receiver::start(vec![410]).await;
    let id = app.create(webhook_event(&gone.url(), 0)).await;
    app.wait_occurrences(&id, Duration::from_secs(5), |l| {
        l.first().is_some_and(|o| o["status"] == "failed")
    })
    .await;
    assert_eq!(gone.received().len(), 1, "410 Gone must not be retried");
}

#[tokio::test]
async fn apicall_sends_the_method_headers_and_body_given() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    app.create(json!({
        "name": "call",
        "start_time": in_ms(0),
        "action": {"type": "apicall", "params": {"method": "PUT", "url": rx.url(), "headers": {"X-Api-Key": "k1"}, "body": {"hello": "world"}}},
    }))
    .await;
    let r = &rx.wait_for(1, Duration::from_secs(5)).await[0];
    assert_eq!(r.header("x-api-key"), "k1");
    assert_eq!(r.json(), json!({"hello": "world"}));
}

#[tokio::test]
async fn a_recurring_rule_fires_the_right_number_of_times() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    let mut body = webhook_event(&rx.url(), 200);
    body["schedule"] = json!("FREQ=SECONDLY;INTERVAL=1;COUNT=3");
    let id = app.create(body).await;
    let got = rx.wait_for(3, Duration::from_secs(6)).await;
    let times: Vec<String> = got
        .iter()
        .map(|r| r.json()["scheduled_at"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(times.len(), 3);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(rx.received().len(), 3, "COUNT=3 must fire exactly 3 times");
    let occs = app
        .wait_occurrences(&id, Duration::from_secs(2), |l| {
            l.iter().all(|o| o["status"] == "completed")
        })
        .await;
    assert_eq!(occs.len(), 3);
    let (_, ev) = app.get(&format!("/events/{id}")).await;
    assert_eq!(ev["status"], "inactive", "an ended series becomes inactive");
}

#[tokio::test]
async fn the_json_schedule_form_means_the_same_rule() {
    let app = spawn_app().await;
    let mut body = webhook_event("http://127.0.0.1:9/x", 3_600_000);
    body["schedule"] = json!({"frequency": "weekly", "by_day": ["MO", "WE"], "count": 4});
    let (s, v) = app.post("/events", body).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["schedule"], "FREQ=WEEKLY;COUNT=4;BYDAY=MO,WE");
    assert_eq!(v["schedule_json"]["frequency"], "weekly");
}

#[tokio::test]
async fn pause_stops_firing_and_resume_continues() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    let mut body = webhook_event(&rx.url(), 100);
    body["schedule"] = json!("FREQ=SECONDLY;INTERVAL=1");
    let id = app.create(body).await;
    rx.wait_for(1, Duration::from_secs(4)).await;
    let (s, v) = app.post(&format!("/events/{id}/pause"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("paused")));
    let before = rx.received().len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.received().len(), before, "a paused event must not fire");
    let occs = app
        .get(&format!("/events/{id}/occurrences?status=cancelled"))
        .await
        .1;
    assert!(
        !occs["data"].as_array().unwrap().is_empty(),
        "what was not fired is visibly cancelled"
    );

    let (s, v) = app.post(&format!("/events/{id}/resume"), json!({})).await;
    assert_eq!((s, v["status"].as_str()), (200, Some("active")));
    rx.wait_for(before + 1, Duration::from_secs(4)).await;
    app.req("DELETE", &format!("/events/{id}"), None).await;
}

#[tokio::test]
async fn trigger_fires_one_occurrence_now() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    let id = app.create(webhook_event(&rx.url(), 86_400_000)).await;
    let (s, occ) = app.post(&format!("/events/{id}/trigger"), json!({})).await;
    assert_eq!(s, 201, "{occ}");
    let got = rx.wait_for(1, Duration::from_secs(3)).await;
    assert_eq!(got[0].json()["occurrence_id"], occ["id"]);
}

#[tokio::test]
async fn deleting_an_event_cancels_what_has_not_fired() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    let id = app.create(webhook_event(&rx.url(), 800)).await;
    let (_, occs) = app.get(&format!("/events/{id}/occurrences")).await;
    let occ = occs["data"][0]["id"].as_str().unwrap().to_string();
    let (s, _) = app.req("DELETE", &format!("/events/{id}"), None).await;
    assert_eq!(s, 204);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(rx.received().is_empty(), "a deleted event must not fire");
    let (_, o) = app.get(&format!("/occurrences/{occ}")).await;
    assert_eq!(o["status"], "cancelled");
    assert_eq!(app.get(&format!("/events/{id}")).await.0, 404);
}

#[tokio::test]
async fn one_occurrence_can_be_cancelled_or_moved_without_touching_the_series() {
    let app = spawn_app().await;
    let rx = Receiver::start(vec![]).await;
    let mut body = webhook_event(&rx.url(), 600);
    body["rdates"] = json!([in_ms(900), in_ms(1200)]);
    let id = app.create(body).await;
    let (_, list) = app.get(&format!("/events/{id}/occurrences")).await;
    let occs: Vec<String> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(occs.len(), 3);
    // Newest first: [1200 ms, 900 ms, 600 ms].
    let (s, o) = app
        .req("DELETE", &format!("/occurrences/{}", occs[1]), None)
        .await;
    assert_eq!((s, o["status"].as_str()), (200, Some("cancelled")), "{o}");
    let moved_to = in_ms(1500);
    let (s, o) = app
        .req(
            "PATCH",
            &format!("/occurrences/{}", occs[0]),
            Some(json!({"scheduled_at": moved_to})),
        )
        .await;
    assert_eq!(s, 200, "{o}");
    assert_eq!(
        o["scheduled_at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap(),
        moved_to.parse::<jiff::Timestamp>().unwrap()
    );

    let got = rx.wait_for(2, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rx.received().len(), 2, "the cancelled one must not fire");
    let ids: Vec<String> = got
        .iter()
        .map(|r| r.json()["occurrence_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, [occs[2].clone(), occs[0].clone()]);
    let moved = got[1].json()["scheduled_at"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap();
    assert!(got[1].at >= moved, "never early");
    // A finished occurrence can be neither cancelled nor moved.
    let (s, _) = app
        .req("DELETE", &format!("/occurrences/{}", occs[2]), None)
        .await;
    assert_eq!(s, 409);
}

#[tokio::test]
async fn preview_lists_the_next_instants_of_a_rule_in_its_zone() {
    let app = spawn_app().await;
    let (s, v) = app
        .post(
            "/schedules/preview",
            json!({
                "start_time": "2026-03-27T09:00:00+01:00",
                "timezone": "Europe/Berlin",
                "schedule": "FREQ=DAILY",
                "limit": 3,
            }),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    // Daily at 09:00 Berlin across the spring-forward of 2026-03-29: 08:00Z, 08:00Z, then 07:00Z.
    assert_eq!(
        v["occurrences"],
        json!([
            "2026-03-27T08:00:00Z",
            "2026-03-28T08:00:00Z",
            "2026-03-29T07:00:00Z"
        ])
    );
    let (s, v) = app
        .post("/schedules/preview", json!({"start_time": "2026-01-01T00:00:00Z", "schedule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}))
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = app
        .post(
            "/schedules/preview",
            json!({"start_time": "2026-01-01T00:00:00Z", "schedule": "FREQ=DAILY", "limit": 5000}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
}
