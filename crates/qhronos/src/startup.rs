//! Builds the application from a configuration: store, credentials, engine, router, listener.
//! Tests use it with port 0 and read back the bound port.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::auth::gate::Gate;
use crate::auth::jwt::Tokens;
use crate::auth::{default_hmac_secret, MasterToken, TokenSource};
use crate::config::Config;
use crate::delivery::email::Mailer;
use crate::delivery::ssrf::Guard;
use crate::delivery::ws::Hub;
use crate::delivery::ws_relay;
use crate::delivery::Deliverer;
use crate::domain::now_ms;
use crate::engine::retention::Retention;
use crate::engine::{self, Engine, EngineHandle};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::store::{self, Store};

pub struct Application {
    listener: TcpListener,
    router: Arc<axum::Router>,
    engine: Engine,
    addr: SocketAddr,
    retention: Retention,
    shutdown_grace: std::time::Duration,
}

/// Opens the store the configuration names, creating the data directory for the embedded one.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let url = config.database_url();
    if config.database_url.as_deref().is_none_or(str::is_empty) {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("cannot create data directory {}", config.data_dir.display())
        })?;
    }
    let store = store::connect(&url, &config.database)
        .await
        .with_context(|| {
            format!(
                "cannot open the store at {}",
                crate::config::masked_url(&url)
            )
        })?;
    // What follow-ups need from the configuration, read by the outcome path in its own
    // transaction (every node writes its own; nodes are meant to share one configuration).
    let runtime = store::workflows::Runtime {
        max_depth: config.workflows.max_depth,
        retry: config.retry.clone(),
    };
    store
        .set_setting(
            store::workflows::RUNTIME_KEY,
            &serde_json::to_string(&runtime).context("workflow settings")?,
        )
        .await
        .context("cannot store the workflow settings")?;
    Ok(store)
}

/// Where the data lives, for people: the absolute path of the embedded file, or the database
/// URL with its password masked.
pub fn describe_store(config: &Config) -> String {
    match &config.database_url {
        Some(url) if !url.is_empty() => crate::config::masked_url(url),
        _ => {
            let p = config.data_dir.join("qhronos.db");
            std::path::absolute(&p).unwrap_or(p).display().to_string()
        }
    }
}

