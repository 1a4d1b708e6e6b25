//! Validation messages: each names the bad part and says what would be accepted.

use recur::{JsonSchedule, Recurrence, Rule, RuleError, Timestamp};

fn err(s: &str) -> String {
    match Rule::parse(s) {
        Ok(r) => panic!("{s} was accepted as {r}"),
        Err(e) => e.to_string(),
    }
}

fn json_err(j: &str) -> String {
    let j: JsonSchedule = serde_json::from_str(j).expect("valid JSON schedule");
    match Rule::from_json(&j) {
        Ok(r) => panic!("{j:?} was accepted as {r}"),
        Err(e) => e.to_string(),
    }
}

fn start() -> Timestamp {
    "2025-01-06T14:00:00Z".parse().unwrap()
}

#[test]
fn messages_name_the_part_and_the_range() {
    assert_eq!(
        err("FREQ=YEARLY;BYMONTH=13"),
        "BYMONTH=13: months are 1 to 12"
    );
    assert_eq!(
        err("FREQ=FORTNIGHTLY"),
        "unknown FREQ 'FORTNIGHTLY': expected SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY"
    );
    assert!(err("FREQ=DAILY;INTERVAL=0").starts_with("INTERVAL=0:"));
    assert!(err("FREQ=DAILY;COUNT=0").starts_with("COUNT=0:"));
    assert!(err("FREQ=MONTHLY;BYMONTHDAY=32").contains("1 to 31 or -31 to -1"));
    assert!(err("FREQ=DAILY;BYHOUR=24").contains("0 to 23"));
    assert!(err("FREQ=DAILY;BYMINUTE=60").contains("0 to 59"));
    assert!(err("FREQ=YEARLY;BYWEEKNO=54").contains("1 to 53"));
    assert!(err("FREQ=YEARLY;BYYEARDAY=0").contains("1 to 366"));
    assert!(err("FREQ=DAILY;COUNT").contains("COUNT has no value"));
    assert!(err("FREQ=DAILY;FOO=1").contains("unknown rule part 'FOO'"));
    assert!(err("FREQ=DAILY;BYDAY=MO,,TU").contains("empty list element"));
    assert!(err("FREQ=WEEKLY;BYDAY=XX").contains("'XX' is not a weekday"));
    assert!(err("FREQ=DAILY;BYMONTH=a").contains("'a' is not a number"));
    assert!(err("FREQ=DAILY;BYMONTH=-1").contains("'-1' is not a number"));
    assert!(err("").contains("empty"));
    assert!(err("COUNT=3").starts_with("FREQ is required"));
    assert!(err("FREQ=DAILY;FREQ=DAILY").contains("more than once"));
}

#[test]
fn conflicts_are_explained() {
    assert!(err("FREQ=DAILY;COUNT=2;UNTIL=20250101T000000Z").contains("cannot be used together"));
    assert!(err("FREQ=WEEKLY;BYDAY=1MO").contains("needs FREQ=MONTHLY or YEARLY"));
    assert!(err("FREQ=YEARLY;BYWEEKNO=2;BYDAY=-1MO").contains("BYWEEKNO"));
    assert!(err("FREQ=MONTHLY;BYWEEKNO=2").contains("only be used with FREQ=YEARLY"));
    assert!(err("FREQ=WEEKLY;BYMONTHDAY=2").contains("FREQ=WEEKLY"));
    assert!(err("FREQ=DAILY;BYYEARDAY=2").contains("FREQ=DAILY"));
    assert!(err("FREQ=MONTHLY;BYSETPOS=1").contains("needs another BYxxx"));
    assert!(err("FREQ=MONTHLY;BYDAY=6MO").contains("at most 5"));
    assert!(err("FREQ=DAILY;UNTIL=20250101T000000").contains("trailing Z"));
    assert!(err("FREQ=DAILY;UNTIL=20250230").contains("not a calendar date"));
}

