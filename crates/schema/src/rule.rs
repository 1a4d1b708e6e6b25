//! Recurrence rules: the RRULE text and the JSON form, with what `recur` checks.
//!
//! Which parts go with which frequency is `recur`'s rule (BYWEEKNO only with YEARLY, BYYEARDAY
//! not with DAILY, WEEKLY or MONTHLY, BYMONTHDAY not with WEEKLY, a numbered weekday only with
//! MONTHLY or YEARLY); the schemas say it by giving each group of frequencies its own
//! alternative. What no schema can say: parts that never meet (`BYMONTH=2;BYMONTHDAY=30`), an
//! UNTIL before the start, COUNT together with UNTIL in the JSON form. Those are 400s that name
//! the part.

use serde_json::json;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::{Object, RefOr, Schema};
use utoipa::PartialSchema;

use crate::fields::{date_time, int};
use crate::up_to;

/// A built composite as a reference-or-schema.
trait IntoSchema {
    fn into_schema(self) -> RefOr<Schema>;
}

impl IntoSchema for utoipa::openapi::OneOf {
    fn into_schema(self) -> RefOr<Schema> {
        RefOr::T(Schema::OneOf(self))
    }
}

/// A BY part: its RRULE name, its JSON field, its range, and whether negative values (from the
/// end) are allowed.
struct Part {
    rrule: &'static str,
    json: &'static str,
    lo: u64,
    hi: u64,
    signed: bool,
}

/// The BY parts other than BYDAY, in the order the RRULE pattern lists them.
const PARTS: [Part; 8] = [
    Part {
        rrule: "BYMONTH",
        json: "by_month",
        lo: 1,
        hi: 12,
        signed: false,
    },
    Part {
        rrule: "BYWEEKNO",
        json: "by_week_no",
        lo: 1,
        hi: 53,
        signed: true,
    },
    Part {
        rrule: "BYYEARDAY",
        json: "by_year_day",
        lo: 1,
        hi: 366,
        signed: true,
    },
    Part {
        rrule: "BYMONTHDAY",
        json: "by_month_day",
        lo: 1,
        hi: 31,
        signed: true,
    },
    Part {
        rrule: "BYHOUR",
        json: "by_hour",
        lo: 0,
        hi: 23,
        signed: false,
    },
    Part {
        rrule: "BYMINUTE",
        json: "by_minute",
        lo: 0,
        hi: 59,
        signed: false,
    },
    Part {
        rrule: "BYSECOND",
        json: "by_second",
        lo: 0,
        hi: 60,
        signed: false,
    },
    // The server takes positions up to ±366; past the number of instances in a period a
    // position picks nothing, so the schemas offer the first and the last.
    Part {
        rrule: "BYSETPOS",
        json: "by_set_pos",
        lo: 1,
        hi: 1,
        signed: true,
    },
];

/// A shape of rule: frequencies and the parts that go together with them. The groups keep
/// apart what `recur` refuses together and what would rarely meet (BYWEEKNO with BYMONTH, a
/// numbered weekday with BYMONTHDAY, an INTERVAL with filters it could step past for ever).
struct Group {
    freqs: &'static [&'static str],
    /// The BY parts (and `INTERVAL`) this shape allows.
    parts: &'static [&'static str],
    /// Whether BYDAY may number its weekdays (`1MO`, `-1FR`).
    numbered: bool,
    /// Parts this shape requires (BYSETPOS picks from BYDAY's days).
    required: &'static [&'static str],
}

