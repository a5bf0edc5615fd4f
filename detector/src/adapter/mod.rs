//! Adapters: each knows one family's output convention and turns a raw output tensor into
//! detections in source pixels. A manifest names its adapter (`"adapter": "centernet"`).

mod centernet;

use serde::Deserialize;
use tch::Tensor;

use crate::preprocess::Letterbox;
use crate::{Detection, DetectorError, ModelSpec};

/// The output conventions Argus understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Adapter {
    /// `[N, K, 6]`: x1, y1, x2, y2 (model-input pixels), score, class.
    CenterNet,
}

impl Adapter {
    pub fn name(self) -> &'static str {
        match self {
            Adapter::CenterNet => "centernet",
        }
    }

    /// Decodes a batch output into per-frame detections (score-filtered, NMS applied, boxes
    /// mapped back through each frame's letterbox), highest score first.
    pub fn decode(
        self,
        spec: &ModelSpec,
        output: &Tensor,
        letterboxes: &[Letterbox],
        score_threshold: f32,
    ) -> Result<Vec<Vec<Detection>>, DetectorError> {
        match self {
            Adapter::CenterNet => centernet::decode(spec, output, letterboxes, score_threshold),
        }
    }
}
