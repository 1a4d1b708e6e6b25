//! Analytics: rollups written with the outcomes (`record_outcomes`, `settle_claim`,
//! `expire_claims`, `save_expansion`), read by `analytics`, purged by `purge_analytics`.

use qhronos::domain::event::Event;
use qhronos::domain::Millis;
use qhronos::store::*;
use serde_json::json;

use crate::fixtures::*;

crate::conformance!(
    outcomes_are_counted_exactly_in_their_minutes_and_hours,
    tags_and_events_select_their_own_rows,
    a_fenced_out_outcome_counts_nothing,
    missed_instants_and_misfires_are_due_and_missed,
    pull_settlements_and_expiries_are_counted,
    hours_merge_into_days_and_sketches_merge_into_percentiles,
    purge_removes_only_rows_older_than_the_cut_off,
);

/// The first whole hour after `T0`: buckets then start at known instants.
const H0: Millis = T0 + (HOUR - T0 % HOUR);

fn tagged(at: Millis, tag: &str, url: &str) -> Event {
    let mut b = body(at);
    b["tags"] = json!([tag]);
    b["action"] = json!({"type": "webhook", "params": {"url": url}});
    event(b)
}

fn q(from: Millis, to: Millis, g: Granularity, subjects: Subjects) -> AnalyticsQuery {
    AnalyticsQuery {
        from,
        to,
        granularity: g,
        subjects,
        top: 10,
    }
}

async fn read(s: &dyn Store, a: AnalyticsQuery) -> Analytics {
    s.analytics(&a).await.expect("analytics")
}

/// (due, delivered, failed_attempts, retried, failed, missed) of a bucket.
fn counts(b: &BucketStats) -> (i64, i64, i64, i64, i64, i64) {
    (
        b.due,
        b.delivered,
        b.failed_attempts,
        b.retried,
        b.failed,
        b.missed,
    )
}

/// Two events due at `H0`: `ok` delivers on its first attempt 2 s late; `bad` answers 500,
/// is retried and fails for good a minute later.
async fn deliver_some(s: &dyn Store) -> (Event, Event) {
    let ok = tagged(H0, "a", "https://ok.example/hook?secret=1");
    let bad = tagged(H0, "b", "https://user:pw@bad.example/in/x?token=s3cret");
    create(s, &ok, &[occ(&ok, H0)]).await;
    create(s, &bad, &[occ(&bad, H0)]).await;
    let c = claim(s, Claim::at("n", 1, H0)).await;
    assert_eq!(c.len(), 2);
    let of = |e: &Event| {
        c.iter()
            .find(|c| c.occ.event_id == e.id)
            .expect("claimed")
            .clone()
    };
    let (c_ok, c_bad) = (of(&ok), of(&bad));
    record(
        s,
        "n",
        &[
            attempted(&c_ok, 200, Next::Completed, H0 + 2 * SEC),
            attempted(&c_bad, 500, Next::Retry(H0 + MIN), H0 + 3 * SEC),
        ],
        H0 + 4 * SEC,
    )
    .await;
    let c = claim(s, Claim::at("n", 2, H0 + MIN)).await;
    assert_eq!(c.len(), 1);
    record(
        s,
        "n",
        &[attempted(&c[0], 500, Next::Failed, H0 + MIN + SEC)],
        H0 + MIN + 2 * SEC,
    )
    .await;
    (ok, bad)
}

