//! The detector's tasks: `detect_frames`, a chord header task (and `detect_photos`, a
//! collection's: [`crate::photos`]). Decodes its chunk from storage,
//! detects through the shared batcher, stores the chunk's frames under its run, and counts the
//! chunk in the chord; the task that completes the chord sends `merge_chunks`.
//!
//! A chunk stops at its next frame when its video is cancelled or fails (a watcher polls the
//! state) or when the worker's time limit raises its stop flag; a stopped chunk is not
//! counted, so no merge runs for a cancelled video.

use std::sync::Arc;
use std::time::Duration;

use argus_common::state::VideoStatus;
use argus_common::storage::Storage;
use argus_common::{Limits, ModelInfo};
use argus_media::MediaError;
use argus_pipeline::chord;
use argus_pipeline::run::{self, fail_task_video, revoke_run};
use argus_pipeline::store::RunStore;
use argus_pipeline::tasks::DetectFrames;
use argus_queue::worker::{TaskContext, TaskError, TaskOutput, Worker};
use serde_json::json;

use crate::video::{detect_chunk, ChunkJob};
use crate::{Batcher, DetectorError};

/// How often a running chunk looks at its video's state (to stop when it is cancelled).
const WATCH_EVERY: Duration = Duration::from_millis(300);

#[derive(Clone)]
pub struct DetectorConfig {
    pub storage: Storage,
    pub model: ModelInfo,
    pub decode_threads: usize,
    pub limits: Limits,
}

/// Registers `detect_frames` on `worker`, running on `batcher`; a chunk that fails for good
/// fails its video.
pub fn register(worker: Worker, batcher: Arc<Batcher>, config: DetectorConfig) -> Worker {
    let config = Arc::new(config);
    let photos = (batcher.clone(), config.clone());
    worker
        .task(argus_pipeline::tasks::DETECT_FRAMES, move |ctx| {
            detect_frames(ctx, batcher.clone(), config.clone())
        })
        .task(argus_pipeline::collections::DETECT_PHOTOS, move |ctx| {
            crate::photos::detect_photos(ctx, photos.0.clone(), photos.1.clone())
        })
        .on_failure(fail_task_video)
        .on_revoke(revoke_run)
}

fn skip(index: u32, why: &str) -> TaskOutput {
    // A skipped chunk is a success for the worker: nothing to retry, nothing to fail.
    Ok(Some(json!({"chunk": index, "skipped": why})))
}

