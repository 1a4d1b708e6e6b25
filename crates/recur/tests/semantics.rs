//! Behaviour beyond the conformance corpus: DST policy, sets, skipping ahead, bounded work.

use std::time::{Duration, Instant};

use recur::{Recurrence, Rule, Timestamp};

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn rec(start: &str, tz: &str, rule: &str) -> Recurrence {
    Recurrence::new(
        t(start),
        tz,
        Some(Rule::parse(rule).unwrap()),
        vec![],
        vec![],
    )
    .unwrap()
}

fn strs(v: &[Timestamp]) -> Vec<String> {
    v.iter().map(|t| t.to_string()).collect()
}

#[test]
fn no_rule_is_start_plus_rdates() {
    let r = Recurrence::new(
        t("2025-01-01T00:00:00Z"),
        "UTC",
        None,
        vec![t("2025-01-03T00:00:00Z")],
        vec![
            t("2025-01-03T00:00:00Z"),
            t("2025-01-02T00:00:00Z"),
            t("2024-01-01T00:00:00Z"),
        ],
    )
    .unwrap();
    assert!(!r.is_recurring());
    let all: Vec<_> = r.iter_after(None).collect();
    assert_eq!(strs(&all), ["2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z"]);
    let later: Vec<_> = r.iter_after(Some(t("2025-01-01T00:00:00Z"))).collect();
    assert_eq!(strs(&later), ["2025-01-02T00:00:00Z"]);
}

#[test]
fn count_is_counted_before_exdates_and_rdates_merge() {
    let r = Recurrence::new(
        t("2025-01-01T09:00:00Z"),
        "UTC",
        Some(Rule::parse("FREQ=DAILY;COUNT=3").unwrap()),
        vec![t("2025-01-02T09:00:00Z")],
        vec![t("2025-01-02T12:00:00Z"), t("2025-01-10T00:00:00Z")],
    )
    .unwrap();
    let all: Vec<_> = r.iter_after(None).collect();
    assert_eq!(
        strs(&all),
        [
            "2025-01-01T09:00:00Z",
            "2025-01-02T12:00:00Z",
            "2025-01-03T09:00:00Z",
            "2025-01-10T00:00:00Z"
        ]
    );
    let b = r.between(
        Some(t("2025-01-01T09:00:00Z")),
        t("2025-01-05T00:00:00Z"),
        10,
    );
    assert_eq!(strs(&b), ["2025-01-02T12:00:00Z", "2025-01-03T09:00:00Z"]);
}

#[test]
fn hourly_neither_skips_nor_doubles_at_fall_back() {
    let r = rec("2025-11-02T04:00:00Z", "America/New_York", "FREQ=HOURLY");
    let v: Vec<_> = r.iter_after(None).take(4).collect();
    assert_eq!(
        strs(&v),
        [
            "2025-11-02T04:00:00Z",
            "2025-11-02T05:00:00Z",
            "2025-11-02T06:00:00Z",
            "2025-11-02T07:00:00Z"
        ]
    );
    // BYHOUR filters on local time: 01:00 local occurs twice on that day and both are hours.
    let r = rec(
        "2025-11-01T05:00:00Z",
        "America/New_York",
        "FREQ=HOURLY;BYHOUR=1",
    );
    let v: Vec<_> = r.iter_after(None).take(3).collect();
    assert_eq!(
        strs(&v),
        [
            "2025-11-01T05:00:00Z",
            "2025-11-02T05:00:00Z",
            "2025-11-02T06:00:00Z"
        ]
    );
}

#[test]
fn daily_wall_clock_in_zone_and_until_date_is_inclusive() {
    let r = rec(
        "2025-03-28T08:00:00Z",
        "Europe/Berlin",
        "FREQ=DAILY;UNTIL=20250331",
    );
    let v: Vec<_> = r.iter_after(None).collect();
    assert_eq!(
        strs(&v),
        [
            "2025-03-28T08:00:00Z",
            "2025-03-29T08:00:00Z",
            "2025-03-30T07:00:00Z",
            "2025-03-31T07:00:00Z"
        ]
    );
}