async fn outcomes_are_counted_exactly_in_their_minutes_and_hours(s: &dyn Store) {
    deliver_some(s).await;
    let m = read(s, q(H0, H0 + 3 * MIN, Granularity::Minute, Subjects::All)).await;
    assert_eq!(
        m.buckets.iter().map(|b| b.start).collect::<Vec<_>>(),
        vec![H0, H0 + MIN, H0 + 2 * MIN],
        "every bucket of the range, empty ones too"
    );
    assert_eq!(counts(&m.buckets[0]), (2, 1, 1, 1, 0, 0));
    assert_eq!(counts(&m.buckets[1]), (0, 0, 1, 0, 1, 0));
    assert_eq!(counts(&m.buckets[2]), (0, 0, 0, 0, 0, 0));
    // Lateness of the first attempts (2 s and 3 s), durations of every attempt (7 ms).
    assert_eq!(m.buckets[0].lateness.count(), 2);
    let p50 = m.buckets[0].lateness.quantile(0.5).expect("lateness") as f64;
    assert!((p50 - 2_000.0).abs() / 2_000.0 <= RELATIVE, "p50 {p50}");
    assert_eq!(m.buckets[0].duration.quantile(0.99), Some(7));
    assert_eq!(m.buckets[1].duration.count(), 1);
    assert_eq!(m.buckets[2].lateness.quantile(0.5), None);

    let h = read(
        s,
        q(
            H0 + 10 * SEC,
            H0 + 20 * SEC,
            Granularity::Hour,
            Subjects::All,
        ),
    )
    .await;
    assert_eq!(h.buckets.len(), 1, "the range is widened to whole buckets");
    assert_eq!(h.buckets[0].start, H0);
    assert_eq!(counts(&h.buckets[0]), (2, 1, 2, 1, 1, 0));
    assert_eq!(h.buckets[0].duration.count(), 3);
    assert_eq!(
        h.top_failing_targets,
        vec![FailingTarget {
            target: "bad.example/in/x".into(),
            failed: 2,
            last_error: Some("HTTP 500".into()),
        }],
        "host and path only: no credentials, no query"
    );
    let before = read(s, q(H0 - HOUR, H0, Granularity::Hour, Subjects::All)).await;
    assert_eq!(counts(&before.buckets[0]), (0, 0, 0, 0, 0, 0));
    assert!(before.top_failing_targets.is_empty());
}

const RELATIVE: f64 = qhronos::store::analytics::RELATIVE_ERROR;

async fn tags_and_events_select_their_own_rows(s: &dyn Store) {
    let (ok, bad) = deliver_some(s).await;
    let of = |sub| q(H0, H0 + HOUR, Granularity::Hour, sub);
    let a = read(s, of(Subjects::Tags(vec!["a".into()]))).await;
    assert_eq!(counts(&a.buckets[0]), (1, 1, 0, 0, 0, 0));
    assert!(a.top_failing_targets.is_empty());
    let b = read(s, of(Subjects::Tags(vec!["b".into()]))).await;
    assert_eq!(counts(&b.buckets[0]), (1, 0, 2, 1, 1, 0));
    assert_eq!(b.top_failing_targets.len(), 1);
    let both = read(s, of(Subjects::Tags(vec!["a".into(), "b".into()]))).await;
    assert_eq!(counts(&both.buckets[0]), (2, 1, 2, 1, 1, 0));
    let none = read(s, of(Subjects::Tags(vec!["zzz".into()]))).await;
    assert_eq!(counts(&none.buckets[0]), (0, 0, 0, 0, 0, 0));
    let one = read(s, of(Subjects::Event(ok.id))).await;
    assert_eq!(counts(&one.buckets[0]), (1, 1, 0, 0, 0, 0));
    let other = read(s, of(Subjects::Event(bad.id))).await;
    assert_eq!(counts(&other.buckets[0]), (1, 0, 2, 1, 1, 0));
    assert_eq!(other.top_failing_targets[0].failed, 2);
}

async fn a_fenced_out_outcome_counts_nothing(s: &dyn Store) {
    let e = one_time(H0);
    create(s, &e, &[occ(&e, H0)]).await;
    let old = claim(s, Claim::at("node-a", 1, H0)).await;
    let new = claim(s, Claim::at("node-b", 2, H0 + 31 * SEC).taking_over()).await;
    assert_eq!(new.len(), 1);
    // node-a's late outcome (its claim was taken over) and a stale misfire skip.
    record(
        s,
        "node-a",
        &[attempted(&old[0], 200, Next::Completed, H0 + 32 * SEC)],
        H0 + 33 * SEC,
    )
    .await;
    record(
        s,
        "node-a",
        &[Outcome::Missed {
            occurrence_id: old[0].occ.id,
            event_id: e.id,
            scheduled_at: old[0].occ.scheduled_at,
            token: old[0].token,
        }],
        H0 + 33 * SEC,
    )
    .await;
    let h = read(s, q(H0, H0 + HOUR, Granularity::Hour, Subjects::All)).await;
    assert_eq!(counts(&h.buckets[0]), (0, 0, 0, 0, 0, 0));
    // The holder's outcome counts, once.
    record(
        s,
        "node-b",
        &[attempted(&new[0], 200, Next::Completed, H0 + 34 * SEC)],
        H0 + 35 * SEC,
    )
    .await;
    record(
        s,
        "node-b",
        &[attempted(&new[0], 200, Next::Completed, H0 + 34 * SEC)],
        H0 + 36 * SEC,
    )
    .await;
    let h = read(s, q(H0, H0 + HOUR, Granularity::Hour, Subjects::All)).await;
    assert_eq!(counts(&h.buckets[0]), (1, 1, 0, 0, 0, 0));
}

