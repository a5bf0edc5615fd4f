//! The tasks Argus workers run, their payloads, and their Celery protocol v2 messages.
//!
//! A message is `[args, kwargs, embed]` in JSON, with the task name and id in its headers.
//! Python's `app.send_task("process_video", args=[video_id], queue="processor")` and Rust's
//! [`TaskMessage::new`] produce messages that decode to the same payload: positional args are
//! mapped onto the task's parameter names, as Celery does.

use celery::protocol::{Message, MessageHeaders, MessageProperties};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use argus_common::detection::DetectionFilter;
use argus_common::limits::{Limits, MAX_CHUNK_FRAMES};
use argus_common::{Chunk, VideoInfo};

pub const PROCESS_VIDEO: &str = "process_video";
pub const DETECT_FRAMES: &str = "detect_frames";
pub const MERGE_CHUNKS: &str = "merge_chunks";

pub const PROCESSOR_QUEUE: &str = "processor";
pub const DETECTOR_QUEUE: &str = "detector";
/// Where messages that cannot be decoded or have no task go, instead of being dropped.
pub const DEAD_LETTER_QUEUE: &str = "argus.dlq";

/// The queue a task is consumed from.
pub fn queue_of(task: &str) -> &'static str {
    match task {
        DETECT_FRAMES => DETECTOR_QUEUE,
        _ => PROCESSOR_QUEUE,
    }
}

/// A task payload: its name, queue and parameter names (the order of positional args).
pub trait TaskPayload: Serialize + DeserializeOwned {
    const NAME: &'static str;
    const QUEUE: &'static str;
    const ARGS: &'static [&'static str];
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
}

/// Most class labels one video's options may list.
pub const MAX_CLASSES: usize = 1000;

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
        Ok(())
    }

    pub fn filter(&self) -> DetectionFilter {
        DetectionFilter {
            min_score: self.score_threshold,
            classes: self.classes.as_ref().map(|c| c.iter().cloned().collect()),
        }
    }
}

/// Probe and split an uploaded video, then fan its chunks out (queue `processor`). Python:
/// `process_video(video_id, model=None, chunk_size=None, score_threshold=None, classes=None)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessVideo {
    pub video_id: String,
    #[serde(flatten)]
    pub options: VideoOptions,
}

impl TaskPayload for ProcessVideo {
    const NAME: &'static str = PROCESS_VIDEO;
    const QUEUE: &'static str = PROCESSOR_QUEUE;
    const ARGS: &'static [&'static str] = &[
        "video_id",
        "model",
        "chunk_size",
        "score_threshold",
        "classes",
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
    const QUEUE: &'static str = DETECTOR_QUEUE;
    const ARGS: &'static [&'static str] = &[
        "video_id", "chord_id", "video", "chunk", "chunks", "pts", "options",
    ];
}

impl DetectFrames {
    /// Checks what will be sized from this message against `limits`.
    pub fn validate(&self, limits: &Limits) -> Result<(), String> {
        check_video(&self.video, limits)?;
        self.options.validate()?;
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
    const QUEUE: &'static str = PROCESSOR_QUEUE;
    const ARGS: &'static [&'static str] = &["video_id", "chord_id", "video", "chunks", "options"];
}

impl MergeChunks {
    pub fn validate(&self, limits: &Limits) -> Result<(), String> {
        check_video(&self.video, limits)?;
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

/// A task message as the workers see it, whichever broker carried it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMessage {
    pub id: String,
    pub task: String,
    /// Keyword arguments (positional ones already mapped onto names where the task is known).
    pub kwargs: Map<String, Value>,
    /// Positional arguments of a task we do not know the parameters of.
    pub args: Vec<Value>,
    pub retries: u32,
    pub eta: Option<DateTime<Utc>>,
    pub group: Option<String>,
    pub root_id: Option<String>,
    pub parent_id: Option<String>,
}

/// Why a message cannot be turned into a task.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("unsupported content type '{0}' (JSON only)")]
    ContentType(String),
    #[error("body is not a Celery v2 JSON body [args, kwargs, embed]: {0}")]
    Body(String),
    #[error("task {task}: bad arguments: {reason}")]
    Arguments { task: String, reason: String },
}

impl TaskMessage {
    /// A new message for `payload`, with a fresh uuid4 id.
    pub fn new<T: TaskPayload>(payload: &T) -> TaskMessage {
        let kwargs = match serde_json::to_value(payload).expect("payloads serialize") {
            Value::Object(map) => map,
            other => panic!("a payload serializes to an object, not {other}"),
        };
        TaskMessage {
            id: uuid::Uuid::new_v4().to_string(),
            task: T::NAME.to_string(),
            kwargs,
            args: Vec::new(),
            retries: 0,
            eta: None,
            group: None,
            root_id: None,
            parent_id: None,
        }
    }

    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// The payload, when this message is for task `T`.
    pub fn payload<T: TaskPayload>(&self) -> Result<T, DecodeError> {
        let mut kwargs = self.kwargs.clone();
        for (name, value) in T::ARGS.iter().zip(&self.args) {
            kwargs
                .entry(name.to_string())
                .or_insert_with(|| value.clone());
        }
        serde_json::from_value(Value::Object(kwargs)).map_err(|e| DecodeError::Arguments {
            task: self.task.clone(),
            reason: e.to_string(),
        })
    }

