//! The embedded pipeline: one video through split → parallel chunk detection → merge, all in
//! this process. The chunk tasks share one batcher, so frames of every chunk in flight are
//! batched together on each device.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use argus_common::detection::DetectionFilter;
use argus_common::{FrameDetections, Limits, ModelInfo, VideoResult};
use argus_detector::video::{detect_chunk, ChunkJob};
use argus_detector::Batcher;
use argus_processor::{merge_chunks, split_video, VideoPlan};

/// How the pipeline runs.
pub struct PipelineOptions {
    pub chunk_size: u64,
    /// Chunks detected at once.
    pub tasks: usize,
    /// Decoder threads per chunk task (0: FFmpeg decides).
    pub decode_threads: usize,
}

/// Reports frames done; called from the chunk tasks.
pub trait Progress: Sync {
    fn start(&self, total_frames: u64);
    fn advance(&self, frames: u64);
}

/// Runs the whole pipeline for one video. The video's plan is returned with the result so
/// callers can report truncation.
pub fn run_video(
    batcher: &Batcher,
    model: ModelInfo,
    path: &Path,
    options: &PipelineOptions,
    progress: &dyn Progress,
) -> anyhow::Result<(VideoPlan, VideoResult)> {
    let started = Instant::now();
    let plan = split_video(path, options.chunk_size, &Limits::default())?;
    progress.start(plan.info.frame_count);
    tracing::info!(
        video = %path.display(),
        frames = plan.info.frame_count,
        chunks = plan.chunks.len(),
        "split"
    );
    let next_chunk = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let done: Mutex<Vec<Vec<FrameDetections>>> = Mutex::new(Vec::with_capacity(plan.chunks.len()));
    let skipped: Mutex<Vec<u64>> = Mutex::default();
    let filter = DetectionFilter::default();
    let tasks = options.tasks.clamp(1, plan.chunks.len());
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..tasks)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    // After one chunk fails, the others stop taking new chunks.
                    while !failed.load(Ordering::Relaxed) {
                        let i = next_chunk.fetch_add(1, Ordering::Relaxed) as usize;
                        let Some(chunk) = plan.chunks.get(i) else {
                            return Ok(());
                        };
                        let job = ChunkJob {
                            path,
                            info: &plan.info,
                            chunk,
                            pts: plan.chunk_pts(chunk),
                            decode_threads: options.decode_threads,
                            filter: &filter,
                        };
                        let detected =
                            detect_chunk(batcher, &job, &|| None, || progress.advance(1))
                                .inspect_err(|_| failed.store(true, Ordering::Relaxed))?;
                        progress.advance(detected.skipped.len() as u64);
                        skipped
                            .lock()
                            .expect("no task panics holding it")
                            .extend(detected.skipped);
                        done.lock()
                            .expect("no task panics holding it")
                            .push(detected.frames);
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("chunk task panicked")?;
        }
        Ok(())
    })?;
    let chunks = done.into_inner().expect("tasks finished");
    let warnings = plan
        .truncated
        .iter()
        .map(|why| format!("the file is truncated: {why}"))
        .collect();
    let result = merge_chunks(
        plan.info.clone(),
        model,
        chunks,
        skipped.into_inner().expect("tasks finished"),
        plan.chunks.len() as u32,
        started.elapsed().as_secs_f64(),
        warnings,
    )?;
    Ok((plan, result))
}