async fn missed_instants_and_misfires_are_due_and_missed(s: &dyn Store) {
    // The expander skips two instants older than the catch-up window.
    let series = hourly(H0, H0 + HOUR);
    create(s, &series, &[]).await;
    let read_back = s.events_to_expand(H0 + 4 * HOUR, 10).await.expect("expand");
    let gen = read_back[0].1.gen;
    let missed = [
        (
            occ(&series, H0),
            "older than the catch-up window".to_string(),
        ),
        (
            occ(&series, H0 + HOUR),
            "older than the catch-up window".to_string(),
        ),
    ];
    let x = Expansion {
        gen,
        occurrences: &[],
        missed: &missed,
        next_fire_at: Some(H0 + 5 * HOUR),
        mark: None,
    };
    assert!(s
        .save_expansion(series.id, &x, H0 + 4 * HOUR)
        .await
        .expect("save"));
    // Written again (a retried expansion), the instants exist: nothing counts twice.
    let gen = s.events_to_expand(H0 + 6 * HOUR, 10).await.expect("expand")[0]
        .1
        .gen;
    assert!(s
        .save_expansion(series.id, &Expansion { gen, ..x }, H0 + 4 * HOUR)
        .await
        .expect("save"));
    // The dispatcher's misfire policy skips a claimed one.
    let once = one_time(H0 + 2 * HOUR);
    create(s, &once, &[occ(&once, H0 + 2 * HOUR)]).await;
    let c = claim(s, Claim::at("n", 1, H0 + 2 * HOUR + 5 * MIN)).await;
    assert_eq!(c.len(), 1);
    record(
        s,
        "n",
        &[Outcome::Missed {
            occurrence_id: c[0].occ.id,
            event_id: once.id,
            scheduled_at: c[0].occ.scheduled_at,
            token: c[0].token,
        }],
        H0 + 2 * HOUR + 5 * MIN,
    )
    .await;
    let h = read(s, q(H0, H0 + 3 * HOUR, Granularity::Hour, Subjects::All)).await;
    let got: Vec<_> = h.buckets.iter().map(counts).collect();
    assert_eq!(
        got,
        vec![(1, 0, 0, 0, 0, 1), (1, 0, 0, 0, 0, 1), (1, 0, 0, 0, 0, 1)]
    );
    let series_only = read(
        s,
        q(
            H0,
            H0 + 3 * HOUR,
            Granularity::Day,
            Subjects::Event(series.id),
        ),
    )
    .await;
    let due: i64 = series_only.buckets.iter().map(|b| b.due).sum();
    let missed: i64 = series_only.buckets.iter().map(|b| b.missed).sum();
    assert_eq!((due, missed), (2, 2));
}

async fn pull_settlements_and_expiries_are_counted(s: &dyn Store) {
    let e = pull(H0, "jobs");
    let f = pull(H0, "jobs");
    create(s, &e, &[occ(&e, H0)]).await;
    create(s, &f, &[occ(&f, H0)]).await;
    let got = s
        .claim_queue("jobs", &[], 2, H0 + 30 * SEC, H0 + SEC)
        .await
        .expect("claim");
    assert_eq!(got.len(), 2);
    let (acked, nacked) = (&got[0], &got[1]);
    // One acknowledged after 4 s; the other refused (nack), retried later.
    assert_eq!(
        s.settle_claim(
            acked.0.occ.id,
            &acked.1,
            None,
            Next::Completed,
            H0 + 5 * SEC
        )
        .await
        .expect("settle"),
        OccChange::Done
    );
    assert_eq!(
        s.settle_claim(
            nacked.0.occ.id,
            &nacked.1,
            Some("client said no"),
            Next::Retry(H0 + 10 * SEC),
            H0 + 6 * SEC
        )
        .await
        .expect("settle"),
        OccChange::Done
    );
    // Claimed again and left to expire.
    let again = s
        .claim_queue("jobs", &[], 2, H0 + 40 * SEC, H0 + 10 * SEC)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(s.expire_claims(H0 + 41 * SEC).await.expect("expire"), 1);
    let h = read(s, q(H0, H0 + HOUR, Granularity::Hour, Subjects::All)).await;
    assert_eq!(counts(&h.buckets[0]), (2, 1, 2, 2, 0, 0));
    // The ack took 4 s; the first attempts started 1 s late.
    assert_eq!(h.buckets[0].lateness.count(), 2);
    let late = h.buckets[0].lateness.quantile(0.99).expect("lateness") as f64;
    assert!(
        (late - 1_000.0).abs() / 1_000.0 <= RELATIVE,
        "lateness {late}"
    );
    assert_eq!(h.buckets[0].duration.count(), 3);
    assert_eq!(
        h.top_failing_targets,
        vec![FailingTarget {
            target: "queue:jobs".into(),
            failed: 2,
            last_error: Some("visibility timeout expired".into()),
        }]
    );
}

