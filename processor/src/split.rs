//! Probe + plan: everything a video's detection needs to know up front, from demuxing alone.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use argus_common::limits::MAX_CHUNK_FRAMES;
use argus_common::{Chunk, Limits, VideoInfo};
use argus_media::{chunk_pts, plan_chunks, probe_until, MediaError};

/// A probed video cut into chunks.
#[derive(Debug, Clone)]
pub struct VideoPlan {
    pub info: VideoInfo,
    pub chunks: Vec<Chunk>,
    /// Presentation timestamps of every frame, ascending.
    pub pts: Vec<i64>,
    /// Why the file ended early, when it did; the chunks cover the frames before the cut.
    pub truncated: Option<String>,
}

impl VideoPlan {
    /// The presentation timestamps of `chunk`'s frames.
    pub fn chunk_pts(&self, chunk: &Chunk) -> &[i64] {
        chunk_pts(&self.pts, chunk)
    }
}

/// Probes and plans `path`; ends early with [`MediaError::Stopped`] once `stop` is raised.
pub fn split_video(
    path: &Path,
    chunk_size: u64,
    limits: &Limits,
    stop: Option<Arc<AtomicBool>>,
) -> Result<VideoPlan, MediaError> {
    let probed = probe_until(path, limits, stop)?;
    let chunks = plan_chunks(&probed.packets, chunk_size);
    Ok(VideoPlan {
        info: probed.info,
        chunks,
        pts: probed.pts,
        truncated: probed.truncated,
    })
}

/// How a run's chunk size is chosen when its upload does not say (`chunk_size`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ChunkRule {
    /// Always this many frames (`ARGUS_CHUNK_SIZE`).
    Fixed(u64),
    /// As many frames as a detector gets through in this many seconds (`ARGUS_CHUNK_SECONDS`),
    /// from the detectors' measured speed per chunk: the broker and Redis see a chunk's
    /// messages and commands per that many seconds of a detector's work, whatever the model,
    /// device and frame size (docs/performance.md, the capacity model).
    Seconds(f64),
}

/// The chunk size [`ChunkRule::Seconds`] starts from, before any chunk was measured.
pub const FIRST_CHUNK_SIZE: u64 = 64;
/// The smallest chunk [`ChunkRule::Seconds`] chooses: below it a chunk's fixed costs (a
/// decoder opened, a seek, its messages) outweigh its frames.
pub const MIN_RULED_CHUNK: u64 = 32;

impl ChunkRule {
    /// The chunk size for a run, given the detectors' recent speed (frames/s per chunk).
    pub fn size(self, detector_fps: Option<f64>) -> u64 {
        match self {
            ChunkRule::Fixed(n) => n,
            ChunkRule::Seconds(seconds) => detector_fps
                .map_or(FIRST_CHUNK_SIZE, |fps| (fps * seconds).round() as u64)
                .clamp(MIN_RULED_CHUNK, MAX_CHUNK_FRAMES),
        }
    }
}

impl From<u64> for ChunkRule {
    fn from(n: u64) -> Self {
        ChunkRule::Fixed(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_sizes_chunks_by_detector_time() {
        let rule = ChunkRule::Seconds(4.0);
        assert_eq!(rule.size(None), FIRST_CHUNK_SIZE);
        assert_eq!(rule.size(Some(250.0)), 1_000); // a GPU chunk of 4 s
        assert_eq!(rule.size(Some(3.0)), MIN_RULED_CHUNK); // a slow CPU
        assert_eq!(rule.size(Some(1e9)), MAX_CHUNK_FRAMES);
        assert_eq!(ChunkRule::Fixed(16).size(Some(250.0)), 16);
    }
}
