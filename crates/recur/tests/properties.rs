//! Property tests over randomly built rules, zones and sets.

use proptest::prelude::*;
use recur::{JsonSchedule, Recurrence, Rule, Timestamp};

const ZONES: [&str; 5] = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Sydney",
    "Asia/Kolkata",
];
const FREQS: [&str; 7] = [
    "SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY",
];
const DAYS: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

#[derive(Debug, Clone)]
struct Spec {
    start: i64,
    zone: usize,
    freq: usize,
    interval: u32,
    end: u8,
    count: u32,
    until_days: i64,
    months: Vec<u8>,
    month_days: Vec<i8>,
    days: Vec<(i8, usize)>,
    hours: Vec<u8>,
    minutes: Vec<u8>,
    set_pos: Vec<i16>,
    week_nos: Vec<i8>,
    wkst: usize,
}

fn nonzero(lo: i8, hi: i8) -> impl Strategy<Value = i8> {
    (lo..=hi).prop_filter("nonzero", |v| *v != 0)
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (
            // 1990..2040, whole seconds
            631_152_000i64..2_208_988_800,
            0..ZONES.len(),
            0..FREQS.len(),
            1u32..4,
            0u8..3,
            1u32..40,
            0i64..3000,
        ),
        (
            prop::collection::vec(1u8..=12, 0..3),
            prop::collection::vec(nonzero(-31, 31), 0..3),
            prop::collection::vec((-5i8..=5, 0..7usize), 0..3),
            prop::collection::vec(0u8..24, 0..3),
            prop::collection::vec(0u8..60, 0..2),
            prop::collection::vec(prop_oneof![1i16..4, -3i16..0], 0..2),
            prop::collection::vec(nonzero(-53, 53), 0..2),
            0..7usize,
        ),
    )
        .prop_map(
            |(
                (start, zone, freq, interval, end, count, until_days),
                (months, month_days, days, hours, minutes, set_pos, week_nos, wkst),
            )| Spec {
                start,
                zone,
                freq,
                interval,
                end,
                count,
                until_days,
                months,
                month_days,
                days,
                hours,
                minutes,
                set_pos,
                week_nos,
                wkst,
            },
        )
}

