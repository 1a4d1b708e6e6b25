//! RFC 5545 recurrence rules for Qhronos: parse, validate and expand in any IANA time zone.
//!
//! The crate is pure (no I/O, no clock): the service hands it a DTSTART, a zone name, a rule and
//! EXDATE/RDATE lists and asks for the next instants. Keeping it pure makes every scheduling
//! decision reproducible in tests and lets the conformance corpus pin the semantics
//! (DESIGN §3): wall-clock generation in the zone, nonexistent local times moved forward by the
//! DST gap, ambiguous ones taking the first instant, sub-daily rules stepping in elapsed time.
//!
//! Choices where RFC 5545 leaves room (all pinned by tests):
//! - DTSTART is always the first instance and counts toward COUNT, even when it does not match
//!   the rule (remove it with an EXDATE if unwanted).
//! - `UNTIL` is inclusive. A date-time `UNTIL` must be UTC (`Z`): DTSTART always has a zone here,
//!   and RFC 5545 then forbids a floating UNTIL. A date `UNTIL` keeps every instance on that
//!   local date.
//! - YEARLY with BYMONTHDAY or BYDAY but no BYMONTH expands over every month (the reading of
//!   python-dateutil and most implementations).
//! - Invalid dates (February 30th) are skipped, never rolled over; a rule that can never produce
//!   an instance is refused when the [`Recurrence`] is built.
//! - RDATEs before DTSTART are dropped; RDATEs are not limited by COUNT or UNTIL.
//!
//! Expansion is lazy and skips arithmetically to the period holding the requested lower bound,
//! and gives up after one full 400-year calendar cycle of periods without an instance. A COUNT
//! rule whose periods do not hold exactly one instance each must know how many instances come
//! before that bound: it resumes from a [`Mark`] the caller kept (the service stores one per
//! event), counts them arithmetically for the classes `expand/count.rs` lists, or walks from
//! DTSTART. Every walk runs under a step budget ([`Recurrence::cursor`]); past it the answer is
//! [`RuleError::TooCostly`], naming COUNT, never an unbounded loop.
//!
//! Feature `openapi` (off by default): [`JsonSchedule`] derives `utoipa::ToSchema`, so an
//! OpenAPI document describes the JSON form from the type itself.

mod calendar;
mod describe;
mod error;
mod expand;
mod json;
mod local;
mod parse;
mod recurrence;
mod rule;

pub use error::RuleError;
pub use jiff::Timestamp;
pub use json::JsonSchedule;
pub use local::{parse_local, resolve_local, start_of_day, to_local};
pub use recurrence::{Cursor, Mark, Recurrence, DEFAULT_BUDGET};
pub use rule::{Frequency, Rule, Until, Weekday, WeekdayNum};
