//! All settings in one struct. Layers, later ones win: built-in defaults, an optional YAML file
//! (`--config PATH`), `QHRONOS_…` environment variables (nested keys with `__`, e.g.
//! `QHRONOS_DELIVERY__CONCURRENCY=64`), then command-line flags.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Serialized};
use figment::Figment;
use serde::{Deserialize, Serialize};

mod sections;
pub use sections::*;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub host: IpAddr,
    /// Port to listen on; 0 picks a free one (tests).
    pub port: u16,
    /// `error`, `warn`, `info`, `debug`, `trace`, or a full tracing filter.
    pub log_level: String,
    /// `text` (default) or `json`.
    pub log_format: String,
    /// Where the embedded store keeps its files. Default: `./data`.
    pub data_dir: PathBuf,
    /// `sqlite://path` for the embedded store, `postgres://user@host/db` for PostgreSQL (several
    /// nodes on one database). Empty: `<data_dir>/qhronos.db`.
    pub database_url: Option<String>,
    /// The master token. Empty: one is generated on first start and only its hash is stored.
    pub master_token: Option<String>,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub rate_limit: RateLimitConfig,
    pub delivery: DeliveryConfig,
    pub engine: EngineConfig,
    pub retry: RetryDefaults,
    pub misfire: MisfireDefaults,
    pub retention: RetentionConfig,
    /// Scheduled online backups (embedded store only).
    pub backup: BackupConfig,
    pub metrics: MetricsConfig,
    pub websocket: WebsocketConfig,
    pub pull: PullConfig,
    pub smtp: SmtpConfig,
    pub workflows: WorkflowsConfig,
    pub planning: PlanningConfig,
    pub partitioning: PartitioningConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            log_level: "info".into(),
            log_format: "text".into(),
            data_dir: PathBuf::from("data"),
            database_url: None,
            master_token: None,
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            rate_limit: RateLimitConfig::default(),
            delivery: DeliveryConfig::default(),
            engine: EngineConfig::default(),
            retry: RetryDefaults::default(),
            misfire: MisfireDefaults::default(),
            retention: RetentionConfig::default(),
            backup: BackupConfig::default(),
            metrics: MetricsConfig::default(),
            websocket: WebsocketConfig::default(),
            pull: PullConfig::default(),
            smtp: SmtpConfig::default(),
            workflows: WorkflowsConfig::default(),
            planning: PlanningConfig::default(),
            partitioning: PartitioningConfig::default(),
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers alone.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid YAML: {source}")]
    Yaml {
        path: PathBuf,
        source: serde_yaml_ng::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Builds the configuration from every layer. `env` is the process environment as pairs,
    /// passed in so tests do not depend on (or change) the real one.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let value: serde_json::Value =
                serde_yaml_ng::from_str(&text).map_err(|source| ConfigError::Yaml {
                    path: path.to_path_buf(),
                    source,
                })?;
            if !value.is_null() {
                fig = fig.merge(Serialized::defaults(value));
            }
        }
        fig = fig
            .merge(Env::prefixed("QHRONOS_").split("__"))
            .merge(Serialized::defaults(overrides));
        let config: Config = fig
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid(format!(
                "log_format: '{}' is not a log format: use text or json",
                self.log_format
            )));
        }
        if self.retry.max_attempts == 0 {
            return bad("retry.max_attempts must be at least 1");
        }
        if self.delivery.concurrency == 0 || self.delivery.per_target_concurrency == 0 {
            return bad(
                "delivery.concurrency and delivery.per_target_concurrency must be at least 1",
            );
        }
        if self.database.pool_size == 0 {
            return bad("database.pool_size must be at least 1");
        }
        if self.database.statement_timeout.0.is_zero() || self.database.connect_timeout.0.is_zero()
        {
            return bad("database.statement_timeout and database.connect_timeout must be above 0");
        }
        if self.retention.batch <= 0 {
            return bad("retention.batch must be at least 1");
        }
        if self.retention.archive_for.0.is_zero() {
            return bad("retention.archive_for must be above 0 (turn the archive off with retention.archive: false)");
        }
        if self
            .backup
            .every
            .is_some_and(|d| d.0 < std::time::Duration::from_millis(100))
        {
            return bad("backup.every must be at least 100ms (e.g. 24h)");
        }
        if self.workflows.max_depth == 0 {
            return bad("workflows.max_depth must be at least 1");
        }
        if self.engine.claim_batch <= 0 {
            return bad("engine.claim_batch must be at least 1");
        }
        // Claims are renewed every quarter of a lease while held (however long an attempt
        // takes), so the lease only bounds how long a dead node's claims wait for another node.
        if self.engine.lease.0 < std::time::Duration::from_secs(1) {
            return bad(
                "engine.lease must be at least 1s (claims are renewed every quarter of it)",
            );
        }
        // What the timer holds fires within the claim horizon: within its lease.
        if self.engine.lease.0 <= self.engine.claim_horizon.0 {
            return bad("engine.lease must be longer than engine.claim_horizon");
        }
        if self.websocket.buffer == 0 {
            return bad("websocket.buffer must be at least 1");
        }
        if self.websocket.ping_interval.0.is_zero()
            || self.pull.poll_interval.0.is_zero()
            || self.pull.sweep_interval.0.is_zero()
        {
            return bad("websocket.ping_interval, pull.poll_interval and pull.sweep_interval must be above 0");
        }
        if self.pull.visibility_timeout.0.is_zero() {
            return bad("pull.visibility_timeout must be above 0");
        }
        if let Some(from) = self.smtp.host.as_ref().map(|_| &self.smtp.from) {
            if from.parse::<lettre::message::Mailbox>().is_err() {
                return Err(ConfigError::Invalid(format!(
                    "smtp.from: '{from}' is not an email address"
                )));
            }
        }
        for r in &self.smtp.allowed_recipients {
            crate::delivery::email::check_allowed_entry(r).map_err(ConfigError::Invalid)?;
        }
        if self.smtp.user.is_some() != self.smtp.password.is_some() {
            return bad("smtp.user and smtp.password go together: set both or neither");
        }
        let r = &self.rate_limit;
        let bucket_ok = |burst: u32, rate: f64| burst > 0 && rate.is_finite() && rate > 0.0;
        if r.enabled && !bucket_ok(r.burst, r.per_second) {
            return bad("rate_limit.burst and rate_limit.per_second must be above 0 (or set rate_limit.enabled: false)");
        }
        if r.enabled && !bucket_ok(r.anonymous.burst, r.anonymous.per_second) {
            return bad("rate_limit.anonymous.burst and rate_limit.anonymous.per_second must be above 0 (or set rate_limit.enabled: false)");
        }
        if let Some(t) = &self.auth.jwt_secret {
            if t.len() < 32 {
                return bad("auth.jwt_secret must be at least 32 characters");
            }
        }
        if let Some(t) = &self.master_token {
            if t.len() < 16 {
                return bad("master_token must be at least 16 characters");
            }
        }
        Ok(())
    }

    /// The database URL in use: the configured one, or the embedded file in `data_dir`.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.is_empty() => url.clone(),
            _ => format!("sqlite://{}", self.data_dir.join("qhronos.db").display()),
        }
    }
}

