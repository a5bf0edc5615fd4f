//! One detected object, in the pixel coordinates of the source image or frame.

use serde::{Deserialize, Serialize};

/// Axis-aligned box `[x1, y1, x2, y2]` in source pixels, with `x1 <= x2` and `y1 <= y2`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f32; 4]", into = "[f32; 4]")]
pub struct BoundingBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BoundingBox {
    pub fn width(&self) -> f32 {
        (self.x2 - self.x1).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.y2 - self.y1).max(0.0)
    }

    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    /// Intersection over union; 0 when either box is empty.
    pub fn iou(&self, other: &BoundingBox) -> f32 {
        let inter = BoundingBox {
            x1: self.x1.max(other.x1),
            y1: self.y1.max(other.y1),
            x2: self.x2.min(other.x2),
            y2: self.y2.min(other.y2),
        }
        .area();
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }
}

impl From<[f32; 4]> for BoundingBox {
    fn from([x1, y1, x2, y2]: [f32; 4]) -> Self {
        BoundingBox { x1, y1, x2, y2 }
    }
}

impl From<BoundingBox> for [f32; 4] {
    fn from(b: BoundingBox) -> Self {
        [b.x1, b.y1, b.x2, b.y2]
    }
}

/// A detected object: `{"label", "class_id", "score", "box": [x1, y1, x2, y2]}`, and in a
/// video's result its `track_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub label: String,
    pub class_id: u32,
    pub score: f32,
    #[serde(rename = "box")]
    pub bbox: BoundingBox,
    /// The object this detection belongs to across frames (a video's tracks); absent on
    /// photos, with tracking off, and on a detection no confirmed track took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_id: Option<u64>,
    /// Not detected but carried by its track: a box of a frame the detector skipped (`stride`,
    /// `keyframes_only`), between two detections of the same track.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub predicted: bool,
    /// A face's landmarks in source pixels, `[x, y]` each, in the order its model lists
    /// (`GET /api/v1/models`; the bundled `faces`: right eye, left eye, nose tip, mouth, right
    /// ear, left ear, the subject's right and left).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landmarks: Option<Vec<[f32; 2]>>,
    /// A face's identity as a unit vector: two faces are the same person when the cosine
    /// distance of their embeddings is small. On photos and untracked videos; a tracked video
    /// gives one per track instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = BoundingBox::from([0.0, 0.0, 10.0, 10.0]);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&BoundingBox::from([20.0, 20.0, 30.0, 30.0])), 0.0);
        let half = BoundingBox::from([5.0, 0.0, 15.0, 10.0]);
        assert!((a.iou(&half) - 50.0 / 150.0).abs() < 1e-6);
    }

    #[test]
    fn detection_serializes_box_as_array() {
        let d = Detection {
            label: "person".into(),
            class_id: 0,
            score: 0.5,
            bbox: BoundingBox::from([1.0, 2.0, 3.0, 4.0]),
            track_id: None,
            predicted: false,
            landmarks: None,
            embedding: None,
        };
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["box"], serde_json::json!([1.0, 2.0, 3.0, 4.0]));
        assert_eq!(serde_json::from_value::<Detection>(json).unwrap(), d);
    }
}

/// What a run keeps of a model's detections: a score threshold above the model's, and a set of
/// class labels. Filtering after NMS at a threshold at or above NMS's own gives what NMS at
/// that threshold would (a box is only suppressed by a higher-scoring one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DetectionFilter {
    pub min_score: Option<f32>,
    /// Labels to keep; `None` keeps every class.
    pub classes: Option<std::collections::HashSet<String>>,
}

impl DetectionFilter {
    pub fn apply(&self, detections: &mut Vec<Detection>) {
        if self.min_score.is_none() && self.classes.is_none() {
            return;
        }
        detections.retain(|d| {
            self.min_score.is_none_or(|t| d.score >= t)
                && self.classes.as_ref().is_none_or(|c| c.contains(&d.label))
        });
    }
}
