//! The processor's tasks: `process_video` (split, then fan the chunks out as a chord to the
//! detectors) and `merge_chunks` (the chord's body: merge, write the result). Each run of a
//! video (one `process_video` task id) has its own chord id, chunk results and state; the
//! state only changes through the backend's guarded update, so a late or duplicate message
//! of one run never overwrites another run's or a terminal state.

use std::sync::Arc;

use argus_common::state::{VideoState, VideoStatus};
use argus_common::storage::Storage;
use argus_common::{FrameDetections, Limits, ModelInfo};
use argus_queue::backend::{celery_exception, Backend, TaskStatus};
use argus_queue::lifecycle::{fail_task_video, revoke_run};
use argus_queue::tasks::{DetectFrames, MergeChunks, ProcessVideo, TaskMessage, DETECTOR_QUEUE};
use argus_queue::worker::{TaskContext, TaskError, TaskOutput, Worker};
use serde::Deserialize;
use serde_json::json;

use crate::{merge_chunks, split_video};

#[derive(Clone)]
pub struct ProcessorConfig {
    pub storage: Storage,
    pub chunk_size: u64,
    pub limits: Limits,
}

/// Registers the processor's tasks on `worker`.
pub fn register(worker: Worker, config: ProcessorConfig) -> Worker {
    let config = Arc::new(config);
    let split_config = config.clone();
    worker
        .task(argus_queue::tasks::PROCESS_VIDEO, move |ctx| {
            process_video(ctx, split_config.clone())
        })
        .task(argus_queue::tasks::MERGE_CHUNKS, move |ctx| {
            merge(ctx, config.clone())
        })
        .on_failure(fail_task_video)
        .on_revoke(revoke_run)
}

/// The chord id of a run: derived from the run's task id, so a redelivered `process_video`
/// (its worker was killed) re-sends the same chord, whose chunks count once.
pub fn chord_of(run: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, run.as_bytes()).to_string()
}

/// The task id of chunk `index` of a chord: the same for every re-send of the chord, so a
/// chunk's deliveries are counted together (see the worker's start cap).
pub fn chunk_task_id(chord_id: &str, index: u32) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("{chord_id}/{index}").as_bytes(),
    )
    .to_string()
}

async fn process_video(ctx: TaskContext, config: Arc<ProcessorConfig>) -> TaskOutput {
    let p: ProcessVideo = ctx.message.payload().map_err(TaskError::permanent)?;
    p.options.validate().map_err(TaskError::Permanent)?;
    let backend = &ctx.backend;
    let run = ctx.message.id.clone();
    // Starting (or, redelivered, restarting) this run: refused over a run in progress, and a
    // run that already ended (cancelled before it started, or finished) is left alone.
    if let Some(current) = backend
        .get_state(&p.video_id)
        .await
        .map_err(TaskError::transient)?
    {
        if current.is_run(&run) && current.status.is_final() {
            tracing::info!(
                video_id = p.video_id,
                status = current.status.as_str(),
                "run already ended"
            );
            // Make sure the run's Celery result says so (a ready result is kept as it is).
            let reason = current.error.clone().unwrap_or_default();
            let (status, exc) = match current.status {
                VideoStatus::Cancelled => (
                    TaskStatus::Revoked,
                    celery_exception("TaskRevokedError", "celery.exceptions", &reason),
                ),
                VideoStatus::Failed => (
                    TaskStatus::Failure,
                    celery_exception("RuntimeError", "builtins", &reason),
                ),
                _ => return Ok(None),
            };
            backend
                .store_result(&run, status, &exc, None)
                .await
                .map_err(TaskError::transient)?;
            return Ok(None);
        }
        if !current.is_run(&run) && !current.status.is_final() {
            return Err(TaskError::Permanent(format!(
                "video {} is already being processed (task {})",
                p.video_id,
                current.task_id.as_deref().unwrap_or("?")
            )));
        }
    }
    set_status(backend, &p.video_id, &run, VideoStatus::Splitting, |_| {}).await?;

    let path = config
        .storage
        .video_path(&p.video_id)
        .map_err(TaskError::permanent)?;
    let chunk_size = p.options.chunk_size.unwrap_or(config.chunk_size);
    let limits = config.limits;
    let plan = tokio::task::spawn_blocking(move || split_video(&path, chunk_size, &limits))
        .await
        .map_err(TaskError::transient)?
        .map_err(TaskError::permanent)?;
    let mut warnings = Vec::new();
    if let Some(why) = &plan.truncated {
        tracing::warn!(
            video_id = p.video_id,
            why,
            "truncated upload: detecting the frames before the cut"
        );
        warnings.push(format!("the file is truncated: {why}"));
    }
    let chunks = plan.chunks.len() as u32;
    let frames_total = plan.info.frame_count;
    let moved = set_status(backend, &p.video_id, &run, VideoStatus::Detecting, |s| {
        s.chunks_total = chunks as u64;
        s.frames_total = frames_total;
        s.warnings = warnings.clone();
    })
    .await?
    .is_some();
    if !moved {
        tracing::info!(
            video_id = p.video_id,
            "run cancelled or superseded: not fanned out"
        );
        return Ok(None);
    }

    // The chord: one detect_frames per chunk, all in one group; whichever finishes the set
    // sends merge_chunks. The root id is this task's: the video's result is stored under it.
    let chord_id = chord_of(&run);
    for chunk in &plan.chunks {
        let payload = DetectFrames {
            video_id: p.video_id.clone(),
            chord_id: chord_id.clone(),
            video: plan.info.clone(),
            chunk: *chunk,
            chunks,
            pts: plan.chunk_pts(chunk).to_vec(),
            options: p.options.clone(),
        };
        let mut message = TaskMessage::new(&payload)
            .with_id(chunk_task_id(&chord_id, chunk.index))
            .with_group(&chord_id);
        message.root_id = Some(run.clone());
        message.parent_id = Some(run.clone());
        ctx.broker
            .send(DETECTOR_QUEUE, &message)
            .await
            .map_err(TaskError::transient)?;
    }
    tracing::info!(video_id = p.video_id, chunks, chord_id, "fanned out");
    Ok(None)
}