/// What is shown in place of a secret that is set.
pub const MASK: &str = "***";

/// The settings with every secret that is set replaced by `***`: the master token, the JWT
/// key, the SMTP password, and a password inside the database URL (`qhronosd config check`
/// prints this; `GET /admin/config` answers it).
pub fn masked(config: &Config) -> serde_json::Value {
    let mut v = serde_json::to_value(config).unwrap_or_default();
    for path in [
        &["master_token"][..],
        &["auth", "jwt_secret"][..],
        &["smtp", "password"][..],
    ] {
        let mut slot = Some(&mut v);
        for k in path {
            slot = slot.and_then(|s| s.get_mut(*k));
        }
        if let Some(s) = slot.filter(|s| !s.is_null()) {
            *s = MASK.into();
        }
    }
    if let Some(url) = v.get_mut("database_url") {
        if let Some(u) = url.as_str().map(masked_url) {
            *url = u.into();
        }
    }
    v
}

/// A database URL fit for logs and messages: the password (in the user part, or a `password`
/// query parameter) replaced by `***`. A URL that does not parse is masked from its `://` to
/// its last `@`, so nothing that could be a password is shown.
pub fn masked_url(url: &str) -> String {
    const MASK: &str = "***";
    if let Ok(mut u) = url::Url::parse(url) {
        if u.password().is_some() && u.set_password(Some(MASK)).is_err() {
            return MASK.to_string();
        }
        if u.query_pairs().any(|(k, _)| k == "password") {
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "password" {
                        MASK.into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return u.to_string();
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(a), Some(b)) if b > a + 3 => format!("{}{MASK}{}", &url[..a + 3], &url[b..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_masked_wherever_they_are_written() {
        for (url, shown) in [
            (
                "postgres://qh:s3cret@db.internal:5432/qhronos",
                "postgres://qh:***@db.internal:5432/qhronos",
            ),
            (
                "postgres://qh@db/qhronos?sslmode=require&password=s3cret",
                "postgres://qh@db/qhronos?sslmode=require&password=***",
            ),
            ("postgres://qh@db/qhronos", "postgres://qh@db/qhronos"),
            (
                "sqlite:///var/lib/qhronos/qhronos.db",
                "sqlite:///var/lib/qhronos/qhronos.db",
            ),
            (
                "postgres://qh:s3cret@[bad/qhronos",
                "postgres://***@[bad/qhronos",
            ),
        ] {
            assert_eq!(masked_url(url), shown, "{url}");
            assert!(!masked_url(url).contains("s3cret"));
        }
    }

    #[test]
    fn yaml_file_then_flags_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(
            &path,
            "port: 9000\nlog_level: debug\ndelivery:\n  allowed_networks: [127.0.0.0/8, 10.0.0.0/8]\n",
        )
        .unwrap();
        let c = Config::load(Some(&path), &Overrides::default()).unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.log_level, "debug");
        assert_eq!(c.delivery.allowed_networks.len(), 2);
        let o = Overrides {
            port: Some(9100),
            ..Default::default()
        };
        assert_eq!(Config::load(Some(&path), &o).unwrap().port, 9100);
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "prot: 9000\n").unwrap();
        let err = Config::load(Some(&path), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
    }

    #[test]
    fn the_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config.example.yaml");
        let c = Config::load(Some(&path), &Overrides::default()).unwrap();
        assert_eq!(c.port, 8080);
    }
}
