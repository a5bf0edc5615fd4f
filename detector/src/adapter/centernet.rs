//! CenterNet. Two ways to read it, with the same detections:
//!
//! - `forward`: post-processing inside the TorchScript graph (3×3 peaks + top-K over the whole
//!   heatmap): output `[N, K, 6]` rows of x1, y1, x2, y2 in model-input pixels, score, class id.
//!   Used on GPUs, where the heatmap should not leave the device.
//! - `heads` (a second method our converter keeps): the raw heatmap `[N, C, H, W]` and box sides
//!   `[N, 4, H, W]`, decoded here. On a CPU this skips the graph's max-pool, top-K and sorts over
//!   all N·C·H·W cells (~6 ms a frame, a fifth of the forward pass): only cells at or above the
//!   score threshold can become detections, and there are a few dozen of them.

use tch::{Kind, Tensor};

use crate::nms::nms;
use crate::preprocess::Letterbox;
use crate::{BoundingBox, Detection, DetectorError, ModelSpec};

const EXPECTED: &str = "[N, K, 6] (x1, y1, x2, y2, score, class)";
const EXPECTED_HEADS: &str = "([N, classes, H, W] heatmap, [N, 4, H, W] box sides)";

pub(super) fn decode(
    spec: &ModelSpec,
    output: &Tensor,
    letterboxes: &[Letterbox],
    score_threshold: f32,
) -> Result<Vec<Vec<Detection>>, DetectorError> {
    let shape = output.size();
    if shape.len() != 3 || shape[2] != 6 || shape[0] != letterboxes.len() as i64 {
        return Err(bad_output(spec, shape, EXPECTED));
    }
    let rows: Vec<f32> = Vec::try_from(
        output
            .f_to_device(tch::Device::Cpu)?
            .f_to_kind(Kind::Float)?
            .f_contiguous()?
            .f_view([-1])?,
    )?;
    let per_frame = shape[1] as usize * 6;
    rows.chunks_exact(per_frame.max(1))
        .zip(letterboxes)
        .map(|(frame_rows, lb)| {
            let rows = frame_rows
                .chunks_exact(6)
                .map(|r| [r[0], r[1], r[2], r[3], r[4], r[5]]);
            to_detections(spec, rows, lb, score_threshold)
        })
        .collect()
}

