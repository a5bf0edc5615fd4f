//! The one way Argus opens a video file: FFmpeg confined to that file.
//!
//! An upload's bytes decide which demuxer FFmpeg picks, whatever its name says. Left open,
//! that lets a 128-byte "video" be an HLS playlist or a concat script that makes the server
//! read other files (another user's stored video) or connect to any address, or a demuxer
//! loop that never ends. So every open — probe, decode, annotate — goes through
//! [`open_input`]:
//! - `format_whitelist`: only the containers of [`CONTAINERS`]; HLS, DASH, concat, ffconcat,
//!   image2, SDP/RTP, tee and every other demuxer are refused whatever the bytes look like;
//! - `protocol_whitelist=file`: no network, pipe, `data:`, `subfile`, `concat:` or crypto
//!   protocol can be reached, from the top-level path or from inside a container;
//! - an interrupt callback FFmpeg polls in every blocking read: past the deadline (or once
//!   the caller's stop flag is up) the open or read ends with an error instead of running on.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffmpeg_next as ffmpeg;

use crate::MediaError;

/// The containers Argus reads: FFmpeg's demuxer name (as FFmpeg lists it) and the file
/// extensions an upload of that kind is stored under. Everything else is refused at open.
///
/// Left out on purpose: playlists and scripts that reference other inputs (hls, dash,
/// concat, ffconcat, sdp, rtp, rtsp, image2/image sequences, tee, …), raw elementary
/// streams (`h264`, `hevc`) and MPEG program streams (`.mpg`, `.vob`), whose packets lack the
/// timestamps frames are indexed by (remux them into mp4), and demuxers for devices.
pub const CONTAINERS: &[(&str, &[&str])] = &[
    (
        "mov,mp4,m4a,3gp,3g2,mj2",
        &["mp4", "m4v", "mov", "qt", "3gp", "3g2"],
    ),
    ("matroska,webm", &["mkv", "webm"]),
    ("avi", &["avi"]),
    ("mpegts", &["ts", "mts", "m2ts"]),
    ("flv", &["flv"]),
    ("asf", &["wmv", "asf"]),
    ("ogg", &["ogv", "ogg"]),
    ("mxf", &["mxf"]),
    ("ivf", &["ivf"]),
    ("yuv4mpegpipe", &["y4m"]),
    ("gif", &["gif"]),
];

/// The `format_whitelist` FFmpeg is given: every demuxer of [`CONTAINERS`].
pub fn format_whitelist() -> String {
    CONTAINERS
        .iter()
        .map(|(names, _)| *names)
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether `ext` (lower case, no dot) is an extension of an accepted container.
pub fn is_video_extension(ext: &str) -> bool {
    CONTAINERS.iter().any(|(_, exts)| exts.contains(&ext))
}

/// When an open or read through [`open_input`] is to give up.
#[derive(Clone, Debug, Default)]
pub struct Interrupt {
    deadline: Option<Instant>,
    stop: Option<Arc<AtomicBool>>,
    /// What set the deadline, for the error (e.g. `ARGUS_PROBE_TIMEOUT_S = 60`).
    pub limit: String,
}

impl Interrupt {
    /// Never: for a caller that bounds the work some other way.
    pub fn none() -> Interrupt {
        Interrupt::default()
    }

    /// `timeout` from now; `limit` names the setting, for the error.
    pub fn after(timeout: Duration, limit: impl Into<String>) -> Interrupt {
        Interrupt {
            deadline: Instant::now().checked_add(timeout),
            stop: None,
            limit: limit.into(),
        }
    }

    /// Also as soon as `flag` is raised (a cancelled video, a task past its time limit).
    pub fn or_when(mut self, flag: Arc<AtomicBool>) -> Interrupt {
        self.stop = Some(flag);
        self
    }

    /// Whether the work should end now.
    pub fn fired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
            || self
                .stop
                .as_ref()
                .is_some_and(|f| f.load(Ordering::Relaxed))
    }
}

/// Opens `path` with FFmpeg confined to it: one of [`CONTAINERS`], the `file` protocol only,
/// and `interrupt` polled by every blocking read for as long as the returned input lives.
/// Reading the stream info (`avformat_find_stream_info`) is part of the open and bounded
/// the same way.
pub fn open_input(
    path: &Path,
    interrupt: Interrupt,
) -> Result<ffmpeg::format::context::Input, MediaError> {
    crate::init();
    let open_err = |reason: String| MediaError::Open {
        path: path.to_path_buf(),
        reason,
    };
    let mut options = ffmpeg::Dictionary::new();
    options.set("format_whitelist", &format_whitelist());
    options.set("protocol_whitelist", "file");
    // Inner opens (a container's references to other files) get the same lists; mov's data
    // references stay off (FFmpeg's default), said here so that it cannot drift.
    options.set("enable_drefs", "0");
    let fired = interrupt.clone();
    ffmpeg::format::input_with_interrupt_and_dictionary(path, move || fired.fired(), options)
        .map_err(|e| {
            if interrupt.fired() {
                return MediaError::TimedOut {
                    path: path.to_path_buf(),
                    what: "opening it".into(),
                    limit: interrupt.limit.clone(),
                };
            }
            match e {
                ffmpeg::Error::InvalidData => open_err(
                    "not a video container FFmpeg can read (or one cut off before its index)"
                        .into(),
                ),
                // What FFmpeg answers for a demuxer or protocol off the whitelists.
                ffmpeg::Error::Other { errno } if errno == ffmpeg::error::EINVAL => {
                    open_err(format!(
                    "not a container Argus accepts ({}); remux it: ffmpeg -i IN -c copy OUT.mp4",
                    accepted_names()
                ))
                }
                e => open_err(e.to_string()),
            }
        })
}

/// The accepted containers, for messages: `mp4/mov, mkv/webm, avi, …`.
pub fn accepted_names() -> String {
    CONTAINERS
        .iter()
        .map(|(_, exts)| exts[..exts.len().min(2)].join("/"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whitelist_names_every_container_once() {
        let list = format_whitelist();
        for bad in [
            "hls", "concat", "image2", "sdp", "rtp", "rtsp", "dash", "tee", "data",
        ] {
            assert!(
                !list.split(',').any(|n| n == bad),
                "{bad} must not be whitelisted: {list}"
            );
        }
        assert!(list.split(',').any(|n| n == "mp4"));
        assert!(is_video_extension("webm") && !is_video_extension("m3u8"));
        assert!(accepted_names().starts_with("mp4/m4v, mkv/webm"));
    }

    #[test]
    fn an_interrupt_fires_after_its_deadline_or_on_its_flag() {
        assert!(!Interrupt::none().fired());
        assert!(Interrupt::after(Duration::ZERO, "now").fired());
        assert!(!Interrupt::after(Duration::from_secs(60), "a minute").fired());
        let flag = Arc::new(AtomicBool::new(false));
        let interrupt = Interrupt::after(Duration::from_secs(60), "a minute").or_when(flag.clone());
        assert!(!interrupt.fired());
        flag.store(true, Ordering::Relaxed);
        assert!(interrupt.fired());
    }
}
