//! The single error type of the crate.

/// Why a rule, a JSON schedule or a recurrence set was refused.
///
/// Every variant carries the complete user-facing message (its `Display`), which names the
/// offending part and says what would be accepted, because these messages are returned verbatim
/// to API clients as `400` bodies. The variant tells callers *what kind* of problem it is without
/// parsing text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The text is not a well-formed rule (missing `=`, unknown part, not a number, ...).
    #[error("{0}")]
    Syntax(String),
    /// A value is well-formed but outside its allowed range (e.g. `BYMONTH=13`).
    #[error("{0}")]
    Range(String),
    /// Parts that are individually fine but forbidden together (e.g. `COUNT` with `UNTIL`).
    #[error("{0}")]
    Conflict(String),
    /// The rule is valid but can never produce an instance (e.g. February 30th).
    #[error("{0}")]
    Never(String),
    /// The IANA time zone name is not known.
    #[error("{0}")]
    TimeZone(String),
    /// Answering would take more work than the caller's budget allows (a COUNT rule counted
    /// from a DTSTART far in the past, period by period).
    #[error("{0}")]
    TooCostly(String),
}

impl RuleError {
    pub(crate) fn syntax(msg: impl Into<String>) -> Self {
        RuleError::Syntax(msg.into())
    }
    pub(crate) fn range(msg: impl Into<String>) -> Self {
        RuleError::Range(msg.into())
    }
    pub(crate) fn conflict(msg: impl Into<String>) -> Self {
        RuleError::Conflict(msg.into())
    }
}
