use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("cannot open {path} as a video: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("{path} has no video stream")]
    NoVideo { path: PathBuf },
    #[error("{path} has no video frames")]
    NoFrames { path: PathBuf },
    #[error("{path}: video packets without timestamps are not supported (remux it: ffmpeg -i IN -c copy OUT.mp4)")]
    NoTimestamps { path: PathBuf },
    #[error("{path}: cannot decode {codec}: {reason}")]
    Decoder {
        path: PathBuf,
        codec: String,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    TooLarge { path: PathBuf, reason: String },
    #[error("{path}: {count} frames share a presentation timestamp with another (first at {pts}); remux with fresh timestamps: ffmpeg -i IN -fflags +genpts -c copy OUT.mp4")]
    DuplicateTimestamps { path: PathBuf, count: u64, pts: i64 },
    #[error("stopped: {0}")]
    Stopped(String),
    /// The interrupt of [`crate::input::open_input`] fired: the file took longer than allowed.
    #[error("{path}: {what} took longer than allowed ({limit})")]
    TimedOut {
        path: PathBuf,
        what: String,
        limit: String,
    },
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}
