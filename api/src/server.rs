//! Starting and stopping the server: [`Api::init`] checks the configuration, connects to the
//! broker and the result backend, opens and migrates the database and creates the first admin
//! ([`Api::init_with_queue`] takes an already connected broker and backend instead);
//! [`Api::start`] binds, starts the HTTP workers, the video-state listener (the server's one
//! backend subscription, fanned out to the event streams), the readiness checks and, on
//! `ARGUS_METRICS_BIND`, the operations endpoints;
//! [`RunningServer::run_until_signal`] stops gracefully on SIGTERM or Ctrl-C, and a
//! [`Stopper`] stops it from anywhere (event streams end, no new connections, requests in
//! flight finish within `ARGUS_SHUTDOWN_TIMEOUT`, then the database pool closes).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::HttpServer;
use argus_common::storage::Storage;
use argus_queue::backend::Backend;
use argus_queue::broker::Broker;
use tokio::sync::watch;

use crate::auth::JwtKeys;
use crate::config::{redact_url, ApiConfig};
use crate::db::Db;
use crate::health::{DatabaseCheck, Readiness, ReadinessCheck};
use crate::metrics::{Metrics, OperationsEndpoints};
use crate::password::Hasher;
use crate::queue::Queue;
use crate::state::{AppState, VideoSettings};
use crate::throttle::{parse_trusted_proxies, LoginThrottle};
use crate::videos::hub::StateHub;
use crate::videos::ingest::UploadSlots;
use crate::{routes, users, videos, StartupError};

/// Uploads younger than this found in `uploads/` at start may be another replica's, in
/// progress: only older ones are swept.
const STALE_UPLOAD: Duration = Duration::from_secs(24 * 3600);

/// A configured API, ready to start.
pub struct Api {
    config: ApiConfig,
    db: Db,
    jwt: Arc<JwtKeys>,
    hasher: Hasher,
    logins: Arc<LoginThrottle>,
    metrics: Arc<Metrics>,
    checks: Vec<Arc<dyn ReadinessCheck>>,
    queue: Queue,
    storage: Storage,
    uploads: Arc<UploadSlots>,
    closing: watch::Sender<bool>,
    hub: Arc<StateHub>,
}

impl Api {
    /// Validates the configuration (refusing a missing or short JWT secret), connects to
    /// `ARGUS_BROKER_URL` and `ARGUS_RESULT_BACKEND`, opens and migrates the database, and
    /// creates the admin of `ARGUS_ADMIN_USER` when missing.
    pub async fn init(config: ApiConfig) -> Result<Api, StartupError> {
        config.validate()?;
        let queue = Queue::connect(&config).await?;
        Api::init_queue(config, queue).await
    }

    /// [`Api::init`] with a broker and result backend that are already connected, for a
    /// process that runs workers beside the API (`argus serve` on `memory://`: the API and the
    /// workers must share the very same instances). `ARGUS_BROKER_URL` and
    /// `ARGUS_RESULT_BACKEND` of `config` are then not used.
    pub async fn init_with_queue(
        config: ApiConfig,
        broker: Broker,
        backend: Backend,
    ) -> Result<Api, StartupError> {
        config.validate()?;
        Api::init_queue(config, Queue::new(broker, backend)).await
    }

