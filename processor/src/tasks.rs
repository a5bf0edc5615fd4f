//! The processor's tasks: `process_video` (split, then fan the chunks out as a chord to the
//! detectors) and `merge_chunks` (the chord's body: merge, write the result). Each run of a
//! video (one `process_video` task id) has its own chord id, chunk results and state; the
//! state only changes through the backend's guarded update, so a late or duplicate message
//! of one run never overwrites another run's or a terminal state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use argus_common::state::{VideoState, VideoStatus};
use argus_common::storage::Storage;
use argus_common::{FrameDetections, Limits, ModelInfo};
use argus_media::MediaError;
use argus_pipeline::chord::{self, chord_of};
use argus_pipeline::run::{self, fail_task_video, revoke_run};
use argus_pipeline::store::RunStore;
use argus_pipeline::tasks::{
    detector_queue, DetectFrames, MergeChunks, ProcessVideo, VideoOptions,
};
use argus_queue::backend::{Backend, TaskStatus};
use argus_queue::worker::{TaskContext, TaskError, TaskOutput, Worker};
use serde::Deserialize;
use serde_json::json;

use crate::merge::{MergeError, MergeWriter, Merged};
use crate::tracks::Tracks;
use crate::zones::Regions;
use crate::{split_video, ChunkRule};

#[derive(Clone)]
pub struct ProcessorConfig {
    pub storage: Storage,
    /// How runs whose upload names no `chunk_size` are cut.
    pub chunk_size: ChunkRule,
    pub limits: Limits,
    /// Largest result document stored whole as `process_video`'s Celery result
    /// (`ARGUS_RESULT_INLINE_MAX_BYTES`); a larger one is stored as its summary and a reference.
    pub result_inline_max: u64,
    /// The model of videos whose options name none; its chunks go to queue `detector`, every
    /// other model's to `detector.<model>` (`ARGUS_DEFAULT_MODEL`).
    pub default_model: String,
    /// The models the cluster's detectors serve (`ARGUS_SERVED_MODELS`, as the API has it): a
    /// video naming another fails at once, instead of waiting in a queue nobody consumes.
    pub served_models: Vec<String>,
}

impl ProcessorConfig {
    /// The model of a run whose options name `named`: that one, or the default. A model no
    /// detector of this cluster serves fails the run at once, instead of waiting in a queue
    /// nobody consumes.
    pub fn model_for(&self, named: Option<&str>) -> Result<String, TaskError> {
        let model = named.map_or_else(|| self.default_model.clone(), str::to_string);
        if !self.served_models.contains(&model) {
            return Err(TaskError::Permanent(format!(
                "model '{}' is not served here; served models: {}",
                model.chars().take(64).collect::<String>(),
                self.served_models.join(", ")
            )));
        }
        Ok(model)
    }
}

/// Results up to this size are stored whole in the result backend: far below Redis's 512 MB
/// value limit, and what a Celery client's `get()` can take in one piece.
pub const DEFAULT_RESULT_INLINE_MAX: u64 = 16 << 20;

/// Registers the processor's tasks on `worker`.
pub fn register(worker: Worker, config: ProcessorConfig) -> Worker {
    let config = Arc::new(config);
    let split_config = config.clone();
    worker
        .task(argus_pipeline::tasks::PROCESS_VIDEO, move |ctx| {
            process_video(ctx, split_config.clone())
        })
        .task(argus_pipeline::tasks::MERGE_CHUNKS, {
            let config = config.clone();
            move |ctx| merge(ctx, config.clone())
        })
        .task(argus_pipeline::collections::PROCESS_COLLECTION, {
            let config = config.clone();
            move |ctx| crate::collections::process_collection(ctx, config.clone())
        })
        .task(argus_pipeline::collections::MERGE_COLLECTION, {
            let config = config.clone();
            move |ctx| crate::collections::merge_collection(ctx, config.clone())
        })
        .task(argus_pipeline::annotation::ANNOTATE_VIDEO, move |ctx| {
            crate::annotate::annotate(ctx, config.clone())
        })
        .on_failure(fail_task_video)
        .on_revoke(revoke_run)
}

