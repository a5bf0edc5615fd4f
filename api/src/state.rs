//! What every request handler shares: the database, the JWT keys, the metrics, the readiness
//! checks' last outcome, the queue (broker + result backend), the storage, the video settings
//! and the fan-out of state changes to event streams. Cloned into each HTTP worker (everything
//! in it is behind `Arc`, a pool or a cheap handle).

use std::sync::Arc;

use argus_common::storage::Storage;
use argus_common::Limits;
use tokio::sync::watch;

use crate::auth::JwtKeys;
use crate::config::ApiConfig;
use crate::db::Db;
use crate::health::Readiness;
use crate::metrics::Metrics;
use crate::password::Hasher;
use crate::queue::Queue;
use crate::throttle::LoginThrottle;
use crate::videos::hub::StateHub;
use crate::videos::ingest::{IngestLimits, UploadSlots};

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub jwt: Arc<JwtKeys>,
    /// argon2 with a bounded queue (`ARGUS_HASH_QUEUE`).
    pub hasher: Hasher,
    /// Failed logins per name and per address (this process's only).
    pub logins: Arc<LoginThrottle>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub queue: Queue,
    pub storage: Storage,
    pub videos: Arc<VideoSettings>,
    /// The upload slots (`ARGUS_MAX_CONCURRENT_UPLOADS`, `ARGUS_MAX_UPLOADS_PER_USER`).
    pub uploads: Arc<UploadSlots>,
    /// Turns true when the server stops: long-lived responses (event streams) end then.
    pub closing: watch::Receiver<bool>,
    /// Hands the backend's state changes to the event streams.
    pub hub: Arc<StateHub>,
    /// Whether the public port serves `/metrics` and `/readyz` (no `ARGUS_METRICS_BIND`).
    pub public_operations: bool,
    /// Photo collections' limits.
    pub collections: Arc<crate::collections::CollectionArgs>,
    /// Records and delivers the signed notifications of videos that end.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
}

/// The video endpoints' settings, from [`ApiConfig`].
#[derive(Clone, Debug)]
pub struct VideoSettings {
    pub max_upload_bytes: u64,
    pub served_models: Vec<String>,
    pub limits: Limits,
    pub sse_keepalive: std::time::Duration,
    /// An upload's rate window, least rate and deadline ([`IngestLimits`]).
    pub upload_window: std::time::Duration,
    pub upload_min_rate: u64,
    pub upload_deadline: std::time::Duration,
}

impl VideoSettings {
    pub fn from_config(config: &ApiConfig) -> VideoSettings {
        VideoSettings {
            max_upload_bytes: config.max_upload_bytes,
            served_models: config.served_models(),
            limits: config.limits,
            sse_keepalive: std::time::Duration::from_secs(config.sse_keepalive.max(1)),
            upload_window: std::time::Duration::from_secs(config.upload_idle_timeout.max(1)),
            upload_min_rate: config.upload_min_rate,
            upload_deadline: std::time::Duration::from_secs(config.upload_timeout.max(1)),
        }
    }

    /// The limits of one upload whose body may be `max_body_bytes` long, of which
    /// `max_outside_file` outside its file (multipart).
    pub fn ingest(&self, max_body_bytes: u64, max_outside_file: Option<u64>) -> IngestLimits {
        IngestLimits {
            max_body_bytes,
            max_outside_file,
            window: self.upload_window,
            min_rate: self.upload_min_rate,
            deadline: self.upload_deadline,
        }
    }
}
