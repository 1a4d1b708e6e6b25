//! Group commit for the embedded store's hot writes (event creation, audit lines): requests
//! queue on a channel, and one task writes everything queued in one transaction. The normal
//! path writes the whole batch with a few multi-row statements (plain creates and audit lines);
//! a batch with an idempotent create, or one whose multi-row try failed, is written again with
//! one savepoint per request, so that one failure does not undo the others. Replies go out only
//! after the commit, so a caller that got `Ok` has its write on disk (in the WAL).

use sqlx::{Row, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::sqlite_rows::{self as rows, to_json, EVENT_COLS};
use super::{AuditEntry, Created, Result, StoreError};
use crate::domain::event::Event;
use crate::domain::occurrence::NewOccurrence;

/// Most requests in one transaction.
const MAX_BATCH: usize = 512;

pub enum Job {
    Create {
        event: Box<Event>,
        occurrences: Vec<NewOccurrence>,
        idempotency: Option<(String, String)>,
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
            Job::Create {
                event, occurrences, ..
            } => events.push((event.as_ref(), occurrences.as_slice())),
            Job::Audit { entry, .. } => audits.push(entry.as_ref()),
        }
    }
    super::sqlite::insert_events_many(c, &events).await?;
    for chunk in audits.chunks(1000) {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "INSERT INTO audit (at, actor, action, target, ip, summary, tags) ",
        );
        q.push_values(chunk, |mut b, e| {
            b.push_bind(e.at)
                .push_bind(e.actor.clone())
                .push_bind(e.action.clone())
                .push_bind(e.target.clone())
                .push_bind(e.ip.clone())
                .push_bind(to_json(&e.summary))
                .push_bind(e.tags.as_ref().map(to_json));
        });
        q.build().execute(&mut *c).await?;
    }
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
            ..
        } => {
            if let Some((key, _)) = idempotency {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {EVENT_COLS}, request_hash FROM events WHERE idempotency_key = ?"
                )))
                .bind(key)
                .fetch_optional(&mut *c)
                .await?;
                if let Some(row) = row {
                    return Ok(Done::Created(Created::Existing {
                        event: Box::new(rows::event(&row)?),
                        request_hash: row.try_get("request_hash")?,
                    }));
                }
            }
            let idem = idempotency.as_ref().map(|(k, h)| (k.as_str(), h.as_str()));
            super::sqlite::insert_event_row(c, event, idem).await?;
            super::sqlite::upsert_occurrences(c, occurrences, event.created_at).await?;
            Ok(Done::Created(Created::New))
        }
        Job::Audit { entry: e, .. } => {
            sqlx::query("INSERT INTO audit (at, actor, action, target, ip, summary, tags) VALUES (?, ?, ?, ?, ?, ?, ?)")
                .bind(e.at)
                .bind(&e.actor)
                .bind(&e.action)
                .bind(&e.target)
                .bind(&e.ip)
                .bind(to_json(&e.summary))
                .bind(e.tags.as_ref().map(to_json))
                .execute(&mut *c)
                .await?;
            Ok(Done::Audited)
        }
    }
}