async fn process_video(ctx: TaskContext, config: Arc<ProcessorConfig>) -> TaskOutput {
    let p: ProcessVideo = ctx.message.payload().map_err(TaskError::permanent)?;
    p.options.validate().map_err(TaskError::Permanent)?;
    // One video, one model: the default when the upload named none. A model no detector of
    // this cluster serves fails here, instead of waiting in a queue nobody consumes.
    let model = config.model_for(p.options.model.as_deref())?;
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
            run::settle(backend, &run, &current)
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
    // Refused: either deleted, or this run redelivered past splitting (its worker died while
    // sending the chunks, or a send failed), which splits and sends again (chunks already sent
    // count once; another run that took the video meanwhile is refused at detecting).
    let refused = set_status(backend, &p.video_id, &run, VideoStatus::Splitting, |_| {})
        .await?
        .is_none();
    if refused
        && backend
            .is_deleted(&p.video_id)
            .await
            .map_err(TaskError::transient)?
    {
        // Its tombstone refuses every change: a DELETE came before this task.
        tracing::info!(video_id = p.video_id, "video deleted: not split");
        run::revoked(backend, &run, "deleted")
            .await
            .map_err(TaskError::transient)?;
        return Ok(None);
    }

    let path = config
        .storage
        .video_path(&p.video_id)
        .map_err(TaskError::permanent)?;
    let chunk_size = match p.options.chunk_size {
        Some(n) => n,
        None => {
            let speed = match config.chunk_size {
                ChunkRule::Fixed(_) => None,
                ChunkRule::Seconds(_) => backend.detector_speed().await.unwrap_or(None),
            };
            config.chunk_size.size(speed)
        }
    };
    let limits = config.limits;
    // Indexing a long file reads all of it: it stops when the task is told to (its time
    // limit, a shutdown), as the detectors' decoding does.
    let stop = Arc::new(AtomicBool::new(false));
    let watch = tokio::spawn({
        let (flag, stop) = (ctx.stop.clone(), stop.clone());
        async move {
            while flag.reason().is_none() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            stop.store(true, Ordering::Relaxed);
        }
    });
    let planned =
        tokio::task::spawn_blocking(move || split_video(&path, chunk_size, &limits, Some(stop)))
            .await;
    watch.abort();
    let plan = match planned.map_err(TaskError::transient)? {
        Ok(plan) => plan,
        // Past its time limit: retried, as a stopped chunk is.
        Err(MediaError::Stopped(why)) => {
            return Err(TaskError::Transient(format!("planning stopped {why}")))
        }
        Err(e) => return Err(TaskError::permanent(e)),
    };
    // Zones and lines in pixels are checked against the frame now known (the API did so at
    // upload; a Celery client may not have).
    p.options
        .validate_for(&plan.info)
        .map_err(TaskError::Permanent)?;
    let mut warnings = Vec::new();
    if let Some(why) = &plan.truncated {
        tracing::warn!(
            video_id = p.video_id,
            why,
            "truncated upload: detecting the frames before the cut"
        );
        warnings.push(format!("the file is truncated: {why}"));
    }
    // What earlier runs of this video left in storage (a failed or cancelled run's chunks).
    config
        .storage
        .delete_chunks(&p.video_id, Some(&chord_of(&run)))
        .map_err(TaskError::transient)?;
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

    // The chord: one detect_frames per chunk; whichever finishes the set sends merge_chunks.
    // Every chunk names the model, the default when the upload named none, and goes to that
    // model's queue: one video, one model, whatever detectors the cluster runs.
    let chord_id = chord_of(&run);
    let queue = detector_queue(&model, &config.default_model);
    let options = VideoOptions {
        model: Some(model),
        ..p.options.clone()
    };
    // Collected first: a borrowing iterator held across the sends would not be `Send`.
    let header: Vec<DetectFrames> = plan
        .chunks
        .iter()
        .map(|chunk| DetectFrames {
            video_id: p.video_id.clone(),
            chord_id: chord_id.clone(),
            video: plan.info.clone(),
            chunk: *chunk,
            chunks,
            pts: plan.chunk_pts(chunk).to_vec(),
            options: options.clone(),
        })
        .collect();
    chord::send_header(&ctx.broker, &run, &queue, header)
        .await
        .map_err(TaskError::transient)?;
    tracing::info!(video_id = p.video_id, chunks, chord_id, queue, "fanned out");
    Ok(None)
}

