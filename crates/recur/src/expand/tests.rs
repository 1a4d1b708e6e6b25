use jiff::tz::TimeZone;

use super::*;
use crate::calendar::{days_in_month, days_in_year, weekday, Weeks};
use crate::rule::Rule;

fn local(t: Timestamp, tz: &TimeZone) -> (i64, i64, i64) {
    let c = local_civil(tz, t);
    (c.hour, c.minute, c.second)
}

/// Sub-daily rules whose BYHOUR/BYMINUTE/BYSECOND jump ahead must give exactly the steps a
/// plain walk keeps, including across DST changes (1 h, 30 min at Lord Howe, 2 h at Troll,
/// midnight changes in Sao Paulo).
#[test]
fn filter_jumps_match_a_plain_walk_across_offset_changes() {
    let windows = [
        ("Europe/Berlin", "2026-03-28T12:00:00Z"),
        ("Europe/Berlin", "2026-10-24T12:00:00Z"),
        ("Australia/Lord_Howe", "2026-04-04T00:00:00Z"),
        ("Australia/Lord_Howe", "2026-10-03T00:00:00Z"),
        ("Antarctica/Troll", "2026-03-28T12:00:00Z"),
        ("Antarctica/Troll", "2026-10-24T12:00:00Z"),
        ("America/Sao_Paulo", "2018-02-16T12:00:00Z"),
        ("America/Sao_Paulo", "2018-11-03T12:00:00Z"),
    ];
    let rules: [(&str, i64); 15] = [
        ("FREQ=MINUTELY;INTERVAL=17;BYDAY=SU;BYHOUR=1,2,3", 1020),
        (
            "FREQ=SECONDLY;INTERVAL=601;BYMONTHDAY=29,5,18;BYHOUR=2,3",
            601,
        ),
        ("FREQ=MINUTELY;INTERVAL=13;BYHOUR=1", 780),
        ("FREQ=MINUTELY;INTERVAL=7;BYHOUR=3;BYMINUTE=1,2,3,30", 420),
        ("FREQ=SECONDLY;INTERVAL=97;BYHOUR=1;BYMINUTE=10,50", 97),
        ("FREQ=SECONDLY;INTERVAL=31;BYHOUR=0,23;BYMINUTE=10,45", 31),
        ("FREQ=MINUTELY;BYHOUR=2;BYMINUTE=10,20,40,50", 60),
        (
            "FREQ=SECONDLY;INTERVAL=7;BYHOUR=0,1,2,3,23;BYMINUTE=0,30,59;BYSECOND=0,13",
            7,
        ),
        (
            "FREQ=SECONDLY;INTERVAL=61;BYHOUR=1,2;BYMINUTE=0,1,2,3,4,5,30,45",
            61,
        ),
        ("FREQ=SECONDLY;INTERVAL=986;BYHOUR=2;BYMINUTE=0,31", 986),
        ("FREQ=SECONDLY;BYHOUR=2;BYMINUTE=30;BYSECOND=0,59", 1),
        ("FREQ=MINUTELY;BYHOUR=0,2,3;BYMINUTE=0,15,30,45", 60),
        (
            "FREQ=MINUTELY;INTERVAL=7;BYHOUR=1,2,23;BYMINUTE=1,2,3,30",
            420,
        ),
        ("FREQ=HOURLY;BYHOUR=0,2,3", 3600),
        ("FREQ=HOURLY;INTERVAL=5;BYHOUR=1,2,4", 18_000),
    ];
    for (zone, at) in windows {
        let tz = TimeZone::get(zone).unwrap();
        let start: Timestamp = at.parse().unwrap();
        let end = start.as_second() + 3 * 86_400;
        for (text, step) in rules {
            let rule = Rule::parse(text).unwrap();
            let plan = Plan::new(&rule, start, &tz, true);
            let got: Vec<Timestamp> = RuleIter::new(&plan, None, true)
                .take_while(|t| t.as_second() < end)
                .collect();
            let ok = |v: &[u8], x: i64| v.is_empty() || v.contains(&(x as u8));
            let mut want = vec![start];
            let mut s = start.as_second() + step;
            while s < end {
                let t = Timestamp::new(s, 0).unwrap();
                let (h, m, sec) = local(t, &tz);
                let c = local_civil(&tz, t);
                let day_ok = (rule.by_month_day.is_empty()
                    || rule.by_month_day.contains(&(c.mday as i8)))
                    && (rule.by_day.is_empty()
                        || rule
                            .by_day
                            .iter()
                            .any(|d| d.weekday.index() == weekday(c.day)));
                if day_ok
                    && ok(&rule.by_hour, h)
                    && ok(&rule.by_minute, m)
                    && ok(&rule.by_second, sec)
                {
                    want.push(t);
                }
                s += step;
            }
            assert_eq!(got, want, "{text} in {zone} from {at}");
        }
    }
}

