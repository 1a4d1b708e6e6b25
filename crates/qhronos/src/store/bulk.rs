//! Bulk operations: re-driving many failed or missed occurrences in a statement per chunk (the
//! "recover everything since the outage" action). Bulk event changes go through the event
//! writes one event at a time (`EventStore`), so that each keeps its version and re-plan.

use async_trait::async_trait;
use uuid::Uuid;

use super::sql::{query, Col, Dialect, Kind, Push};
use super::{Backend, Result};
use crate::domain::Millis;

/// Many occurrences at once.
#[async_trait]
pub trait BulkStore: Send + Sync + 'static {
    /// Sends each `(occurrence, extra_attempts)` again, now, with that many more attempts — as
    /// `OccurrenceStore::redrive` does one — if it is still failed or missed (one that changed
    /// meanwhile is left alone). One short transaction per call: callers pass chunks. Returns
    /// how many were re-driven.
    async fn redrive_many(&self, occurrences: &[(Uuid, u32)], now: Millis) -> Result<u64>;
}

const REDRIVE_COLS: [Col; 2] = [("id", Kind::Text), ("extra", Kind::Int)];

#[async_trait]
impl<B: Backend> BulkStore for B {
    async fn redrive_many(&self, occs: &[(Uuid, u32)], now: Millis) -> Result<u64> {
        type D<B> = <B as Backend>::D;
        if occs.is_empty() {
            return Ok(0);
        }
        let mut tx = self.writes().begin().await?;
        let mut n = 0;
        for chunk in occs.chunks(D::<B>::max_rows(REDRIVE_COLS.len())) {
            let rows = chunk
                .iter()
                .map(|(id, extra)| vec![(*id).into(), i64::from(*extra).into()])
                .collect();
            let mut q =
                query::<D<B>>("UPDATE occurrences SET status = 'pending', next_attempt_at = ");
            q.val(now)
                .push(", attempt_limit = occurrences.attempts + v.extra, completed_at = NULL, updated_at = ")
                .val(now)
                .push(" FROM ");
            D::<B>::push_relation(&mut q, "v", &REDRIVE_COLS, rows);
            q.push(" WHERE occurrences.id = v.id AND occurrences.status IN ('failed', 'missed')");
            n += D::<B>::exec(q, &mut tx).await?;
        }
        tx.commit().await?;
        Ok(n)
    }
}
