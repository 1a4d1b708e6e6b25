//! Structured input -> `Recurrence::iter_after`: up to 200 instants must come out strictly
//! ascending, never before DTSTART (or at/before `after`), DTSTART first when it is not excluded,
//! and resuming after any produced instant must give the same continuation (the arithmetic skip
//! ahead agrees with plain iteration).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use recur::{Recurrence, Rule, Timestamp};

const ZONES: [&str; 11] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "America/Sao_Paulo",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Pacific/Chatham",
    "Pacific/Apia",
    "Africa/Casablanca",
];

/// 1970-01-01 .. 2200-01-01 in seconds.
const MAX_START: i64 = 7_258_118_400;
const YEAR: i64 = 31_556_952;

const FREQS: [&str; 7] = [
    "SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY",
];
const DAYS: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

/// A rule assembled from valid-looking parts (values mostly in range, sometimes not), so most
/// inputs get past validation and exercise expansion rather than the parser.
#[derive(Debug)]
struct GrammarRule(String);

fn list(u: &mut Unstructured<'_>, lo: i64, hi: i64, signed: bool) -> arbitrary::Result<String> {
    let n = u.int_in_range(1..=4)?;
    let mut v = Vec::new();
    for _ in 0..n {
        let x = u.int_in_range(lo..=hi)?;
        let neg = signed && u.ratio(1, 3)?;
        v.push(if neg { (-x).to_string() } else { x.to_string() });
    }
    Ok(v.join(","))
}

impl<'a> Arbitrary<'a> for GrammarRule {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut parts = vec![format!("FREQ={}", u.choose(&FREQS)?)];
        if u.ratio(1, 3)? {
            let hi = *u.choose(&[3u32, 40, 1000])?;
            parts.push(format!("INTERVAL={}", u.int_in_range(1..=hi)?));
        }
        match u.int_in_range(0..=5)? {
            0 => parts.push(format!("COUNT={}", u.int_in_range(1..=300u32)?)),
            1 => {
                let y = u.int_in_range(1970..=2300)?;
                let (m, d) = (u.int_in_range(1..=12)?, u.int_in_range(1..=28)?);
                if u.arbitrary()? {
                    parts.push(format!("UNTIL={y:04}{m:02}{d:02}"));
                } else {
                    let (h, mi, s) = (
                        u.int_in_range(0..=23)?,
                        u.int_in_range(0..=59)?,
                        u.int_in_range(0..=59)?,
                    );
                    parts.push(format!("UNTIL={y:04}{m:02}{d:02}T{h:02}{mi:02}{s:02}Z"));
                }
            }
            _ => {}
        }
        if u.ratio(1, 3)? {
            parts.push(format!("BYMONTH={}", list(u, 1, 12, false)?));
        }
        if u.ratio(1, 8)? {
            parts.push(format!("BYWEEKNO={}", list(u, 1, 53, true)?));
        }
        if u.ratio(1, 8)? {
            parts.push(format!("BYYEARDAY={}", list(u, 1, 366, true)?));
        }
        if u.ratio(1, 3)? {
            parts.push(format!("BYMONTHDAY={}", list(u, 1, 31, true)?));
        }
        if u.ratio(1, 2)? {
            let n = u.int_in_range(1..=4)?;
            let mut v = Vec::new();
            for _ in 0..n {
                let d = u.choose(&DAYS)?;
                match u.int_in_range(0..=3)? {
                    0 => v.push(format!("{}{d}", u.int_in_range(1..=5)?)),
                    1 => v.push(format!("-{}{d}", u.int_in_range(1..=5)?)),
                    2 => v.push(format!("{}{d}", u.int_in_range(1..=53)?)),
                    _ => v.push(d.to_string()),
                }
            }
            parts.push(format!("BYDAY={}", v.join(",")));
        }
        if u.ratio(1, 3)? {
            parts.push(format!("BYHOUR={}", list(u, 0, 23, false)?));
        }
        if u.ratio(1, 3)? {
            parts.push(format!("BYMINUTE={}", list(u, 0, 59, false)?));
        }
        if u.ratio(1, 4)? {
            parts.push(format!("BYSECOND={}", list(u, 0, 60, false)?));
        }
        if u.ratio(1, 4)? {
            parts.push(format!("BYSETPOS={}", list(u, 1, 10, true)?));
        }
        if u.ratio(1, 5)? {
            parts.push(format!("WKST={}", u.choose(&DAYS)?));
        }
        Ok(GrammarRule(parts.join(";")))
    }
}