/// Moves run `run` of a video to `status` (applying `edit`) and returns the state written;
/// `None` when the guarded update refused (the run ended, was cancelled, or another run holds
/// the video) or, past splitting, when the state is gone (the video was deleted: it is not
/// brought back).
async fn set_status(
    backend: &Backend,
    video_id: &str,
    run: &str,
    status: VideoStatus,
    edit: impl Fn(&mut VideoState),
) -> Result<Option<VideoState>, TaskError> {
    backend
        .update_state(video_id, |old| {
            let mut s = match old {
                Some(s) if s.is_run(run) => s.clone(),
                None if status > VideoStatus::Splitting => return None,
                // A new run (or none yet): start from scratch.
                _ => VideoState::queued(video_id, Some(run.to_string())),
            };
            s.task_id = Some(run.to_string());
            s.status = status;
            edit(&mut s);
            Some(s)
        })
        .await
        .map_err(TaskError::transient)
}

/// A chunk's stored result.
#[derive(Deserialize)]
struct StoredChunk {
    model: ModelInfo,
    frames: Vec<FrameDetections>,
    #[serde(default)]
    skipped: Vec<u64>,
}

async fn merge(ctx: TaskContext, config: Arc<ProcessorConfig>) -> TaskOutput {
    let p: MergeChunks = ctx.message.payload().map_err(TaskError::permanent)?;
    p.validate(&config.limits).map_err(TaskError::Permanent)?;
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
    let run = ctx
        .message
        .root_id
        .clone()
        .unwrap_or_else(|| ctx.message.id.clone());
    let Some(merging) =
        set_status(backend, &p.video_id, &run, VideoStatus::Merging, |_| {}).await?
    else {
        tracing::info!(
            video_id = p.video_id,
            "run cancelled or superseded: no merge"
        );
        return Ok(Some(json!({"video_id": p.video_id, "merged": false})));
    };
    // The split's warnings (a truncated file) travel in the state.
    let (started_at, split_warnings) = (merging.created_at, merging.warnings);

    let mut model: Option<ModelInfo> = None;
    let mut chunks: Vec<Vec<FrameDetections>> = Vec::with_capacity(p.chunks as usize);
    let mut skipped: Vec<u64> = Vec::new();
    for i in 0..p.chunks {
        let raw = backend
            .get_chunk(&p.chord_id, i)
            .await
            .map_err(TaskError::transient)?
            .ok_or_else(|| TaskError::transient(format!("chunk {i} has no result yet")))?;
        let chunk: StoredChunk = serde_json::from_str(&raw).map_err(TaskError::permanent)?;
        drop(raw);
        match &model {
            None => model = Some(chunk.model),
            Some(m) if m.name != chunk.model.name => {
                return Err(TaskError::Permanent(format!(
                    "chunk {i} was detected with model '{}', the others with '{}'",
                    chunk.model.name, m.name
                )))
            }
            Some(_) => {}
        }
        skipped.extend(chunk.skipped);
        chunks.push(chunk.frames);
    }
    let mut model = model.ok_or_else(|| TaskError::permanent("the chord has no chunks"))?;
    if let Some(t) = p.options.score_threshold {
        model.score_threshold = model.score_threshold.max(t);
    }
    let wall = (chrono::Utc::now() - started_at).num_milliseconds() as f64 / 1000.0;
    let result = merge_chunks(
        p.video.clone(),
        model,
        chunks,
        skipped,
        p.chunks,
        wall,
        split_warnings,
    )
    .map_err(TaskError::permanent)?;
    if result.frames.is_empty() {
        return Err(TaskError::Permanent(format!(
            "none of the video's {} frames could be decoded",
            result.video.frame_count
        )));
    }
    let (frames_done, warnings) = (result.summary.frames_processed, result.warnings.clone());
    // Serialized once; the file is written before the result says it is there.
    let json = serde_json::to_string(&result).map_err(TaskError::permanent)?;
    drop(result);
    config
        .storage
        .write_result(&p.video_id, json.as_bytes())
        .map_err(TaskError::transient)?;
    // The video's result, where a Celery client waiting on process_video looks for it; refused
    // when the run was cancelled meanwhile (REVOKED is final).
    let stored = backend
        .store_result_raw(&run, TaskStatus::Success, &json, None)
        .await
        .map_err(TaskError::transient)?;
    drop(json);
    let succeeded = stored
        && set_status(backend, &p.video_id, &run, VideoStatus::Succeeded, |s| {
            s.chunks_done = s.chunks_done.max(p.chunks as u64);
            s.frames_done = s.frames_done.max(frames_done);
            s.warnings = warnings.clone();
        })
        .await?
        .is_some();
    backend
        .clean_run(&p.chord_id, p.chunks)
        .await
        .map_err(TaskError::transient)?;
    Ok(Some(
        json!({"video_id": p.video_id, "frames": frames_done, "merged": succeeded}),
    ))
}