async fn hours_merge_into_days_and_sketches_merge_into_percentiles(s: &dyn Store) {
    let e = one_time(H0);
    create(s, &e, &[]).await;
    let day0 = H0 - H0 % DAY;
    // 48 hours of deliveries, one every 10 minutes, durations 1..=1000 ms spread over them,
    // written in three interleaved rollups, so every hour's row is written three times and its
    // sketches merged by the store.
    let mut parts = [Rollup::default(), Rollup::default(), Rollup::default()];
    let mut durations = Vec::new();
    for i in 0..(48 * 6) {
        let at = day0 + i * 10 * MIN;
        let d = (i * 7919) % 1000 + 1;
        durations.push(d);
        parts[(i % 3) as usize].attempt(e.id, at, 1, at, d, AttemptEnd::Delivered, None);
    }
    for r in parts {
        s.add_rollup(r).await.expect("add");
    }
    let d = read(s, q(day0, day0 + 2 * DAY, Granularity::Day, Subjects::All)).await;
    assert_eq!(d.buckets.len(), 2);
    for b in &d.buckets {
        assert_eq!((b.due, b.delivered), (144, 144));
    }
    let h = read(s, q(day0, day0 + 2 * DAY, Granularity::Hour, Subjects::All)).await;
    assert_eq!(h.buckets.len(), 48);
    assert!(h.buckets.iter().all(|b| b.delivered == 6));
    let m = read(s, q(day0, day0 + HOUR, Granularity::Minute, Subjects::All)).await;
    assert_eq!(m.buckets.len(), 60);
    assert_eq!(m.buckets.iter().map(|b| b.delivered).sum::<i64>(), 6);
    // Day 0's p50 and p99 against the exact values.
    let mut first: Vec<i64> = durations[..144].to_vec();
    first.sort_unstable();
    for (qq, got) in [
        (0.5, d.buckets[0].duration.quantile(0.5)),
        (0.99, d.buckets[0].duration.quantile(0.99)),
    ] {
        let exact = first[(qq * 144.0_f64).ceil() as usize - 1] as f64;
        let got = got.expect("durations") as f64;
        assert!(
            (got - exact).abs() / exact <= RELATIVE + 1e-9,
            "q{qq}: {got} vs exact {exact}"
        );
    }
    // The merged sketch is the one the values make, bin for bin.
    let mut exact = Sketch::default();
    for d in &durations[..144] {
        exact.add(*d);
    }
    assert_eq!(d.buckets[0].duration, exact);
    assert_eq!(d.buckets[0].lateness.count(), 144);
}

async fn purge_removes_only_rows_older_than_the_cut_off(s: &dyn Store) {
    deliver_some(s).await;
    let all = |s| async move { read(s, q(H0, H0 + HOUR, Granularity::Hour, Subjects::All)).await };
    // A cut-off at the bucket's start keeps it.
    assert_eq!(s.purge_analytics(H0, 2).await.expect("purge"), 0);
    assert_eq!(all(s).await.buckets[0].due, 2);
    // After it, every row of the hour and its minutes goes, in batches of 2.
    let n = s.purge_analytics(H0 + HOUR + 1, 2).await.expect("purge");
    // Cells: minute H0 (ok, bad, all), minute H0+1m (bad, all), hour H0 (ok, bad, all); the
    // failing target's hour for `bad` and for every event.
    assert_eq!(n, 3 + 2 + 3 + 2, "cells and targets removed");
    let after = all(s).await;
    assert_eq!(counts(&after.buckets[0]), (0, 0, 0, 0, 0, 0));
    assert!(after.top_failing_targets.is_empty());
    assert_eq!(s.purge_analytics(H0 + HOUR + 1, 2).await.expect("purge"), 0);
}
