//! The audit log: who changed what, kept apart from the data it describes.

use async_trait::async_trait;

use super::sql::rows::{to_json, RowExt};
use super::sql::{query, Col, Dialect, Kind, Push};
use super::{Backend, Result};
use crate::domain::Millis;

/// One line of the audit log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditEntry {
    /// The entry's number: increasing in the order entries were appended.
    pub id: i64,
    #[serde(with = "crate::domain::ms_rfc3339")]
    /// When (ms since the epoch).
    pub at: Millis,
    /// Who: the token's `sub`, `master`, or `system`.
    pub actor: String,
    /// What, e.g. `event.create`, `token.revoke`.
    pub action: String,
    /// The id acted on, if any.
    pub target: Option<String>,
    /// The client's address, if known.
    pub ip: Option<String>,
    /// What changed, as JSON (never secrets).
    pub summary: serde_json::Value,
    /// The tags the entry concerns: the event's tags, or the token's scope. `None`: no tag
    /// (only admins without a scope read it).
    #[serde(skip)]
    pub tags: Option<Vec<String>>,
}

/// Filters for `GET /audit`; newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only entries by this actor.
    pub actor: Option<String>,
    /// Only entries of this action.
    pub action: Option<String>,
    /// Only entries about this id.
    pub target: Option<String>,
    /// Entries at or after this time.
    pub from: Option<Millis>,
    /// Entries at or before this time.
    pub to: Option<Millis>,
    /// Most entries returned.
    pub limit: i64,
    /// Entries older than this id (ids only grow: a cursor without gaps).
    pub before_id: Option<i64>,
    /// Only entries whose tags are all in this scope (a scoped admin's); `None`: every entry.
    pub within: Option<Vec<String>>,
}

/// The audit log.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends a line; `entry.id` is ignored (the store numbers entries, increasing). Durable
    /// when this returns.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()>;
    /// Newest first, at most `f.limit`.
    async fn list_audit(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>>;
}

const AUDIT_COLS: [Col; 7] = [
    ("at", Kind::Int),
    ("actor", Kind::Text),
    ("action", Kind::Text),
    ("target", Kind::Text),
    ("ip", Kind::Text),
    ("summary", Kind::Text),
    ("tags", Kind::Text),
];

/// Appends audit lines, a statement for many.
pub(super) async fn insert_audits<D: Dialect>(
    c: &mut D::Connection,
    entries: &[&AuditEntry],
) -> Result<()> {
    for chunk in entries.chunks(D::max_rows(AUDIT_COLS.len())) {
        let rows = chunk
            .iter()
            .map(|e| {
                vec![
                    e.at.into(),
                    e.actor.clone().into(),
                    e.action.clone().into(),
                    e.target.clone().into(),
                    e.ip.clone().into(),
                    to_json(&e.summary).into(),
                    e.tags.as_ref().map(to_json).into(),
                ]
            })
            .collect();
        let mut q = query::<D>(format!(
            "INSERT INTO audit ({})",
            super::sql::names(&AUDIT_COLS)
        ));
        D::push_insert_rows(&mut q, &AUDIT_COLS, rows);
        D::exec(q, c).await?;
    }
    Ok(())
}

#[async_trait]
impl<B: Backend> AuditStore for B {
    async fn append_audit(&self, e: &AuditEntry) -> Result<()> {
        Backend::append_audit(self, e).await
    }

    async fn list_audit(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let mut q = query::<B::D>("SELECT * FROM audit WHERE 1 = 1");
        if let Some(a) = &f.actor {
            q.push(" AND actor = ").val(a.as_str());
        }
        if let Some(a) = &f.action {
            q.push(" AND action = ").val(a.as_str());
        }
        if let Some(t) = &f.target {
            q.push(" AND target = ").val(t.as_str());
        }
        if let Some(from) = f.from {
            q.push(" AND at >= ").val(from);
        }
        if let Some(to) = f.to {
            q.push(" AND at <= ").val(to);
        }
        if let Some(b) = f.before_id {
            q.push(" AND id < ").val(b);
        }
        if let Some(scope) = &f.within {
            B::D::push_within(&mut q, "audit.tags", scope);
        }
        q.push(" ORDER BY id DESC LIMIT ").val(f.limit);
        let mut c = self.reads().acquire().await?;
        B::D::fetch(q, &mut c)
            .await?
            .iter()
            .map(|r| r.audit())
            .collect()
    }
}
