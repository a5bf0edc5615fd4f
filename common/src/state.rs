//! A video's lifecycle: `queued → splitting → detecting → merging → succeeded`, or `failed`
//! (with a reason) or `cancelled`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoStatus {
    Queued,
    Splitting,
    Detecting,
    Merging,
    Succeeded,
    Failed,
    Cancelled,
}

impl VideoStatus {
    /// No further change happens to a video in this state.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            VideoStatus::Succeeded | VideoStatus::Failed | VideoStatus::Cancelled
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoState {
    pub video_id: String,
    pub status: VideoStatus,
    pub chunks_done: u64,
    pub chunks_total: u64,
    pub frames_done: u64,
    pub frames_total: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// The `process_video` task id: its Celery result ends up holding the video's result.
    pub task_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl VideoState {
    pub fn queued(video_id: &str, task_id: Option<String>) -> VideoState {
        let now = Utc::now();
        VideoState {
            video_id: video_id.to_string(),
            status: VideoStatus::Queued,
            chunks_done: 0,
            chunks_total: 0,
            frames_done: 0,
            frames_total: 0,
            error: None,
            task_id,
            created_at: now,
            updated_at: now,
        }
    }
}
