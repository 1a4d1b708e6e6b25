//! The limits the server enforces, named once: its checks and the schemas both read them.

/// Characters of an event's name (after trimming).
pub const NAME_MAX: usize = 256;
/// Characters of a tag.
pub const TAG_MAX: usize = 128;
/// Tags of an event.
pub const TAGS_MAX: usize = 64;
/// Bytes of a name of a queue, WebSocket client or template (`A-Z a-z 0-9 . _ -`).
pub const KEY_MAX: usize = 128;
/// Client names a token may own besides its `sub`.
pub const CLIENTS_MAX: usize = 100;
/// Characters of a token's `sub`.
pub const SUB_MAX: usize = 256;
/// Events in one `POST /events/batch`.
pub const BATCH_MAX: usize = 1_000;
/// Instants one `POST /schedules/preview` returns, and RFC 3339 lists (`exdates`, `rdates`).
pub const PREVIEW_MAX: usize = 1_000;
/// Occurrences one claim takes.
pub const CLAIM_MAX: u64 = 100;
/// The longest claim visibility, in milliseconds (12 h).
pub const VISIBILITY_MAX_MS: u64 = 12 * 3_600_000;
/// The longest per-attempt timeout, in milliseconds.
pub const TIMEOUT_MAX_MS: u64 = 60_000;
/// Attempts of one occurrence.
pub const ATTEMPTS_MAX: u64 = 100;
/// Headers of an `apicall`.
pub const HEADERS_MAX: usize = 32;
/// Recipients of an email.
pub const RECIPIENTS_MAX: usize = 50;
/// The furthest `start_in` reaches, in milliseconds (100 years: far inside what RFC 3339
/// times can show).
pub const START_IN_MAX_MS: u64 = 36_500 * 86_400_000;