#[test]
fn leap_day_rules_still_work_far_ahead() {
    let r = rec("2004-02-29T12:00:00Z", "UTC", "FREQ=YEARLY");
    let v = r.between(
        Some(t("2090-01-01T00:00:00Z")),
        t("2300-01-01T00:00:00Z"),
        3,
    );
    assert_eq!(
        strs(&v),
        [
            "2092-02-29T12:00:00Z",
            "2096-02-29T12:00:00Z",
            "2104-02-29T12:00:00Z"
        ]
    );
    let r = rec(
        "2000-01-01T00:00:00Z",
        "UTC",
        "FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=3;BYMINUTE=7",
    );
    let v: Vec<_> = r
        .iter_after(Some(t("2025-01-01T00:00:00Z")))
        .take(2)
        .collect();
    assert_eq!(strs(&v), ["2028-02-29T03:07:00Z", "2032-02-29T03:07:00Z"]);
}

fn timed<R>(f: impl FnOnce() -> R) -> (R, Duration) {
    let t0 = Instant::now();
    let r = f();
    (r, t0.elapsed())
}

#[test]
fn next_instance_far_from_start_is_fast() {
    let now = t("2026-11-25T15:31:17.5Z");
    for (rule, want) in [
        ("FREQ=MINUTELY", "2026-11-25T15:32:00Z"),
        ("FREQ=SECONDLY;INTERVAL=7", "2026-11-25T15:31:18Z"),
        ("FREQ=HOURLY;INTERVAL=5;BYMINUTE=30", "2026-11-25T20:30:00Z"),
        ("FREQ=DAILY;BYHOUR=9,17", "2026-11-25T17:00:00Z"),
        ("FREQ=WEEKLY;BYDAY=MO,FR", "2026-11-27T00:00:00Z"),
        (
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
            "2026-11-30T00:00:00Z",
        ),
        ("FREQ=YEARLY;BYMONTH=12;BYDAY=-1SU", "2026-12-27T00:00:00Z"),
        ("FREQ=MINUTELY;COUNT=100000000", "2026-11-25T15:32:00Z"),
    ] {
        let r = rec("2000-01-01T00:00:00Z", "UTC", rule);
        let (next, took) = timed(|| r.iter_after(Some(now)).next());
        assert_eq!(next.map(|t| t.to_string()).as_deref(), Some(want), "{rule}");
        assert!(took < Duration::from_millis(50), "{rule}: {took:?}");
        println!("{rule}: next after now in {took:?}");
    }
}

#[test]
fn work_is_bounded_for_rules_that_stop_producing() {
    // A sparse rule that ends by UNTIL must stop as soon as it passes UNTIL, not search on.
    let r = rec(
        "2000-01-01T00:00:00Z",
        "UTC",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;UNTIL=20010101T000000Z",
    );
    let (v, took) = timed(|| r.iter_after(None).collect::<Vec<_>>());
    assert_eq!(strs(&v), ["2000-01-01T00:00:00Z", "2000-02-29T00:00:00Z"]);
    assert!(took < Duration::from_millis(200), "{took:?}");
    // Past year 9999 the rule simply ends.
    let r = rec("9990-01-01T00:00:00Z", "UTC", "FREQ=YEARLY");
    assert!(r.iter_after(None).count() <= 10);
}

#[test]
fn types_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Recurrence>();
    assert_send_sync::<Rule>();
    assert_send_sync::<recur::RuleError>();
    assert_send_sync::<recur::JsonSchedule>();
}

#[test]
fn huge_intervals_end_cleanly() {
    for rule in [
        "FREQ=YEARLY;INTERVAL=4294967295",
        "FREQ=MONTHLY;INTERVAL=4294967295",
        "FREQ=WEEKLY;INTERVAL=4294967295",
        "FREQ=DAILY;INTERVAL=4294967295",
        "FREQ=HOURLY;INTERVAL=4294967295",
        "FREQ=SECONDLY;INTERVAL=4294967295;BYMINUTE=5",
    ] {
        let r = Recurrence::new(
            t("2000-01-01T00:00:00Z"),
            "UTC",
            Some(Rule::parse(rule).unwrap()),
            vec![],
            vec![],
        );
        if let Ok(r) = r {
            let v: Vec<_> = r.iter_after(None).take(5).collect();
            assert_eq!(v[0], t("2000-01-01T00:00:00Z"), "{rule}");
            assert!(v.len() <= 2, "{rule}: {v:?}");
            assert!(r
                .iter_after(Some(t("2500-01-01T00:00:00Z")))
                .next()
                .is_none());
        }
    }
}
