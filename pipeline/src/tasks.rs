//! The video pipeline's tasks: their names, queues and payloads, and what each payload may
//! carry. Python's
//! `app.send_task("process_video", args=[video_id], queue="processor")` and
//! `TaskMessage::new` of a [`ProcessVideo`] are the same message.

use serde::{Deserialize, Serialize};

use argus_common::detection::DetectionFilter;
use argus_common::limits::{Limits, MAX_CHUNK_FRAMES};
use argus_common::zones::{self, Line, Zone};
use argus_common::{Chunk, VideoInfo};
use argus_queue::message::TaskPayload;

pub const PROCESS_VIDEO: &str = "process_video";
pub const DETECT_FRAMES: &str = "detect_frames";
pub const MERGE_CHUNKS: &str = "merge_chunks";

pub const PROCESSOR_QUEUE: &str = "processor";
pub const DETECTOR_QUEUE: &str = "detector";
/// The queues the pipeline's workers consume (besides `detector.<model>` for each model other
/// than the default: [`detector_queue`]).
pub const QUEUES: [&str; 2] = [PROCESSOR_QUEUE, DETECTOR_QUEUE];

/// The model a video is detected with when its options name none (`ARGUS_DEFAULT_MODEL`).
pub const DEFAULT_MODEL: &str = "coco-centernet";

/// A cluster's default model, as each of its processes works it out from its settings:
/// `ARGUS_DEFAULT_MODEL`, else the first of `ARGUS_SERVED_MODELS`, else `ARGUS_MODEL` (a
/// one-model cluster whose processes share their settings), else [`DEFAULT_MODEL`]. Every
/// processor, detector and API of a cluster must come to the same answer: the chart sets the
/// first two on every pod.
pub fn resolve_default_model(
    explicit: Option<&str>,
    served: &[String],
    model: Option<&str>,
) -> String {
    let named = |m: Option<&str>| {
        m.map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_string)
    };
    named(explicit)
        .or_else(|| named(served.first().map(String::as_str)))
        .or_else(|| named(model))
        .unwrap_or_else(|| DEFAULT_MODEL.to_string())
}

/// `ARGUS_SERVED_MODELS` trimmed, without empty entries; the default model alone when it lists
/// none. Refused: a name that is no model name, or a list without the default.
pub fn resolve_served_models(served: &[String], default: &str) -> Result<Vec<String>, String> {
    let mut list: Vec<String> = served
        .iter()
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    if list.is_empty() {
        list.push(default.to_string());
    }
    for m in &list {
        VideoOptions {
            model: Some(m.clone()),
            ..VideoOptions::default()
        }
        .validate()
        .map_err(|why| format!("ARGUS_SERVED_MODELS: {why}"))?;
    }
    if !list.iter().any(|m| m == default) {
        return Err(format!(
            "the default model '{default}' (ARGUS_DEFAULT_MODEL) is not among ARGUS_SERVED_MODELS ({})",
            list.join(", ")
        ));
    }
    Ok(list)
}

/// The queue of model `model`'s chunks, which its detectors consume: `detector` for the
/// default model (the queue Celery clients, `celery inspect` and the chart's autoscaling have
/// always known), `detector.<model>` for every other. A video's chunks all name one model and
/// go to its queue: no detector of another model ever sees them.
pub fn detector_queue(model: &str, default_model: &str) -> String {
    if model == default_model {
        DETECTOR_QUEUE.to_string()
    } else {
        format!("{DETECTOR_QUEUE}.{model}")
    }
}

/// Per-video options: keyword arguments of `process_video`, carried on to its chunks and merge.
/// `None` is the worker's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VideoOptions {
    /// The model to detect with; detectors refuse a chunk for a model they do not serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Target frames per chunk (1..=10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<u64>,
    /// Minimum score kept (0..=1); below the detector's own threshold it has no effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_threshold: Option<f32>,
    /// Class labels kept (e.g. `["person", "car"]`); all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
    /// Make the annotated copy (`annotate_video`) as soon as the run succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotate: Option<bool>,
    /// Follow objects across frames (ByteTrack at merge time); on unless `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<bool>,
    /// Polygons to count tracks in (entries, exits, dwell): see [`Zone`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zones: Option<Vec<Zone>>,
    /// Segments to count tracks across, by direction: see [`Line`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<Vec<Line>>,
    /// Detect every `stride`-th frame (1..=MAX_STRIDE); tracks carry boxes through the frames
    /// between, marked `predicted`. 1 (every frame) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<u32>,
    /// Decode and detect the keyframes only (the cheapest pass: one frame per GOP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyframes_only: Option<bool>,
}

/// Most class labels one video's options may list.
pub const MAX_CLASSES: usize = 1000;
/// Largest `stride`.
pub const MAX_STRIDE: u32 = 100;

/// Which frames of a video the detector runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    /// Every `n`-th frame of the video (1: all), counted from frame 0.
    Stride(u32),
    /// The keyframes; the other frames are not decoded.
    Keyframes,
}