/// Scheduled backups copy the embedded file: refused on any other store, with where to look.
pub fn check_backup_supported(kind: &str) -> anyhow::Result<()> {
    if kind != "sqlite" {
        anyhow::bail!(
            "backup.every: scheduled backups are for the embedded SQLite store; this one is {kind}: \
             remove the backup section and back PostgreSQL up with pg_dump (see docs/deployment.md, \"Backups\")"
        );
    }
    Ok(())
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let store = open_store(&config).await?;
        match store.kind() {
            "sqlite" => {
                tracing::info!(data = %describe_store(&config), "store opened (SQLite, WAL mode)")
            }
            kind => tracing::info!(
                store = kind,
                "store opened (shared by every node on this database)"
            ),
        }

        let (token, source) =
            MasterToken::init(store.as_ref(), config.master_token.as_deref()).await?;
        match source {
            TokenSource::Configured => tracing::info!("authentication: master token from configuration (send 'Authorization: Bearer <token>')"),
            TokenSource::Generated(t) => {
                eprintln!(
                    "\n================================================================\n\
                     Generated a master token. It is shown this once; only its hash is stored:\n\n    {t}\n\n\
                     Send it as 'Authorization: Bearer <token>'. To use your own instead, set\n\
                     QHRONOS_MASTER_TOKEN (or --master-token, or master_token in config.yaml).\n\
                     Lost it? Run 'qhronosd --reset-master-token' to generate a new one.\n\
                     ================================================================\n"
                );
            }
            TokenSource::Stored => tracing::info!(
                "authentication: master token generated on first start (only its hash is stored); set QHRONOS_MASTER_TOKEN to use your own, or run 'qhronosd --reset-master-token'"
            ),
        }
        let secret = default_hmac_secret(store.as_ref()).await?;

        // The embedded store has one process by construction: every lease it finds was held by
        // an earlier run of this process, which is gone. Release them all now, not after the
        // lease expires. A shared store's other nodes hold live leases: only expired ones go.
        let released = store
            .release_leases(now_ms(), store.single_process())
            .await?;
        if released > 0 {
            tracing::info!(
                released,
                "returned occurrences claimed by the previous run to pending"
            );
        }

        let tokens =
            Arc::new(Tokens::init(store.as_ref(), config.auth.jwt_secret.as_deref()).await?);
        let guard = Arc::new(Guard::new(
            config.delivery.allowed_networks.clone(),
            config.delivery.hosts.clone(),
        ));
        let hub = Arc::new(Hub::new(
            config.websocket.ack_timeout.0,
            config.websocket.buffer,
        ));
        let mailer = Mailer::new(&config.smtp, config.delivery.response_excerpt_bytes)?;
        let deliverer = Arc::new(
            Deliverer::new(&config.delivery, secret, guard.clone(), hub.clone(), mailer)?
                .with_templates(store.clone()),
        );
        let metrics = Arc::new(if config.metrics.enabled {
            Metrics::new()
        } else {
            Metrics::disabled()
        });
        let mut engine = engine::start(store.clone(), &config, deliverer, metrics.clone())?;
        let retention = Retention {
            store: store.clone(),
            config: config.retention.clone(),
            partitioning: config.partitioning.clone(),
            metrics: metrics.clone(),
            last: Default::default(),
        };
        engine
            .tasks
            .push(tokio::spawn(retention.clone().run(config.engine.lease)));
        if config.backup.every.is_some() {
            check_backup_supported(store.kind())?;
            let backups = crate::engine::backup::Backups {
                store: store.clone(),
                config: config.backup.clone(),
                dir: config.backup.dir_in(&config.data_dir),
                metrics: metrics.clone(),
            };
            engine.tasks.push(tokio::spawn(backups.run()));
        }
        engine.tasks.push(tokio::spawn(expire_claims(
            store.clone(),
            config.pull.sweep_interval.0,
        )));
        engine.tasks.push(tokio::spawn(refresh_revocations(
            store.clone(),
            tokens.clone(),
        )));
        if let Some(changes) = store.changes() {
            engine.tasks.push(tokio::spawn(follow_changes(
                changes,
                store.clone(),
                engine.handle.clone(),
                tokens.clone(),
            )));
        }
        // The WebSocket hub's messages to the other nodes, and theirs to it, on a feed of its
        // own: a burst of relay messages never delays the changes above, nor they the hub.
        if let Some(changes) = store.changes() {
            engine
                .tasks
                .push(ws_relay::spawn(hub.clone(), store.clone(), changes));
        }
        let store_kind = store.kind();
        let master = Arc::new(token);
        let state = AppState {
            store,
            config: Arc::new(config.clone()),
            engine: engine.handle.clone(),
            tokens: tokens.clone(),
            master: master.clone(),
            guard,
            hub,
            started: Instant::now(),
            started_at: now_ms(),
            store_kind,
            metrics: metrics.clone(),
            retention: retention.last.clone(),
            calendar_index: Default::default(),
        };
        let gate = Gate {
            master,
            tokens,
            limiter: RateLimiter::new(&config.rate_limit).map(Arc::new),
            metrics: metrics.clone(),
        };
        let feeds_state = state.clone();
        engine.tasks.push(tokio::spawn(crate::engine::feeds::run(
            state.store.clone(),
            move |cal| {
                let st = feeds_state.clone();
                async move {
                    api::calendar_feeds::refresh(&st, cal, now_ms())
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            },
        )));
        let router = api::router(state, gate);
        let listener = TcpListener::bind((config.host, config.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
        let addr = listener.local_addr()?;
        tracing::info!("listening on http://{addr}");
        Ok(Application {
            listener,
            router,
            engine,
            addr,
            retention,
            shutdown_grace: config.engine.shutdown_grace.0,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The retention service, so tests can run a pass at a chosen time.
    pub fn retention(&self) -> Retention {
        self.retention.clone()
    }

    pub fn engine(&self) -> EngineHandle {
        self.engine.handle.clone()
    }

    /// Serves until Ctrl-C / SIGTERM (or forever, in tests that drop the task).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then shuts down gracefully: no new requests, no new
    /// claims; deliveries in flight finish (up to `engine.shutdown_grace`) and are recorded;
    /// occurrences held for later go back to `pending` for the next start.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // `self.router` stays alive while serving: `/mcp` reaches the API through it.
        let app = (*self.router)
            .clone()
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, app)
            .with_graceful_shutdown(stop)
            .await?;
        tracing::info!(grace = ?self.shutdown_grace, "shutting down: no new claims; waiting for deliveries in flight");
        let stopped = self.engine.shutdown(self.shutdown_grace).await?;
        if stopped.unfinished > 0 {
            tracing::warn!(
                unfinished = stopped.unfinished,
                released = stopped.released,
                "stopped with deliveries still running; they are delivered again after the restart"
            );
        } else {
            tracing::info!(
                released = stopped.released,
                "stopped: every delivery in flight was recorded; held occurrences returned to pending"
            );
        }
        Ok(())
    }
}

/// Pull claims whose visibility timeout passed go back to their queues even when nobody claims.
async fn expire_claims(store: Arc<dyn Store>, every: std::time::Duration) {
    loop {
        tokio::time::sleep(every).await;
        match store.expire_claims(now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "pull claims expired; returned to their queues"),
            Err(e) => tracing::warn!(error = %e, "expiring pull claims failed"),
        }
    }
}

/// Revocations made through other nodes reach this one within a second.
async fn refresh_revocations(store: Arc<dyn Store>, tokens: Arc<Tokens>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        if let Err(e) = tokens.refresh(store.as_ref()).await {
            tracing::warn!(error = %e, "reading revoked tokens failed");
        }
    }
}

/// Acts on changes made through other nodes as they commit: a paused, deleted or changed event
/// and a cancelled or moved occurrence leave this node's timer (and go back to the store, to be
/// claimed again as they are now); a revocation is read at once. (The WebSocket hub's
/// messages are `ws_relay`'s.)
async fn follow_changes(
    mut changes: tokio::sync::broadcast::Receiver<store::Change>,
    store: Arc<dyn Store>,
    engine: EngineHandle,
    tokens: Arc<Tokens>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match changes.recv().await {
            Ok(store::Change::Event(id)) => engine.forget_event(id, None),
            Ok(store::Change::Occurrence(id)) => engine.forget_occurrence(id),
            Ok(store::Change::Tokens | store::Change::Resync) | Err(RecvError::Lagged(_)) => {
                if let Err(e) = tokens.refresh(store.as_ref()).await {
                    tracing::warn!(error = %e, "reading revoked tokens failed");
                }
            }
            Ok(store::Change::Message(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("stop signal received");
}
