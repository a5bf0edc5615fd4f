//! The processor's tasks: `process_video` (split, then fan the chunks out as a chord to the
//! detectors) and `merge_chunks` (the chord's body: merge, write the result).

use std::sync::Arc;

use argus_common::backend::{Backend, TaskStatus};
use argus_common::state::{VideoState, VideoStatus};
use argus_common::storage::Storage;
use argus_common::tasks::{DetectFrames, MergeChunks, ProcessVideo, TaskMessage, DETECTOR_QUEUE};
use argus_common::worker::{TaskContext, TaskError, TaskOutput, Worker};
use argus_common::{FrameDetections, ModelInfo};
use chrono::Utc;
use serde_json::{json, Value};

use crate::{merge_chunks, split_video};

#[derive(Clone)]
pub struct ProcessorConfig {
    pub storage: Storage,
    pub chunk_size: u64,
}

/// Registers the processor's tasks on `worker`.
pub fn register(worker: Worker, config: ProcessorConfig) -> Worker {
    let config = Arc::new(config);
    let split_config = config.clone();
    worker
        .task(argus_common::tasks::PROCESS_VIDEO, move |ctx| {
            process_video(ctx, split_config.clone())
        })
        .task(argus_common::tasks::MERGE_CHUNKS, move |ctx| {
            merge(ctx, config.clone())
        })
        .on_failure(fail_video)
}

async fn state_of(
    backend: &Backend,
    video_id: &str,
    task_id: &str,
) -> Result<VideoState, TaskError> {
    Ok(backend
        .get_state(video_id)
        .await
        .map_err(TaskError::transient)?
        .unwrap_or_else(|| VideoState::queued(video_id, Some(task_id.to_string()))))
}

async fn process_video(ctx: TaskContext, config: Arc<ProcessorConfig>) -> TaskOutput {
    let p: ProcessVideo = ctx.message.payload().map_err(TaskError::permanent)?;
    let backend = &ctx.backend;
    let mut state = state_of(backend, &p.video_id, &ctx.message.id).await?;
    if state.status == VideoStatus::Cancelled {
        return Ok(Some(json!("cancelled")));
    }
    state.task_id = Some(ctx.message.id.clone());
    state.status = VideoStatus::Splitting;
    state.updated_at = Utc::now();
    backend
        .set_state(&state)
        .await
        .map_err(TaskError::transient)?;

    let path = config
        .storage
        .video_path(&p.video_id)
        .map_err(TaskError::permanent)?;
    let chunk_size = config.chunk_size;
    let plan = tokio::task::spawn_blocking(move || split_video(&path, chunk_size))
        .await
        .map_err(TaskError::transient)?
        .map_err(TaskError::permanent)?;
    if let Some(why) = &plan.truncated {
        tracing::warn!(
            video_id = p.video_id,
            why,
            "truncated upload: detecting the frames before the cut"
        );
    }
    state.status = VideoStatus::Detecting;
    state.chunks_total = plan.chunks.len() as u64;
    state.frames_total = plan.info.frame_count;
    state.updated_at = Utc::now();
    backend
        .set_state(&state)
        .await
        .map_err(TaskError::transient)?;

    // The chord: one detect_frames per chunk, all in one group; whichever finishes the set
    // sends merge_chunks. The root id is this task's: the video's result is stored under it.
    // The chord id derives from this task's id, so a redelivered process_video (its worker
    // was killed) re-sends the same chord, whose chunks count once, not a second one.
    let chord_id =
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, ctx.message.id.as_bytes()).to_string();
    for chunk in &plan.chunks {
        let payload = DetectFrames {
            video_id: p.video_id.clone(),
            chord_id: chord_id.clone(),
            video: plan.info.clone(),
            chunk: *chunk,
            chunks: plan.chunks.len() as u32,
        };
        let mut message = TaskMessage::new(&payload).with_group(&chord_id);
        message.root_id = Some(ctx.message.id.clone());
        message.parent_id = Some(ctx.message.id.clone());
        ctx.broker
            .send(DETECTOR_QUEUE, &message)
            .await
            .map_err(TaskError::transient)?;
    }
    tracing::info!(
        video_id = p.video_id,
        chunks = plan.chunks.len(),
        chord_id,
        "fanned out"
    );
    Ok(None)
}

