//! Video I/O for Argus, over FFmpeg: [`probe`] a file and index its packets (demux only),
//! [`plan`] the chunks that cover every frame exactly once, [`decode`] exactly one chunk's
//! frames, and [`annotate`] a video with its detections. Every one of them opens its input
//! through [`input::open_input`], which confines FFmpeg to that one file (accepted containers
//! only, the `file` protocol only, bounded in time).
//!
//! Frames are identified by presentation timestamp, never by counting decoder output, which
//! is what makes a chunk's frames independent of where decoding started, and what lets a
//! damaged frame be reported by its index instead of shifting every frame after it. No libtorch here:
//! the processor (probe + plan) links this crate too.

pub mod annotate;
pub mod decode;
pub mod error;
pub mod input;
pub mod plan;
pub mod probe;

pub use decode::{decode_chunk, decode_keyframes, Decoded, DecodedFrame, RgbConverter};
pub use error::MediaError;
pub use input::{open_input, Interrupt};
pub use plan::plan_chunks;
pub use probe::{chunk_pts, probe, probe_until, probe_with, Probe};

/// Initializes FFmpeg once; every entry point calls it.
pub(crate) fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        ffmpeg_next::init().expect("FFmpeg initializes");
        // Decoders log concealment chatter when a chunk starts mid-stream; our errors say
        // what matters, with the file and chunk.
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Fatal);
    });
}
