//! Starting and stopping the server: [`Api::init`] checks the configuration, opens and migrates
//! the database and creates the first admin; [`Api::start`] binds and runs the HTTP workers;
//! [`RunningServer::run_until_signal`] stops gracefully on SIGTERM or Ctrl-C (no new connections,
//! requests in flight finish within `ARGUS_SHUTDOWN_TIMEOUT`, then the database pool closes).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::HttpServer;

use crate::auth::JwtKeys;
use crate::config::{redact_url, ApiConfig};
use crate::db::Db;
use crate::health::{DatabaseCheck, ReadinessCheck};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::{routes, users, StartupError};

/// A configured API, ready to start.
pub struct Api {
    config: ApiConfig,
    db: Db,
    jwt: Arc<JwtKeys>,
    metrics: Arc<Metrics>,
    checks: Vec<Arc<dyn ReadinessCheck>>,
}

impl Api {
    /// Validates the configuration (refusing a missing or short JWT secret), opens and migrates
    /// the database, and creates the admin of `ARGUS_ADMIN_USER` when missing.
    pub async fn init(config: ApiConfig) -> Result<Api, StartupError> {
        config.validate()?;
        let secret = config.checked_jwt_secret()?.clone();
        let url = config.database_url();
        tracing::info!(database = %redact_url(&url), "opening the database");
        let db = Db::open(&url).await?;
        users::bootstrap_admin(&db, &config).await?;
        Ok(Api {
            jwt: Arc::new(JwtKeys::new(&secret, config.jwt_ttl)),
            metrics: Arc::new(Metrics::new()),
            checks: vec![Arc::new(DatabaseCheck(db.clone()))],
            config,
            db,
        })
    }

    /// Adds a readiness check (broker, result backend, …) to `/readyz`.
    pub fn with_check(mut self, check: impl ReadinessCheck + 'static) -> Api {
        self.checks.push(Arc::new(check));
        self
    }

    /// The database, e.g. for a caller that also adds users.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The metrics, e.g. for a caller that registers its own.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// What the handlers share.
    pub fn state(&self) -> AppState {
        AppState {
            db: self.db.clone(),
            jwt: Arc::clone(&self.jwt),
            metrics: Arc::clone(&self.metrics),
            checks: Arc::new(self.checks.clone()),
        }
    }

    /// Binds `ARGUS_BIND` (port 0 picks a free port: see [`RunningServer::addr`]) and starts the
    /// HTTP workers. Must be called inside an actix or tokio runtime; the returned server runs
    /// once it is awaited (see [`RunningServer::run`]).
    pub fn start(self) -> Result<RunningServer, StartupError> {
        let state = self.state();
        let mut server = HttpServer::new(move || routes::app(state.clone()))
            // Signals are ours (run_until_signal), so that embedding processes decide.
            .disable_signals()
            .shutdown_timeout(self.config.shutdown_timeout)
            // A client that is slow to send its request head is dropped, not waited for.
            .client_request_timeout(Duration::from_secs(10))
            .client_disconnect_timeout(Duration::from_secs(5));
        if let Some(workers) = self.config.workers {
            server = server.workers(workers.max(1));
        }
        let server = server
            .bind(&self.config.bind)
            .map_err(|source| StartupError::Bind {
                addr: self.config.bind.clone(),
                source,
            })?;
        let addrs = server.addrs();
        let server = server.run();
        tracing::info!(addr = ?addrs, "argus-api listening");
        Ok(RunningServer {
            addrs,
            handle: server.handle(),
            server,
            db: self.db,
        })
    }
}

/// A started server. Await [`RunningServer::run`] (or `run_until_signal`) to serve.
pub struct RunningServer {
    addrs: Vec<SocketAddr>,
    handle: ServerHandle,
    server: Server,
    db: Db,
}

impl RunningServer {
    /// The first bound address (the real port when the configuration said port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Stops the server from elsewhere: `handle.stop(true)` is a graceful stop.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Serves until stopped through the [`handle`](Self::handle), then closes the database.
    pub async fn run(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.db.close().await;
        result
    }

    /// Serves until SIGTERM or SIGINT, then stops gracefully.
    pub async fn run_until_signal(self) -> std::io::Result<()> {
        let handle = self.handle.clone();
        let stopper = tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: finishing the requests in flight");
            handle.stop(true).await;
        });
        let result = self.run().await;
        stopper.abort();
        tracing::info!("stopped");
        result
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Starts the API with `config` and serves until SIGTERM or Ctrl-C: what `argus-api` runs.
pub async fn serve(config: ApiConfig) -> Result<(), StartupError> {
    let server = Api::init(config).await?.start()?;
    server.run_until_signal().await.map_err(StartupError::Io)
}