/// The day-part shortcut lists every day a full scan of the period accepts.
#[test]
fn candidate_days_agree_with_a_full_scan() {
    let rules = [
        "FREQ=YEARLY;BYDAY=20MO",
        "FREQ=YEARLY;BYDAY=-1SU,2TU,FR",
        "FREQ=YEARLY;BYMONTH=3,11;BYDAY=TH,-2MO,1TU",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29,-1,1",
        "FREQ=YEARLY;BYMONTHDAY=13;BYDAY=FR",
        "FREQ=YEARLY;BYYEARDAY=1,100,-1,-366,366",
        "FREQ=YEARLY;BYMONTH=4,12;BYYEARDAY=100,-20,360",
        "FREQ=YEARLY;BYWEEKNO=1,20,-1,53;BYDAY=MO,SU",
        "FREQ=YEARLY;BYWEEKNO=1,20,-1,53",
        "FREQ=YEARLY;BYWEEKNO=1;BYMONTH=12,1;WKST=SU",
        "FREQ=YEARLY;BYWEEKNO=52,53,-53;BYDAY=TH;WKST=TH",
        "FREQ=YEARLY;BYWEEKNO=53,-1,1,2;BYMONTHDAY=1,2,3,-1,-2,-3",
        "FREQ=YEARLY;BYWEEKNO=10,20;BYYEARDAY=60,-300",
        "FREQ=YEARLY;BYMONTH=1,6,7",
        "FREQ=YEARLY",
        "FREQ=MONTHLY;BYDAY=-1FR,1MO,3WE,5SA",
        "FREQ=MONTHLY;BYDAY=5FR,-5MO,SU",
        "FREQ=YEARLY;BYDAY=53MO,-53SU,52TH,-1WE",
        "FREQ=YEARLY;BYMONTH=2,12;BYDAY=5SU,-5MO,4TU",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        "FREQ=MONTHLY;BYMONTHDAY=-1,31,1,15;BYMONTH=2,4,5",
        "FREQ=MONTHLY;BYMONTHDAY=13;BYDAY=FR",
        "FREQ=MONTHLY",
    ];
    let start: Timestamp = "1999-12-31T10:00:00Z".parse().unwrap();
    for text in rules {
        let rule = Rule::parse(text).unwrap();
        let plan = Plan::new(&rule, start, &TimeZone::UTC, true);
        for y in 1999..2030 {
            let periods: Vec<(i64, i64)> = if rule.freq == Frequency::Yearly {
                vec![(days_from_civil(y, 1, 1), days_in_year(y))]
            } else {
                (1..=12)
                    .map(|m| (days_from_civil(y, m, 1), days_in_month(y, m)))
                    .collect()
            };
            let weeks = Weeks::new(y, plan.wkst);
            for (d0, len) in periods {
                let ok = |dn: i64| {
                    let (yy, m, md) = civil_from_days(dn);
                    plan.day_ok(dn, yy, m, md, Some(&weeks))
                };
                let full: Vec<i64> = (d0..d0 + len).filter(|&d| ok(d)).collect();
                let cands = plan.candidate_days(d0, len);
                let short: Vec<i64> = cands.iter().copied().filter(|&d| ok(d)).collect();
                assert_eq!(short, full, "{text} in {y}");
                assert!(cands.windows(2).all(|w| w[0] < w[1]), "{text}");
            }
        }
    }
}

/// Fuzz finding (a 5 s timeout): a sub-daily rule whose filters rarely line up with its
/// interval stepped through every minute of every matching hour, ~85 steps per day, so 200
/// instants took millions of steps. Jumping to the next allowed time of day keeps it to a
/// few steps per day.
#[test]
fn rare_sub_daily_filters_take_few_steps_per_day() {
    let rule = Rule::parse("FREQ=SECONDLY;INTERVAL=986;BYHOUR=8;BYMINUTE=0;BYSECOND=0").unwrap();
    let start = Timestamp::UNIX_EPOCH;
    let plan = Plan::new(&rule, start, &TimeZone::UTC, true);
    let mut it = RuleIter::new(&plan, None, true);
    let got: Vec<Timestamp> = it.by_ref().take(20).collect();
    // Reference: k * 986 s landing on 08:00:00 UTC.
    let want: Vec<Timestamp> = std::iter::once(0)
        .chain((1..).map(|k| k * 986).filter(|s| s % 86_400 == 28_800))
        .take(20)
        .map(|s| Timestamp::new(s, 0).unwrap())
        .collect();
    assert_eq!(got, want);
    let days = (got[19].as_second() / 86_400) as u64;
    assert!(it.steps <= 4 * days, "{} steps for {days} days", it.steps);
}
