//! Runs the shared RFC 5545 conformance corpus (`/work/shared/testdata/rrule/conformance.json`).

use std::path::PathBuf;

use recur::{Recurrence, Rule, Timestamp};
use serde_json::Value;

fn corpus() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/rrule/conformance.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("conformance.json is JSON")
}

fn ts(v: &Value) -> Timestamp {
    v.as_str()
        .expect("timestamp string")
        .parse()
        .expect("RFC 3339 timestamp")
}

fn ts_list(v: Option<&Value>) -> Vec<Timestamp> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().map(ts).collect())
        .unwrap_or_default()
}

fn run_case(c: &Value) -> Result<(), String> {
    let rule = Rule::parse(c["rrule"].as_str().unwrap_or_default())
        .map_err(|e| format!("parse error: {e}"))?;
    let rec = Recurrence::new(
        ts(&c["dtstart"]),
        c["tz"].as_str().unwrap_or("UTC"),
        Some(rule),
        ts_list(c.get("exdates")),
        vec![],
    )
    .map_err(|e| format!("recurrence error: {e}"))?;
    let after = c.get("after").map(ts);
    let limit = c["limit"].as_u64().unwrap_or(0) as usize;
    let got: Vec<Timestamp> = rec.iter_after(after).take(limit).collect();
    let want = ts_list(c.get("expected"));
    if got == want {
        return Ok(());
    }
    let mut diff = String::new();
    for i in 0..got.len().max(want.len()) {
        let g = got.get(i).map(|t| t.to_string()).unwrap_or_default();
        let w = want.get(i).map(|t| t.to_string()).unwrap_or_default();
        if g != w {
            diff.push_str(&format!("\n    #{i}: got {g:<22} want {w}"));
        }
    }
    Err(format!("got {} want {}:{diff}", got.len(), want.len()))
}

#[test]
fn conformance_cases() {
    let data = corpus();
    let cases = data["cases"].as_array().expect("cases");
    let mut failed = Vec::new();
    for c in cases {
        let id = c["id"].as_str().unwrap_or("?");
        if let Err(e) = run_case(c) {
            failed.push(format!("{id}: {e}"));
        }
    }
    println!("cases: {}/{} pass", cases.len() - failed.len(), cases.len());
    for f in &failed {
        println!("FAIL {f}");
    }
    assert!(
        failed.is_empty(),
        "{} conformance cases failed",
        failed.len()
    );
}

#[test]
fn conformance_invalid() {
    let data = corpus();
    let cases = data["invalid"].as_array().expect("invalid");
    let mut failed = Vec::new();
    for c in cases {
        let id = c["id"].as_str().unwrap_or("?");
        let result = Rule::parse(c["rrule"].as_str().unwrap_or_default()).and_then(|r| {
            Recurrence::new(
                ts(&c["dtstart"]),
                c["tz"].as_str().unwrap_or("UTC"),
                Some(r),
                vec![],
                vec![],
            )
        });
        match result {
            Ok(_) => failed.push(format!("{id}: accepted ({})", c["reason"])),
            Err(e) => println!("ok {id}: {e}"),
        }
    }
    println!(
        "invalid: {}/{} rejected",
        cases.len() - failed.len(),
        cases.len()
    );
    for f in &failed {
        println!("FAIL {f}");
    }
    assert!(
        failed.is_empty(),
        "{} invalid rules were accepted",
        failed.len()
    );
}