/// Decodes the `heads` output exactly as the graph's decoder would, then as [`decode`]: a cell
/// is a peak when no 3×3 neighbour is higher; peaks are ranked by score, then by their index in
/// the NHWC-flattened heatmap (the graph's tie order), and the first `top_k` are kept. Only
/// peaks at or above `score_threshold` (which must be > 0) are looked at, which changes nothing:
/// the rest would be dropped by the threshold anyway.
pub(super) fn decode_heads(
    spec: &ModelSpec,
    heat: &Tensor,
    sides: &Tensor,
    top_k: usize,
    letterboxes: &[Letterbox],
    score_threshold: f32,
) -> Result<Vec<Vec<Detection>>, DetectorError> {
    let shape = heat.size();
    let [n, classes, h, w] = shape[..] else {
        return Err(bad_output(spec, shape, EXPECTED_HEADS));
    };
    if n != letterboxes.len() as i64 || sides.size() != [n, 4, h, w] || h < 1 || w < 1 {
        return Err(bad_output(spec, sides.size(), EXPECTED_HEADS));
    }
    // The graph's cell size: model-input pixels per heatmap cell.
    let cell = spec.input_height as f32 / h as f32;
    let heat = heat.f_to_kind(Kind::Float)?.f_contiguous()?;
    let sides = sides.f_to_kind(Kind::Float)?.f_contiguous()?;
    let (classes, h, w) = (classes as usize, h as usize, w as usize);
    let plane = h * w;
    // SAFETY: both tensors are contiguous f32 CPU tensors (the caller runs this path on CPU
    // replicas only) of exactly these sizes, alive and unaliased for the borrows below.
    let heat: &[f32] = unsafe {
        std::slice::from_raw_parts(heat.data_ptr() as *const f32, n as usize * classes * plane)
    };
    let sides: &[f32] = unsafe {
        std::slice::from_raw_parts(sides.data_ptr() as *const f32, n as usize * 4 * plane)
    };
    let mut frames = Vec::with_capacity(letterboxes.len());
    for (i, lb) in letterboxes.iter().enumerate() {
        let heat = &heat[i * classes * plane..][..classes * plane];
        let sides = &sides[i * 4 * plane..][..4 * plane];
        // (score, NHWC index, class, y, x)
        let mut peaks: Vec<(f32, usize, usize, usize, usize)> = Vec::new();
        for (c, map) in heat.chunks_exact(plane).enumerate() {
            // Nearly every cell is below the threshold: a branch-free max over each block
            // (vectorised) rules out whole blocks, and only the rare rest is looked at.
            const BLOCK: usize = 64;
            for (b, block) in map.chunks(BLOCK).enumerate() {
                if block.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) < score_threshold {
                    continue; // NaN never wins a max, and is skipped below too
                }
                for (i, &v) in block.iter().enumerate() {
                    if v.is_nan() || v < score_threshold {
                        continue;
                    }
                    let at = b * BLOCK + i;
                    let (y, x) = (at / w, at % w);
                    if is_peak(map, w, h, y, x, v) {
                        peaks.push((v, at * classes + c, c, y, x));
                    }
                }
            }
        }
        peaks.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        peaks.truncate(top_k);
        let rows = peaks.into_iter().map(|(score, _, c, y, x)| {
            let side = |k: usize| sides[k * plane + y * w + x];
            let (cx, cy) = (x as f32 * cell, y as f32 * cell);
            [
                cx - side(0),
                cy - side(1),
                cx + side(2),
                cy + side(3),
                score,
                c as f32,
            ]
        });
        frames.push(to_detections(spec, rows, lb, score_threshold)?);
    }
    Ok(frames)
}

/// Whether `v` at (y, x) equals the maximum of its 3×3 neighbourhood (the graph's
/// `heat == max_pool3x3(heat)`; cells outside the map do not count).
fn is_peak(map: &[f32], w: usize, h: usize, y: usize, x: usize, v: f32) -> bool {
    for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
        for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
            if map[ny * w + nx] > v {
                return false;
            }
        }
    }
    true
}

/// Rows of x1, y1, x2, y2 (model-input pixels), score, class → the frame's detections:
/// thresholded, clamped to the input, mapped to source pixels, NMS applied.
fn to_detections(
    spec: &ModelSpec,
    rows: impl Iterator<Item = [f32; 6]>,
    lb: &Letterbox,
    score_threshold: f32,
) -> Result<Vec<Detection>, DetectorError> {
    let (iw, ih) = (spec.input_width as f32, spec.input_height as f32);
    let mut candidates = Vec::new();
    for r in rows {
        if r[4].is_nan() || r[4] < score_threshold {
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
                track_id: None,
                predicted: false,
                landmarks: None,
                embedding: None,
            });
        }
    }
    Ok(nms(candidates, spec.nms_iou))
}

fn bad_output(spec: &ModelSpec, shape: Vec<i64>, expected: &'static str) -> DetectorError {
    DetectorError::BadOutput {
        model: spec.name.clone(),
        adapter: "centernet",
        shape,
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peak_is_not_lower_than_any_neighbour_and_edges_count_as_lower() {
        #[rustfmt::skip]
        let map = [
            0.9, 0.1, 0.2,
            0.1, 0.5, 0.5,
            0.0, 0.1, 0.4,
        ];
        assert!(
            is_peak(&map, 3, 3, 0, 0, 0.9),
            "corner, neighbours outside ignored"
        );
        assert!(!is_peak(&map, 3, 3, 1, 1, 0.5), "0.9 is a neighbour");
        assert!(
            is_peak(&map, 3, 3, 1, 2, 0.5),
            "ties with a neighbour still peak"
        );
        assert!(!is_peak(&map, 3, 3, 2, 2, 0.4));
    }
}
