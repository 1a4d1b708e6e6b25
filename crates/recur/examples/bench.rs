//! Expansion benchmark: prints figures, asserts nothing.
//!
//! ```text
//! cargo run --release -p recur --example bench [-- path/to/conformance.json]
//! ```
//!
//! (a) the next instant after a fixed "now" (2026-11-25T12:00:00Z) for typical rules whose
//!     DTSTART lies years back, in UTC and Europe/Berlin: median and p99 of `iter_after(now)
//!     .next()` on a prebuilt `Recurrence`, and of building the `Recurrence` + that call;
//! (b) for every case of the conformance corpus, the time to build it and produce 1,000 instants
//!     (or all of them when the rule ends sooner): per-rule median, the worst rule, the median
//!     over rules.
//!
//! (c) adversarial COUNT rules with BY parts (DTSTART 1900-01-01, `after` in 2026 and 2100, UTC,
//!     Europe/Berlin and America/New_York): the next instant through `cursor(after, None,
//!     DEFAULT_BUDGET)`, i.e. without a stored mark: the first call on a fresh `Recurrence`
//!     (which fills what the plan keeps: year-shape counts, offset changes), then median and
//!     worst of the following calls, or "too costly" when the budget ends the walk (the service
//!     answers 400 then).
//!
//! Goals: (a) <= 20 us median per call, (b) <= 1 ms median per rule, (c) <= 20 us median and
//! <= 1 ms worst for the rules counted arithmetically.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use recur::{Recurrence, Rule, Timestamp};
use serde_json::Value;

const NOW: &str = "2026-11-25T12:00:00Z";
/// DTSTART as local wall-clock time in each zone (a Monday, years before NOW).
const DTSTART_LOCAL: &str = "2019-01-07T09:00:00";

const RULES: [&str; 11] = [
    "FREQ=SECONDLY",
    "FREQ=MINUTELY",
    "FREQ=HOURLY;BYMINUTE=0,30",
    "FREQ=DAILY;BYHOUR=9",
    "FREQ=WEEKLY;BYDAY=MO,WE,FR",
    "FREQ=MONTHLY;BYDAY=-1FR",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
    "FREQ=MINUTELY;BYHOUR=9,10,11,12,13,14,15,16,17",
    "FREQ=MINUTELY;INTERVAL=15;BYHOUR=9,10,11,12,13,14,15,16,17;BYDAY=MO,TU,WE,TH,FR",
    "FREQ=SECONDLY;BYHOUR=3;BYMINUTE=0;BYSECOND=0",
    "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
];
const ZONES: [&str; 2] = ["UTC", "Europe/Berlin"];

struct Stats {
    median: Duration,
    p99: Duration,
    max: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Stats {
        median: at(0.5),
        p99: at(0.99),
        max: *v.last().expect("samples"),
    }
}

fn us(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e6)
}

fn local(tz: &str, s: &str) -> Timestamp {
    let dt: DateTime = s.parse().expect("civil date-time");
    dt.to_zoned_datetime(TimeZone::get(tz).expect("zone"))
        .expect("in range")
        .timestamp()
}

fn next_after_now() -> bool {
    let now: Timestamp = NOW.parse().expect("now");
    let reps = 20_001;
    println!("(a) next instant after {NOW}, DTSTART {DTSTART_LOCAL} local, {reps} calls each (us)");
    println!(
        "{:<14} {:<82} {:>8} {:>8} {:>8} | {:>9} {:>9}   next",
        "zone", "rule", "median", "p99", "max", "new+next", "p99"
    );
    let mut worst = Duration::ZERO;
    for tz in ZONES {
        let start = local(tz, DTSTART_LOCAL);
        for text in RULES {
            let rule = Rule::parse(text).expect("benchmark rule parses");
            let rec = Recurrence::new(start, tz, Some(rule.clone()), vec![], vec![])
                .expect("benchmark rule builds");
            let first = rec.iter_after(Some(now)).next();
            // Warm up, then time each call on its own.
            for _ in 0..1_000 {
                black_box(rec.iter_after(black_box(Some(now))).next());
            }
            let mut next_t = Vec::with_capacity(reps);
            for _ in 0..reps {
                let t0 = Instant::now();
                let n = rec.iter_after(black_box(Some(now))).next();
                next_t.push(t0.elapsed());
                black_box(n);
            }
            let mut built_t = Vec::with_capacity(reps / 4);
            for _ in 0..reps / 4 {
                let r = rule.clone();
                let t0 = Instant::now();
                let rec =
                    Recurrence::new(black_box(start), tz, Some(r), vec![], vec![]).expect("builds");
                let n = rec.iter_after(black_box(Some(now))).next();
                built_t.push(t0.elapsed());
                black_box(n);
            }
            let a = stats(next_t);
            let b = stats(built_t);
            worst = worst.max(a.median);
            println!(
                "{tz:<14} {text:<82} {:>8} {:>8} {:>8} | {:>9} {:>9}   {}",
                us(a.median),
                us(a.p99),
                us(a.max),
                us(b.median),
                us(b.p99),
                first.map_or("-".to_string(), |t| t.to_string())
            );
        }
    }
    let ok = worst <= Duration::from_micros(20);
    println!(
        "(a) worst median {} us; goal <= 20 us median each: {}\n",
        us(worst),
        if ok { "met" } else { "MISSED" }
    );
    ok
}

