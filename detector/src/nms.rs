//! Class-wise non-maximum suppression: of boxes of one class that overlap more than a
//! threshold, keep the highest-scoring one.

use crate::Detection;

/// Returns the kept detections, highest score first. Order among equal scores is stable, so the
/// result does not depend on how frames were batched.
pub fn nms(mut detections: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    detections.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::with_capacity(detections.len());
    for d in detections {
        let suppressed = kept
            .iter()
            .any(|k| k.class_id == d.class_id && k.bbox.iou(&d.bbox) > iou_threshold);
        if !suppressed {
            kept.push(d);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoundingBox;

    fn det(class_id: u32, score: f32, b: [f32; 4]) -> Detection {
        Detection {
            label: class_id.to_string(),
            class_id,
            score,
            bbox: BoundingBox::from(b),
            track_id: None,
            predicted: false,
            landmarks: None,
            embedding: None,
        }
    }

    #[test]
    fn suppresses_overlaps_of_one_class_only() {
        let out = nms(
            vec![
                det(0, 0.5, [0.0, 0.0, 10.0, 10.0]),
                det(0, 0.9, [1.0, 1.0, 11.0, 11.0]),
                det(1, 0.4, [0.0, 0.0, 10.0, 10.0]),
                det(0, 0.3, [50.0, 50.0, 60.0, 60.0]),
            ],
            0.5,
        );
        let kept: Vec<(u32, f32)> = out.iter().map(|d| (d.class_id, d.score)).collect();
        assert_eq!(kept, vec![(0, 0.9), (1, 0.4), (0, 0.3)]);
    }
}
