//! What a video is (probe), how it is cut (chunks), and what was found in it (the result).

use serde::{Deserialize, Serialize};

use crate::zones::{LineResult, ZoneResult};
use crate::{BoundingBox, Detection, ModelInfo};

/// What probing learned about a video, without decoding it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoInfo {
    /// Container format as FFmpeg names it, e.g. `mov,mp4,m4a,3gp,3g2,mj2`.
    pub container: String,
    /// Video codec, e.g. `h264`.
    pub codec: String,
    /// Displayed size: after `rotation` is applied. Boxes are in these coordinates.
    pub width: u32,
    pub height: u32,
    /// Degrees clockwise that frames are turned to stand upright (0, 90, 180, 270).
    pub rotation: u32,
    /// Average frame rate (frames per second).
    pub fps: f64,
    /// Frames in the video: the packets of the video stream, less those marked discard. A
    /// damaged packet may yield no frame: the result lists those as skipped.
    pub frame_count: u64,
    pub duration_s: f64,
    /// Index of the video stream in the container.
    pub stream_index: usize,
    /// Time base of that stream's timestamps, `[num, den]`.
    pub time_base: [i32; 2],
    /// Presentation timestamp of the first frame (stream time base): `pts_ms` counts from it.
    #[serde(default)]
    pub start_pts: i64,
}

/// A range of consecutive frames (presentation order) that one detector decodes on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub index: u32,
    /// Presentation index of the first frame.
    pub first_frame: u64,
    pub frame_count: u64,
    /// Timestamps of its first and last frame (stream time base), inclusive.
    pub first_pts: i64,
    pub last_pts: i64,
    /// Decode timestamp of the keyframe to seek to; `None`: decode from the start.
    pub seek_dts: Option<i64>,
}

impl Chunk {
    pub fn frames(&self) -> std::ops::Range<u64> {
        self.first_frame..self.first_frame + self.frame_count
    }
}

/// The detections of one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameDetections {
    /// Presentation index, from 0.
    pub index: u64,
    /// Presentation time in milliseconds from the stream start.
    pub pts_ms: f64,
    pub detections: Vec<Detection>,
    /// The detector did not run on this frame (`stride`, `keyframes_only`): its boxes, if any,
    /// are its tracks' carried between their detections, each marked `predicted`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub predicted: bool,
}

/// Per class: how many detections (`objects`), in how many frames, and how many different
/// objects followed across frames (`tracks`, absent when tracking was off).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassSummary {
    pub label: String,
    pub class_id: u32,
    pub objects: u64,
    pub frames: u64,
    /// The most detections of the class in one frame, and the first frame with that many.
    #[serde(default)]
    pub most_at_once: u64,
    #[serde(default)]
    pub most_at_once_frame: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracks: Option<u64>,
}

/// One object followed across frames: a video's result lists every confirmed track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackSummary {
    /// The `track_id` its detections carry.
    pub id: u64,
    /// The label its detections carried most often (the tracker follows boxes whatever their
    /// class: a car now and then seen as a truck stays one object).
    pub label: String,
    pub class_id: u32,
    pub first_frame: u64,
    pub last_frame: u64,
    /// Presentation times of its first and last frame, in milliseconds.
    pub first_ms: f64,
    pub last_ms: f64,
    /// How long it was in view: from its first to its last frame, in seconds.
    pub dwell_s: f64,
    /// Frames it was detected in.
    pub frames: u64,
    pub mean_score: f32,
    pub first_box: BoundingBox,
    pub last_box: BoundingBox,
    /// Its box centres as `[frame, x, y]`, at most 64, thinned evenly along the track.
    pub path: Vec<(u64, f32, f32)>,
    /// A face model's track: the mean of its faces' embeddings, as a unit vector (the frames'
    /// faces carry none, which keeps a long video's result small).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

/// The frame with the most persons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeakFrame {
    pub index: u64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Frames in `frames`: decoded, and with `keyframes_only` also the frames between
    /// keyframes, listed (marked `predicted`) but never decoded.
    pub frames_processed: u64,
    /// Of those, frames the detector ran on: all of them unless `stride` or `keyframes_only`.
    /// Per-class counts and peaks count these frames' detections, never predicted boxes.
    #[serde(default)]
    pub frames_detected: u64,
    /// The detector's compute for this video: device time of its batches, each batch's time
    /// shared evenly among its frames (a GPU or the CPU threads of one replica).
    #[serde(default)]
    pub device_seconds: f64,
    /// `device_seconds` per hour of video: what a cluster spends per hour of footage at these
    /// settings.
    #[serde(default)]
    pub device_seconds_per_video_hour: f64,
    /// Frames that could not be decoded.
    #[serde(default)]
    pub frames_skipped: u64,
    pub video_duration_s: f64,
    pub wall_time_s: f64,
    pub frames_per_second: f64,
    pub chunks: u32,
    /// Most objects first.
    pub classes: Vec<ClassSummary>,
    /// Labels of the (up to) three classes with the most objects.
    pub top_classes: Vec<String>,
    pub most_persons: Option<PeakFrame>,
    /// Different objects followed across the video (its tracks); absent with tracking off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracks: Option<u64>,
    /// Each zone's counts (its visits are in the result's `zones`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<ZoneResult>,
    /// Each line's counts (its crossings are in the result's `lines`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<LineResult>,
}

/// The result of one video: what `argus detect VIDEO --output` writes and the API serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoResult {
    pub video: VideoInfo,
    pub model: ModelInfo,
    /// Frames decoded, in presentation order. Frames that could not be decoded (a damaged
    /// file) are missing here and listed in `skipped_frames`.
    pub frames: Vec<FrameDetections>,
    /// The objects followed across frames (empty with tracking off).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracks: Vec<TrackSummary>,
    /// What each zone saw: counts and every visit (the zones of the video's options).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<ZoneResult>,
    /// What each line saw: counts and every crossing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<LineResult>,
    /// Indices of frames that could not be decoded, ascending; empty for a healthy video.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_frames: Vec<u64>,
    /// What went wrong without failing the video (damage, truncation), for people to read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub summary: Summary,
}