/// [`run::advance`], as a task sees its failure: transient.
async fn set_status(
    backend: &Backend,
    video_id: &str,
    run: &str,
    status: VideoStatus,
    edit: impl Fn(&mut VideoState),
) -> Result<Option<VideoState>, TaskError> {
    run::advance(backend, video_id, run, status, edit)
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
    /// Device time of the chunk's detection.
    #[serde(default)]
    device_s: f64,
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
        // A merge redelivered after the run succeeded (its worker died before the Celery
        // result was stored): store it now, or a client waiting on it would wait for ever.
        let state = backend
            .get_state(&p.video_id)
            .await
            .map_err(TaskError::transient)?;
        if state.is_some_and(|s| s.is_run(&run) && s.status == VideoStatus::Succeeded) {
            let path = config
                .storage
                .result_path(&p.video_id)
                .map_err(TaskError::permanent)?;
            let inline = inline_result(&path, &p, None, config.result_inline_max)
                .await
                .map_err(TaskError::transient)?;
            backend
                .store_result_raw(&run, TaskStatus::Success, &inline, None)
                .await
                .map_err(TaskError::transient)?;
            forget_chunks(backend, &config.storage, &p).await?;
            return Ok(Some(json!({"video_id": p.video_id, "merged": true})));
        }
        tracing::info!(
            video_id = p.video_id,
            "run cancelled or superseded: no merge"
        );
        // Deleted: whatever an earlier attempt of this merge left in storage goes too.
        if backend
            .is_deleted(&p.video_id)
            .await
            .map_err(TaskError::transient)?
        {
            config
                .storage
                .delete_result(&p.video_id)
                .map_err(TaskError::transient)?;
        }
        forget_chunks(backend, &config.storage, &p).await?;
        return Ok(Some(json!({"video_id": p.video_id, "merged": false})));
    };
    // The split's warnings (a truncated file) travel in the state.
    let (started_at, split_warnings) = (merging.created_at, merging.warnings);

    // Streamed: one chunk in memory at a time, the document written as it goes; the file is
    // written before the result says it is there.
    let wall = (chrono::Utc::now() - started_at).num_milliseconds() as f64 / 1000.0;
    let (storage, payload) = (config.storage.clone(), p.clone());
    let (path, merged) = tokio::task::spawn_blocking(move || {
        let written = storage.write_result_with(&payload.video_id, |out| {
            merge_stored_chunks(&storage, &payload, out, wall, split_warnings)
        })?;
        // After the document is in place, never before: a merge whose rename fails (a DELETE
        // took its part file) leaves no index behind, and one deleted after the rename is
        // cleaned below with the result (the index carries the document's length, so a stale
        // one is never trusted; a result briefly without one is read through).
        storage
            .write_result_index(&payload.video_id, &written.1.index)
            .map_err(MergeFailure::from)?;
        Ok::<_, MergeFailure>(written)
    })
    .await
    .map_err(TaskError::transient)?
    .map_err(|e| e.0)?;
    let (frames_done, warnings) = (merged.summary.frames_processed, merged.warnings.clone());
    // Read before the state says succeeded: from then on a DELETE may remove the file.
    let inline = inline_result(
        &path,
        &p,
        Some((merged.summary, merged.warnings)),
        config.result_inline_max,
    )
    .await
    .map_err(TaskError::transient)?;
    // The state first, then the Celery result: a DELETE or cancel that lands between the two
    // finds a run that ended (succeeded), so the API and the Celery result tell one story.
    let succeeded = set_status(backend, &p.video_id, &run, VideoStatus::Succeeded, |s| {
        s.chunks_done = s.chunks_done.max(p.chunks as u64);
        s.frames_done = s.frames_done.max(frames_done);
        s.warnings = warnings.clone();
    })
    .await?
    .is_some();
    if succeeded {
        backend
            .store_result_raw(&run, TaskStatus::Success, &inline, None)
            .await
            .map_err(TaskError::transient)?;
        if p.options.annotate == Some(true) {
            // The annotated copy, asked for at upload; its failure is its own, not the run's.
            if let Err(e) = argus_pipeline::annotation::request(
                backend,
                &ctx.broker,
                &p.video_id,
                p.video.frame_count,
            )
            .await
            {
                tracing::warn!(video_id = p.video_id, error = %e, "cannot queue the annotation");
            }
        }
    } else {
        drop(inline);
        // Cancelled or deleted while merging (the DELETE removed the files before this one
        // was written): the result goes too, unless another run owns the video by now.
        let state = backend
            .get_state(&p.video_id)
            .await
            .map_err(TaskError::transient)?;
        if state.is_none_or(|s| s.is_run(&run)) {
            tracing::info!(
                video_id = p.video_id,
                "run ended during its merge: result removed"
            );
            config
                .storage
                .delete_result(&p.video_id)
                .map_err(TaskError::transient)?;
        }
    }
    forget_chunks(backend, &config.storage, &p).await?;
    Ok(Some(
        json!({"video_id": p.video_id, "frames": frames_done, "merged": succeeded}),
    ))
}

