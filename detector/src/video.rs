//! Detection over one chunk of a video: decode its frames, send them through the batcher,
//! collect the answers in presentation order.

use std::path::Path;

use argus_common::detection::DetectionFilter;
use argus_common::{Chunk, FrameDetections, VideoInfo};
use argus_media::{decode_chunk, RgbConverter};

use crate::batcher::{Batcher, Reply};
use crate::DetectorError;

/// A chunk's detections: one entry per decoded frame, in presentation order, and the indices
/// of the frames that could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkDetections {
    pub frames: Vec<FrameDetections>,
    pub skipped: Vec<u64>,
}

/// What a chunk's detection runs on.
pub struct ChunkJob<'a> {
    pub path: &'a Path,
    pub info: &'a VideoInfo,
    pub chunk: &'a Chunk,
    /// The chunk's presentation timestamps (one per frame, from the probe).
    pub pts: &'a [i64],
    /// Decoder threads (0: FFmpeg decides).
    pub decode_threads: usize,
    /// Applied to every frame's detections (a run's score threshold and classes).
    pub filter: &'a DetectionFilter,
}

/// Detects objects in every frame of the chunk. `on_frame` is called as each frame's answer
/// arrives (for progress); `stop` is asked as decoding goes and ends it with a
/// [`argus_media::MediaError::Stopped`] error. At most a small window of frames is in flight.
pub fn detect_chunk(
    batcher: &Batcher,
    job: &ChunkJob<'_>,
    stop: &dyn Fn() -> Option<String>,
    mut on_frame: impl FnMut(),
) -> Result<ChunkDetections, DetectorError> {
    let (info, chunk) = (job.info, job.chunk);
    let window = batcher.detector().max_batch() * 2;
    let (reply_tx, replies) = crossbeam_channel::unbounded::<Reply>();
    let mut results: Vec<Option<FrameDetections>> = vec![None; chunk.frame_count as usize];
    let ms_per_tick = 1000.0 * info.time_base[0] as f64 / info.time_base[1].max(1) as f64;
    let mut pts_ms = vec![0.0; chunk.frame_count as usize];
    let detector = batcher.detector();
    let mut converter = if detector.fast_resize() {
        // Frames come out of the decoder already scaled down to the model's input.
        let spec = detector.spec();
        RgbConverter::fitting(info.rotation, spec.input_width, spec.input_height)
    } else {
        RgbConverter::new(info.rotation)
    };
    let mut in_flight = 0usize;
    // Time spent waiting for the model, so that what is left is decoding.
    let mut waiting = std::time::Duration::ZERO;
    let started = std::time::Instant::now();

    let mut receive =
        |results: &mut Vec<Option<FrameDetections>>, pts_ms: &[f64]| -> Result<(), DetectorError> {
            let (tag, answer) = replies
                .recv()
                .map_err(|_| DetectorError::Batch("the batcher has stopped".into()))?;
            let slot = (tag - chunk.first_frame) as usize;
            let mut detections = answer.map_err(DetectorError::Batch)?;
            job.filter.apply(&mut detections);
            results[slot] = Some(FrameDetections {
                index: tag,
                pts_ms: pts_ms[slot],
                detections,
            });
            on_frame();
            Ok(())
        };

    let decoded = decode_chunk::<DetectorError>(
        job.path,
        info,
        chunk,
        job.pts,
        job.decode_threads,
        stop,
        |decoded| {
            let frame = converter.convert(decoded.video)?;
            // Milliseconds from the stream's first frame, as the result format says.
            pts_ms[(decoded.index - chunk.first_frame) as usize] =
                (decoded.pts - info.start_pts) as f64 * ms_per_tick;
            let wait = std::time::Instant::now();
            batcher.submit(frame, decoded.index, &reply_tx)?;
            in_flight += 1;
            while in_flight >= window {
                receive(&mut results, &pts_ms)?;
                in_flight -= 1;
            }
            waiting += wait.elapsed();
            Ok(())
        },
    )?;
    let decoding = started.elapsed().saturating_sub(waiting).as_secs_f64();
    let metrics = &crate::metrics::METRICS;
    let frames = decoded.frames as u64;
    metrics.decoded_frames.inc_by(frames);
    metrics.decode_seconds.inc_by(decoding);
    if decoding > 0.0 && frames > 0 {
        metrics.chunk_decode_fps.observe(frames as f64 / decoding);
    }
    for _ in 0..in_flight {
        receive(&mut results, &pts_ms)?;
    }
    Ok(ChunkDetections {
        frames: results.into_iter().flatten().collect(),
        skipped: decoded.skipped,
    })
}