#[test]
fn impossible_rules_are_refused() {
    let e = Rule::parse("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30").unwrap_err();
    assert!(matches!(e, RuleError::Never(_)), "{e:?}");
    assert!(e.to_string().contains("BYMONTHDAY=30"), "{e}");
    assert!(Rule::parse("FREQ=YEARLY;BYMONTH=4,6;BYMONTHDAY=31").is_err());
    assert!(Rule::parse("FREQ=YEARLY;BYMONTH=2,4;BYMONTHDAY=31,30").is_ok());
    // Only detectable by expanding: day 60 of the year is never in January; a leap day every
    // 4 years starting in a non-leap year never lands on a leap year.
    for rule in [
        "FREQ=YEARLY;BYMONTH=1;BYYEARDAY=60",
        "FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29",
        "FREQ=MONTHLY;BYMONTHDAY=13;BYDAY=1FR",
        "FREQ=DAILY;BYSECOND=60",
        "FREQ=HOURLY;INTERVAL=3;BYHOUR=1",
    ] {
        let r = Rule::parse(rule).unwrap();
        let t0 = std::time::Instant::now();
        let e = Recurrence::new(
            "2001-03-01T00:00:00Z".parse().unwrap(),
            "UTC",
            Some(r),
            vec![],
            vec![],
        )
        .unwrap_err();
        assert!(matches!(e, RuleError::Never(_)), "{rule}: {e:?}");
        assert!(t0.elapsed().as_secs() < 5, "{rule} took {:?}", t0.elapsed());
    }
}

#[test]
fn unknown_time_zone_is_named() {
    let e = Recurrence::new(start(), "Mars/Olympus", None, vec![], vec![]).unwrap_err();
    assert!(matches!(e, RuleError::TimeZone(_)));
    assert!(e.to_string().contains("'Mars/Olympus'"), "{e}");
}

#[test]
fn parsing_is_lenient_about_case_and_prefix() {
    let a = Rule::parse("RRULE:freq=weekly;byday=we,mo;interval=1;wkst=mo").unwrap();
    let b = Rule::parse("FREQ=WEEKLY;BYDAY=MO,WE").unwrap();
    assert_eq!(a, b);
    assert_eq!(a.to_rrule_string(), "FREQ=WEEKLY;BYDAY=MO,WE");
    assert_eq!(a.to_string(), "FREQ=WEEKLY;BYDAY=MO,WE");
    let c = Rule::parse("rrule:FREQ=MONTHLY;BYDAY=+1MO,-1FR;UNTIL=20251231T235959z;").unwrap();
    assert_eq!(
        c.to_rrule_string(),
        "FREQ=MONTHLY;UNTIL=20251231T235959Z;BYDAY=1MO,-1FR"
    );
}

#[test]
fn json_form_uses_the_same_rules_and_json_names() {
    assert_eq!(
        json_err(r#"{"frequency":"yearly","by_month":[13]}"#),
        "by_month 13: months are 1 to 12"
    );
    assert!(json_err(r#"{"frequency":"fortnightly"}"#).contains("unknown frequency 'fortnightly'"));
    assert!(json_err(r#"{"frequency":"daily","interval":0}"#).starts_with("interval 0"));
    assert!(
        json_err(r#"{"frequency":"daily","count":2,"until":"2025-01-01"}"#)
            .contains("count and until")
    );
    assert!(json_err(r#"{"frequency":"weekly","by_day":["1MO"]}"#).contains("by_day 1MO"));
    assert!(json_err(r#"{"frequency":"daily","until":"soon"}"#).contains("until 'soon'"));
    assert!(json_err(r#"{"frequency":"daily","week_start":"XX"}"#).contains("week_start"));
    assert!(
        serde_json::from_str::<JsonSchedule>(r#"{"frequency":"daily","by_days":["MO"]}"#).is_err()
    );

    let j: JsonSchedule = serde_json::from_str(
        r#"{"frequency":"Monthly","interval":2,"by_day":["-1fr"],"until":"2026-03-01T10:00:00+01:00"}"#,
    )
    .unwrap();
    let r = Rule::from_json(&j).unwrap();
    assert_eq!(
        r.to_rrule_string(),
        "FREQ=MONTHLY;INTERVAL=2;UNTIL=20260301T090000Z;BYDAY=-1FR"
    );
    let out = serde_json::to_string(&r.to_json()).unwrap();
    assert_eq!(
        out,
        r#"{"frequency":"monthly","interval":2,"by_day":["-1FR"],"until":"2026-03-01T09:00:00Z"}"#
    );
    let d: JsonSchedule =
        serde_json::from_str(r#"{"frequency":"daily","until":"2026-03-01"}"#).unwrap();
    assert_eq!(
        Rule::from_json(&d).unwrap().to_rrule_string(),
        "FREQ=DAILY;UNTIL=20260301"
    );
}
