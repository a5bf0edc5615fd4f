//! A video's annotated copy (`results/<id>.annotated.mp4`: every frame with its boxes drawn),
//! made after its run succeeded by the `annotate_video` task (queue `processor`), on request
//! (`POST /api/v1/videos/{id}/annotated`) or at upload (option `annotate`).
//!
//! Its state lives beside the video's, at `argus:annotation:<video>` (JSON, a week): queued,
//! running (with frames done), succeeded or failed (with the reason). It is created by a
//! check-and-set from absent (or failed), so that two requests at once queue one task; the file
//! in storage is what a download reads, the state only says how far the task is.

use argus_queue::backend::{Backend, BackendError};
use argus_queue::broker::Broker;
use argus_queue::message::{TaskMessage, TaskPayload};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::WORK_TTL_S;
use crate::tasks::PROCESSOR_QUEUE;

/// The task's name.
pub const ANNOTATE_VIDEO: &str = "annotate_video";

/// Draw a succeeded video's detections into an annotated copy (queue `processor`). Python:
/// `annotate_video(video_id)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnotateVideo {
    pub video_id: String,
}

impl TaskPayload for AnnotateVideo {
    const NAME: &'static str = ANNOTATE_VIDEO;
    const ARGS: &'static [&'static str] = &["video_id"];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnnotationStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnotationState {
    pub status: AnnotationStatus,
    /// The task making it.
    pub task_id: String,
    pub frames_done: u64,
    pub frames_total: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

fn key(video_id: &str) -> String {
    format!("argus:annotation:{video_id}")
}

/// Video `video_id`'s annotation state, if one was asked for.
pub async fn get(
    backend: &Backend,
    video_id: &str,
) -> Result<Option<AnnotationState>, BackendError> {
    Ok(backend
        .get_text(&key(video_id))
        .await?
        .and_then(|json| serde_json::from_str(&json).ok()))
}

/// Records `state` (the task's own progress and outcome).
pub async fn set(
    backend: &Backend,
    video_id: &str,
    state: &AnnotationState,
) -> Result<(), BackendError> {
    let json = serde_json::to_string(state).expect("states serialize");
    backend.set(&key(video_id), &json, WORK_TTL_S).await
}

/// Forgets the annotation state (the video is deleted).
pub async fn forget(backend: &Backend, video_id: &str) -> Result<(), BackendError> {
    backend.delete(&[key(video_id)]).await
}

/// Why an annotation could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("cannot queue the annotation: {0}")]
    Broker(String),
}

/// Queues the annotation of video `video_id` (of `frames_total` frames) unless one is queued,
/// running or made already; the state as it is afterwards. A failed one is queued again.
pub async fn request(
    backend: &Backend,
    broker: &Broker,
    video_id: &str,
    frames_total: u64,
) -> Result<AnnotationState, RequestError> {
    loop {
        let current = backend.get_text(&key(video_id)).await?;
        let parsed: Option<AnnotationState> = current
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok());
        if let Some(state) = &parsed {
            if state.status != AnnotationStatus::Failed {
                return Ok(state.clone());
            }
        }
        let message = TaskMessage::new(&AnnotateVideo {
            video_id: video_id.to_string(),
        });
        let queued = AnnotationState {
            status: AnnotationStatus::Queued,
            task_id: message.id.clone(),
            frames_done: 0,
            frames_total,
            error: None,
            updated_at: Utc::now(),
        };
        let json = serde_json::to_string(&queued).expect("states serialize");
        // Only the request that moves the state from what it read sends the task.
        if backend
            .compare_and_set(&key(video_id), current.as_deref(), &json, WORK_TTL_S, &[])
            .await?
        {
            if let Err(e) = broker.send(PROCESSOR_QUEUE, &message).await {
                let failed = AnnotationState {
                    status: AnnotationStatus::Failed,
                    error: Some(format!("the task could not be queued: {e}")),
                    ..queued
                };
                let _ = set(backend, video_id, &failed).await;
                return Err(RequestError::Broker(e.to_string()));
            }
            return Ok(queued);
        }
    }
}
