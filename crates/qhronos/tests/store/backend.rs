//! A fresh store per test: a temp SQLite file, or a new PostgreSQL database that is dropped
//! with the value (the approach of tests/api/helpers.rs's `TestDb`).

use std::sync::Arc;
use std::time::Duration;

use qhronos::config::DatabaseConfig;
use qhronos::store::*;

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// An open store and what must outlive it (its file, its database). Fields drop in order:
/// the store (and its connections) before the database it lives in.
pub struct TestStore {
    store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    _db: Option<PgDb>,
}

impl TestStore {
    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The PostgreSQL database's URL (`None` on SQLite): for tests that look at plans.
    pub fn postgres_url(&self) -> Option<&str> {
        self._db.as_ref().map(|d| d.url.as_str())
    }

    pub async fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        let store = connect(&url, &DatabaseConfig::default())
            .await
            .expect("SQLite store opens");
        assert_eq!(store.kind(), "sqlite");
        TestStore {
            store,
            _dir: Some(dir),
            _db: None,
        }
    }

    /// `None` (after saying why) when PostgreSQL is unreachable and `POSTGRES_TEST_URL` is
    /// unset; with the variable set (CI sets it), an unreachable server fails the test.
    pub async fn postgres() -> Option<TestStore> {
        TestStore::postgres_then(|_| async {}).await
    }

    /// As [`TestStore::postgres`], with `prepare` run on the empty database's URL before the
    /// store opens it (and applies its migrations): a test of a migration fills an older schema
    /// there.
    pub async fn postgres_then<F, Fut>(prepare: F) -> Option<TestStore>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let set = std::env::var("POSTGRES_TEST_URL").ok();
        let admin = set
            .clone()
            .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_string());
        let db = match PgDb::create(&admin).await {
            Ok(db) => db,
            Err(e) if set.is_none() => {
                eprintln!(
                    "skipped: PostgreSQL at {admin} is unreachable ({e}) and POSTGRES_TEST_URL \
                     is unset"
                );
                return None;
            }
            Err(e) => panic!("PostgreSQL at {admin} (POSTGRES_TEST_URL): {e}"),
        };
        // Tests run in parallel against one server (max_connections = 100 by default).
        let config = DatabaseConfig {
            pool_size: 4,
            ..DatabaseConfig::default()
        };
        prepare(db.url.clone()).await;
        let store = connect(&db.url, &config)
            .await
            .expect("PostgreSQL store opens");
        assert_eq!(store.kind(), "postgres");
        Some(TestStore {
            store,
            _dir: None,
            _db: Some(db),
        })
    }
}

/// A fresh PostgreSQL database, dropped (best effort) with this value.
struct PgDb {
    url: String,
    admin: String,
    name: String,
}

impl PgDb {
    async fn create(admin: &str) -> std::result::Result<PgDb, sqlx::Error> {
        use sqlx::Connection;
        let name = format!("qhronos_store_{}", uuid::Uuid::now_v7().simple());
        let mut c =
            tokio::time::timeout(Duration::from_secs(5), sqlx::PgConnection::connect(admin))
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??;
        // CREATE DATABASE fails while another session uses the template; that passes quickly.
        let mut tries = 0;
        loop {
            match sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut c)
                .await
            {
                Ok(_) => break,
                Err(_) if tries < 20 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
        let _ = c.close().await;
        let mut url = url::Url::parse(admin).map_err(|e| sqlx::Error::Configuration(e.into()))?;
        url.set_path(&name);
        Ok(PgDb {
            url: url.to_string(),
            admin: admin.to_string(),
            name,
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a thread with its own.
        let t = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                    let _ = c.close().await;
                }
            });
        });
        let _ = t.join();
    }
}