#[derive(Debug, Arbitrary)]
enum RuleText {
    Grammar(GrammarRule),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
struct Input {
    rule: RuleText,
    dtstart: u64,
    whole_second: bool,
    nanos: u32,
    zone: u8,
    /// Offset from DTSTART in seconds (may be negative), clamped to +-500 years.
    after: Option<i64>,
    exdates: Vec<u32>,
    rdates: Vec<i32>,
}

fuzz_target!(|input: Input| {
    let text = match &input.rule {
        RuleText::Grammar(g) => g.0.as_str(),
        RuleText::Raw(s) => s.as_str(),
    };
    let Ok(rule) = Rule::parse(text) else {
        return;
    };
    let secs = (input.dtstart % MAX_START as u64) as i64;
    let nanos = if input.whole_second {
        0
    } else {
        (input.nanos % 1_000_000_000) as i32
    };
    let start = Timestamp::new(secs, nanos).expect("in range");
    let zone = ZONES[usize::from(input.zone) % ZONES.len()];
    let at = |off: i64| Timestamp::new(secs + off, nanos).expect("in range");
    // EXDATEs: mostly on instants the rule may produce (whole steps of a minute/hour from DTSTART).
    let exdates: Vec<Timestamp> = input
        .exdates
        .iter()
        .take(8)
        .map(|&o| at(i64::from(o % 10_000) * if o & 1 == 0 { 60 } else { 3600 }))
        .collect();
    let rdates: Vec<Timestamp> = input
        .rdates
        .iter()
        .take(8)
        .map(|&o| at(i64::from(o)))
        .collect();
    let after = input.after.map(|o| at(o.clamp(-500 * YEAR, 500 * YEAR)));

    let Ok(rec) = Recurrence::new(start, zone, Some(rule), exdates.clone(), rdates) else {
        return;
    };
    let got: Vec<Timestamp> = rec.iter_after(after).take(200).collect();

    for w in got.windows(2) {
        assert!(
            w[0] < w[1],
            "not strictly ascending: {} then {} ({text}, {zone})",
            w[0],
            w[1]
        );
    }
    match after {
        None => {
            if let Some(first) = got.first() {
                assert!(
                    *first >= start,
                    "{first} before DTSTART {start} ({text}, {zone})"
                );
            }
            if !exdates.contains(&start) {
                assert_eq!(
                    got.first(),
                    Some(&start),
                    "DTSTART is not the first instance ({text}, {zone})"
                );
            }
        }
        Some(a) => {
            if let Some(first) = got.first() {
                assert!(*first > a, "{first} not after {a} ({text}, {zone})");
                assert!(
                    *first >= start,
                    "{first} before DTSTART {start} ({text}, {zone})"
                );
            }
        }
    }
    assert!(
        got.iter().all(|t| !exdates.contains(t)),
        "an EXDATE was produced ({text}, {zone})"
    );

    // Resuming after an instant we produced continues the same sequence.
    if got.len() >= 2 {
        let j = (got.len() - 1) / 2;
        let tail: Vec<Timestamp> = rec
            .iter_after(Some(got[j]))
            .take(got.len() - j - 1)
            .collect();
        assert_eq!(
            tail,
            got[j + 1..],
            "resuming after {} differs ({text}, {zone}, dtstart {start})",
            got[j]
        );
    }
});
