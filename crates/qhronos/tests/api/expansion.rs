//! Expansion under pressure: costly rules (issue 12 item 1) and the expander racing updates
//! (item 13), at the API and at the store, on both backends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use qhronos::api::event_io::EventIn;
use qhronos::domain::event::Event;
use qhronos::domain::now_ms;
use qhronos::domain::occurrence::{NewOccurrence, OccStatus};
use qhronos::engine::plan::{plan, plan_from};
use qhronos::store::{Expansion, OccFilter, Store};
use serde_json::json;

use crate::helpers::{spawn_app, test_config, TestDb};

#[tokio::test]
async fn a_count_rule_from_1900_previews_at_once_or_is_a_400_naming_count() {
    let app = spawn_app().await;
    // The rule: counted arithmetically, not walked second by second.
    let t0 = Instant::now();
    let (code, v) = app
        .post(
            "/schedules/preview",
            json!({
                "start_time": "1900-01-01T00:00:00Z",
                "timezone": "Europe/Berlin",
                "schedule": "FREQ=SECONDLY;BYMONTH=1,2,3,4,5,6,7,8,9,10,11,12;COUNT=4000000000",
                "after": "2026-01-01T00:00:00Z",
                "limit": 3,
            }),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v["occurrences"],
        json!([
            "2026-01-01T00:00:01Z",
            "2026-01-01T00:00:02Z",
            "2026-01-01T00:00:03Z"
        ])
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // A class that is walked (an hour expanded where the zone moves by half hours): past the
    // budget, a 400 that names COUNT, quickly.
    let costly = json!({
        "start_time": "1900-01-01T00:00:00Z",
        "schedule": "FREQ=HOURLY;BYMINUTE=0,30;COUNT=4000000000",
        "timezone": "Australia/Lord_Howe",
        "after": "2026-01-01T00:00:00Z",
    });
    let t0 = Instant::now();
    let (code, v) = app.post("/schedules/preview", costly.clone()).await;
    assert_eq!(code, 400, "{v}");
    let msg = v["error"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("schedule: COUNT=4000000000 is too costly"),
        "{msg}"
    );
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn costly_previews_do_not_stall_other_requests() {
    let app = spawn_app().await;
    let costly = json!({
        "start_time": "1900-01-01T00:00:00Z",
        "schedule": "FREQ=HOURLY;BYMINUTE=0,30;COUNT=4000000000",
        "timezone": "Australia/Lord_Howe",
        "after": "2026-01-01T00:00:00Z",
    });
    // The test runtime has one worker thread, shared with the server: rule work done on it
    // would hold the health check until the previews end. Off it, the health check answers
    // while they still run.
    let previews: Vec<_> = (0..2)
        .map(|_| {
            let c = app.client.clone();
            let url = app.url("/schedules/preview");
            let body = costly.clone();
            tokio::spawn(async move {
                let r = c
                    .post(url)
                    .bearer_auth(crate::helpers::TOKEN)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16());
                (r, Instant::now())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (code, _) = app.get("/health").await;
    let health_done = Instant::now();
    assert_eq!(code, 200);
    for p in previews {
        let (r, done) = p.await.unwrap();
        assert_eq!(r.unwrap(), 400);
        assert!(health_done < done, "the health check waited for a preview");
    }
}

#[tokio::test]
async fn creating_an_event_with_a_too_costly_count_rule_is_a_400_naming_count() {
    let app = spawn_app().await;
    let (code, v) = app
        .post(
            "/events",
            json!({
                "name": "costly",
                "start_time": "1900-01-01T00:00:00Z",
                "schedule": "FREQ=HOURLY;BYMINUTE=0,30;COUNT=4000000000",
                "timezone": "Australia/Lord_Howe",
                "webhook": "http://127.0.0.1:9/x",
            }),
        )
        .await;
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("COUNT=4000000000 is too costly"),
        "{v}"
    );
}

/// The store of a test: SQLite in a temp dir, or a fresh PostgreSQL database.
async fn store() -> (Arc<dyn Store>, Option<TestDb>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    let db = TestDb::for_test().await;
    if let Some(db) = &db {
        config.database_url = Some(db.url.clone());
        config.database.pool_size = 4;
    }
    let s = qhronos::startup::open_store(&config).await.unwrap();
    (s, db, dir)
}

fn event(id: uuid::Uuid, start: i64, schedule: &str) -> Event {
    let input: EventIn = serde_json::from_value(json!({
        "name": "race",
        "start_time": qhronos::domain::fmt_ms(start),
        "schedule": schedule,
        "webhook": "http://127.0.0.1:9/x",
    }))
    .unwrap();
    input.validate(id, start, now_ms()).unwrap()
}

fn occs(e: &Event, instants: &[i64]) -> Vec<NewOccurrence> {
    instants
        .iter()
        .map(|&t| NewOccurrence::new(e.id, t, 3))
        .collect()
}

/// Pending (not cancelled) instants of an event, ascending.
async fn live(s: &dyn Store, id: uuid::Uuid) -> Vec<i64> {
    let f = OccFilter {
        event_id: Some(id),
        limit: 1000,
        ..Default::default()
    };
    let mut v: Vec<i64> = s
        .list_occurrences(&f)
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.status == OccStatus::Pending)
        .map(|o| o.scheduled_at)
        .collect();
    v.sort_unstable();
    v
}

/// One expander pass over one event, the way the expander does it, up to `ahead` ms past its
/// watermark; `between` runs after the read and before the write.
async fn expand_once<F: std::future::Future<Output = ()>>(
    s: &dyn Store,
    id: uuid::Uuid,
    ahead: i64,
    between: impl FnOnce() -> F,
) -> Option<bool> {
    let (e, st) = s
        .events_to_expand(i64::MAX / 4, 1000)
        .await
        .unwrap()
        .into_iter()
        .find(|(e, _)| e.id == id)?;
    let from = e.next_fire_at?;
    let p = plan_from(&e, Some(from - 1), st.mark, from + ahead).unwrap();
    between().await;
    let o = occs(&e, &p.instants);
    let x = Expansion {
        gen: st.gen,
        occurrences: &o,
        missed: &[],
        next_fire_at: p.next,
        mark: p.mark,
    };
    Some(s.save_expansion(e.id, &x, now_ms()).await.unwrap())
}

/// Replaces the event's rule the way `PUT /events/{id}` does.
async fn replan(s: &dyn Store, id: uuid::Uuid, start: i64, schedule: &str, ahead: i64) {
    let mut e = event(id, start, schedule);
    let p = plan(&e, None, start + ahead).unwrap();
    e.next_fire_at = p.next;
    let o = occs(&e, &p.instants);
    assert!(s
        .update_event(&e, Some(now_ms()), &o, qhronos::store::By::actor("master"))
        .await
        .unwrap());
}

#[tokio::test]
async fn an_expansion_read_before_a_replan_writes_nothing_after_it() {
    let (s, _db, _dir) = store().await;
    let start = (now_ms() / 1000 + 3600) * 1000;
    let id = uuid::Uuid::now_v7();
    let mut e = event(id, start, "FREQ=SECONDLY;INTERVAL=10");
    let p = plan(&e, None, start + 30_000).unwrap();
    e.next_fire_at = p.next;
    s.create_event(
        &e,
        &occs(&e, &p.instants),
        None,
        qhronos::store::By::actor("master"),
    )
    .await
    .unwrap();
    // The expander reads the old rule; a PUT moves the series 5 s later before it writes.
    let wrote = expand_once(&*s, id, 60_000, || async {
        replan(&*s, id, start + 5_000, "FREQ=SECONDLY;INTERVAL=10", 30_000).await;
    })
    .await;
    assert_eq!(wrote, Some(false), "a stale expansion must be refused");
    let v = live(&*s, id).await;
    assert!(!v.is_empty());
    assert!(
        v.iter().all(|t| (t - start) % 10_000 == 5_000),
        "stray instants of the old rule: {v:?}"
    );
    // The watermark is the new plan's, so the next pass continues the new rule without a gap.
    assert_eq!(expand_once(&*s, id, 60_000, || async {}).await, Some(true));
    let v = live(&*s, id).await;
    let want: Vec<i64> = (0..v.len() as i64)
        .map(|k| start + 5_000 + k * 10_000)
        .collect();
    assert_eq!(v, want, "missing or stray instants");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_racing_expansions_leave_no_stray_or_missing_instant() {
    let (s, _db, _dir) = store().await;
    let start = (now_ms() / 1000 + 3600) * 1000;
    let id = uuid::Uuid::now_v7();
    let mut e = event(id, start, "FREQ=SECONDLY;INTERVAL=10");
    let p = plan(&e, None, start + 20_000).unwrap();
    e.next_fire_at = p.next;
    s.create_event(
        &e,
        &occs(&e, &p.instants),
        None,
        qhronos::store::By::actor("master"),
    )
    .await
    .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let expander = {
        let (s, stop) = (s.clone(), stop.clone());
        tokio::spawn(async move {
            let mut passes = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                expand_once(&*s, id, 20_000, || async {}).await;
                passes += 1;
            }
            passes
        })
    };
    // The rule alternates between two grids 5 s apart; every update re-plans.
    let iterations = 2_000;
    for i in 0..iterations {
        let offset = if i % 2 == 0 { 5_000 } else { 0 };
        replan(&*s, id, start + offset, "FREQ=SECONDLY;INTERVAL=10", 20_000).await;
        tokio::task::yield_now().await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let passes = expander.await.unwrap();
    assert!(passes > 100, "only {passes} expansions ran");
    // The last update put the series on the grid at +0 s (2,000 is even: i = 1,999 is odd).
    let v = live(&*s, id).await;
    let stray: Vec<i64> = v
        .iter()
        .copied()
        .filter(|t| (t - start) % 10_000 != 0)
        .collect();
    assert!(
        stray.is_empty(),
        "stray instants of an older plan: {stray:?}"
    );
    let (e, _) = s
        .events_to_expand(i64::MAX / 4, 1000)
        .await
        .unwrap()
        .into_iter()
        .find(|(e, _)| e.id == id)
        .unwrap();
    let next = e.next_fire_at.unwrap();
    assert_eq!((next - start) % 10_000, 0, "watermark on an older grid");
    let want: Vec<i64> = (0..)
        .map(|k| start + k * 10_000)
        .take_while(|&t| t < next)
        .collect();
    assert_eq!(v, want, "missing instants below the watermark");
}
