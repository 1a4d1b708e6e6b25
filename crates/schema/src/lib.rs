//! What the Qhronos API accepts, written once as JSON Schema.
//!
//! Agents and generated clients build requests from schemas, so a schema that allows what the
//! server refuses is a bug in the API. The OpenAPI document (`qhronos::api::openapi`, through
//! `#[schema(schema_with = …)]` on the request types) and the MCP tool schemas (`qhronos-mcp`,
//! through [`json`]) take their fragments from here, and the server's checks use the limits of
//! [`limits`], so the three cannot drift apart; a test in `qhronos` compares the two documents.
//!
//! A fragment may be *stricter* than the server (an RRULE's parts in one order, a URL without
//! user info): what matters is that a request matching the schema is accepted. Where the server
//! is stricter than any schema can say (a rule whose parts never meet, a token that expired
//! already) the description says so.

pub mod action;
pub mod fields;
pub mod limits;
pub mod rule;

use utoipa::openapi::{RefOr, Schema};

pub use fields::*;

/// A fragment as plain JSON Schema (what MCP tool schemas are), with `$ref`s left as they are.
pub fn json(s: impl Into<RefOr<Schema>>) -> serde_json::Value {
    serde_json::to_value(s.into()).unwrap_or(serde_json::Value::Null)
}

/// A regex matching the decimal integers `1..=n` (no sign, no leading zeros).
pub fn up_to(n: u64) -> String {
    let s = n.to_string();
    let d: Vec<u8> = s.bytes().map(|b| b - b'0').collect();
    let mut alts = Vec::new();
    if d.len() > 1 {
        alts.push(format!("[1-9][0-9]{{0,{}}}", d.len() - 2));
    }
    for (i, &digit) in d.iter().enumerate() {
        let lo = u8::from(i == 0);
        if digit > lo {
            let hi = digit - 1;
            let class = if lo == hi {
                lo.to_string()
            } else {
                format!("[{lo}-{hi}]")
            };
            let rest = d.len() - i - 1;
            let tail = if rest > 0 {
                format!("[0-9]{{{rest}}}")
            } else {
                String::new()
            };
            alts.push(format!("{}{class}{tail}", &s[..i]));
        }
    }
    if n > 0 {
        alts.push(s);
    }
    format!("(?:{})", alts.join("|"))
}

#[cfg(test)]
mod tests {
    use super::up_to;

    #[test]
    fn up_to_lists_exactly_the_numbers() {
        assert_eq!(up_to(1), "(?:1)");
        assert_eq!(up_to(9), "(?:[1-8]|9)");
        assert_eq!(up_to(60), "(?:[1-9][0-9]{0,0}|[1-5][0-9]{1}|60)");
        assert_eq!(
            up_to(720),
            "(?:[1-9][0-9]{0,1}|[1-6][0-9]{2}|7[0-1][0-9]{1}|720)"
        );
    }
}
