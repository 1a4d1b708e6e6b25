//! The feed refresh loop: every few seconds, on one node at a time (the `feeds` upkeep lease),
//! the subscriptions whose next fetch is due are refreshed, each by `refresh` (the fetch and
//! import of `api/calendar_feeds.rs`, which `startup` passes in: the import is written against
//! the API state). A refresh that fails is logged; the calendar says why in `last_result`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::{now_ms, Millis};
use crate::store::{Calendar, Store};

/// How often due feeds are looked for.
const EVERY: Duration = Duration::from_secs(5);
/// Most feeds refreshed in one round.
const PER_ROUND: i64 = 20;

/// Runs the loop until the task is dropped.
pub async fn run<F, Fut>(store: Arc<dyn Store>, refresh: F)
where
    F: Fn(Calendar) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let owner = format!("feeds-{}", uuid::Uuid::now_v7());
    loop {
        tokio::time::sleep(EVERY).await;
        let now = now_ms();
        let until = now + 4 * EVERY.as_millis() as Millis;
        match store.try_upkeep_lease("feeds", &owner, until, now).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "feeds: upkeep lease");
                continue;
            }
        }
        let due = match store.due_feeds(now, PER_ROUND).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "feeds: due feeds");
                continue;
            }
        };
        for cal in due {
            let id = cal.id;
            if let Err(e) = refresh(cal).await {
                tracing::warn!(calendar = %id, error = %e, "feeds: refresh failed");
            }
        }
    }
}
