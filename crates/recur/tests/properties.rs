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