async fn merge(ctx: TaskContext, config: Arc<ProcessorConfig>) -> TaskOutput {
    let p: MergeChunks = ctx.message.payload().map_err(TaskError::permanent)?;
    let backend = &ctx.backend;
    // The merge's id is its chord's: a body sent twice (a completer retried) merges once.
    if let Some(done) = backend
        .get_result(&ctx.message.id)
        .await
        .map_err(TaskError::transient)?
    {
        if done["status"] == "SUCCESS" {
            return Ok(None);
        }
    }
    let root = ctx
        .message
        .root_id
        .clone()
        .unwrap_or_else(|| ctx.message.id.clone());
    let mut state = state_of(backend, &p.video_id, &root).await?;
    state.status = VideoStatus::Merging;
    state.updated_at = Utc::now();
    backend
        .set_state(&state)
        .await
        .map_err(TaskError::transient)?;

    let mut model: Option<ModelInfo> = None;
    let mut chunks: Vec<Vec<FrameDetections>> = Vec::with_capacity(p.chunks as usize);
    for i in 0..p.chunks {
        let chunk = backend
            .get_chunk(&p.video_id, i)
            .await
            .map_err(TaskError::transient)?
            .ok_or_else(|| TaskError::transient(format!("chunk {i} has no result yet")))?;
        let frames: Vec<FrameDetections> =
            serde_json::from_value(chunk["frames"].clone()).map_err(TaskError::permanent)?;
        if model.is_none() {
            model = serde_json::from_value(chunk["model"].clone()).ok();
        }
        chunks.push(frames);
    }
    let model = model.ok_or_else(|| TaskError::permanent("chunk results carry no model"))?;
    let wall = (Utc::now() - state.created_at).num_milliseconds() as f64 / 1000.0;
    let result = merge_chunks(p.video.clone(), model, chunks, p.chunks, wall)
        .map_err(TaskError::permanent)?;
    let json = serde_json::to_value(&result).map_err(TaskError::permanent)?;
    config
        .storage
        .write_result(&p.video_id, json.to_string().as_bytes())
        .map_err(TaskError::transient)?;
    // The video's result, where a Celery client waiting on process_video looks for it.
    backend
        .store_result(&root, TaskStatus::Success, json, None)
        .await
        .map_err(TaskError::transient)?;
    state.status = VideoStatus::Succeeded;
    state.chunks_done = p.chunks as u64;
    state.frames_done = result.summary.frames_processed;
    state.updated_at = Utc::now();
    backend
        .set_state(&state)
        .await
        .map_err(TaskError::transient)?;
    Ok(Some(
        json!({"video_id": p.video_id, "frames": result.summary.frames_processed}),
    ))
}

/// A task failed for good: its video fails with the reason, and the Celery result of the
/// video's root task says so too (a client waiting on process_video gets the error).
pub async fn fail_video(ctx: TaskContext, error: String) {
    let Some(video_id) = ctx
        .message
        .kwargs
        .get("video_id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            ctx.message
                .args
                .first()
                .and_then(Value::as_str)
                .map(str::to_string)
        })
    else {
        return;
    };
    let root = ctx
        .message
        .root_id
        .clone()
        .unwrap_or_else(|| ctx.message.id.clone());
    let backend = &ctx.backend;
    let mut state = match backend.get_state(&video_id).await {
        Ok(Some(s)) => s,
        _ => VideoState::queued(&video_id, Some(root.clone())),
    };
    if state.status.is_final() {
        return;
    }
    state.status = VideoStatus::Failed;
    state.error = Some(error.clone());
    state.updated_at = Utc::now();
    let _ = backend.set_state(&state).await;
    let failure =
        json!({"exc_type": "RuntimeError", "exc_message": [error], "exc_module": "builtins"});
    let _ = backend
        .store_result(&root, TaskStatus::Failure, failure, None)
        .await;
}
