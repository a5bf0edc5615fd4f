//! Adapters: each knows one family's output convention and turns a raw output tensor into
//! detections in source pixels. A manifest names its adapter (`"adapter": "centernet"`).

mod blazeface;
mod centernet;

pub use blazeface::{check_embed, describe_faces};

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
    /// `[N, K, 5 + 2L]`: x1, y1, x2, y2, score, then L landmarks' x, y (model-input pixels);
    /// one class, rows unsorted and unfiltered.
    BlazeFace,
}

impl Adapter {
    pub fn name(self) -> &'static str {
        match self {
            Adapter::CenterNet => "centernet",
            Adapter::BlazeFace => "blazeface",
        }
    }

    /// Whether the manifest must name its landmarks (`faces`).
    pub fn needs_landmarks(self) -> bool {
        matches!(self, Adapter::BlazeFace)
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
            Adapter::BlazeFace => blazeface::decode(spec, output, letterboxes, score_threshold),
        }
    }

    /// The method, beside `forward`, that returns the network's raw heads for [`Self::decode_heads`]
    /// (`None`: the family has none, `forward` is always used).
    pub fn heads_method(self) -> Option<&'static str> {
        match self {
            Adapter::CenterNet => Some("heads"),
            Adapter::BlazeFace => None,
        }
    }

    /// Decodes the raw heads of a CPU batch into the detections [`Self::decode`] gives for the
    /// same batch's `forward` output (`top_k`: the rows `forward` returns per frame).
    pub fn decode_heads(
        self,
        spec: &ModelSpec,
        heads: &[Tensor],
        top_k: usize,
        letterboxes: &[Letterbox],
        score_threshold: f32,
    ) -> Result<Vec<Vec<Detection>>, DetectorError> {
        match (self, heads) {
            (Adapter::CenterNet, [heat, sides]) => {
                centernet::decode_heads(spec, heat, sides, top_k, letterboxes, score_threshold)
            }
            (_, _) => Err(DetectorError::BadOutput {
                model: spec.name.clone(),
                adapter: self.name(),
                shape: vec![heads.len() as i64],
                expected: "two tensors (heatmap, box sides)",
            }),
        }
    }
}