fn ts(v: &Value) -> Timestamp {
    v.as_str().expect("string").parse().expect("RFC 3339")
}

fn thousand_per_rule(path: &PathBuf) -> bool {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let data: Value = serde_json::from_str(&text).expect("corpus is JSON");
    let cases = data["cases"].as_array().expect("cases");
    let mut rows: Vec<(Duration, Duration, usize, String)> = Vec::new();
    for c in cases {
        let id = c["id"].as_str().unwrap_or("?").to_string();
        let rule = Rule::parse(c["rrule"].as_str().expect("rrule")).expect("case parses");
        let start = ts(&c["dtstart"]);
        let tz = c["tz"].as_str().unwrap_or("UTC");
        let exdates: Vec<Timestamp> = c["exdates"]
            .as_array()
            .map(|a| a.iter().map(ts).collect())
            .unwrap_or_default();
        let after = c.get("after").map(ts);
        let run = || {
            let rec = Recurrence::new(start, tz, Some(rule.clone()), exdates.clone(), vec![])
                .expect("case builds");
            rec.iter_after(after).take(1_000).count()
        };
        let n = run();
        // Repeat for at least 9 runs and ~20 ms per rule.
        let mut total = Vec::new();
        let mut iter_only = Vec::new();
        let rec = Recurrence::new(start, tz, Some(rule.clone()), exdates.clone(), vec![])
            .expect("case builds");
        let budget = Instant::now();
        while total.len() < 9
            || (budget.elapsed() < Duration::from_millis(20) && total.len() < 2_001)
        {
            let t0 = Instant::now();
            black_box(run());
            total.push(t0.elapsed());
            let t0 = Instant::now();
            black_box(rec.iter_after(black_box(after)).take(1_000).count());
            iter_only.push(t0.elapsed());
        }
        rows.push((stats(total).median, stats(iter_only).median, n, id));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    println!(
        "(b) conformance corpus: {} rules, build + up to 1,000 instants each (median of repeated runs)",
        rows.len()
    );
    println!(
        "slowest rules (us):   {:>10} {:>10} {:>6}  id",
        "new+1000", "iter only", "count"
    );
    for (t, i, n, id) in rows.iter().take(10) {
        println!(
            "                      {:>10} {:>10} {n:>6}  {id}",
            us(*t),
            us(*i)
        );
    }
    let mut medians: Vec<Duration> = rows.iter().map(|r| r.0).collect();
    medians.sort_unstable();
    let over = medians[medians.len() / 2];
    let p90 = medians[(medians.len() - 1) * 9 / 10];
    let worst = rows[0].0;
    let full: Vec<Duration> = rows.iter().filter(|r| r.2 == 1_000).map(|r| r.0).collect();
    let full_median = stats(full.clone()).median;
    println!(
        "median over rules {} us, p90 {} us, worst {} us ({}); rules yielding the full 1,000: {} (median {} us)",
        us(over),
        us(p90),
        us(worst),
        rows[0].3,
        full.len(),
        us(full_median)
    );
    let ok = over <= Duration::from_millis(1) && full_median <= Duration::from_millis(1);
    println!(
        "(b) goal <= 1 ms median per rule: {}",
        if ok { "met" } else { "MISSED" }
    );
    ok
}

const ADVERSARIAL: [&str; 19] = [
    "FREQ=SECONDLY;BYMONTH=1,2,3,4,5,6,7,8,9,10,11,12;COUNT=4000000000",
    "FREQ=SECONDLY;BYMONTH=3,10;COUNT=4000000000",
    "FREQ=SECONDLY;INTERVAL=7;BYDAY=MO,TU,WE,TH,FR;COUNT=4000000000",
    "FREQ=MINUTELY;BYMONTHDAY=1,15,-1;COUNT=4000000000",
    "FREQ=HOURLY;INTERVAL=5;BYYEARDAY=1,100,-1;BYMONTH=1,4,12;COUNT=4000000000",
    "FREQ=MINUTELY;BYHOUR=9;COUNT=4000000000",
    "FREQ=MINUTELY;INTERVAL=15;BYHOUR=9,10,11,12,13,14,15,16,17;BYDAY=MO,TU,WE,TH,FR;COUNT=4000000000",
    "FREQ=SECONDLY;INTERVAL=7;BYHOUR=3;BYMINUTE=0,30;COUNT=4000000000",
    "FREQ=HOURLY;BYMINUTE=0,30;COUNT=4000000000",
    "FREQ=MINUTELY;BYSECOND=0,15,30,45;BYHOUR=9,10,11,12,13,14,15,16,17;COUNT=4000000000",
    "FREQ=HOURLY;BYMINUTE=0,20,40;BYSETPOS=-1;BYDAY=MO,WE;COUNT=4000000000",
    "FREQ=MINUTELY;INTERVAL=10;BYHOUR=8;BYSETPOS=1;COUNT=4000000000",
    "FREQ=DAILY;BYDAY=MO;COUNT=4000000000",
    "FREQ=WEEKLY;BYDAY=MO,FR;BYHOUR=9,17;COUNT=4000000000",
    "FREQ=DAILY;INTERVAL=3;BYHOUR=2,3;BYMINUTE=0,30;COUNT=4000000000",
    "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=4000000000",
    "FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=-1,1,15;BYHOUR=9;COUNT=4000000000",
    "FREQ=YEARLY;BYWEEKNO=1,20,-1;BYDAY=MO,SU;BYSETPOS=1,-1;WKST=SU;COUNT=4000000000",
    "FREQ=YEARLY;BYMONTH=3,10;BYDAY=-1SU;BYHOUR=2;BYMINUTE=30;COUNT=4000000000",
];

fn adversarial() -> bool {
    let start: Timestamp = "1900-01-01T00:00:00Z".parse().expect("start");
    let afters: [Timestamp; 2] = [
        "2026-01-01T00:00:00Z".parse().expect("after"),
        "2100-06-30T12:34:56Z".parse().expect("after"),
    ];
    println!(
        "(c) COUNT rules with BY parts from {start}, no mark, budget {} steps (us)",
        recur::DEFAULT_BUDGET
    );
    println!(
        "{:<17} {:<76} {:>22} {:>9} {:>9} {:>9}   next",
        "zone", "rule", "after", "first", "median", "worst"
    );
    let mut ok = true;
    for tz in ["UTC", "Europe/Berlin", "America/New_York"] {
        for text in ADVERSARIAL {
            let rule = Rule::parse(text).expect("rule parses");
            let rec = Recurrence::new(start, tz, Some(rule), vec![], vec![]).expect("builds");
            for after in afters {
                let once = || {
                    let mut c = rec.cursor(Some(after), None, recur::DEFAULT_BUDGET);
                    let n = c.next();
                    (n, c.check().is_ok())
                };
                let t0 = Instant::now();
                let (first, fine) = once();
                let one = t0.elapsed();
                let reps = if one > Duration::from_millis(20) {
                    3
                } else {
                    301
                };
                let mut v = Vec::with_capacity(reps);
                for _ in 0..reps {
                    let t0 = Instant::now();
                    black_box(once());
                    v.push(t0.elapsed());
                }
                let st = stats(v);
                let fast =
                    st.median <= Duration::from_micros(20) && st.max <= Duration::from_millis(1);
                if !fast && fine {
                    ok = false;
                }
                println!(
                    "{tz:<17} {text:<76} {:>22} {:>9} {:>9} {:>9}   {}",
                    after.to_string(),
                    us(one),
                    us(st.median),
                    us(st.max),
                    if fine {
                        first.map_or("-".to_string(), |t| t.to_string())
                    } else {
                        "too costly (400)".to_string()
                    }
                );
            }
        }
    }
    println!(
        "(c) goal <= 20 us median, <= 1 ms worst where answered: {}\n",
        if ok { "met" } else { "MISSED" }
    );
    ok
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/testdata/rrule/conformance.json")
        });
    let c = adversarial();
    let a = next_after_now();
    let b = thousand_per_rule(&path);
    if !(a && b && c) {
        println!("\nat least one goal was missed");
    }
}
