//! The Argus domain: what a frame, a detection, a chunk and a video result are, a video's
//! lifecycle state and the rules it moves by, the mounted storage layout and the input limits.
//!
//! Every role (api, processor, detector, cli) speaks these types, so this crate stays light: no
//! libtorch, no FFmpeg, no HTTP, no broker. Anything that serializes here is part of the public
//! result format, so field names are stable. How work travels between roles (Celery messages,
//! brokers, the worker loop, the result backend) is `argus-queue`.

pub mod detection;
pub mod frame;
pub mod limits;
pub mod paths;
pub mod result;
pub mod result_index;
pub mod state;
pub mod storage;
pub mod video;
pub mod zones;

pub use detection::{BoundingBox, Detection};
pub use frame::Frame;
pub use limits::Limits;
pub use result::{ImageOutcome, ImageResult, ImagesResult, ModelInfo};
pub use video::{Chunk, FrameDetections, Summary, VideoInfo, VideoResult};
