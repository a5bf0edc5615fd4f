//! The REST API of Argus (actix-web, JWT, OpenAPI + Swagger UI) under `/api/v1`, as a library:
//! `argus-api` (src/main.rs), a later `argus serve` and the black-box tests all start the same
//! server through [`Api`] / [`serve`], configured by [`ApiConfig`].
//!
//! This first slice is identity: users in SQL (SQLite by default, PostgreSQL in clusters),
//! argon2id passwords, JWT access tokens (OAuth2 password flow), plus `/healthz`, `/readyz`,
//! `/metrics` and the OpenAPI document. Video endpoints come next (the `videos` table is there).
//!
//! It must never link libtorch or decode video: the api + processor image stays small.

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod health;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod password;
pub mod routes;
pub mod server;
pub mod state;
pub mod users;

pub use config::{ApiConfig, Secret};
pub use server::{serve, Api, RunningServer};

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