fn join<T: ToString>(v: &[T]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Renders a spec as RRULE text, leaving out combinations RFC 5545 forbids.
fn render(s: &Spec) -> String {
    let freq = FREQS[s.freq];
    let mut out = format!("FREQ={freq};INTERVAL={}", s.interval);
    match s.end {
        1 => out.push_str(&format!(";COUNT={}", s.count)),
        2 => {
            let until = Timestamp::from_second(s.start + s.until_days * 86_400 / 4).unwrap();
            out.push_str(&format!(";UNTIL={}", until.strftime("%Y%m%dT%H%M%SZ")));
        }
        _ => {}
    }
    let ordinals_ok = matches!(freq, "MONTHLY" | "YEARLY");
    let yearly = freq == "YEARLY";
    if !s.months.is_empty() {
        out.push_str(&format!(";BYMONTH={}", join(&s.months)));
    }
    if yearly && !s.week_nos.is_empty() {
        out.push_str(&format!(";BYWEEKNO={}", join(&s.week_nos)));
    }
    if freq != "WEEKLY" && !s.month_days.is_empty() {
        out.push_str(&format!(";BYMONTHDAY={}", join(&s.month_days)));
    }
    if !s.days.is_empty() {
        let with_ord = ordinals_ok && (!yearly || s.week_nos.is_empty());
        let days: Vec<String> = s
            .days
            .iter()
            .map(|&(n, d)| {
                if with_ord && n != 0 {
                    format!("{n}{}", DAYS[d])
                } else {
                    DAYS[d].to_string()
                }
            })
            .collect();
        out.push_str(&format!(";BYDAY={}", days.join(",")));
    }
    if !s.hours.is_empty() {
        out.push_str(&format!(";BYHOUR={}", join(&s.hours)));
    }
    if !s.minutes.is_empty() {
        out.push_str(&format!(";BYMINUTE={}", join(&s.minutes)));
    }
    if !s.set_pos.is_empty() && out.contains(";BY") {
        out.push_str(&format!(";BYSETPOS={}", join(&s.set_pos)));
    }
    out.push_str(&format!(";WKST={}", DAYS[s.wkst]));
    out
}

/// The rule and its recurrence, when the spec is a valid, satisfiable rule.
fn build(s: &Spec, ex: Vec<Timestamp>, rd: Vec<Timestamp>) -> Option<(Rule, Recurrence)> {
    let rule = Rule::parse(&render(s)).ok()?;
    let start = Timestamp::from_second(s.start).unwrap();
    let rec = Recurrence::new(start, ZONES[s.zone], Some(rule.clone()), ex, rd).ok()?;
    Some((rule, rec))
}

const N: usize = 40;

proptest! {
    // 32 cases keep the debug-build run short; set PROPTEST_CASES for a longer soak.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32),
        ..ProptestConfig::default()
    })]

    #[test]
    fn ascending_unique_bounded(s in spec()) {
        let Some((rule, rec)) = build(&s, vec![], vec![]) else { return Ok(()) };
        let start = rec.dtstart();
        let v: Vec<Timestamp> = rec.iter_after(None).take(N).collect();
        prop_assert_eq!(v.first().copied(), Some(start), "DTSTART is the first instance");
        prop_assert!(v.windows(2).all(|w| w[0] < w[1]), "not ascending/unique: {:?}", v);
        prop_assert!(v.iter().all(|&t| t >= start));
        if let Some(c) = rule.count() {
            let all: Vec<Timestamp> = rec.iter_after(None).take(c as usize + 5).collect();
            prop_assert!(all.len() <= c as usize, "{} > COUNT {}", all.len(), c);
        }
        if let Some(recur::Until::Instant(u)) = rule.until() {
            prop_assert!(v.iter().skip(1).all(|&t| t <= u), "past UNTIL: {:?}", v);
        }
    }

    #[test]
    fn skipping_ahead_matches_walking(s in spec(), pick in 0usize..N, nudge in -5i64..5) {
        let Some((_, rec)) = build(&s, vec![], vec![]) else { return Ok(()) };
        let all: Vec<Timestamp> = rec.iter_after(None).take(N + 10).collect();
        let Some(&anchor) = all.get(pick.min(all.len().saturating_sub(1))) else { return Ok(()) };
        let after = Timestamp::from_second(anchor.as_second() + nudge).unwrap();
        let want: Vec<Timestamp> = all.iter().copied().filter(|&t| t > after).take(5).collect();
        let got: Vec<Timestamp> = rec.iter_after(Some(after)).take(want.len()).collect();
        prop_assert_eq!(got, want, "after {}", after);
    }

    #[test]
    fn exdates_removed_rdates_added(s in spec(), ex_pick in prop::collection::vec(0usize..N, 0..5),
                                    rd_offsets in prop::collection::vec(0i64..5_000_000, 0..4)) {
        let Some((_, plain)) = build(&s, vec![], vec![]) else { return Ok(()) };
        let base: Vec<Timestamp> = plain.iter_after(None).take(N).collect();
        let ex: Vec<Timestamp> = ex_pick.iter().filter_map(|&i| base.get(i).copied()).collect();
        let rd: Vec<Timestamp> = rd_offsets.iter()
            .map(|&o| Timestamp::from_second(s.start + o).unwrap())
            .collect();
        let Some((_, rec)) = build(&s, ex.clone(), rd.clone()) else { return Ok(()) };
        let horizon = base.last().copied().unwrap_or(rec.dtstart());
        let got: Vec<Timestamp> = rec.iter_after(None).take_while(|&t| t <= horizon).collect();
        for t in &ex {
            prop_assert!(!got.contains(t), "exdate {} present", t);
        }
        for t in rd.iter().filter(|&&t| t <= horizon && !ex.contains(&t)) {
            prop_assert!(got.contains(t), "rdate {} missing", t);
        }
        let mut want: Vec<Timestamp> = base.iter().chain(rd.iter()).copied()
            .filter(|t| !ex.contains(t) && *t <= horizon).collect();
        want.sort();
        want.dedup();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn text_and_json_forms_round_trip(s in spec()) {
        let Ok(rule) = Rule::parse(&render(&s)) else { return Ok(()) };
        let text = rule.to_rrule_string();
        let reparsed = Rule::parse(&text);
        prop_assert_eq!(reparsed.as_ref(), Ok(&rule), "{}", text);
        let json = serde_json::to_string(&rule.to_json()).unwrap();
        let back: JsonSchedule = serde_json::from_str(&json).unwrap();
        let from_json = Rule::from_json(&back);
        prop_assert_eq!(from_json.as_ref(), Ok(&rule), "{}", json);
        let start = Timestamp::from_second(s.start).unwrap();
        let a = Recurrence::new(start, ZONES[s.zone], Some(rule), vec![], vec![]);
        let b = Recurrence::new(start, ZONES[s.zone], from_json.ok(), vec![], vec![]);
        if let (Ok(a), Ok(b)) = (a, b) {
            let x: Vec<Timestamp> = a.iter_after(None).take(N).collect();
            let y: Vec<Timestamp> = b.iter_after(None).take(N).collect();
            prop_assert_eq!(x, y);
        }
    }
}

