//! Group commit for the embedded store's hot writes (event creation with its audit line, audit
//! lines): requests
//! queue on a channel, and one task writes everything queued in one transaction.
//!
//! A batch of plain jobs (creates without an idempotency key, audit lines) is written with a
//! few multi-row statements whatever its size: that is the path under load. A batch holding an
//! idempotent create (whose key must be looked up first), a single job, or a batch whose
//! multi-row try failed (one bad job undoes the try) is written job by job, each under its own
//! savepoint, so that one failure fails alone. Replies go out only after the commit, so a caller
//! that got `Ok` has its write on disk (in the WAL).

use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::domain::event::Event;
use crate::domain::occurrence::NewOccurrence;
use crate::store::audit::insert_audits;
use crate::store::events::{insert_event, insert_events};
use crate::store::{AuditEntry, Created, Result, StoreError};

/// Most requests in one transaction.
const MAX_BATCH: usize = 512;

/// A write waiting for the writer task; its result goes back on `reply` after the commit.
pub enum Job {
    Create {
        event: Box<Event>,
        occurrences: Vec<NewOccurrence>,
        idempotency: Option<(String, String)>,
        /// Who creates it, for its first version.
        actor: String,
        /// Its audit line, written with it when it is new.
        audit: Option<Box<AuditEntry>>,
        reply: oneshot::Sender<Result<Created>>,
    },
    Audit {
        entry: Box<AuditEntry>,
        reply: oneshot::Sender<Result<()>>,
    },
}

enum Done {
    Created(Created),
    Audited,
}

/// The writer task: runs until every sender is dropped.
pub async fn run(pool: SqlitePool, mut rx: mpsc::Receiver<Job>) {
    let mut jobs: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        jobs.push(first);
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let results: Vec<Result<Done>> = match write_batch(&pool, &jobs).await {
            Ok(r) => r,
            Err(e) => {
                let msg = e.to_string();
                jobs.iter()
                    .map(|_| Err(StoreError::Internal(format!("write batch failed: {msg}"))))
                    .collect()
            }
        };
        let mut results = results.into_iter();
        for job in jobs.drain(..) {
            let r = results
                .next()
                .unwrap_or_else(|| Err(StoreError::Internal("write batch lost a result".into())));
            match job {
                Job::Create { reply, .. } => {
                    let _ = reply.send(r.and_then(|d| match d {
                        Done::Created(c) => Ok(c),
                        Done::Audited => Err(StoreError::Internal("mismatched result".into())),
                    }));
                }
                Job::Audit { reply, .. } => {
                    let _ = reply.send(r.map(|_| ()));
                }
            }
        }
    }
}

/// A job the fast path can take: a create without an idempotency key (nothing to look up
/// first), or an audit line.
fn plain(job: &Job) -> bool {
    match job {
        Job::Create { idempotency, .. } => idempotency.is_none(),
        Job::Audit { .. } => true,
    }
}

/// Every job of the batch with a few multi-row statements (each statement is a round trip to
/// SQLite's thread, and a savepoint per job costs two more). Any error undoes the whole try
/// and the caller falls back to one savepoint per job, so one bad job fails alone.
async fn write_all(c: &mut SqliteConnection, jobs: &[Job]) -> Result<Vec<Result<Done>>> {
    let mut events = Vec::new();
    let mut audits = Vec::new();
    for job in jobs {
        match job {
            // A plain create is always new: its audit line goes with it.
            Job::Create {
                event,
                occurrences,
                actor,
                audit,
                ..
            } => {
                events.push((event.as_ref(), occurrences.as_slice(), actor.as_str()));
                audits.extend(audit.as_deref());
            }
            Job::Audit { entry, .. } => audits.push(entry.as_ref()),
        }
    }
    insert_events::<Sqlite>(c, &events).await?;
    insert_audits::<Sqlite>(c, &audits).await?;
    Ok(jobs
        .iter()
        .map(|j| {
            Ok(match j {
                Job::Create { .. } => Done::Created(Created::New),
                Job::Audit { .. } => Done::Audited,
            })
        })
        .collect())
}

async fn write_batch(pool: &SqlitePool, jobs: &[Job]) -> Result<Vec<Result<Done>>> {
    if jobs.len() > 1 && jobs.iter().all(plain) {
        let mut tx = pool.begin().await?;
        match write_all(&mut tx, jobs).await {
            Ok(done) => {
                tx.commit().await?;
                return Ok(done);
            }
            Err(e) => {
                tracing::debug!(error = %e, "batched write failed; writing job by job");
                tx.rollback().await?;
            }
        }
    }
    let mut tx = pool.begin().await?;
    let mut out = Vec::with_capacity(jobs.len());
    let isolate = jobs.len() > 1;
    for job in jobs {
        if isolate {
            sqlx::query("SAVEPOINT job").execute(&mut *tx).await?;
        }
        let r = run_job(&mut tx, job).await;
        if isolate {
            let sql = if r.is_ok() {
                "RELEASE job"
            } else {
                "ROLLBACK TO job; RELEASE job"
            };
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
        } else if let Err(e) = r {
            return Ok(vec![Err(e)]);
        }
        out.push(r);
    }
    tx.commit().await?;
    Ok(out)
}

async fn run_job(c: &mut SqliteConnection, job: &Job) -> Result<Done> {
    match job {
        Job::Create {
            event,
            occurrences,
            idempotency,
            actor,
            audit,
            ..
        } => {
            let idem = idempotency.as_ref().map(|(k, h)| (k.as_str(), h.as_str()));
            let created = insert_event::<Sqlite>(c, event, occurrences, idem, actor).await?;
            if let (Created::New, Some(a)) = (&created, audit) {
                insert_audits::<Sqlite>(c, &[a.as_ref()]).await?;
            }
            Ok(Done::Created(created))
        }
        Job::Audit { entry, .. } => {
            insert_audits::<Sqlite>(c, &[entry.as_ref()]).await?;
            Ok(Done::Audited)
        }
    }
}
