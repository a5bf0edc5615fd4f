//! The detector's task: `detect_frames`, a chord header task. Decodes its chunk from storage,
//! detects through the shared batcher, stores the chunk's frames, and counts the chunk in the
//! chord; the task that completes the chord sends `merge_chunks`.

use std::sync::Arc;

use argus_common::state::VideoStatus;
use argus_common::storage::Storage;
use argus_common::tasks::{DetectFrames, MergeChunks, TaskMessage, PROCESSOR_QUEUE};
use argus_common::worker::{TaskContext, TaskError, TaskOutput, Worker};
use argus_common::ModelInfo;
use chrono::Utc;
use serde_json::json;

use crate::video::detect_chunk;
use crate::{Batcher, DetectorError};

#[derive(Clone)]
pub struct DetectorConfig {
    pub storage: Storage,
    pub model: ModelInfo,
    pub decode_threads: usize,
}

/// Registers `detect_frames` on `worker`, running on `batcher`.
pub fn register(worker: Worker, batcher: Arc<Batcher>, config: DetectorConfig) -> Worker {
    let config = Arc::new(config);
    worker.task(argus_common::tasks::DETECT_FRAMES, move |ctx| {
        detect_frames(ctx, batcher.clone(), config.clone())
    })
}

async fn detect_frames(
    ctx: TaskContext,
    batcher: Arc<Batcher>,
    config: Arc<DetectorConfig>,
) -> TaskOutput {
    let p: DetectFrames = ctx.message.payload().map_err(TaskError::permanent)?;
    let backend = &ctx.backend;
    let index = p.chunk.index;
    if let Some(state) = backend
        .get_state(&p.video_id)
        .await
        .map_err(TaskError::transient)?
    {
        if matches!(state.status, VideoStatus::Cancelled | VideoStatus::Failed) {
            tracing::info!(video_id = p.video_id, chunk = index, status = ?state.status, "skipped");
            return Ok(Some(json!({"chunk": index, "skipped": true})));
        }
    }
    // A redelivered chunk whose frames are already stored is not detected again.
    if backend
        .get_chunk(&p.video_id, index)
        .await
        .map_err(TaskError::transient)?
        .is_none()
    {
        let path = config
            .storage
            .video_path(&p.video_id)
            .map_err(TaskError::permanent)?;
        let (info, chunk, threads) = (p.video.clone(), p.chunk, config.decode_threads);
        let detected = tokio::task::spawn_blocking(move || {
            detect_chunk(&batcher, &path, &info, &chunk, threads, || {})
        })
        .await
        .map_err(TaskError::transient)?;
        let frames = detected.map_err(|e| match e {
            // Bad media stays bad; anything else (a device hiccup) may pass.
            DetectorError::Media(_) => TaskError::permanent(e),
            other => TaskError::transient(other),
        })?;
        let stored = json!({"model": config.model, "frames": frames});
        backend
            .put_chunk(&p.video_id, index, &stored)
            .await
            .map_err(TaskError::transient)?;
    }
    let done = backend
        .chord_done(&p.chord_id, index, p.chunk.frame_count)
        .await
        .map_err(TaskError::transient)?;
    if let Some(mut state) = backend
        .get_state(&p.video_id)
        .await
        .map_err(TaskError::transient)?
    {
        // Progress only moves forward (two detectors may write in either order).
        if !state.status.is_final() && done.chunks > state.chunks_done {
            state.chunks_done = done.chunks;
            state.frames_done = done.frames;
            state.updated_at = Utc::now();
            backend
                .set_state(&state)
                .await
                .map_err(TaskError::transient)?;
        }
    }
    if done.chunks == p.chunks as u64 {
        complete_chord(&ctx, &p).await?;
    }
    Ok(Some(json!({"chunk": index, "chunks_done": done.chunks})))
}

/// Sends the chord's body, once: the first task to see the chord complete claims it.
async fn complete_chord(ctx: &TaskContext, p: &DetectFrames) -> Result<(), TaskError> {
    let claim = format!("argus:chord:{}:fired", p.chord_id);
    if !ctx
        .backend
        .claim(&claim, &ctx.message.id)
        .await
        .map_err(TaskError::transient)?
    {
        return Ok(());
    }
    let merge = MergeChunks {
        video_id: p.video_id.clone(),
        chord_id: p.chord_id.clone(),
        video: p.video.clone(),
        chunks: p.chunks,
    };
    let mut message = TaskMessage::new(&merge)
        .with_id(&p.chord_id)
        .with_group(&p.chord_id);
    message.root_id = ctx.message.root_id.clone();
    message.parent_id = Some(ctx.message.id.clone());
    ctx.broker
        .send(PROCESSOR_QUEUE, &message)
        .await
        .map_err(TaskError::transient)?;
    tracing::info!(
        video_id = p.video_id,
        chord_id = p.chord_id,
        "chord complete: merge sent"
    );
    Ok(())
}
