//! Result documents as written to files and served by the API. Field names are stable.

use serde::{Deserialize, Serialize};

use crate::Detection;

/// Which model produced a result, and how it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub adapter: String,
    /// `[width, height]` of the model input.
    pub input_size: [u32; 2],
    pub score_threshold: f32,
    pub devices: Vec<String>,
}

/// Detections of one image, or why it has none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageResult {
    pub path: String,
    #[serde(flatten)]
    pub outcome: ImageOutcome,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImageOutcome {
    Detected {
        width: u32,
        height: u32,
        detections: Vec<Detection>,
    },
    Failed {
        error: String,
    },
}

/// The result of `argus detect IMAGE...`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagesResult {
    pub model: ModelInfo,
    pub images: Vec<ImageResult>,
}
