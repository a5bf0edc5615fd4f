//! Probe + plan: everything a video's detection needs to know up front, from demuxing alone.

use std::path::Path;

use argus_common::{Chunk, VideoInfo};
use argus_media::{plan_chunks, probe, MediaError};

/// A probed video cut into chunks.
#[derive(Debug, Clone)]
pub struct VideoPlan {
    pub info: VideoInfo,
    pub chunks: Vec<Chunk>,
    /// Why the file ended early, when it did; the chunks cover the frames before the cut.
    pub truncated: Option<String>,
}

pub fn split_video(path: &Path, chunk_size: u64) -> Result<VideoPlan, MediaError> {
    let probed = probe(path)?;
    let chunks = plan_chunks(&probed.packets, chunk_size);
    Ok(VideoPlan {
        info: probed.info,
        chunks,
        truncated: probed.truncated,
    })
}
