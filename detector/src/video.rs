//! Detection over one chunk of a video: decode its frames, send them through the batcher,
//! collect the answers in presentation order.

use std::path::Path;

use argus_common::detection::DetectionFilter;
use argus_common::{Chunk, FrameDetections, VideoInfo};
use argus_media::{decode_chunk, decode_keyframes, RgbConverter};
use argus_pipeline::tasks::Sampling;

use crate::batcher::{Batcher, Reply};
use crate::DetectorError;

/// A chunk's detections: one entry per decoded frame, in presentation order (a frame the
/// sampling passed over is there, empty and marked `predicted`), the indices of the frames
/// that could not be decoded, and the device time the chunk's frames took.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkDetections {
    pub frames: Vec<FrameDetections>,
    pub skipped: Vec<u64>,
    pub device_s: f64,
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
    /// Which frames are detected.
    pub sampling: Sampling,
}

/// Detects objects in the chunk's frames that `job.sampling` picks. `on_frame` is called as each frame's answer
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
    // Milliseconds from the stream's first frame, as the result format says.
    let pts_ms: Vec<f64> = job
        .pts
        .iter()
        .map(|&p| (p - info.start_pts) as f64 * ms_per_tick)
        .collect();
    let mut device_s = 0.0;
    let passed_over = |index: u64, pts_ms: &[f64]| FrameDetections {
        index,
        pts_ms: pts_ms[(index - chunk.first_frame) as usize],
        detections: Vec::new(),
        predicted: true,
    };
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

    let receive = |results: &mut Vec<Option<FrameDetections>>,
                   device_s: &mut f64|
     -> Result<(), DetectorError> {
        let reply = replies
            .recv()
            .map_err(|_| DetectorError::Batch("the batcher has stopped".into()))?;
        let slot = (reply.tag - chunk.first_frame) as usize;
        let mut detections = reply.answer.map_err(DetectorError::Batch)?;
        *device_s += reply.device_s;
        job.filter.apply(&mut detections);
        results[slot] = Some(FrameDetections {
            index: reply.tag,
            pts_ms: pts_ms[slot],
            detections,
            predicted: false,
        });
        Ok(())
    };

    let stride = match job.sampling {
        Sampling::Stride(n) => n.max(1) as u64,
        Sampling::Keyframes => 1,
    };
    let decoded = {
        let on_decoded = |decoded: argus_media::DecodedFrame<'_>| -> Result<(), DetectorError> {
            if !decoded.index.is_multiple_of(stride) {
                // Decoded (the next frames depend on it) but not detected.
                results[(decoded.index - chunk.first_frame) as usize] =
                    Some(passed_over(decoded.index, &pts_ms));
                on_frame();
                return Ok(());
            }
            let frame = converter.convert(decoded.video)?;
            let wait = std::time::Instant::now();
            batcher.submit(frame, decoded.index, &reply_tx)?;
            in_flight += 1;
            while in_flight >= window {
                receive(&mut results, &mut device_s)?;
                on_frame();
                in_flight -= 1;
            }
            waiting += wait.elapsed();
            Ok(())
        };
        let (path, threads) = (job.path, job.decode_threads);
        match job.sampling {
            Sampling::Keyframes => {
                decode_keyframes(path, info, chunk, job.pts, threads, stop, on_decoded)
            }
            Sampling::Stride(_) => {
                decode_chunk(path, info, chunk, job.pts, threads, stop, on_decoded)
            }
        }
    }?;
    let decoding = started.elapsed().saturating_sub(waiting).as_secs_f64();
    let metrics = &crate::metrics::METRICS;
    let frames = decoded.frames as u64;
    metrics.decoded_frames.inc_by(frames);
    metrics.decode_seconds.inc_by(decoding);
    if decoding > 0.0 && frames > 0 {
        metrics.chunk_decode_fps.observe(frames as f64 / decoding);
    }
    for _ in 0..in_flight {
        receive(&mut results, &mut device_s)?;
        on_frame();
    }
    if job.sampling == Sampling::Keyframes {
        // The frames between keyframes were never decoded: listed, empty, for the tracks.
        for (slot, result) in results.iter_mut().enumerate() {
            let index = chunk.first_frame + slot as u64;
            if result.is_none() && decoded.skipped.binary_search(&index).is_err() {
                *result = Some(passed_over(index, &pts_ms));
            }
        }
    }
    Ok(ChunkDetections {
        frames: results.into_iter().flatten().collect(),
        skipped: decoded.skipped,
        device_s,
    })
}
