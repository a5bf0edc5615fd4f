//! `GET /api/v1/models`: the models an upload may name (`ARGUS_SERVED_MODELS`), each with what
//! its detectors announce (labels, input size, devices; see `argus_pipeline::models`) while
//! one is live. The console's model picker and class picker read it.

use actix_web::web;
use argus_pipeline::models;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// A model an upload may name.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"name": "coco-centernet", "default": true, "live": true,
    "adapter": "centernet", "input_size": [512, 512], "labels": ["person", "bicycle", "car"],
    "devices": ["cuda:0", "cuda:1", "cuda:0"], "detectors": 2}))]
pub struct ModelView {
    pub name: String,
    /// The first of `ARGUS_SERVED_MODELS`.
    pub default: bool,
    /// A detector announced it within the last 90 s.
    pub live: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// `[width, height]` of the model's input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_size: Option<[u32; 2]>,
    /// Class labels (empty while no detector of it is live).
    pub labels: Vec<String>,
    /// The devices of every detector of it alive.
    pub devices: Vec<String>,
    /// A face model's landmark names, in the order each face's `landmarks` lists them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub landmarks: Vec<String>,
    /// A face model's embedding length (each face on photos and untracked videos, each track
    /// of a tracked video).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_size: Option<usize>,
    /// Detectors of it alive now (0: none; a model scaled to zero is still served: its
    /// videos wait in its queue for the autoscaler).
    pub detectors: usize,
}

/// The models uploads may name.
#[utoipa::path(
    get,
    path = "/api/v1/models",
    tag = "models",
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The served models, the default first", body = Vec<ModelView>),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: the result backend cannot be reached", body = ErrorBody),
    )
)]
pub async fn list_models(
    _user: AuthUser,
    state: web::Data<AppState>,
) -> Result<web::Json<Vec<ModelView>>, ApiError> {
    let mut views = Vec::new();
    for (i, name) in state.videos.served_models.iter().enumerate() {
        let announced = models::announced(&state.queue.backend, name)
            .await
            .map_err(|e| ApiError::unavailable("result backend", e))?;
        views.push(match announced {
            Some(live) => ModelView {
                name: name.clone(),
                default: i == 0,
                live: true,
                adapter: Some(live.announcement.adapter),
                input_size: Some(live.announcement.input_size),
                labels: live.announcement.labels,
                devices: live.announcement.devices,
                landmarks: live.announcement.landmarks,
                embedding_size: live.announcement.embedding_size,
                detectors: live.detectors,
            },
            None => ModelView {
                name: name.clone(),
                default: i == 0,
                live: false,
                adapter: None,
                input_size: None,
                labels: Vec::new(),
                devices: Vec::new(),
                landmarks: Vec::new(),
                embedding_size: None,
                detectors: 0,
            },
        });
    }
    Ok(web::Json(views))
}
