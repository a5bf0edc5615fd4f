//! Types that every Argus role shares: what a detection is and how results are written.
//!
//! This crate is the common language of the api, processor and detector roles, so it must stay
//! light: no libtorch, no FFmpeg, no HTTP. Anything that serializes here is part of the public
//! result format, so field names are stable.

pub mod detection;
pub mod result;

pub use detection::{BoundingBox, Detection};
pub use result::{ImageOutcome, ImageResult, ImagesResult, ModelInfo};
