//! Calendar COUNT rules (DAILY..YEARLY with BY parts) counted by year shape number their
//! instances exactly as the plain walk from DTSTART does, across DST gaps and historic offset
//! changes.

use proptest::prelude::*;
use recur::{Recurrence, Rule, Timestamp};

const FREQS: [&str; 7] = [
    "SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY",
];
const DAYS: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

fn nonzero(lo: i8, hi: i8) -> impl Strategy<Value = i8> {
    (lo..=hi).prop_filter("nonzero", |v| *v != 0)
}

fn join<T: ToString>(v: &[T]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The first `n` instances after `after` by a plain walk from DTSTART, with the rule's count
/// (its mark) when the first of them is produced.
fn walk(rec: &Recurrence, after: Timestamp, n: usize) -> (Vec<Timestamp>, Option<recur::Mark>) {
    let mut out = Vec::new();
    let mut mark = None;
    let mut c = rec.cursor(None, None, u64::MAX);
    while let Some(t) = c.next() {
        if t > after {
            if out.is_empty() {
                mark = c.mark();
            }
            out.push(t);
            if out.len() == n {
                break;
            }
        }
    }
    (out, mark)
}

/// Zones for calendar counts: DST both ways, a 30-minute change, historic offset changes and
/// midnight gaps (Moscow, Sao Paulo), a skipped day (Apia, 2011-12-30).
const CALENDAR_ZONES: [&str; 7] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Europe/Moscow",
    "America/Sao_Paulo",
    "Pacific/Apia",
];

