//! What the detectors serve, as they announce it: each detector sets `argus:models:<name>`
//! every [`ANNOUNCE_EVERY`], expiring after [`ANNOUNCE_TTL_S`], so that the API lists the live
//! models with their labels (the console's class picker) without loading any model. A model
//! whose detectors all stopped drops out within the expiry.

use std::time::Duration;

use argus_queue::backend::{Backend, BackendError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// How often a detector renews its announcement.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(30);
/// How long an announcement lasts unrenewed: three periods, so one missed renewal (a busy
/// Redis, a GC pause) does not make a model disappear.
pub const ANNOUNCE_TTL_S: u64 = 90;

/// One model, as its detectors serve it (the last detector to announce it speaks for all).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelAnnouncement {
    pub name: String,
    pub adapter: String,
    /// `[width, height]` of the model's input.
    pub input_size: [u32; 2],
    /// Class labels, by class id.
    pub labels: Vec<String>,
    /// The announcing detector's devices (`cpu`, `cuda:0`, …).
    pub devices: Vec<String>,
}

/// The key of model `name`'s announcement.
pub fn key(name: &str) -> String {
    format!("argus:models:{name}")
}

/// Announces `model` once.
pub async fn announce(backend: &Backend, model: &ModelAnnouncement) -> Result<(), BackendError> {
    let json = serde_json::to_string(model).expect("announcements serialize");
    backend.set(&key(&model.name), &json, ANNOUNCE_TTL_S).await
}

/// Model `name`'s live announcement, if any.
pub async fn announced(
    backend: &Backend,
    name: &str,
) -> Result<Option<ModelAnnouncement>, BackendError> {
    Ok(backend
        .get_text(&key(name))
        .await?
        .and_then(|json| serde_json::from_str(&json).ok()))
}

/// Announces `model` every [`ANNOUNCE_EVERY`] until `stop` turns true (a failed renewal is
/// logged and tried again next period).
pub async fn keep_announcing(
    backend: Backend,
    model: ModelAnnouncement,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = announce(&backend, &model).await {
            tracing::warn!(model = model.name, error = %e, "cannot announce the model");
        }
        tokio::select! {
            _ = tokio::time::sleep(ANNOUNCE_EVERY) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}