/// Sub-daily rules with one instance per step whose other parts filter days and times of day:
/// the class `expand/count.rs` counts arithmetically, in zones with DST changes at 02:00/03:00
/// (Berlin, New York), at midnight (Sao Paulo, until 2019) and of 30 minutes (Lord Howe).
#[derive(Debug, Clone)]
struct Counted {
    start: i64,
    zone: usize,
    freq: usize,
    interval: u32,
    months: Vec<u8>,
    month_days: Vec<i8>,
    days: Vec<usize>,
    year_days: Vec<i16>,
    hours: Vec<u8>,
    minutes: Vec<u8>,
    seconds: Vec<u8>,
    /// Seconds from DTSTART to `after`.
    ahead: i64,
}

const COUNTED_ZONES: [&str; 5] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Sao_Paulo",
    "Australia/Lord_Howe",
];

fn counted() -> impl Strategy<Value = Counted> {
    (
        // 1995..2035
        788_918_400i64..2_051_222_400,
        0..COUNTED_ZONES.len(),
        0usize..3,
        1u32..400,
        prop::collection::vec(1u8..=12, 0..4),
        prop::collection::vec(nonzero(-31, 31), 0..3),
        prop::collection::vec(0..7usize, 0..3),
        prop::collection::vec(prop_oneof![1i16..366, -366i16..-1], 0..2),
        (
            prop::collection::vec(0u8..24, 0..4),
            prop::collection::vec(0u8..60, 0..3),
            prop::collection::vec(0u8..61, 0..3),
            // Up to three years ahead (capped at 100,000 steps), so whole months and offset
            // changes lie between DTSTART and `after`.
            prop_oneof![0i64..1_000_000, 0i64..100_000_000],
        ),
    )
        .prop_map(
            |(
                start,
                zone,
                freq,
                interval,
                months,
                month_days,
                days,
                year_days,
                (hours, minutes, seconds, ahead),
            )| Counted {
                start,
                zone,
                freq,
                interval,
                months,
                month_days,
                days,
                year_days,
                hours,
                minutes,
                seconds,
                ahead,
            },
        )
}

impl Counted {
    fn render(&self) -> String {
        let freq = ["SECONDLY", "MINUTELY", "HOURLY"][self.freq];
        let mut out = format!("FREQ={freq};INTERVAL={};COUNT=4000000000", self.interval);
        if !self.months.is_empty() {
            out.push_str(&format!(";BYMONTH={}", join(&self.months)));
        }
        if !self.month_days.is_empty() {
            out.push_str(&format!(";BYMONTHDAY={}", join(&self.month_days)));
        }
        if !self.year_days.is_empty() {
            out.push_str(&format!(";BYYEARDAY={}", join(&self.year_days)));
        }
        if !self.days.is_empty() {
            let d: Vec<&str> = self.days.iter().map(|&i| DAYS[i]).collect();
            out.push_str(&format!(";BYDAY={}", d.join(",")));
        }
        // Time-of-day filters (for MINUTELY, BYSECOND would expand, for HOURLY BYMINUTE too).
        if !self.hours.is_empty() {
            out.push_str(&format!(";BYHOUR={}", join(&self.hours)));
        }
        if self.freq < 2 && !self.minutes.is_empty() {
            out.push_str(&format!(";BYMINUTE={}", join(&self.minutes)));
        }
        if self.freq == 0 && !self.seconds.is_empty() {
            out.push_str(&format!(";BYSECOND={}", join(&self.seconds)));
        }
        out
    }

    fn after(&self) -> Timestamp {
        // At most 100,000 steps ahead, so the reference walk stays cheap.
        let unit = [1i64, 60, 3600][self.freq];
        let step = unit * i64::from(self.interval);
        Timestamp::from_second(self.start + self.ahead.min(step * 100_000)).unwrap()
    }
}