impl VideoOptions {
    /// Why these options are refused, if they are.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(model) = &self.model {
            let ok = !model.is_empty()
                && model.len() <= 64
                && model
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && !model.starts_with('.');
            if !ok {
                return Err(format!(
                    "model must be a model name (letters, digits, '-', '_', '.'), not {:?}",
                    model.chars().take(80).collect::<String>()
                ));
            }
        }
        if let Some(n) = self.chunk_size {
            if !(1..=MAX_CHUNK_FRAMES).contains(&n) {
                return Err(format!(
                    "chunk_size must lie in 1..={MAX_CHUNK_FRAMES}, got {n}"
                ));
            }
        }
        if let Some(t) = self.score_threshold {
            if !(0.0..=1.0).contains(&t) {
                return Err(format!("score_threshold must lie in 0..=1, got {t}"));
            }
        }
        if let Some(classes) = &self.classes {
            if classes.is_empty() || classes.len() > MAX_CLASSES {
                return Err(format!("classes must list 1 to {MAX_CLASSES} labels"));
            }
            if classes.iter().any(|c| c.is_empty() || c.len() > 100) {
                return Err("each class label must be 1 to 100 characters".into());
            }
        }
        if let Some(n) = self.stride {
            if !(1..=MAX_STRIDE).contains(&n) {
                return Err(format!("stride must lie in 1..={MAX_STRIDE}, got {n}"));
            }
            if n > 1 && self.keyframes_only == Some(true) {
                return Err("stride and keyframes_only pick frames two ways: give one".into());
            }
        }
        self.check_regions(None)
    }

    /// [`VideoOptions::validate`] and the zones and lines against the video's displayed frame.
    pub fn validate_for(&self, video: &VideoInfo) -> Result<(), String> {
        self.validate()?;
        self.check_regions(Some((video.width, video.height)))
    }

    fn check_regions(&self, frame: Option<(u32, u32)>) -> Result<(), String> {
        let (zones, lines) = (self.zones(), self.lines());
        if (!zones.is_empty() || !lines.is_empty()) && self.track == Some(false) {
            return Err("zones and lines count tracks: they need track on".into());
        }
        zones::check(zones, lines, frame)
    }

    pub fn zones(&self) -> &[Zone] {
        self.zones.as_deref().unwrap_or_default()
    }

    pub fn lines(&self) -> &[Line] {
        self.lines.as_deref().unwrap_or_default()
    }

    pub fn sampling(&self) -> Sampling {
        if self.keyframes_only == Some(true) {
            Sampling::Keyframes
        } else {
            Sampling::Stride(self.stride.unwrap_or(1))
        }
    }

    pub fn filter(&self) -> DetectionFilter {
        DetectionFilter {
            min_score: self.score_threshold,
            classes: self.classes.as_ref().map(|c| c.iter().cloned().collect()),
        }
    }
}

/// Probe and split an uploaded video, then fan its chunks out (queue `processor`). Python:
/// `process_video(video_id, model=None, chunk_size=None, score_threshold=None, classes=None,
/// annotate=None, track=None, zones=None, lines=None, stride=None, keyframes_only=None)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessVideo {
    pub video_id: String,
    #[serde(flatten)]
    pub options: VideoOptions,
}

impl TaskPayload for ProcessVideo {
    const NAME: &'static str = PROCESS_VIDEO;
    const ARGS: &'static [&'static str] = &[
        "video_id",
        "model",
        "chunk_size",
        "score_threshold",
        "classes",
        "annotate",
        "track",
        "zones",
        "lines",
        "stride",
        "keyframes_only",
    ];
}

/// Detect one chunk of a video: a chord header task (queue `detector`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectFrames {
    pub video_id: String,
    /// The chord this chunk belongs to: one per run of a video.
    pub chord_id: String,
    pub video: VideoInfo,
    pub chunk: Chunk,
    /// Chunks in the chord.
    pub chunks: u32,
    /// Presentation timestamps of the chunk's frames, from the probe: how the detector knows
    /// each frame, and which could not be decoded.
    pub pts: Vec<i64>,
    #[serde(default)]
    pub options: VideoOptions,
}

impl TaskPayload for DetectFrames {
    const NAME: &'static str = DETECT_FRAMES;
    const ARGS: &'static [&'static str] = &[
        "video_id", "chord_id", "video", "chunk", "chunks", "pts", "options",
    ];
}

impl DetectFrames {
    /// Checks what will be sized from this message against `limits`.
    pub fn validate(&self, limits: &Limits) -> Result<(), String> {
        check_video(&self.video, limits)?;
        self.options.validate_for(&self.video)?;
        let c = &self.chunk;
        if !(1..=MAX_CHUNK_FRAMES).contains(&c.frame_count) {
            return Err(format!(
                "a chunk has 1..={MAX_CHUNK_FRAMES} frames, not {}",
                c.frame_count
            ));
        }
        if self.pts.len() as u64 != c.frame_count {
            return Err(format!(
                "chunk {} lists {} timestamps for {} frames",
                c.index,
                self.pts.len(),
                c.frame_count
            ));
        }
        if !self.pts.windows(2).all(|w| w[0] < w[1]) {
            return Err("chunk timestamps must be strictly increasing".into());
        }
        if c.first_frame.saturating_add(c.frame_count) > self.video.frame_count
            || c.index >= self.chunks
            || self.chunks as u64 > self.video.frame_count
        {
            return Err(format!(
                "chunk {} (frames {}..+{}) does not fit a video of {} frames in {} chunks",
                c.index, c.first_frame, c.frame_count, self.video.frame_count, self.chunks
            ));
        }
        Ok(())
    }
}

