//! The processor role of Argus: [`split`] probes an uploaded video and plans the frame ranges
//! (chunks) that detectors decode on their own; [`merge`] puts chunk results back together
//! into the video's result and summary; [`collections`] fans photo collections out in
//! batches and merges their results.
//!
//! It must never link libtorch: the api + processor image stays small.

mod annotate;
pub mod collections;
pub mod merge;
pub mod service;
pub mod split;
pub mod tasks;
pub mod tracks;
pub mod zones;

pub use merge::{MergeError, MergeWriter, Merged};
pub use split::{split_video, ChunkRule, VideoPlan};
