//! `annotate_video`: a succeeded video's annotated copy, `results/<id>.annotated.mp4` (every
//! frame with its boxes, labels and scores drawn; H.264), written beside its result. The
//! detections are read through the result's index a window of frames at a time, so memory
//! stays flat with the video's length. Progress goes to the annotation state
//! ([`argus_pipeline::annotation`]) about once a second.
//!
//! Only the task the state names does the work (a duplicate or stale message does nothing). A
//! failure is the annotation's, never the video's: it is recorded as `failed` with its reason,
//! and asking again queues a new task. A stop (time limit, shutdown) is retried. A video deleted
//! meanwhile loses the file this task renames into place.

use std::io::BufReader;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argus_common::result_index::read_frames;
use argus_common::state::{without_paths, VideoStatus};
use argus_common::storage::Storage;
use argus_common::{FrameDetections, VideoInfo};
use argus_media::MediaError;
use argus_pipeline::annotation::{self, AnnotateVideo, AnnotationStatus};
use argus_pipeline::store::RunStore;
use argus_queue::worker::{StopFlag, TaskContext, TaskError, TaskOutput};
use serde::Deserialize;
use serde_json::json;

use crate::tasks::ProcessorConfig;

/// Frames of detections read at once.
const WINDOW: u64 = 512;

pub(crate) async fn annotate(ctx: TaskContext, config: Arc<ProcessorConfig>) -> TaskOutput {
    let p: AnnotateVideo = ctx.message.payload().map_err(TaskError::permanent)?;
    let backend = &ctx.backend;
    let id = p.video_id;
    let task_id = ctx.message.id.clone();
    let Some(mut state) = annotation::get(backend, &id)
        .await
        .map_err(TaskError::transient)?
    else {
        // Not asked for through the pipeline, or the video was deleted.
        return Ok(Some(json!({"video_id": id, "annotated": false})));
    };
    if state.task_id != task_id
        || matches!(
            state.status,
            AnnotationStatus::Succeeded | AnnotationStatus::Failed
        )
    {
        return Ok(Some(json!({"video_id": id, "annotated": false})));
    }
    let video = backend.get_state(&id).await.map_err(TaskError::transient)?;
    if video
        .as_ref()
        .is_none_or(|v| v.status != VideoStatus::Succeeded)
    {
        state.status = AnnotationStatus::Failed;
        state.error = Some("the video has no result to draw".into());
        state.updated_at = chrono::Utc::now();
        annotation::set(backend, &id, &state)
            .await
            .map_err(TaskError::transient)?;
        return Ok(Some(json!({"video_id": id, "annotated": false})));
    }
    state.status = AnnotationStatus::Running;
    state.updated_at = chrono::Utc::now();
    annotation::set(backend, &id, &state)
        .await
        .map_err(TaskError::transient)?;

    let done = Arc::new(AtomicU64::new(0));
    let work = tokio::task::spawn_blocking({
        let (storage, id, done, stop) = (
            config.storage.clone(),
            id.clone(),
            done.clone(),
            ctx.stop.clone(),
        );
        move || draw(&storage, &id, &done, &stop)
    });
    tokio::pin!(work);
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let outcome = loop {
        tokio::select! {
            outcome = &mut work => break outcome.map_err(TaskError::transient)?,
            _ = ticks.tick() => {
                state.frames_done = done.load(Ordering::Relaxed);
                state.updated_at = chrono::Utc::now();
                if let Err(e) = annotation::set(backend, &id, &state).await {
                    tracing::warn!(video_id = id, error = %e, "cannot record annotation progress");
                }
            }
        }
    };
    match outcome {
        Ok(()) => {
            // Deleted while it was drawn: the file goes too.
            if annotation::get(backend, &id)
                .await
                .map_err(TaskError::transient)?
                .is_none()
                || backend
                    .is_deleted(&id)
                    .await
                    .map_err(TaskError::transient)?
            {
                let _ = std::fs::remove_file(
                    config
                        .storage
                        .annotated_path(&id)
                        .map_err(TaskError::permanent)?,
                );
                return Ok(Some(json!({"video_id": id, "annotated": false})));
            }
            state.status = AnnotationStatus::Succeeded;
            state.frames_done = done.load(Ordering::Relaxed).max(state.frames_done);
        }
        Err(Failure::Stopped(why)) => {
            return Err(TaskError::Transient(format!("annotation stopped {why}")))
        }
        Err(Failure::Failed(why)) => {
            tracing::warn!(video_id = id, error = why, "annotation failed");
            state.status = AnnotationStatus::Failed;
            state.error = Some(without_paths(&why));
        }
    }
    state.updated_at = chrono::Utc::now();
    annotation::set(backend, &id, &state)
        .await
        .map_err(TaskError::transient)?;
    Ok(Some(json!({
        "video_id": id,
        "annotated": state.status == AnnotationStatus::Succeeded,
    })))
}

enum Failure {
    Stopped(String),
    Failed(String),
}

impl From<MediaError> for Failure {
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::Stopped(why) => Failure::Stopped(why),
            e => Failure::Failed(e.to_string()),
        }
    }
}

fn failed(e: impl std::fmt::Display) -> Failure {
    Failure::Failed(e.to_string())
}

/// Draws video `id` into `results/<id>.annotated.mp4`: a file of its own first (a name ending
/// in `.mp4`, which picks the container), renamed into place once whole.
fn draw(storage: &Storage, id: &str, done: &AtomicU64, stop: &StopFlag) -> Result<(), Failure> {
    #[derive(Deserialize)]
    struct Head {
        video: VideoInfo,
    }
    let video_path = storage.video_path(id).map_err(failed)?;
    let result_path = storage.result_path(id).map_err(failed)?;
    // The probe the result was made from (its `video`; the frames are skipped as they stream).
    let head: Head = serde_json::from_reader(BufReader::new(
        std::fs::File::open(&result_path).map_err(failed)?,
    ))
    .map_err(failed)?;
    let (mut file, index) = storage
        .open_result(id, head.video.frame_count)
        .map_err(failed)?;
    let out = storage.annotated_path(id).map_err(failed)?;
    let part = out.with_extension(format!("{}.part.mp4", uuid::Uuid::new_v4().simple()));
    let mut window: Vec<FrameDetections> = Vec::new();
    let mut window_end = 0;
    let drawn = argus_media::annotate::annotate_video(
        &video_path,
        &head.video,
        |i| {
            if i >= window_end || window.first().is_some_and(|f| f.index > i) {
                window = read_frames(&mut file, &index, i, i + WINDOW).map_err(|e| {
                    MediaError::Write {
                        path: result_path.clone(),
                        reason: e.to_string(),
                    }
                })?;
                window_end = i + WINDOW;
            }
            done.store(i + 1, Ordering::Relaxed);
            Ok(window
                .binary_search_by_key(&i, |f| f.index)
                .map(|k| window[k].detections.clone())
                .unwrap_or_default())
        },
        &part,
        &|| stop.reason(),
    )
    .map_err(Failure::from)
    .and_then(|()| std::fs::rename(&part, &out).map_err(failed));
    if drawn.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    drawn
}
