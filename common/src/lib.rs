//! Types that every Argus role shares: what a detection is and how results are written.
//!
//! This crate is the common language of the api, processor and detector roles, so it must stay
//! light: no libtorch, no FFmpeg, no HTTP. Anything that serializes here is part of the public
//! result format, so field names are stable.

pub mod amqp;
pub mod backend;
pub mod broker;
pub mod detection;
pub mod frame;
pub mod lifecycle;
pub mod limits;
pub mod paths;
pub mod result;
pub mod state;
pub mod storage;
pub mod tasks;
#[cfg(feature = "testing")]
pub mod testing;
pub mod video;
pub mod worker;

pub use detection::{BoundingBox, Detection};
pub use frame::Frame;
pub use limits::Limits;
pub use result::{ImageOutcome, ImageResult, ImagesResult, ModelInfo};
pub use video::{Chunk, FrameDetections, Summary, VideoInfo, VideoResult};
