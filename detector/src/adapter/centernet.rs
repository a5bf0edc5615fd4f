//! CenterNet with its post-processing inside the TorchScript graph (peaks + top-K done by the
//! model): output `[N, K, 6]` rows of x1, y1, x2, y2 in model-input pixels, score, class id.

use tch::{Kind, Tensor};

use crate::nms::nms;
use crate::preprocess::Letterbox;
use crate::{BoundingBox, Detection, DetectorError, ModelSpec};

const EXPECTED: &str = "[N, K, 6] (x1, y1, x2, y2, score, class)";

pub(super) fn decode(
    spec: &ModelSpec,
    output: &Tensor,
    letterboxes: &[Letterbox],
    score_threshold: f32,
) -> Result<Vec<Vec<Detection>>, DetectorError> {
    let shape = output.size();
    if shape.len() != 3 || shape[2] != 6 || shape[0] != letterboxes.len() as i64 {
        return Err(DetectorError::BadOutput {
            model: spec.name.clone(),
            adapter: "centernet",
            shape,
            expected: EXPECTED,
        });
    }
    let rows: Vec<f32> = Vec::try_from(
        output
            .f_to_device(tch::Device::Cpu)?
            .f_to_kind(Kind::Float)?
            .f_contiguous()?
            .f_view([-1])?,
    )?;
    let per_frame = shape[1] as usize * 6;
    let (iw, ih) = (spec.input_width as f32, spec.input_height as f32);
    let mut frames = Vec::with_capacity(letterboxes.len());
    for (frame_rows, lb) in rows.chunks_exact(per_frame.max(1)).zip(letterboxes) {
        let mut candidates = Vec::new();
        for r in frame_rows.chunks_exact(6) {
            if !(r[4] >= score_threshold) {
                continue; // also skips NaN scores
            }
            let class = r[5];
            let label = spec
                .labels
                .get(class as usize)
                .filter(|_| class >= 0.0 && class.fract() == 0.0)
                .ok_or_else(|| DetectorError::ClassOutOfRange {
                    model: spec.name.clone(),
                    class,
                    labels: spec.labels.len(),
                })?;
            // The model may overshoot its input; clamp there, then map to the source.
            let input_box = BoundingBox {
                x1: r[0].clamp(0.0, iw),
                y1: r[1].clamp(0.0, ih),
                x2: r[2].clamp(0.0, iw),
                y2: r[3].clamp(0.0, ih),
            };
            let bbox = lb.to_source(input_box);
            if bbox.area() > 0.0 {
                candidates.push(Detection {
                    label: label.clone(),
                    class_id: class as u32,
                    score: r[4],
                    bbox,
                });
            }
        }
        frames.push(nms(candidates, spec.nms_iou));
    }
    Ok(frames)
}
