//! Calendars: iCalendar files in (import, subscriptions) and out (feeds), and the local-time
//! work around them. Local time lives here and in `recur`; everything that leaves this module
//! is UTC instants or validated event bodies.
//!
//! - `ics.rs`     parse a file (calcard) into the VEVENTs we take, with line numbers
//! - `zones.rs`   TZID → IANA (IANA, Windows/Outlook names, custom VTIMEZONE rules)
//! - `import.rs`  VEVENTs → event bodies, and the plan of an import against what exists
//! - `export.rs`  events → a feed (VTIMEZONE from the tz database, RECURRENCE-ID overrides)
//! - `conflicts.rs` the interval index of a calendar; `index_cache.rs` keeps it between checks

pub mod conflicts;
pub mod export;
pub mod ics;
pub mod import;
pub mod index_cache;
pub mod zones;
