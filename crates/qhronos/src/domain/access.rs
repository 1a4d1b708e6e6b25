//! The role an issued token carries. The store keeps it and the gate checks it, so it lives
//! with the domain types rather than in `auth`.

use serde::{Deserialize, Serialize};

/// The role of an issued token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// May only read.
    Read,
    /// May create, change and delete events and re-drive occurrences.
    Write,
    /// Both.
    ReadWrite,
    /// Both, plus tokens and the audit log.
    Admin,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::ReadWrite => "read_write",
            Access::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Access, String> {
        match s {
            "read" => Ok(Access::Read),
            "write" => Ok(Access::Write),
            "read_write" => Ok(Access::ReadWrite),
            "admin" => Ok(Access::Admin),
            _ => Err(format!(
                "access '{s}' is unknown: expected read, write, read_write or admin"
            )),
        }
    }
}