async fn detect_frames(
    ctx: TaskContext,
    batcher: Arc<Batcher>,
    config: Arc<DetectorConfig>,
) -> TaskOutput {
    let p: DetectFrames = ctx.message.payload().map_err(TaskError::permanent)?;
    p.validate(&config.limits).map_err(TaskError::Permanent)?;
    if let Some(model) = &p.options.model {
        if *model != config.model.name {
            return Err(TaskError::Permanent(format!(
                "model '{model}' is not served here (this detector serves '{}')",
                config.model.name
            )));
        }
    }
    let backend = &ctx.backend;
    let index = p.chunk.index;
    let run = ctx.message.root_id.clone().unwrap_or_default();
    if let Some(state) = backend
        .get_state(&p.video_id)
        .await
        .map_err(TaskError::transient)?
    {
        if !state.is_run(&run) || state.status.is_final() {
            tracing::info!(
                video_id = p.video_id,
                chunk = index,
                status = state.status.as_str(),
                "skipped"
            );
            return skip(index, state.status.as_str());
        }
    } else if backend
        .is_deleted(&p.video_id)
        .await
        .map_err(TaskError::transient)?
    {
        tracing::info!(video_id = p.video_id, chunk = index, "skipped: deleted");
        return skip(index, "deleted");
    }
    // The run's merge already happened (a late duplicate of a chunk).
    if backend
        .get_result(&p.chord_id)
        .await
        .map_err(TaskError::transient)?
        .is_some_and(|r| r["status"] == "SUCCESS")
    {
        return skip(index, "merged");
    }
    // A redelivered chunk whose frames are already stored is not detected again.
    let mut frames_in_chunk = None;
    if !config
        .storage
        .has_chunk(&p.video_id, &p.chord_id, index)
        .map_err(TaskError::transient)?
    {
        let path = config
            .storage
            .video_path(&p.video_id)
            .map_err(TaskError::permanent)?;
        let video_gone = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = watch_video(&ctx, &p.video_id, &run, video_gone.clone());
        let stop = ctx.stop.clone();
        let (batcher, cfg, payload) = (batcher.clone(), config.clone(), p.clone());
        let started = std::time::Instant::now();
        let detected = tokio::task::spawn_blocking(move || {
            let filter = payload.options.filter();
            let job = ChunkJob {
                path: &path,
                info: &payload.video,
                chunk: &payload.chunk,
                pts: &payload.pts,
                decode_threads: cfg.decode_threads,
                filter: &filter,
                sampling: payload.options.sampling(),
            };
            detect_chunk(&batcher, &job, &|| stop.reason(), || {})
        })
        .await
        .map_err(TaskError::transient);
        watcher.abort();
        let detected = match detected? {
            Ok(d) => d,
            Err(DetectorError::Media(MediaError::Stopped(why))) => {
                // Cancelled or failed video: the chunk is dropped (not counted: no merge).
                // Past the time limit: the worker retries it.
                if backend.is_deleted(&p.video_id).await.unwrap_or(false) {
                    return skip(index, "deleted");
                }
                if let Some(state) = backend.get_state(&p.video_id).await.ok().flatten() {
                    if !state.is_run(&run) || state.status.is_final() {
                        tracing::info!(
                            video_id = p.video_id,
                            chunk = index,
                            "stopped: video {}",
                            state.status.as_str()
                        );
                        return skip(index, state.status.as_str());
                    }
                }
                return Err(TaskError::Transient(why));
            }
            // Bad media stays bad; anything else (a device hiccup) may pass.
            Err(e @ DetectorError::Media(_)) => return Err(TaskError::permanent(e)),
            Err(other) => return Err(TaskError::transient(other)),
        };
        frames_in_chunk = Some(detected.frames.len() as u64);
        // How fast chunks go here, for the processor's chunk-size rule (best effort).
        let seconds = started.elapsed().as_secs_f64();
        if seconds > 0.0 {
            let fps = (detected.frames.len() + detected.skipped.len()) as f64 / seconds;
            if let Err(e) = backend.record_detector_speed(fps).await {
                tracing::debug!(error = %e, "cannot record the detector's speed");
            }
        }
        let stored = json!({"model": config.model, "frames": detected.frames, "skipped": detected.skipped,
                   "device_s": detected.device_s});
        // In storage, not in the result backend: a chunk's detections grow with its frames.
        let (storage, payload) = (config.storage.clone(), p.clone());
        tokio::task::spawn_blocking(move || {
            storage.write_chunk(
                &payload.video_id,
                &payload.chord_id,
                index,
                stored.to_string().as_bytes(),
            )
        })
        .await
        .map_err(TaskError::transient)?
        .map_err(TaskError::transient)?;
    }
    // Progress counts decoded frames; a chunk counted before (redelivered) keeps its count.
    let frames = match frames_in_chunk {
        Some(n) => n,
        None => p.chunk.frame_count,
    };
    let done = chord::chunk_done(backend, &p.chord_id, index, frames)
        .await
        .map_err(TaskError::transient)?;
    run::progress(backend, &p.video_id, &run, done)
        .await
        .map_err(TaskError::transient)?;
    if done.chunks == p.chunks as u64
        && chord::send_body(backend, &ctx.broker, &ctx.message, &p)
            .await
            .map_err(TaskError::transient)?
    {
        tracing::info!(
            video_id = p.video_id,
            chord_id = p.chord_id,
            "chord complete: merge sent"
        );
    }
    Ok(Some(json!({"chunk": index, "chunks_done": done.chunks})))
}

/// Polls the video's state while a chunk runs and raises the task's stop flag once the video
/// is cancelled, failed or deleted, or another run took it over.
pub(crate) fn watch_video(
    ctx: &TaskContext,
    video_id: &str,
    run: &str,
    gone: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let (backend, stop, video_id, run) = (
        ctx.backend.clone(),
        ctx.stop.clone(),
        video_id.to_string(),
        run.to_string(),
    );
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            let why = match backend.get_state(&video_id).await {
                Ok(None) => "video deleted".to_string(),
                Ok(Some(state)) if !state.is_run(&run) => "video taken over by another run".into(),
                Ok(Some(state))
                    if matches!(state.status, VideoStatus::Cancelled | VideoStatus::Failed) =>
                {
                    format!("video {}", state.status.as_str())
                }
                _ => continue,
            };
            gone.store(true, std::sync::atomic::Ordering::Release);
            stop.stop(why);
            return;
        }
    })
}
