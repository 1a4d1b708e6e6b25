//! The PostgreSQL store: several `qhronosd` nodes on one database.
//!
//! Claims take due rows with `FOR UPDATE SKIP LOCKED` under a lease, so nodes never wait on each
//! other and a dead node's work comes back when its lease expires. Upkeep that must run once
//! (expansion, retention) holds a row lease in `upkeep_leases`. Changes that other nodes must act
//! on at once (pause, delete, update, cancel, move, revocation) are sent with `pg_notify` inside
//! the transaction that makes them, so they arrive exactly when they commit; one connection per
//! node LISTENs and hands them out through `changes()` (`listen.rs`).

mod listen;
pub mod partitions;

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{PgConnection, Postgres};
use tokio::sync::broadcast;

use super::audit::insert_audits;
use super::backend::{pool_gauge, Backend};
use super::events::insert_event;
use super::{AuditEntry, Change, Created, Result, StoreError};
use crate::config::DatabaseConfig;
use crate::domain::event::Event;
use crate::domain::occurrence::NewOccurrence;
use crate::domain::Millis;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The shared store (see the module doc).
pub struct PgStore {
    pool: PgPool,
    changes: broadcast::Sender<Change>,
}

impl PgStore {
    /// Connects, applies the embedded migrations (one node at a time: sqlx takes an advisory
    /// lock) and starts listening for other nodes' changes.
    pub async fn open(url: &str, db: &DatabaseConfig) -> Result<PgStore> {
        let opts = PgConnectOptions::from_str(url)?
            .application_name("qhronosd")
            .options([(
                "statement_timeout",
                format!("{}ms", db.statement_timeout.as_millis()),
            )]);
        let pool = PgPoolOptions::new()
            // One more for the LISTEN connection, which stays checked out.
            .max_connections(db.pool_size + 1)
            .acquire_timeout(db.connect_timeout.0)
            .connect_with(opts)
            .await?;
        MIGRATOR.run(&pool).await?;
        let (changes, _) = broadcast::channel(4096);
        tokio::spawn(listen::listen(pool.clone(), changes.clone()));
        Ok(PgStore { pool, changes })
    }
}

#[async_trait]
impl Backend for PgStore {
    type D = Postgres;

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn single_process(&self) -> bool {
        false
    }

    fn reads(&self) -> &PgPool {
        &self.pool
    }

    fn writes(&self) -> &PgPool {
        &self.pool
    }

    fn pools(&self) -> Vec<(&'static str, u32, u32)> {
        vec![pool_gauge("postgres", &self.pool)]
    }

    async fn announce(c: &mut PgConnection, change: &Change) -> Result<()> {
        listen::notify(c, change).await
    }

    async fn create_event(
        &self,
        e: &Event,
        occs: &[NewOccurrence],
        idem: Option<(&str, &str)>,
        actor: &str,
        audit: Option<&AuditEntry>,
    ) -> Result<Created> {
        let mut tx = self.pool.begin().await?;
        let created = insert_event::<Postgres>(&mut tx, e, occs, idem, actor).await?;
        if let (Created::New, Some(a)) = (&created, audit) {
            insert_audits::<Postgres>(&mut tx, &[a]).await?;
        }
        tx.commit().await?;
        Ok(created)
    }

    async fn append_audit(&self, e: &AuditEntry) -> Result<()> {
        let mut c = self.pool.acquire().await?;
        insert_audits::<Postgres>(&mut c, &[e]).await
    }

    async fn try_upkeep_lease(
        &self,
        name: &str,
        owner: &str,
        until: Millis,
        now: Millis,
    ) -> Result<bool> {
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO upkeep_leases (name, owner, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE upkeep_leases.owner = excluded.owner OR upkeep_leases.expires_at < $4 \
             RETURNING owner",
        )
        .bind(name)
        .bind(owner)
        .bind(until)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(held.is_some())
    }

    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.changes.subscribe())
    }

    async fn publish(&self, change: &Change) -> Result<()> {
        let mut c = self.pool.acquire().await?;
        listen::notify(&mut c, change).await
    }

    async fn keep_partitions_ahead(&self, now: Millis, ahead: Millis, step: Millis) -> Result<u32> {
        partitions::keep_ahead(&self.pool, now, ahead, step).await
    }

    async fn drop_expired_partitions(
        &self,
        now: Millis,
        older_than: Millis,
        cut: &super::PurgeCutoffs,
    ) -> Result<super::PartitionsDropped> {
        partitions::drop_expired(&self.pool, now, older_than, cut).await
    }

    async fn backup_to(&self, _: &std::path::Path) -> Result<()> {
        Err(StoreError::Invalid(
            "backups of the PostgreSQL store are PostgreSQL's job: use pg_dump or your provider's \
             snapshots (see docs/deployment.md)"
                .into(),
        ))
    }
}
