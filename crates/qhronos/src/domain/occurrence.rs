//! Occurrences (one due instance of an event) and attempts (one try at delivering it).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ms_rfc3339, Millis};

/// The lifecycle of DESIGN §3. Every change is visible in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OccStatus {
    /// Materialised, waiting for its time (or for its next attempt).
    Pending,
    /// Claimed by a dispatcher, held in its timer under a lease.
    Scheduled,
    /// Sent to a client that must acknowledge it.
    Dispatched,
    Completed,
    /// Every attempt failed (the dead-letter list); `POST /occurrences/{id}/retry` re-drives it.
    Failed,
    /// Skipped by the misfire policy.
    Missed,
    /// Its event was deleted or paused before it fired.
    Cancelled,
}

impl OccStatus {
    pub const ALL: [OccStatus; 7] = [
        OccStatus::Pending,
        OccStatus::Scheduled,
        OccStatus::Dispatched,
        OccStatus::Completed,
        OccStatus::Failed,
        OccStatus::Missed,
        OccStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OccStatus::Pending => "pending",
            OccStatus::Scheduled => "scheduled",
            OccStatus::Dispatched => "dispatched",
            OccStatus::Completed => "completed",
            OccStatus::Failed => "failed",
            OccStatus::Missed => "missed",
            OccStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Result<OccStatus, String> {
        Self::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "status '{s}' is unknown: expected one of pending, scheduled, dispatched, completed, failed, missed, cancelled"
                )
            })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Occurrence {
    pub id: Uuid,
    pub event_id: Uuid,
    #[serde(with = "ms_rfc3339")]
    pub scheduled_at: Millis,
    pub status: OccStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// Attempts allowed in all (grows when the occurrence is re-driven).
    #[serde(skip)]
    pub attempt_limit: u32,
    /// When the next attempt is due (`pending` only).
    #[serde(with = "ms_rfc3339::option")]
    pub next_attempt_at: Option<Millis>,
    pub last_error: Option<String>,
    #[serde(with = "ms_rfc3339")]
    pub created_at: Millis,
    #[serde(with = "ms_rfc3339")]
    pub updated_at: Millis,
    #[serde(with = "ms_rfc3339::option")]
    pub completed_at: Option<Millis>,
    /// When the occurrence ends (its event's duration after `scheduled_at`); `None` without.
    #[serde(with = "ms_rfc3339::option")]
    pub ends_at: Option<Millis>,
    /// The workflow and the occurrence that caused this one; `None` unless it is a workflow's
    /// follow-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<CausedBy>,
    /// The cause as the follow-up's templates see it (`cause.event.name`, …); `None` unless it
    /// is a workflow's follow-up.
    #[serde(skip)]
    pub cause: Option<Arc<serde_json::Value>>,
}

/// What caused a workflow's follow-up occurrence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CausedBy {
    pub workflow_id: Uuid,
    pub occurrence_id: Uuid,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub attempt: u32,
    #[serde(with = "ms_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Millis,
    pub duration_ms: i64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    /// The first bytes of the response body (1 KiB by default).
    pub response: Option<String>,
}

#[cfg(test)]
impl Occurrence {
    /// A first, unattempted occurrence of `event_id` at the epoch, for unit tests.
    pub(crate) fn fixture(event_id: Uuid) -> Occurrence {
        Occurrence {
            id: Uuid::now_v7(),
            event_id,
            scheduled_at: 0,
            status: OccStatus::Scheduled,
            attempts: 0,
            attempt_limit: 3,
            next_attempt_at: None,
            last_error: None,
            created_at: 0,
            updated_at: 0,
            completed_at: None,
            ends_at: None,
            caused_by: None,
            cause: None,
        }
    }
}

/// An occurrence to materialise.
#[derive(Debug, Clone, Copy)]
pub struct NewOccurrence {
    pub id: Uuid,
    pub event_id: Uuid,
    pub scheduled_at: Millis,
    /// When it ends (see `Event::ends_at`).
    pub ends_at: Option<Millis>,
    pub attempt_limit: u32,
    /// Inserted already claimed under this lease: the creating node holds it in its timer (an
    /// event due now fires without waiting for a claim round trip).
    pub lease: Option<Lease>,
}

/// A claim on an occurrence: which node holds it, until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub node: Uuid,
    pub until: Millis,
    /// Names this claim (`lease_token`): renewals move `until`, the token stays.
    pub token: i64,
}

/// A fresh claim token: random, so that two claims of one row (by any nodes) never share one.
pub fn new_lease_token() -> i64 {
    rand::random::<i64>()
}

impl Lease {
    /// The node's name in `lease_owner` (the dispatcher claims under the same name).
    pub fn owner_of(node: Uuid) -> String {
        format!("node-{node}")
    }

    pub fn owner(&self) -> String {
        Self::owner_of(self.node)
    }
}

impl NewOccurrence {
    pub fn new(event_id: Uuid, scheduled_at: Millis, attempt_limit: u32) -> Self {
        NewOccurrence {
            id: Uuid::now_v7(),
            event_id,
            scheduled_at,
            ends_at: None,
            attempt_limit,
            lease: None,
        }
    }

    /// An instance of `event` at `scheduled_at`, with its end.
    pub fn of(event: &super::event::Event, scheduled_at: Millis, attempt_limit: u32) -> Self {
        NewOccurrence {
            ends_at: event.ends_at(scheduled_at),
            ..NewOccurrence::new(event.id, scheduled_at, attempt_limit)
        }
    }
}
