//! Multi-object tracking: ByteTrack ([`ByteTrack`], supervision's algorithm step for step) over
//! a video's detections in frame order, with its constant-velocity Kalman filter ([`kalman`]) and
//! optimal assignment ([`assignment`]). Pure Rust, no I/O: the merge feeds it the ordered frames,
//! which is what makes tracks independent of how the video was cut into chunks.

pub mod assignment;
pub mod byte_track;
pub mod kalman;

pub use byte_track::{ByteTrack, TrackerParams};
