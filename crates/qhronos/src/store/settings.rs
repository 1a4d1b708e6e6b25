//! Settings: small named values the service keeps (its JWT signing key, its first-start token).

use async_trait::async_trait;

use super::sql::rows::RowExt;
use super::sql::{fetch_one, query, Dialect, Push};
use super::{Backend, Result, StoreError};

/// Named values.
#[async_trait]
pub trait SettingsStore: Send + Sync + 'static {
    /// The value of `key`, if set.
    async fn get_setting(&self, key: &str) -> Result<Option<String>>;
    /// Stores `value`, replacing what the key held.
    async fn set_setting(&self, key: &str, value: &str) -> Result<()>;
    /// Stores `value` unless the key exists; returns the stored value either way (so that
    /// nodes starting together agree on the first one written).
    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String>;
}

fn upsert<D: Dialect>(key: &str, value: &str, replace: bool) -> sqlx::QueryBuilder<D> {
    let mut q = query::<D>("INSERT INTO settings (key, value) VALUES (");
    q.val(key).push(", ").val(value).push(if replace {
        ") ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    } else {
        ") ON CONFLICT (key) DO NOTHING"
    });
    q
}

fn select<D: Dialect>(key: &str) -> sqlx::QueryBuilder<D> {
    let mut q = query::<D>("SELECT value FROM settings WHERE key = ");
    q.val(key);
    q
}

#[async_trait]
impl<B: Backend> SettingsStore for B {
    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        let mut c = self.reads().acquire().await?;
        fetch_one(select::<B::D>(key), &mut c)
            .await?
            .map(|r| r.text("value"))
            .transpose()
    }

    async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        let mut c = self.writes().acquire().await?;
        B::D::exec(upsert::<B::D>(key, value, true), &mut c).await?;
        Ok(())
    }

    async fn setting_or_insert(&self, key: &str, value: &str) -> Result<String> {
        let mut c = self.writes().acquire().await?;
        B::D::exec(upsert::<B::D>(key, value, false), &mut c).await?;
        fetch_one(select::<B::D>(key), &mut c)
            .await?
            .ok_or_else(|| StoreError::Internal(format!("setting {key} vanished")))?
            .text("value")
    }
}
