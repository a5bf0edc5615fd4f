//! What the detectors serve, as they announce it: each detector sets `argus:models:<name>`
//! (the model: labels, input size) and marks itself present, with its devices, in the model's
//! roster `argus:models:<name>:detectors`, every [`ANNOUNCE_EVERY`], expiring after
//! [`ANNOUNCE_TTL_S`]. The API lists the live models with their labels (the console's class
//! picker), how many detectors serve each and all their devices, without loading any model. A
//! detector that stops drops out of its roster, and a model whose detectors all stopped out of
//! the list, within the expiry.

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
    /// A face model's landmark names, in the order each face's `landmarks` lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub landmarks: Vec<String>,
    /// A face model's embedding length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_size: Option<usize>,
}

/// The key of model `name`'s announcement.
pub fn key(name: &str) -> String {
    format!("argus:models:{name}")
}

fn roster(name: &str) -> String {
    format!("argus:models:{name}:detectors")
}

/// One detector in a model's roster.
#[derive(Serialize, Deserialize)]
struct Present {
    /// The detector process (a random id, fixed for its life).
    instance: String,
    devices: Vec<String>,
}

/// A model as the API lists it: the announcement, with the devices of every detector of it
/// alive.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveModel {
    pub announcement: ModelAnnouncement,
    /// Detectors of it alive now.
    pub detectors: usize,
}

/// Announces `model` once, for detector `instance`.
pub async fn announce(
    backend: &Backend,
    model: &ModelAnnouncement,
    instance: &str,
) -> Result<(), BackendError> {
    let json = serde_json::to_string(model).expect("announcements serialize");
    backend
        .set(&key(&model.name), &json, ANNOUNCE_TTL_S)
        .await?;
    let me = Present {
        instance: instance.to_string(),
        devices: model.devices.clone(),
    };
    let me = serde_json::to_string(&me).expect("serializes");
    backend
        .present(&roster(&model.name), &me, ANNOUNCE_TTL_S)
        .await
}

/// Model `name` as its live detectors announce it, if any is: `devices` lists those of every
/// detector alive (`cuda:0` on two machines counts twice: it is two devices).
pub async fn announced(backend: &Backend, name: &str) -> Result<Option<LiveModel>, BackendError> {
    let Some(mut announcement) = backend
        .get_text(&key(name))
        .await?
        .and_then(|json| serde_json::from_str::<ModelAnnouncement>(&json).ok())
    else {
        return Ok(None);
    };
    let present: Vec<Present> = backend
        .present_members(&roster(name))
        .await?
        .iter()
        .filter_map(|m| serde_json::from_str(m).ok())
        .collect();
    if !present.is_empty() {
        announcement.devices = present.iter().flat_map(|p| p.devices.clone()).collect();
    }
    Ok(Some(LiveModel {
        announcement,
        detectors: present.len().max(1),
    }))
}

/// Announces `model` every [`ANNOUNCE_EVERY`] until `stop` turns true (a failed renewal is
/// logged and tried again next period).
pub async fn keep_announcing(
    backend: Backend,
    model: ModelAnnouncement,
    mut stop: watch::Receiver<bool>,
) {
    let instance = uuid::Uuid::new_v4().to_string();
    loop {
        if let Err(e) = announce(&backend, &model, &instance).await {
            tracing::warn!(model = model.name, error = %e, "cannot announce the model");
        }
        tokio::select! {
            _ = tokio::time::sleep(ANNOUNCE_EVERY) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Where the processors publish the cluster's default model: they route, so theirs is the one
/// that counts. A detector reads it at start and consumes the queue it implies, whatever its own
/// settings say (a detector deployed without `ARGUS_DEFAULT_MODEL` / `ARGUS_SERVED_MODELS`
/// would otherwise take its own model for the default and wait on a queue nobody feeds).
pub const DEFAULT_MODEL_KEY: &str = "argus:cluster:default-model";

/// The default model the processors published, if any is alive.
pub async fn published_default(backend: &Backend) -> Result<Option<String>, BackendError> {
    Ok(backend
        .get_text(DEFAULT_MODEL_KEY)
        .await?
        .filter(|m| !m.is_empty()))
}

/// Publishes `model` as the cluster's default every [`ANNOUNCE_EVERY`] until `stop` (a
/// processor's loop beside its worker).
pub async fn keep_publishing_default(
    backend: Backend,
    model: String,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = backend.set(DEFAULT_MODEL_KEY, &model, ANNOUNCE_TTL_S).await {
            tracing::warn!(error = %e, "cannot publish the default model");
        }
        tokio::select! {
            _ = tokio::time::sleep(ANNOUNCE_EVERY) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}