fn calendar_rule() -> impl Strategy<Value = (String, i64, usize, i64)> {
    (
        (3usize..7, prop_oneof![4 => 1u32..4, 1 => 1u32..30]),
        prop::collection::vec(1u8..=12, 0..3),
        prop::collection::vec(nonzero(-31, 31), 0..3),
        prop::collection::vec(
            (prop_oneof![3 => Just(0i8), 1 => nonzero(-5, 5)], 0..7usize),
            0..3,
        ),
        (
            prop::collection::vec(nonzero(-100, 100), 0..2),
            prop::collection::vec(nonzero(-53, 53), 0..2),
        ),
        (
            // Often two adjacent night hours, so a gap moves one instance onto another.
            prop_oneof![
                2 => (0u8..4).prop_map(|h| vec![h, h + 1]),
                1 => Just(vec![23u8, 0]),
                1 => prop::collection::vec(0u8..24, 0..3),
            ],
            prop_oneof![
                2 => Just(vec![30u8]),
                1 => Just(vec![0u8, 30]),
                1 => prop::collection::vec(0u8..60, 0..3),
            ],
        ),
        (prop::collection::vec(nonzero(-6, 6), 0..3), 0..7usize),
        // DTSTART 1890..2030, zone, `after` up to 0.3 of the rule's reach ahead.
        (
            -2_524_521_600i64..1_893_456_000,
            0..CALENDAR_ZONES.len(),
            0.0f64..1.0,
        ),
    )
        .prop_map(
            |(
                (f, interval),
                months,
                mdays,
                days,
                (ydays, wnos),
                (hours, minutes),
                (setpos, wkst),
                (start, zone, ahead),
            )| {
                let mut out = format!("FREQ={};INTERVAL={interval};COUNT=4000000000", FREQS[f]);
                if !months.is_empty() {
                    out.push_str(&format!(";BYMONTH={}", join(&months)));
                }
                if !mdays.is_empty() && f != 4 {
                    out.push_str(&format!(";BYMONTHDAY={}", join(&mdays)));
                }
                if !days.is_empty() {
                    let d: Vec<String> = days
                        .iter()
                        .map(|&(n, d)| {
                            if n != 0 && f >= 5 {
                                format!("{n}{}", DAYS[d])
                            } else {
                                DAYS[d].to_string()
                            }
                        })
                        .collect();
                    out.push_str(&format!(";BYDAY={}", d.join(",")));
                }
                if f == 6 && !ydays.is_empty() {
                    out.push_str(&format!(";BYYEARDAY={}", join(&ydays)));
                }
                if f == 6 && !wnos.is_empty() {
                    out.push_str(&format!(";BYWEEKNO={}", join(&wnos)));
                }
                if !hours.is_empty() {
                    out.push_str(&format!(";BYHOUR={}", join(&hours)));
                }
                if !minutes.is_empty() {
                    out.push_str(&format!(";BYMINUTE={}", join(&minutes)));
                }
                if !setpos.is_empty() {
                    out.push_str(&format!(";BYSETPOS={}", join(&setpos)));
                }
                out.push_str(&format!(";WKST={}", DAYS[wkst]));
                // The reference walks from DTSTART: keep it to a few thousand periods.
                let reach = [0, 0, 0, 15, 60, 150, 250][f] as f64 * 31_556_952.0 * ahead;
                (out, start, zone, start + reach as i64)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    /// Calendar COUNT rules counted by year shape and corrected around DST gaps number their
    /// instances exactly as the walk from DTSTART does.
    #[test]
    fn counting_calendar_rules_equals_a_plain_walk((text, start, zone, after) in calendar_rule()) {
        let Ok(rule) = Rule::parse(&text) else { return Ok(()) };
        let start = Timestamp::from_second(start).unwrap();
        let Ok(rec) = Recurrence::new(start, CALENDAR_ZONES[zone], Some(rule), vec![], vec![])
        else { return Ok(()) };
        let after = Timestamp::from_second(after).unwrap();
        let (want, want_mark) = walk(&rec, after, 3);
        let mut fast = rec.cursor(Some(after), None, u64::MAX);
        let got: Vec<Timestamp> = fast.by_ref().take(1).collect();
        prop_assert_eq!(&got[..], &want[..want.len().min(1)], "{} in {} after {}", text, CALENDAR_ZONES[zone], after);
        if !want.is_empty() {
            prop_assert_eq!(fast.mark(), want_mark, "{} in {} after {}", text, CALENDAR_ZONES[zone], after);
        }
        // A second question, earlier, answered from what the plan kept from the first.
        let mid = Timestamp::from_second((start.as_second() + after.as_second()) / 2).unwrap();
        let (want, want_mark) = walk(&rec, mid, 1);
        let mut again = rec.cursor(Some(mid), None, u64::MAX);
        let got: Vec<Timestamp> = again.by_ref().take(1).collect();
        prop_assert_eq!(&got[..], &want[..], "{} in {} after {}", text, CALENDAR_ZONES[zone], mid);
        if !want.is_empty() {
            prop_assert_eq!(again.mark(), want_mark, "{} in {} after {}", text, CALENDAR_ZONES[zone], mid);
        }
    }
}

/// Instances that a DST gap moves onto other instances (or across a period boundary) are
/// counted once, as the walk does: 02:30 onto 03:30 in Berlin and New York, Lord Howe's
/// 30-minute gap, Sao Paulo's and Moscow's midnight gaps, Apia's skipped 2011-12-30.
#[test]
fn calendar_counts_across_gaps_equal_a_plain_walk() {
    let rules = [
        "FREQ=DAILY;BYHOUR=2,3;BYMINUTE=30;COUNT=4000000000",
        "FREQ=DAILY;BYHOUR=0,1,2;BYMINUTE=0,30;BYSETPOS=1,-1;COUNT=4000000000",
        "FREQ=WEEKLY;BYDAY=SU,SA;BYHOUR=0,2,3,23;BYMINUTE=0,30;COUNT=4000000000",
        "FREQ=MONTHLY;BYDAY=-1SU,1SU,2SU;BYHOUR=2,3;BYMINUTE=0,30;COUNT=4000000000",
        "FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=-1,1,30;BYHOUR=0,10;COUNT=4000000000",
        "FREQ=YEARLY;BYMONTH=3,10,11,12;BYDAY=SU,FR;BYHOUR=0,2,3,10;BYMINUTE=30;COUNT=4000000000",
        "FREQ=YEARLY;BYWEEKNO=1,13,-1;BYDAY=SU;BYHOUR=2,3;BYMINUTE=30;BYSETPOS=-1,2;COUNT=4000000000",
        "FREQ=DAILY;INTERVAL=3;BYHOUR=10;COUNT=4000000000",
    ];
    let cases = [
        ("1900-01-01T00:00:00Z", "2026-06-01T00:00:00Z"),
        ("1995-03-01T00:00:00Z", "2013-11-20T00:00:00Z"),
    ];
    for zone in CALENDAR_ZONES {
        for text in rules {
            let rule = Rule::parse(text).unwrap();
            for (start, after) in cases {
                let start: Timestamp = start.parse().unwrap();
                let after: Timestamp = after.parse().unwrap();
                let rec = Recurrence::new(start, zone, Some(rule.clone()), vec![], vec![]).unwrap();
                let (want, want_mark) = walk(&rec, after, 2);
                let mut fast = rec.cursor(Some(after), None, u64::MAX);
                let got: Vec<Timestamp> = fast.by_ref().take(1).collect();
                assert_eq!(got, want[..1], "{text} in {zone} after {after}");
                assert_eq!(fast.mark(), want_mark, "{text} in {zone} after {after}");
            }
        }
    }
}

fn sub_daily_rule() -> impl Strategy<Value = (String, i64, usize, i64)> {
    (
        (0usize..3, prop_oneof![3 => 1u32..4, 1 => 1u32..100]),
        prop::collection::vec(1u8..=12, 0..3),
        prop::collection::vec(nonzero(-31, 31), 0..2),
        prop::collection::vec(0..7usize, 0..3),
        prop::collection::vec(0u8..24, 0..3),
        prop_oneof![Just(vec![0u8, 30]), prop::collection::vec(0u8..60, 0..4)],
        prop::collection::vec(0u8..61, 0..3),
        prop::collection::vec(nonzero(-6, 6), 0..3),
        (
            -2_524_521_600i64..1_893_456_000,
            0..CALENDAR_ZONES.len(),
            0i64..60_000,
        ),
    )
        .prop_map(
            |(
                (f, interval),
                months,
                mdays,
                days,
                hours,
                minutes,
                seconds,
                setpos,
                (start, zone, ahead),
            )| {
                let mut out = format!("FREQ={};INTERVAL={interval};COUNT=4000000000", FREQS[f]);
                if !months.is_empty() {
                    out.push_str(&format!(";BYMONTH={}", join(&months)));
                }
                if !mdays.is_empty() {
                    out.push_str(&format!(";BYMONTHDAY={}", join(&mdays)));
                }
                if !days.is_empty() {
                    let d: Vec<&str> = days.iter().map(|&i| DAYS[i]).collect();
                    out.push_str(&format!(";BYDAY={}", d.join(",")));
                }
                if !hours.is_empty() {
                    out.push_str(&format!(";BYHOUR={}", join(&hours)));
                }
                if !minutes.is_empty() {
                    out.push_str(&format!(";BYMINUTE={}", join(&minutes)));
                }
                if !seconds.is_empty() {
                    out.push_str(&format!(";BYSECOND={}", join(&seconds)));
                }
                if !setpos.is_empty() {
                    out.push_str(&format!(";BYSETPOS={}", join(&setpos)));
                }
                // The reference walks from DTSTART: at most 60,000 steps ahead.
                let step = [1i64, 60, 3600][f] * i64::from(interval);
                (out, start, zone, start + ahead * step)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    /// Sub-daily COUNT rules that expand each step (BYMINUTE in HOURLY, BYSECOND in MINUTELY)
    /// or select in it (BYSETPOS) are counted as steps times the instances per step, exactly
    /// as the walk numbers them.
    #[test]
    fn counting_expanding_sub_daily_rules_equals_a_plain_walk((text, start, zone, after) in sub_daily_rule()) {
        let Ok(rule) = Rule::parse(&text) else { return Ok(()) };
        let start = Timestamp::from_second(start).unwrap();
        let Ok(rec) = Recurrence::new(start, CALENDAR_ZONES[zone], Some(rule), vec![], vec![])
        else { return Ok(()) };
        let after = Timestamp::from_second(after).unwrap();
        let (want, want_mark) = walk(&rec, after, 3);
        let mut fast = rec.cursor(Some(after), None, u64::MAX);
        let got: Vec<Timestamp> = fast.by_ref().take(1).collect();
        prop_assert_eq!(&got[..], &want[..want.len().min(1)], "{} in {} after {}", text, CALENDAR_ZONES[zone], after);
        if !want.is_empty() {
            prop_assert_eq!(fast.mark(), want_mark, "{} in {} after {}", text, CALENDAR_ZONES[zone], after);
        }
        // A second question, earlier, answered from what the plan kept from the first.
        let mid = Timestamp::from_second((start.as_second() + after.as_second()) / 2).unwrap();
        let (want, want_mark) = walk(&rec, mid, 1);
        let mut again = rec.cursor(Some(mid), None, u64::MAX);
        let got: Vec<Timestamp> = again.by_ref().take(1).collect();
        prop_assert_eq!(&got[..], &want[..], "{} in {} after {}", text, CALENDAR_ZONES[zone], mid);
        if !want.is_empty() {
            prop_assert_eq!(again.mark(), want_mark, "{} in {} after {}", text, CALENDAR_ZONES[zone], mid);
        }
    }
}

#[test]
fn an_hourly_rule_with_two_minutes_is_counted_from_1900_without_walking() {
    // 46,021 days = 1,104,504 hours from 1900-01-01 to 2026-01-01, two instances each: 00:00 of
    // 2026-01-01 is instance 2,209,009, so 00:30 is 2,209,010 (whole-hour offset changes only
    // in Berlin, so the same there).
    let rule = Rule::parse("FREQ=HOURLY;BYMINUTE=0,30;COUNT=4000000000").unwrap();
    let start: Timestamp = "1900-01-01T00:00:00Z".parse().unwrap();
    let after: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    for zone in ["UTC", "Europe/Berlin"] {
        let rec = Recurrence::new(start, zone, Some(rule.clone()), vec![], vec![]).unwrap();
        let mut c = rec.cursor(Some(after), None, 100);
        assert_eq!(
            c.next(),
            Some("2026-01-01T00:30:00Z".parse().unwrap()),
            "{zone}"
        );
        assert!(c.check().is_ok());
        assert_eq!(c.mark().map(|m| m.index), Some(2_209_010), "{zone}");
    }
}
