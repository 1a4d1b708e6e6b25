//! Timing report (run with `cargo test -p recur --release --test perf -- --ignored --nocapture`).
//! Ignored by default: timings in debug builds on a shared machine are not meaningful asserts.

use std::time::Instant;

use recur::{Recurrence, Rule, Timestamp};

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
#[ignore]
fn report_timings() {
    let start = t("2000-01-01T00:00:00Z");
    let now = t("2026-11-25T15:31:17Z");
    for (tz, rule) in [
        ("UTC", "FREQ=MINUTELY"),
        ("Europe/Berlin", "FREQ=MINUTELY"),
        (
            "Europe/Berlin",
            "FREQ=SECONDLY;BYHOUR=9;BYMINUTE=30;BYSECOND=15",
        ),
        ("America/New_York", "FREQ=DAILY;BYHOUR=9,17"),
        (
            "America/New_York",
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        ),
        ("UTC", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29"),
        (
            "UTC",
            "FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=23;BYMINUTE=59",
        ),
        ("UTC", "FREQ=MINUTELY;COUNT=20000000"),
        ("UTC", "FREQ=DAILY;BYDAY=MO;COUNT=1000000"),
    ] {
        let r = Rule::parse(rule).unwrap();
        let t0 = Instant::now();
        let rec = Recurrence::new(start, tz, Some(r), vec![], vec![]).unwrap();
        let built = t0.elapsed();
        let t1 = Instant::now();
        let next = rec.iter_after(Some(now)).next();
        let took = t1.elapsed();
        let t2 = Instant::now();
        let n = rec.iter_after(Some(now)).take(1000).count();
        println!(
            "{tz:<17} {rule:<60} new {built:>10.2?}  next {took:>10.2?} ({next:?})  1000 in {:>10.2?} ({n})",
            t2.elapsed()
        );
    }
    for rule in [
        "FREQ=DAILY;INTERVAL=7;BYDAY=TU",
        "FREQ=MONTHLY;BYMONTHDAY=13;BYDAY=1FR",
        "FREQ=YEARLY;BYMONTH=1;BYYEARDAY=60",
        "FREQ=YEARLY;BYWEEKNO=1;BYMONTH=6",
        "FREQ=HOURLY;INTERVAL=3;BYHOUR=1",
        "FREQ=SECONDLY;INTERVAL=2;BYSECOND=1",
        "FREQ=MINUTELY;INTERVAL=2;BYMINUTE=1",
    ] {
        let r = Rule::parse(rule).unwrap();
        let t0 = Instant::now();
        let res = Recurrence::new(start, "Europe/Berlin", Some(r), vec![], vec![]);
        println!(
            "impossible {rule:<45} rejected={} in {:?}",
            res.is_err(),
            t0.elapsed()
        );
    }
}