/// Merge a video's chunk results: the chord body (queue `processor`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergeChunks {
    pub video_id: String,
    pub chord_id: String,
    pub video: VideoInfo,
    pub chunks: u32,
    #[serde(default)]
    pub options: VideoOptions,
}

impl TaskPayload for MergeChunks {
    const NAME: &'static str = MERGE_CHUNKS;
    const ARGS: &'static [&'static str] = &["video_id", "chord_id", "video", "chunks", "options"];
}

impl MergeChunks {
    pub fn validate(&self, limits: &Limits) -> Result<(), String> {
        check_video(&self.video, limits)?;
        self.options.validate_for(&self.video)?;
        if self.chunks == 0 || self.chunks as u64 > self.video.frame_count {
            return Err(format!(
                "{} chunks for a video of {} frames",
                self.chunks, self.video.frame_count
            ));
        }
        Ok(())
    }
}

fn check_video(video: &VideoInfo, limits: &Limits) -> Result<(), String> {
    limits.check_frame(video.width, video.height)?;
    limits.check_frames(video.frame_count)?;
    if video.frame_count == 0 || video.time_base[0] <= 0 || video.time_base[1] <= 0 {
        return Err("a video has frames and a positive time base".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use argus_queue::message::TaskMessage;

    #[test]
    fn a_python_clients_positional_args_are_the_same_task() {
        let mut celery = TaskMessage::new(&ProcessVideo {
            video_id: "x".into(),
            options: VideoOptions::default(),
        })
        .to_celery();
        celery.raw_body =
            br#"[["abc", null, 16], {"score_threshold": 0.5}, {"callbacks": null}]"#.to_vec();
        let message = TaskMessage::from_celery(&celery).unwrap();
        let p = message.payload::<ProcessVideo>().unwrap();
        assert_eq!(p.video_id, "abc");
        assert_eq!(p.options.chunk_size, Some(16));
        assert_eq!(p.options.score_threshold, Some(0.5));
        assert_eq!(p.options.model, None);
    }

    #[test]
    fn every_process_finds_the_same_default_model() {
        let served = |s: &[&str]| s.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        assert_eq!(
            resolve_default_model(Some("b"), &served(&["a", "b"]), Some("c")),
            "b"
        );
        assert_eq!(
            resolve_default_model(Some(" "), &served(&["a", "b"]), Some("c")),
            "a"
        );
        assert_eq!(
            resolve_default_model(None, &[], Some(" bench-null ")),
            "bench-null"
        );
        assert_eq!(resolve_default_model(None, &[], None), DEFAULT_MODEL);
        assert_eq!(
            resolve_served_models(&served(&[" a", "", "b "]), "a"),
            Ok(served(&["a", "b"]))
        );
        assert_eq!(resolve_served_models(&[], "a"), Ok(served(&["a"])));
        assert!(resolve_served_models(&served(&["a"]), "b")
            .unwrap_err()
            .contains("not among"));
        assert!(resolve_served_models(&served(&["a", "../x"]), "a").is_err());
        assert_eq!(detector_queue("a", "a"), "detector");
        assert_eq!(detector_queue("b", "a"), "detector.b");
    }

    #[test]
    fn options_are_validated() {
        let ok = VideoOptions {
            model: Some("coco-centernet".into()),
            chunk_size: Some(64),
            score_threshold: Some(0.5),
            classes: Some(vec!["person".into()]),
            annotate: Some(true),
            track: Some(true),
            zones: Some(vec![Zone {
                name: Some("door".into()),
                points: vec![[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]],
                normalized: false,
                anchor: Default::default(),
            }]),
            lines: None,
            stride: Some(4),
            keyframes_only: None,
        };
        assert_eq!(ok.validate(), Ok(()));
        for bad in [
            VideoOptions {
                model: Some("../etc/passwd".into()),
                ..Default::default()
            },
            VideoOptions {
                chunk_size: Some(0),
                ..Default::default()
            },
            VideoOptions {
                chunk_size: Some(1 << 40),
                ..Default::default()
            },
            VideoOptions {
                score_threshold: Some(1.5),
                ..Default::default()
            },
            VideoOptions {
                classes: Some(vec![]),
                ..Default::default()
            },
            VideoOptions {
                stride: Some(0),
                ..Default::default()
            },
            VideoOptions {
                stride: Some(2),
                keyframes_only: Some(true),
                ..Default::default()
            },
            VideoOptions {
                track: Some(false),
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
