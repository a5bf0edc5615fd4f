//! Probe + plan: everything a video's detection needs to know up front, from demuxing alone.

use std::path::Path;

use argus_common::{Chunk, Limits, VideoInfo};
use argus_media::{chunk_pts, plan_chunks, probe_with, MediaError};

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

pub fn split_video(path: &Path, chunk_size: u64, limits: &Limits) -> Result<VideoPlan, MediaError> {
    let probed = probe_with(path, limits)?;
    let chunks = plan_chunks(&probed.packets, chunk_size);
    Ok(VideoPlan {
        info: probed.info,
        chunks,
        pts: probed.pts,
        truncated: probed.truncated,
    })
}
