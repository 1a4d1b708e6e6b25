//! The store conformance suite (river's `riverdrivertest` is the model): each guarantee the
//! `Store` trait documents is one function, `async fn name(s: &dyn Store)`, run unchanged on
//! both backends by [`conformance!`] — on SQLite (a temp file) and on PostgreSQL (a fresh
//! database per test on `POSTGRES_TEST_URL`, dropped afterwards; see backend.rs for what
//! happens when no server is reachable).
//!
//! The suite talks to the store only through its public API (`qhronos::store::*`), so that it
//! keeps compiling when the trait is split by concern. Times are injected: every call takes a
//! chosen `now` (ms since the epoch), so no test sleeps, and leases, timeouts and cut-offs are
//! crossed by passing a later `now`. The engine is not involved.
//!
//! `cargo test -p qhronos --test store` runs it; `-- postgres::` or `-- sqlite::` one backend,
//! `-- claims::` one concern.

mod backend;
mod bulk;
mod calendars;
mod fixtures;

mod analytics;
mod archive;
mod audit;
mod claims;
mod events;
mod expansion;
mod history;
mod lease_locks;
mod occurrences;
mod partitions;
mod plans;
mod queues;
mod retention;
mod search;
mod settings;
mod templates;
mod tokens;
mod workflows;

/// Emits, for each guarantee `name` of the module it is used in, the tests
/// `sqlite::name` and `postgres::name`, which open a fresh store of that backend and call
/// `name(&*store)`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::backend::TestStore::sqlite().await;
                    super::$name(db.store()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::backend::TestStore::postgres().await else {
                        return;
                    };
                    super::$name(db.store()).await;
                }
            )*
        }
    };
}
pub(crate) use conformance;