const GROUPS: [Group; 10] = [
    Group {
        freqs: &["YEARLY"],
        parts: &[
            "INTERVAL",
            "BYMONTH",
            "BYMONTHDAY",
            "BYDAY",
            "BYHOUR",
            "BYMINUTE",
            "BYSECOND",
        ],
        numbered: false,
        required: &[],
    },
    Group {
        freqs: &["YEARLY"],
        parts: &[
            "INTERVAL", "BYWEEKNO", "BYDAY", "BYHOUR", "BYMINUTE", "BYSECOND",
        ],
        numbered: false,
        required: &[],
    },
    Group {
        freqs: &["YEARLY"],
        parts: &["INTERVAL", "BYYEARDAY", "BYHOUR", "BYMINUTE", "BYSECOND"],
        numbered: false,
        required: &[],
    },
    Group {
        freqs: &["MONTHLY"],
        parts: &[
            "INTERVAL",
            "BYMONTHDAY",
            "BYDAY",
            "BYHOUR",
            "BYMINUTE",
            "BYSECOND",
        ],
        numbered: false,
        required: &[],
    },
    Group {
        freqs: &["MONTHLY"],
        parts: &["INTERVAL", "BYDAY", "BYHOUR", "BYMINUTE", "BYSECOND"],
        numbered: true,
        required: &[],
    },
    Group {
        freqs: &["WEEKLY"],
        parts: &["INTERVAL", "BYDAY", "BYHOUR", "BYMINUTE", "BYSECOND"],
        numbered: false,
        required: &[],
    },
    Group {
        freqs: &["DAILY"],
        parts: &[
            "INTERVAL",
            "BYMONTH",
            "BYMONTHDAY",
            "BYDAY",
            "BYHOUR",
            "BYMINUTE",
            "BYSECOND",
        ],
        numbered: false,
        required: &[],
    },
    Group {
        freqs: &["HOURLY", "MINUTELY", "SECONDLY"],
        parts: &["INTERVAL"],
        numbered: false,
        required: &[],
    },
    Group {
        freqs: &["HOURLY", "MINUTELY", "SECONDLY"],
        parts: &[
            "BYMONTH",
            "BYMONTHDAY",
            "BYDAY",
            "BYHOUR",
            "BYMINUTE",
            "BYSECOND",
        ],
        numbered: false,
        required: &[],
    },
    Group {
        freqs: &["MONTHLY", "YEARLY"],
        parts: &["INTERVAL", "BYDAY", "BYHOUR", "BYMINUTE", "BYSETPOS"],
        numbered: false,
        required: &["BYDAY", "BYSETPOS"],
    },
];

/// The largest INTERVAL the schemas offer (the server takes up to 2^32 - 1; a large one
/// steps past what the filters select).
const MOST_INTERVAL: u64 = 100;
/// The largest COUNT the schemas offer (the server takes up to 2^32 - 1).
const MOST_COUNT: u64 = 1_000;
/// Values in one BY list the schemas offer.
const LIST: usize = 7;
const WEEKDAYS: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

fn number(p: &Part) -> String {
    let n = if p.lo == 0 {
        format!("(?:0|{})", up_to(p.hi))
    } else {
        up_to(p.hi)
    };
    if p.signed {
        format!("-?{n}")
    } else {
        n
    }
}

fn weekday(numbered: bool) -> String {
    let wd = format!("(?:{})", WEEKDAYS.join("|"));
    if numbered {
        format!("(?:-?[1-5])?{wd}")
    } else {
        wd
    }
}

fn list(item: &str) -> String {
    format!("{item}(?:,{item}){{0,{}}}", LIST - 1)
}

/// UNTIL as RRULE text: a date, or a UTC date-time (days 1 to 28, so every month has them).
const UNTIL: &str = "(?:19[0-9]{2}|2[01][0-9]{2})(?:0[1-9]|1[0-2])(?:0[1-9]|1[0-9]|2[0-8])(?:T(?:[01][0-9]|2[0-3])[0-5][0-9][0-5][0-9]Z)?";

/// The RRULE text of one group.
fn group_pattern(g: &Group) -> String {
    let mut s = format!("FREQ=(?:{})", g.freqs.join("|"));
    if g.parts.contains(&"INTERVAL") {
        s += &format!("(?:;INTERVAL={})?", up_to(MOST_INTERVAL));
    }
    s += &format!("(?:;COUNT={}|;UNTIL={UNTIL})?", up_to(MOST_COUNT));
    let opt = |name: &str| if g.required.contains(&name) { "" } else { "?" };
    for p in &PARTS {
        if p.rrule == "BYHOUR" && g.parts.contains(&"BYDAY") {
            // BYDAY sits between the date parts and the time parts.
            s += &format!("(?:;BYDAY={}){}", list(&weekday(g.numbered)), opt("BYDAY"));
        }
        if g.parts.contains(&p.rrule) {
            s += &format!("(?:;{}={}){}", p.rrule, list(&number(p)), opt(p.rrule));
        }
    }
    s += &format!("(?:;WKST={})?", weekday(false));
    s
}

