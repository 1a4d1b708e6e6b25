//! Arbitrary bytes -> `Rule::parse`. Whatever parses must survive both round trips unchanged:
//! canonical RRULE text and the JSON form (through serde, as the API sees it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use recur::{JsonSchedule, Rule};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rule) = Rule::parse(text) else {
        return;
    };

    let canonical = rule.to_rrule_string();
    let again = Rule::parse(&canonical)
        .unwrap_or_else(|e| panic!("canonical form {canonical:?} of {text:?} does not parse: {e}"));
    assert_eq!(
        again, rule,
        "RRULE round trip changed {text:?} via {canonical:?}"
    );
    assert_eq!(
        again.to_rrule_string(),
        canonical,
        "canonical form is not stable"
    );
    // `RRULE:` prefix accepted too.
    assert_eq!(
        Rule::parse(&format!("RRULE:{canonical}")).ok().as_ref(),
        Some(&rule)
    );

    let json = rule.to_json();
    let back = Rule::from_json(&json)
        .unwrap_or_else(|e| panic!("JSON form {json:?} of {text:?} is refused: {e}"));
    assert_eq!(back, rule, "JSON round trip changed {text:?} via {json:?}");

    let wire = serde_json::to_string(&json).expect("JSON form serializes");
    let parsed: JsonSchedule = serde_json::from_str(&wire)
        .unwrap_or_else(|e| panic!("serialized JSON {wire} does not deserialize: {e}"));
    assert_eq!(parsed, json, "serde round trip changed {wire}");
    assert_eq!(Rule::from_json(&parsed).ok().as_ref(), Some(&rule));
});
