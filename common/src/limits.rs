//! Size limits: what a video may be before anything is sized from it. Checked at probe (so an
//! upload is refused with a clear error before work is queued) and again on every task message
//! (a message may come from any Celery client, and vectors are sized from its fields).

use serde::{Deserialize, Serialize};

/// The largest chunk a task may carry, whatever `ARGUS_CHUNK_SIZE` says: a chunk's frames are
/// listed in its message and its detections are held in memory until stored.
pub const MAX_CHUNK_FRAMES: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::Args)]
pub struct Limits {
    /// Largest frame, in pixels (width × height). 4096×2160 (DCI 4K) by default: a frame is
    /// converted to RGB at full size before it is letterboxed.
    #[arg(long, env = "ARGUS_MAX_FRAME_PIXELS", default_value_t = 4096 * 2160)]
    pub max_frame_pixels: u64,
    /// Most frames in one video (the probe's packet index and the merged result grow with it).
    #[arg(long, env = "ARGUS_MAX_FRAMES", default_value_t = 500_000)]
    pub max_frames: u64,
    /// Longest video, in seconds.
    #[arg(long, env = "ARGUS_MAX_DURATION_S", default_value_t = 21_600)]
    pub max_duration_s: u64,
    /// Longest a probe (opening a video and indexing its packets, no decoding) may take, in
    /// seconds: a file that makes FFmpeg read slowly or loop is refused, not waited for.
    #[arg(long, env = "ARGUS_PROBE_TIMEOUT_S", default_value_t = DEFAULT_PROBE_TIMEOUT_S,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    #[serde(default = "default_probe_timeout_s")]
    pub probe_timeout_s: u64,
}

/// A 2 GiB upload's packets index in a few seconds from a local disk; a minute leaves room
/// for slow shared storage.
pub const DEFAULT_PROBE_TIMEOUT_S: u64 = 60;

fn default_probe_timeout_s() -> u64 {
    DEFAULT_PROBE_TIMEOUT_S
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_pixels: 4096 * 2160,
            max_frames: 500_000,
            max_duration_s: 21_600,
            probe_timeout_s: DEFAULT_PROBE_TIMEOUT_S,
        }
    }
}

impl Limits {
    /// The interrupt that bounds one probe.
    pub fn probe_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.probe_timeout_s)
    }

    /// Why a frame of this size is refused, if it is.
    pub fn check_frame(&self, width: u32, height: u32) -> Result<(), String> {
        let pixels = width as u64 * height as u64;
        if width == 0 || height == 0 {
            return Err(format!("frame size {width}x{height} is empty"));
        }
        if pixels > self.max_frame_pixels {
            return Err(format!(
                "frames of {width}x{height} ({pixels} pixels) exceed the limit of {} pixels (ARGUS_MAX_FRAME_PIXELS)",
                self.max_frame_pixels
            ));
        }
        Ok(())
    }

    pub fn check_frames(&self, frames: u64) -> Result<(), String> {
        if frames > self.max_frames {
            return Err(format!(
                "more than {} frames (ARGUS_MAX_FRAMES)",
                self.max_frames
            ));
        }
        Ok(())
    }

    pub fn check_duration(&self, seconds: f64) -> Result<(), String> {
        if seconds > self.max_duration_s as f64 {
            return Err(format!(
                "{seconds:.0} s long, over the limit of {} s (ARGUS_MAX_DURATION_S)",
                self.max_duration_s
            ));
        }
        Ok(())
    }
}