/// A merged (or abandoned) run's chord keys and chunk results go.
async fn forget_chunks(
    backend: &Backend,
    storage: &Storage,
    p: &MergeChunks,
) -> Result<(), TaskError> {
    chord::clean(backend, &p.chord_id)
        .await
        .map_err(TaskError::transient)?;
    storage
        .delete_run_chunks(&p.video_id, &p.chord_id)
        .map_err(TaskError::transient)
}

/// A merge's failure, as the worker should take it.
struct MergeFailure(TaskError);

impl From<argus_common::storage::StorageError> for MergeFailure {
    fn from(e: argus_common::storage::StorageError) -> Self {
        MergeFailure(TaskError::transient(e))
    }
}

impl From<MergeError> for MergeFailure {
    fn from(e: MergeError) -> Self {
        MergeFailure(match e {
            MergeError::Io(_) => TaskError::transient(e),
            _ => TaskError::permanent(e),
        })
    }
}

/// Merges the run's stored chunks, in order, into `out`.
fn merge_stored_chunks(
    storage: &Storage,
    p: &MergeChunks,
    out: &mut dyn std::io::Write,
    wall_time_s: f64,
    warnings: Vec<String>,
) -> Result<Merged, MergeFailure> {
    let mut writer: Option<(MergeWriter<&mut dyn std::io::Write>, String)> = None;
    let mut out = Some(out);
    for i in 0..p.chunks {
        let raw = storage
            .read_chunk(&p.video_id, &p.chord_id, i)?
            .ok_or_else(|| {
                MergeFailure(TaskError::transient(format!("chunk {i} has no result yet")))
            })?;
        let chunk: StoredChunk =
            serde_json::from_slice(&raw).map_err(|e| MergeFailure(TaskError::permanent(e)))?;
        drop(raw);
        if writer.is_none() {
            let mut model = chunk.model.clone();
            if let Some(t) = p.options.score_threshold {
                model.score_threshold = model.score_threshold.max(t);
            }
            let out = out.take().expect("started once");
            let mut merge = MergeWriter::start(out, &p.video, &model)?;
            if p.options.track != Some(false) {
                let sampling = p.options.sampling();
                let (zones, lines) = (p.options.zones(), p.options.lines());
                // A track unseen for a minute of video has ended (ByteTrack drops it long
                // before: after a second, or 30 keyframes).
                let minute = (p.video.fps.clamp(1.0, 1000.0) * 60.0) as u64;
                let regions = Regions::new(zones, lines, p.video.width, p.video.height, minute);
                merge = merge.track(Tracks::new(
                    Tracks::params(p.video.fps, sampling),
                    sampling,
                    Some(regions),
                ));
            }
            writer = Some((merge, model.name));
        }
        let (merge, model) = writer.as_mut().expect("started above");
        if *model != chunk.model.name {
            return Err(MergeFailure(TaskError::Permanent(format!(
                "chunk {i} was detected with model '{}', the others with '{model}'",
                chunk.model.name
            ))));
        }
        merge.chunk(chunk.frames, chunk.skipped)?;
        merge.add_device_seconds(chunk.device_s);
    }
    let (writer, _) =
        writer.ok_or_else(|| MergeFailure(TaskError::permanent("the chord has no chunks")))?;
    let (_, merged) = writer.finish(&p.video, p.chunks, wall_time_s, warnings)?;
    if merged.summary.frames_detected == 0 {
        // Frames passed over (stride, keyframes only) are listed without being detected: a
        // video where the detector saw nothing (no frame decoded, or no keyframe) failed.
        return Err(MergeFailure(TaskError::Permanent(format!(
            "none of the video's {} frames could be decoded and detected{}",
            p.video.frame_count,
            if p.options.keyframes_only == Some(true) {
                " (keyframes_only: the file marks no decodable keyframe)"
            } else {
                ""
            }
        ))));
    }
    Ok(merged)
}