/// The first `n` instances after `after` by a plain walk from DTSTART, with the rule's count
/// (its mark) when the first of them is produced.
fn walk(rec: &Recurrence, after: Timestamp, n: usize) -> (Vec<Timestamp>, Option<recur::Mark>) {
    let mut c = rec.cursor(None, None, u64::MAX);
    let mut out = Vec::new();
    let mut mark = None;
    for t in c.by_ref() {
        if t > after {
            out.push(t);
            if out.len() == n {
                break;
            }
        }
    }
    if let Some(&first) = out.first() {
        let mut c2 = rec.cursor(None, None, u64::MAX);
        for t in c2.by_ref() {
            if t == first {
                mark = c2.mark();
                break;
            }
        }
    }
    (out, mark)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    /// The arithmetic count of a COUNT rule's instances before `after` numbers them exactly as
    /// the walk from DTSTART does (same next instants, same index), across DST changes.
    #[test]
    fn counting_ahead_equals_a_plain_walk(c in counted()) {
        let Ok(rule) = Rule::parse(&c.render()) else { return Ok(()) };
        let start = Timestamp::from_second(c.start).unwrap();
        let Ok(rec) = Recurrence::new(start, COUNTED_ZONES[c.zone], Some(rule), vec![], vec![])
        else { return Ok(()) };
        let after = c.after();
        let (want, want_mark) = walk(&rec, after, 5);
        let mut fast = rec.cursor(Some(after), None, u64::MAX);
        let first = fast.next();
        let got_mark = fast.mark();
        let mut got: Vec<Timestamp> = first.into_iter().collect();
        got.extend(fast.by_ref().take(want.len().saturating_sub(1)));
        prop_assert_eq!(&got, &want, "{} in {} after {}", c.render(), COUNTED_ZONES[c.zone], after);
        if !want.is_empty() {
            prop_assert_eq!(got_mark, want_mark, "{} in {}", c.render(), COUNTED_ZONES[c.zone]);
        }
    }

    /// Resuming from a mark taken anywhere in the series gives what the walk gives, for every
    /// rule class (COUNT rules with BY parts included) and every zone of the suite.
    #[test]
    fn resuming_from_a_mark_equals_a_plain_walk(s in spec(), pick in 0usize..N, nudge in 0i64..5) {
        let mut s = s;
        s.end = 1;
        s.count = s.count.max(20) * 3;
        let Some((_, rec)) = build(&s, vec![], vec![]) else { return Ok(()) };
        let mut c = rec.cursor(None, None, u64::MAX);
        let all: Vec<Timestamp> = c.by_ref().take(N + 10).collect();
        let Some(&anchor) = all.get(pick.min(all.len().saturating_sub(1))) else { return Ok(()) };
        let mut m = rec.cursor(None, None, u64::MAX);
        for t in m.by_ref() {
            if t == anchor {
                break;
            }
        }
        let mark = m.mark();
        prop_assert_eq!(mark.map(|m| m.at), Some(anchor));
        let after = Timestamp::from_second(anchor.as_second() + nudge).unwrap();
        let want: Vec<Timestamp> = all.iter().copied().filter(|&t| t > after).take(5).collect();
        let got: Vec<Timestamp> = rec.cursor(Some(after), mark, u64::MAX).take(want.len()).collect();
        prop_assert_eq!(got, want, "after {}", after);
    }
}

#[test]
fn the_budget_ends_a_costly_walk_with_an_error_naming_count() {
    // A sub-daily rule that expands each hour is walked step by step where the zone changes
    // its offset by half an hour (Lord Howe): 1.1 million hours from 1900.
    let rule = Rule::parse("FREQ=HOURLY;BYMINUTE=0,30;COUNT=4000000000").unwrap();
    let start: Timestamp = "1900-01-01T00:00:00Z".parse().unwrap();
    let rec = Recurrence::new(start, "Australia/Lord_Howe", Some(rule), vec![], vec![]).unwrap();
    let after: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut c = rec.cursor(Some(after), None, 10_000);
    assert_eq!(c.next(), None);
    let err = c.check().unwrap_err().to_string();
    assert!(err.starts_with("COUNT=4000000000 is too costly"), "{err}");
    // The same question from a mark costs a few steps.
    let mark = recur::Mark {
        at: "2025-12-31T23:30:00Z".parse().unwrap(),
        index: 12_345,
    };
    let mut c = rec.cursor(Some(after), Some(mark), 10_000);
    assert_eq!(c.next(), Some("2026-01-01T00:30:00Z".parse().unwrap()));
    assert!(c.check().is_ok());
    // 00:00 (instance 12,346) is `after` itself: consumed, not returned.
    assert_eq!(c.mark().map(|m| m.index), Some(12_347));
}