/// A recurrence rule as RRULE text.
pub fn rrule() -> Object {
    let groups: Vec<String> = GROUPS.iter().map(group_pattern).collect();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^(?:RRULE:)?(?:{})$", groups.join("|"))))
        .description(Some(
            "RRULE text (RFC 5545), e.g. \"FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0\". \
The pattern lists the parts in one order (FREQ, INTERVAL, COUNT or UNTIL, BYMONTH, BYWEEKNO, \
BYYEARDAY, BYMONTHDAY, BYDAY, BYHOUR, BYMINUTE, BYSECOND, BYSETPOS, WKST) with the parts each \
frequency allows; the server reads them in any order. Times are local to the event's time zone.",
        ))
        .examples([json!("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0")])
        .build()
}

fn ints(p: &Part) -> Schema {
    let item: RefOr<Schema> = if p.signed {
        OneOfBuilder::new()
            .item(int(p.lo, p.hi))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(-(p.hi as f64)))
                    .maximum(Some(-1.0))
                    .build(),
            )
            .build()
            .into_schema()
    } else {
        int(p.lo, p.hi).into()
    };
    ArrayBuilder::new()
        .items(item)
        .min_items(Some(1))
        .max_items(Some(LIST))
        .build()
        .into()
}

fn weekdays(numbered: bool) -> Schema {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(format!("^{}$", weekday(numbered)))),
        )
        .min_items(Some(1))
        .max_items(Some(LIST))
        .build()
        .into()
}

fn until() -> Schema {
    OneOfBuilder::new()
        .item(date_time())
        .item(ObjectBuilder::new().schema_type(Type::String).format(Some(
            utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Date),
        )))
        .build()
        .into()
}

/// The JSON form of one group: `recur`'s own fields (and descriptions), with the values each
/// takes in this group.
fn group_json(g: &Group, bound: &str) -> Object {
    let RefOr::T(Schema::Object(base)) = recur::JsonSchedule::schema() else {
        return Object::new();
    };
    let mut o = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(
            utoipa::openapi::schema::AdditionalProperties::<Schema>::FreeForm(false),
        ))
        .required("frequency");
    let names: Vec<String> = g.freqs.iter().map(|f| f.to_lowercase()).collect();
    for (field, given) in &base.properties {
        let value: Option<Schema> = match field.as_str() {
            "frequency" => Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(names.clone()))
                    .build()
                    .into(),
            ),
            "interval" => g
                .parts
                .contains(&"INTERVAL")
                .then(|| int(1, MOST_INTERVAL).into()),
            "count" => (bound == "count").then(|| int(1, MOST_COUNT).into()),
            "by_day" => g.parts.contains(&"BYDAY").then(|| weekdays(g.numbered)),
            "week_start" => Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(WEEKDAYS))
                    .build()
                    .into(),
            ),
            "until" => (bound == "until").then(until),
            other => PARTS
                .iter()
                .find(|p| p.json == other)
                .filter(|p| g.parts.contains(&p.rrule))
                .map(ints),
        };
        if let Some(v) = value {
            o = o.property(field, described(v, given_description(given)));
            let part = PARTS
                .iter()
                .find(|p| p.json == field)
                .map_or("BYDAY", |p| p.rrule);
            if (field == "by_day" || part != "BYDAY") && g.required.contains(&part) {
                o = o.required(field);
            }
        }
    }
    o.build()
}

fn given_description(s: &RefOr<Schema>) -> Option<String> {
    serde_json::to_value(s).ok()?["description"]
        .as_str()
        .map(str::to_string)
}

/// `s` with the description `d`.
fn described(mut s: Schema, d: Option<String>) -> Schema {
    match &mut s {
        Schema::Object(o) => o.description = d,
        Schema::Array(a) => a.description = d,
        Schema::OneOf(x) => x.description = d,
        _ => {}
    }
    s
}

/// The JSON form of a rule: one alternative per group of frequencies.
pub fn json_rule() -> Schema {
    let mut b = OneOfBuilder::new().description(Some(
        "The JSON form of an RRULE, e.g. {\"frequency\": \"weekly\", \"by_day\": [\"MO\", \"WE\"], \"by_hour\": [9]}: \
one alternative per shape of rule, with the fields that go together (`count` and `until` do not).",
    ));
    for g in &GROUPS {
        for bound in ["count", "until"] {
            b = b.item(group_json(g, bound));
        }
    }
    b.build().into()
}
