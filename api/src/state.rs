//! What every request handler shares: the database, the JWT keys, the metrics, the readiness
//! checks' last outcome, the queue (broker + result backend), the storage, the video settings
//! and the fan-out of state changes to event streams. Cloned into each HTTP worker (everything
//! in it is behind `Arc`, a pool or a cheap handle).

use std::sync::Arc;

use argus_common::storage::Storage;
use argus_common::Limits;
use tokio::sync::{watch, Semaphore};

use crate::auth::JwtKeys;
use crate::config::ApiConfig;
use crate::db::Db;
use crate::health::Readiness;
use crate::metrics::Metrics;
use crate::queue::Queue;
use crate::videos::hub::StateHub;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub jwt: Arc<JwtKeys>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub queue: Queue,
    pub storage: Storage,
    pub videos: Arc<VideoSettings>,
    /// One permit per upload being received (`ARGUS_MAX_CONCURRENT_UPLOADS`).
    pub uploads: Arc<Semaphore>,
    /// Turns true when the server stops: long-lived responses (event streams) end then.
    pub closing: watch::Receiver<bool>,
    /// Hands the backend's state changes to the event streams.
    pub hub: Arc<StateHub>,
    /// Whether the public port serves `/metrics` and `/readyz` (no `ARGUS_METRICS_BIND`).
    pub public_operations: bool,
}

/// The video endpoints' settings, from [`ApiConfig`].
#[derive(Clone, Debug)]
pub struct VideoSettings {
    pub max_upload_bytes: u64,
    pub served_models: Vec<String>,
    pub limits: Limits,
    pub sse_keepalive: std::time::Duration,
}

impl VideoSettings {
    pub fn from_config(config: &ApiConfig) -> VideoSettings {
        VideoSettings {
            max_upload_bytes: config.max_upload_bytes,
            served_models: config.served_models(),
            limits: config.limits,
            sse_keepalive: std::time::Duration::from_secs(config.sse_keepalive.max(1)),
        }
    }
}