#[test]
fn a_calendar_rule_with_by_parts_is_counted_without_walking() {
    // Mondays from 1900-01-01 (a Monday) to 2025-12-29: 46,018 days = 6,574 weeks, so
    // 2026-01-05 is instance 6,576.
    let rule = Rule::parse("FREQ=DAILY;BYDAY=MO;COUNT=4000000000").unwrap();
    let start: Timestamp = "1900-01-01T00:00:00Z".parse().unwrap();
    let rec = Recurrence::new(start, "UTC", Some(rule), vec![], vec![]).unwrap();
    let after: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut c = rec.cursor(Some(after), None, 100);
    assert_eq!(c.next(), Some("2026-01-05T00:00:00Z".parse().unwrap()));
    assert!(c.check().is_ok());
    assert_eq!(c.mark().map(|m| m.index), Some(6_576));
}

#[test]
fn the_issue_rule_is_counted_without_walking() {
    // 2026-01-01T00:00:00Z is 46,021 days = 3,976,214,400 s after 1900-01-01: instances 1
    // (DTSTART) to 3,976,214,401 lie at or before it, so the next one is number 3,976,214,402.
    let rule =
        Rule::parse("FREQ=SECONDLY;BYMONTH=1,2,3,4,5,6,7,8,9,10,11,12;COUNT=4000000000").unwrap();
    let start: Timestamp = "1900-01-01T00:00:00Z".parse().unwrap();
    let rec = Recurrence::new(start, "Europe/Berlin", Some(rule), vec![], vec![]).unwrap();
    let after: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let mut c = rec.cursor(Some(after), None, 100);
    assert_eq!(c.next(), Some("2026-01-01T00:00:01Z".parse().unwrap()));
    assert!(c.check().is_ok());
    assert_eq!(c.mark().map(|m| m.index), Some(3_976_214_402));
}

/// Whole months, whole weeks and whole segments between offset changes are counted without
/// looking at each day: each shortcut against the walk over two to three years.
#[test]
fn counting_whole_months_weeks_and_segments_equals_a_plain_walk() {
    let rules = [
        "FREQ=MINUTELY;INTERVAL=30;BYMONTH=1,3,11;COUNT=4000000000",
        "FREQ=MINUTELY;INTERVAL=30;BYMONTHDAY=1,-1,15,31;COUNT=4000000000",
        "FREQ=MINUTELY;INTERVAL=30;BYMONTH=2,10;BYMONTHDAY=29,-3;COUNT=4000000000",
        "FREQ=HOURLY;BYDAY=MO,SA;COUNT=4000000000",
        "FREQ=HOURLY;INTERVAL=3;BYDAY=SU;BYHOUR=1,2,3,4;COUNT=4000000000",
        "FREQ=MINUTELY;INTERVAL=45;BYHOUR=0,1,2,3,23;COUNT=4000000000",
        "FREQ=HOURLY;INTERVAL=7;BYMONTH=3,10;BYHOUR=2;COUNT=4000000000",
        "FREQ=HOURLY;BYYEARDAY=1,-1,60;COUNT=4000000000",
    ];
    let start: Timestamp = "2015-01-01T00:00:00Z".parse().unwrap();
    for zone in COUNTED_ZONES {
        for text in rules {
            let rule = Rule::parse(text).unwrap();
            let rec = Recurrence::new(start, zone, Some(rule), vec![], vec![]).unwrap();
            for days in [400, 1000] {
                let after =
                    Timestamp::from_second(start.as_second() + days * 86_400 + 1234).unwrap();
                let (want, want_mark) = walk(&rec, after, 3);
                let mut fast = rec.cursor(Some(after), None, u64::MAX);
                let got: Vec<Timestamp> = fast.by_ref().take(1).collect();
                assert_eq!(got, want[..1], "{text} in {zone}");
                assert_eq!(fast.mark(), want_mark, "{text} in {zone} after {after}");
            }
        }
    }
}
