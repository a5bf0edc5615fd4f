//! The REST API of Argus (actix-web, JWT, OpenAPI + Swagger UI) under `/api/v1`, as a library:
//! `argus-api` (src/main.rs), `argus serve` and the black-box tests all start the same server
//! through [`Api`] / [`serve`], configured by [`ApiConfig`].
//!
//! - Identity: users in SQL (SQLite by default, PostgreSQL in clusters), argon2id passwords,
//!   JWT access tokens (OAuth2 password flow).
//! - Videos ([`videos`]): streamed uploads, probed before they are queued as `process_video`
//!   on the broker; status, progress and events from the result backend; results as JSON, COCO
//!   or CSV; delete (cancels a run).
//! - `/healthz`, `/readyz` (database, broker, result backend), `/metrics` (queue depth for the
//!   autoscaler), the OpenAPI document and Swagger UI.
//!
//! # Embedding
//!
//! A process that runs workers beside the API (`argus serve`, on `memory://`) hands the API the
//! broker and result backend its workers use, and keeps a [`Stopper`] as its shutdown hook:
//!
//! ```no_run
//! # async fn embed(config: argus_api::ApiConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use argus_queue::{backend::Backend, broker::Broker};
//! let broker = Broker::connect("memory://", 4).await?;
//! let backend = Backend::connect("memory://").await?;
//! // ... start the processor and detector workers on broker.clone(), backend.clone() ...
//! let api = argus_api::Api::init_with_queue(config, broker, backend).await?;
//! let server = api.start()?; // inside a tokio (or actix) runtime
//! let stopper = server.stopper();
//! let serving = tokio::spawn(server.run());
//! // ... later, on SIGTERM:
//! stopper.stop(true).await; // event streams end, requests in flight finish
//! serving.await??;
//! # Ok(()) }
//! ```
//!
//! It must never link libtorch (it probes uploads with `argus-media`, FFmpeg demux only): the
//! api + processor image stays small.

pub mod auth;
pub mod collections;
pub mod config;
pub mod console;
pub mod db;
pub mod error;
pub mod health;
pub mod metrics;
pub mod middleware;
pub mod models;
pub mod openapi;
pub mod password;
pub mod queue;
pub mod routes;
pub mod server;
pub mod state;
pub mod throttle;
pub mod users;
pub mod videos;
pub mod webhooks;

pub use config::{ApiConfig, Secret};
pub use server::{serve, Api, RunningServer, Stopper};

/// Why the server refuses to start. Each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "ARGUS_JWT_SECRET is not set: the API needs an HS256 signing secret of at least {} bytes \
         (for example the output of `openssl rand -hex 32`)",
        config::MIN_JWT_SECRET_BYTES
    )]
    MissingJwtSecret,
    #[error(
        "ARGUS_JWT_SECRET is {len} bytes long; it must be at least {} bytes \
         (for example the output of `openssl rand -hex 32`)",
        config::MIN_JWT_SECRET_BYTES
    )]
    JwtSecretTooShort { len: usize },
    #[error("set both ARGUS_ADMIN_USER and ARGUS_ADMIN_PASSWORD, or neither")]
    AdminPair,
    #[error("{0}")]
    Config(String),
    #[error("cannot connect to the broker (ARGUS_BROKER_URL): {0}")]
    Broker(#[from] argus_queue::broker::BrokerError),
    #[error("TLS certificates (ARGUS_TLS_*): {0}")]
    Tls(#[from] argus_queue::tls::TlsError),
    #[error("cannot connect to the result backend (ARGUS_RESULT_BACKEND): {0}")]
    Backend(#[from] argus_queue::backend::BackendError),
    #[error("storage (ARGUS_STORAGE_DIR): {0}")]
    Storage(#[from] argus_common::storage::StorageError),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("admin user from ARGUS_ADMIN_USER: {0}")]
    Admin(users::UserError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server: {0}")]
    Io(std::io::Error),
}