    async fn init_queue(config: ApiConfig, queue: Queue) -> Result<Api, StartupError> {
        let secret = config.checked_jwt_secret()?.clone();
        let storage = Storage::new(&config.storage_dir);
        match storage.sweep_uploads(STALE_UPLOAD) {
            Ok(0) => {}
            Ok(n) => tracing::info!(files = n, "removed uploads left by an earlier run"),
            Err(e) => return Err(e.into()),
        }
        let url = config.database_url();
        tracing::info!(database = %redact_url(&url), "opening the database");
        let db = Db::open(&url).await?;
        let hasher = Hasher::new(config.hash_queue);
        hasher
            .warm_up()
            .await
            .map_err(|e| StartupError::Admin(e.into()))?;
        users::bootstrap_admin(&db, &hasher, &config).await?;
        let logins = Arc::new(LoginThrottle::new(
            config.login_attempts,
            config.login_address_attempts,
            parse_trusted_proxies(&config.trusted_proxies).map_err(StartupError::Config)?,
        ));
        let (broker_check, backend_check) = queue.checks();
        Ok(Api {
            jwt: Arc::new(JwtKeys::new(&secret, config.jwt_ttl)),
            hasher,
            logins,
            metrics: Arc::new(Metrics::new()),
            checks: vec![
                Arc::new(DatabaseCheck(db.clone())),
                Arc::new(broker_check),
                Arc::new(backend_check),
            ],
            uploads: Arc::new(UploadSlots::new(
                config.max_concurrent_uploads,
                config.max_uploads_per_user,
            )),
            closing: watch::channel(false).0,
            hub: StateHub::new(config.max_streams_per_user),
            queue,
            storage,
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

    /// Replaces the broker and result backend (and their readiness checks) with ones already
    /// connected: for a process that runs workers beside the API on `memory://`, which must
    /// share the very same instances. [`Api::init_with_queue`] does the same without first
    /// connecting to `ARGUS_BROKER_URL` / `ARGUS_RESULT_BACKEND`.
    pub fn with_queue(mut self, broker: Broker, backend: Backend) -> Api {
        let queue = Queue::new(broker, backend);
        let (broker_check, backend_check) = queue.checks();
        self.checks
            .retain(|c| c.name() != broker_check.name() && c.name() != backend_check.name());
        self.checks.push(Arc::new(broker_check));
        self.checks.push(Arc::new(backend_check));
        self.queue = queue;
        self
    }

    /// The broker and result backend the API uses.
    pub fn queue(&self) -> (&Broker, &Backend) {
        (&self.queue.broker, &self.queue.backend)
    }

    /// What the handlers share. Its readiness checks run once [`Api::start`] runs them.
    pub fn state(&self) -> AppState {
        AppState {
            db: self.db.clone(),
            jwt: Arc::clone(&self.jwt),
            hasher: self.hasher.clone(),
            logins: Arc::clone(&self.logins),
            metrics: Arc::clone(&self.metrics),
            readiness: Readiness::new(self.checks.clone()),
            queue: self.queue.clone(),
            storage: self.storage.clone(),
            videos: Arc::new(VideoSettings::from_config(&self.config)),
            uploads: Arc::clone(&self.uploads),
            closing: self.closing.subscribe(),
            hub: Arc::clone(&self.hub),
            public_operations: self.config.metrics_bind.trim().is_empty(),
            collections: Arc::new(self.config.collections.clone()),
            webhooks: Arc::new(
                crate::webhooks::Webhooks::new(
                    &self.config.webhooks,
                    self.queue.broker.clone(),
                    self.storage.clone(),
                )
                .expect("checked by ApiConfig::validate"),
            ),
        }
    }

    /// Binds `ARGUS_BIND` (port 0 picks a free port: see [`RunningServer::addr`]) and
    /// `ARGUS_METRICS_BIND` when set ([`RunningServer::metrics_addr`]), starts the HTTP
    /// workers, the listener that records video status changes and feeds the event streams,
    /// and the readiness checks. Must be called inside an actix or tokio runtime; the returned
    /// server runs once it is awaited (see [`RunningServer::run`]).
    pub fn start(self) -> Result<RunningServer, StartupError> {
        if self.queue.is_isolated() {
            tracing::warn!(
                "memory:// broker or result backend: no worker outside this process sees the \
                 uploads; set ARGUS_BROKER_URL and ARGUS_RESULT_BACKEND (or run argus serve)"
            );
        }
        let state = self.state();
        let webhooks = Arc::clone(&state.webhooks);
        let metrics_addr = self.serve_operations(&state)?;
        tokio::spawn(Arc::clone(&state.readiness).run(self.closing.subscribe()));
        let readiness = Arc::clone(&state.readiness);
        let mut server = HttpServer::new(move || routes::app(state.clone()))
            // Signals are ours (run_until_signal), so that embedding processes decide.
            .disable_signals()
            // A client that closes its side has gone: its event stream ends now rather than
            // at the next write that fails (which may be a keepalive minutes away).
            .h1_allow_half_closed(false)
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
        tokio::spawn(videos::listener::run(
            self.db.clone(),
            Arc::clone(&webhooks),
            self.queue.backend.clone(),
            Arc::clone(&self.hub),
            self.closing.subscribe(),
        ));
        tokio::spawn(crate::webhooks::run(
            Arc::clone(&webhooks),
            self.db.clone(),
            self.queue.backend.clone(),
            self.closing.subscribe(),
        ));
        tokio::spawn(videos::reaper::run(
            self.db.clone(),
            Arc::clone(&webhooks),
            self.queue.backend.clone(),
            Duration::from_secs(self.config.reaper_interval),
            Duration::from_secs(self.config.reap_after),
            self.closing.subscribe(),
        ));
        tracing::info!(addr = ?addrs, "argus-api listening");
        let closing = Arc::new(self.closing);
        Ok(RunningServer {
            addrs,
            metrics_addr,
            stopper: Stopper {
                handle: server.handle(),
                closing: Arc::clone(&closing),
                readiness,
                delay: Duration::from_secs(self.config.shutdown_delay),
            },
            server,
            db: self.db,
            closing,
        })
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` on `ARGUS_METRICS_BIND` (when set) with the
    /// workers' endpoint server; the address bound.
    fn serve_operations(&self, state: &AppState) -> Result<Option<SocketAddr>, StartupError> {
        let bind = self.config.metrics_bind.trim();
        if bind.is_empty() {
            return Ok(None);
        }
        let bind_error = |source| StartupError::Bind {
            addr: bind.to_string(),
            source,
        };
        let listener = std::net::TcpListener::bind(bind).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_error)?;
        let operations = Arc::new(OperationsEndpoints(state.clone()));
        let addr = argus_queue::metrics::serve_on(listener, operations).map_err(bind_error)?;
        Ok(Some(addr))
    }
}

/// A started server. Await [`RunningServer::run`] (or `run_until_signal`) to serve.
pub struct RunningServer {
    addrs: Vec<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    stopper: Stopper,
    server: Server,
    db: Db,
    closing: Arc<watch::Sender<bool>>,
}

/// Stops a running server from anywhere (cheap to clone): the shutdown hook of a process that
/// embeds the API.
#[derive(Clone)]
pub struct Stopper {
    handle: ServerHandle,
    closing: Arc<watch::Sender<bool>>,
    readiness: Arc<Readiness>,
    delay: Duration,
}

impl Stopper {
    /// Ends the event streams and the state listener, stops taking connections, and (when
    /// `graceful`) lets the requests in flight finish within `ARGUS_SHUTDOWN_TIMEOUT`.
    /// Returns once the HTTP server has stopped; [`RunningServer::run`] then returns too.
    pub async fn stop(&self, graceful: bool) {
        self.closing.send_replace(true);
        self.handle.stop(graceful).await;
    }

    /// The stop a rolling update wants: `/readyz` turns 503 at once while every route keeps
    /// serving for `ARGUS_SHUTDOWN_DELAY_S`, so that the load balancer takes the server out
    /// of rotation before it stops listening; then a graceful [`Stopper::stop`].
    pub async fn drain(&self) {
        self.readiness.drain();
        if !self.delay.is_zero() {
            tracing::info!(delay = ?self.delay, "draining: not ready, still serving");
            tokio::time::sleep(self.delay).await;
        }
        self.stop(true).await;
    }
}

impl RunningServer {
    /// The first bound address (the real port when the configuration said port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Where `/metrics`, `/healthz` and `/readyz` are served apart from the API (the real
    /// port when `ARGUS_METRICS_BIND` said port 0); `None` when it is empty.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The actix handle: `handle.stop(true)` is a graceful stop, but it waits for open event
    /// streams to end; prefer [`RunningServer::stopper`].
    pub fn handle(&self) -> ServerHandle {
        self.stopper.handle.clone()
    }

    /// Stops the server from elsewhere, event streams included.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Serves until stopped (through a [`Stopper`] or the [`handle`](Self::handle)), then
    /// ends the event streams and the state listener and closes the database.
    pub async fn run(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.closing.send_replace(true);
        self.db.close().await;
        result
    }

    /// Serves until SIGTERM or SIGINT, then stops gracefully.
    pub async fn run_until_signal(self) -> std::io::Result<()> {
        let stopper = self.stopper();
        let on_signal = tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: finishing the requests in flight");
            stopper.drain().await;
        });
        let result = self.run().await;
        on_signal.abort();
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