/// `process_video`'s Celery result: the result document itself up to `max` bytes; past that,
/// its summary and where the whole document is, so that no value in the result backend grows
/// with the video (a Python client's `get()` says so in `result_stored_as`).
async fn inline_result(
    path: &std::path::Path,
    p: &MergeChunks,
    merged: Option<(argus_common::Summary, Vec<String>)>,
    max: u64,
) -> std::io::Result<String> {
    let size = tokio::fs::metadata(path).await?.len();
    if size <= max {
        return tokio::fs::read_to_string(path).await;
    }
    let merged = match merged {
        Some(merged) => merged,
        // A merge redelivered after its run succeeded: the summary is read back from the
        // document, its frames skipped over as they stream past (memory stays flat).
        None => {
            let path = path.to_path_buf();
            tokio::task::spawn_blocking(move || read_summary(&path))
                .await
                .map_err(std::io::Error::other)??
        }
    };
    let (summary, warnings) = merged;
    Ok(json!({
        "video_id": p.video_id,
        "video": p.video,
        "summary": summary,
        "warnings": warnings,
        "result_stored_as": format!("results/{}.json", p.video_id),
        "result_bytes": size,
        "detail": format!(
            "the result is {size} bytes, past ARGUS_RESULT_INLINE_MAX_BYTES ({max}): it is not \
             stored here; read GET /api/v1/videos/{}/result or results/{}.json in storage",
            p.video_id, p.video_id
        ),
    })
    .to_string())
}

/// The summary and warnings of a stored result document, without holding its frames.
fn read_summary(path: &std::path::Path) -> std::io::Result<(argus_common::Summary, Vec<String>)> {
    #[derive(Deserialize)]
    struct Tail {
        summary: argus_common::Summary,
        #[serde(default)]
        warnings: Vec<String>,
    }
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let tail: Tail = serde_json::from_reader(file).map_err(std::io::Error::other)?;
    Ok((tail.summary, tail.warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_common::{ModelInfo, VideoInfo};
    use serde_json::Value;

    fn video(frame_count: u64) -> VideoInfo {
        VideoInfo {
            container: "mp4".into(),
            codec: "h264".into(),
            width: 64,
            height: 48,
            rotation: 0,
            fps: 25.0,
            frame_count,
            duration_s: frame_count as f64 / 25.0,
            stream_index: 0,
            time_base: [1, 25],
            start_pts: 0,
        }
    }

    /// Past the cap, `process_video`'s Celery result is the summary and a reference, whether
    /// the merge just ran or was redelivered after its run succeeded (the summary then read
    /// back from the stored document).
    #[tokio::test]
    async fn a_result_past_the_cap_is_its_summary_even_when_redelivered() {
        let dir = std::env::temp_dir().join(format!("argus-inline-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("result.json");
        let info = video(50);
        let model = ModelInfo {
            name: "m".into(),
            adapter: "centernet".into(),
            input_size: [512, 512],
            score_threshold: 0.3,
            devices: vec!["cpu".into()],
        };
        let frames = (0..50)
            .map(|index| FrameDetections {
                predicted: false,
                index,
                pts_ms: index as f64 * 40.0,
                detections: vec![],
            })
            .collect();
        let mut writer = MergeWriter::start(Vec::new(), &info, &model).unwrap();
        writer.chunk(frames, vec![]).unwrap();
        let (json, merged) = writer
            .finish(&info, 1, 1.0, vec!["a warning".into()])
            .unwrap();
        std::fs::write(&path, &json).unwrap();
        let p = MergeChunks {
            video_id: "v".into(),
            chord_id: "c".into(),
            video: info,
            chunks: 1,
            options: Default::default(),
        };
        let whole = inline_result(&path, &p, None, 1 << 20).await.unwrap();
        assert_eq!(
            whole.as_bytes(),
            json.as_slice(),
            "under the cap: the document"
        );
        let fresh: Value = serde_json::from_str(
            &inline_result(
                &path,
                &p,
                Some((merged.summary.clone(), merged.warnings.clone())),
                100,
            )
            .await
            .unwrap(),
        )
        .unwrap();
        let redelivered: Value =
            serde_json::from_str(&inline_result(&path, &p, None, 100).await.unwrap()).unwrap();
        assert_eq!(fresh["summary"]["frames_processed"], 50, "{fresh}");
        assert_eq!(fresh["result_stored_as"], "results/v.json");
        assert_eq!(redelivered, fresh, "read back, the same summary");
        assert_eq!(redelivered["warnings"][0], "a warning");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