    /// Decodes a Celery protocol v2 message.
    pub fn from_celery(message: &Message) -> Result<TaskMessage, DecodeError> {
        if message.properties.content_type != "application/json" {
            return Err(DecodeError::ContentType(
                message.properties.content_type.clone(),
            ));
        }
        let body: Value = serde_json::from_slice(&message.raw_body)
            .map_err(|e| DecodeError::Body(e.to_string()))?;
        let (args, kwargs) = match body {
            Value::Array(mut parts) if (2..=3).contains(&parts.len()) => {
                let kwargs = parts.swap_remove(1);
                (parts.swap_remove(0), kwargs)
            }
            other => return Err(DecodeError::Body(truncate(&other.to_string()))),
        };
        let (Value::Array(args), Value::Object(kwargs)) = (args, kwargs) else {
            return Err(DecodeError::Body(
                "args must be a list and kwargs an object".into(),
            ));
        };
        let h = &message.headers;
        Ok(TaskMessage {
            id: h.id.clone(),
            task: h.task.clone(),
            kwargs,
            args,
            retries: h.retries.unwrap_or(0),
            eta: h.eta,
            group: h.group.clone(),
            root_id: h.root_id.clone(),
            parent_id: h.parent_id.clone(),
        })
    }

    /// Encodes as a Celery protocol v2 message (JSON body, kwargs only).
    pub fn to_celery(&self) -> Message {
        let body = json!([self.args, self.kwargs, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]);
        Message {
            properties: MessageProperties {
                correlation_id: self.id.clone(),
                content_type: "application/json".into(),
                content_encoding: "utf-8".into(),
                reply_to: None,
            },
            headers: MessageHeaders {
                id: self.id.clone(),
                task: self.task.clone(),
                lang: Some("rust".into()),
                root_id: Some(self.root_id.clone().unwrap_or_else(|| self.id.clone())),
                parent_id: self.parent_id.clone(),
                group: self.group.clone(),
                eta: self.eta,
                retries: Some(self.retries),
                origin: Some(origin()),
                ..Default::default()
            },
            raw_body: serde_json::to_vec(&body).expect("JSON values serialize"),
        }
    }
}

/// `argus<pid>@<host>`, read once: it goes on every message sent.
fn origin() -> String {
    static ORIGIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ORIGIN
        .get_or_init(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("argus{}@{}", std::process::id(), host.trim())
        })
        .clone()
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_a_celery_message() {
        let payload = ProcessVideo {
            video_id: "v".into(),
            options: VideoOptions {
                chunk_size: Some(7),
                classes: Some(vec!["person".into()]),
                ..VideoOptions::default()
            },
        };
        let message = TaskMessage::new(&payload).with_group("c");
        let celery = message.to_celery();
        assert_eq!(celery.headers.task, "process_video");
        assert_eq!(celery.properties.correlation_id, message.id);
        let back = TaskMessage::from_celery(&celery).unwrap();
        assert_eq!(back.payload::<ProcessVideo>().unwrap(), payload);
        assert_eq!(back.group.as_deref(), Some("c"));
    }

    #[test]
    fn maps_python_positional_args_onto_names() {
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
    fn options_are_validated() {
        let ok = VideoOptions {
            model: Some("coco-centernet".into()),
            chunk_size: Some(64),
            score_threshold: Some(0.5),
            classes: Some(vec!["person".into()]),
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
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_bodies_and_arguments_are_errors_not_panics() {
        let good = TaskMessage::new(&ProcessVideo {
            video_id: "x".into(),
            options: VideoOptions::default(),
        })
        .to_celery();
        let mut not_json = good.clone();
        not_json.raw_body = b"\x00garbage".to_vec();
        assert!(matches!(
            TaskMessage::from_celery(&not_json),
            Err(DecodeError::Body(_))
        ));
        let mut pickled = good.clone();
        pickled.properties.content_type = "application/x-python-serialize".into();
        assert!(matches!(
            TaskMessage::from_celery(&pickled),
            Err(DecodeError::ContentType(_))
        ));
        let mut wrong_args = good.clone();
        wrong_args.raw_body = br#"[[], {"video_id": 7}, {}]"#.to_vec();
        let message = TaskMessage::from_celery(&wrong_args).unwrap();
        assert!(matches!(
            message.payload::<ProcessVideo>(),
            Err(DecodeError::Arguments { .. })
        ));
    }
}
