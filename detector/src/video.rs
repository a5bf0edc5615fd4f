//! Detection over one chunk of a video: decode its frames, send them through the batcher,
//! collect the answers in presentation order.

use std::path::Path;

use argus_common::{Chunk, FrameDetections, VideoInfo};
use argus_media::{decode_chunk, RgbConverter};

use crate::batcher::{Batcher, Reply};
use crate::DetectorError;

/// Detects objects in every frame of `chunk`. `on_frame` is called as each frame's answer
/// arrives (for progress). At most a small window of frames is in flight at once.
pub fn detect_chunk(
    batcher: &Batcher,
    path: &Path,
    info: &VideoInfo,
    chunk: &Chunk,
    decode_threads: usize,
    mut on_frame: impl FnMut(),
) -> Result<Vec<FrameDetections>, DetectorError> {
    let window = batcher.detector().max_batch() * 2;
    let (reply_tx, replies) = crossbeam_channel::unbounded::<Reply>();
    let mut results: Vec<Option<FrameDetections>> = vec![None; chunk.frame_count as usize];
    let ms_per_tick = 1000.0 * info.time_base[0] as f64 / info.time_base[1] as f64;
    let mut pts_ms = vec![0.0; chunk.frame_count as usize];
    let mut converter = RgbConverter::new(info.rotation);
    let mut in_flight = 0usize;

    let mut receive =
        |results: &mut Vec<Option<FrameDetections>>, pts_ms: &[f64]| -> Result<(), DetectorError> {
            let (tag, answer) = replies
                .recv()
                .map_err(|_| DetectorError::Batch("the batcher has stopped".into()))?;
            let slot = (tag - chunk.first_frame) as usize;
            results[slot] = Some(FrameDetections {
                index: tag,
                pts_ms: pts_ms[slot],
                detections: answer.map_err(DetectorError::Batch)?,
            });
            on_frame();
            Ok(())
        };

    decode_chunk::<DetectorError>(path, info, chunk, decode_threads, |decoded| {
        let frame = converter.convert(decoded.video)?;
        pts_ms[(decoded.index - chunk.first_frame) as usize] = decoded.pts as f64 * ms_per_tick;
        batcher.submit(frame, decoded.index, &reply_tx)?;
        in_flight += 1;
        while in_flight >= window {
            receive(&mut results, &pts_ms)?;
            in_flight -= 1;
        }
        Ok(())
    })?;
    for _ in 0..in_flight {
        receive(&mut results, &pts_ms)?;
    }
    Ok(results
        .into_iter()
        .map(|r| r.expect("every decoded frame was answered"))
        .collect())
}
