//! Changes between nodes: one LISTEN connection per node, and NOTIFY inside the transactions
//! that make the changes.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use sqlx::PgConnection;
use tokio::sync::broadcast;

use crate::store::{Change, Result};

/// The NOTIFY channel of every node.
pub(super) const CHANNEL: &str = "qhronos";

/// Forwards NOTIFY payloads to `changes`, reconnecting for as long as the pool is open. After a
/// reconnection it sends `Change::Resync`: notifications may have been missed meanwhile.
pub(super) async fn listen(pool: PgPool, changes: broadcast::Sender<Change>) {
    // After the first connection, every new one may have missed notifications.
    let mut lost = false;
    loop {
        if pool.is_closed() {
            return;
        }
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "LISTEN connection failed; retrying");
                lost = true;
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::debug!(error = %e, "LISTEN failed; retrying");
            lost = true;
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        if lost {
            tracing::info!("listening for other nodes' changes again");
            let _ = changes.send(Change::Resync);
        }
        lost = true;
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    if let Some(c) = Change::parse(n.payload()) {
                        let _ = changes.send(c);
                    }
                }
                Ok(None) => {
                    let _ = changes.send(Change::Resync);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lost the LISTEN connection; reconnecting");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends `change` to every node when the transaction of `c` commits (at once outside one).
pub(super) async fn notify(c: &mut PgConnection, change: &Change) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(change.payload())
        .execute(&mut *c)
        .await?;
    Ok(())
}
