//! Probing by demuxing only: the video's properties and an index of its packets (timestamps and
//! keyframe flags), which is all that chunk planning needs. Nothing is decoded.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use argus_common::{Chunk, Limits, VideoInfo};
use ffmpeg::codec::packet::side_data::Type as SideDataType;
use ffmpeg::media::Type as MediaType;
use ffmpeg::packet::Ref as _;
use ffmpeg_next as ffmpeg;

use crate::input::{open_input, Interrupt};
use crate::MediaError;

/// One packet of the video stream, in decode order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketEntry {
    pub pts: i64,
    pub dts: Option<i64>,
    pub key: bool,
}

#[derive(Debug, Clone)]
pub struct Probe {
    pub info: VideoInfo,
    /// Video packets that yield frames, in decode order.
    pub packets: Vec<PacketEntry>,
    /// Their presentation timestamps, ascending and unique: frame `i` of the video is the one
    /// shown at `pts[i]`.
    pub pts: Vec<i64>,
    /// Set when the file ends before its own index says it should (a cut-off upload): the
    /// frames before the cut are still all here.
    pub truncated: Option<String>,
}

impl Probe {
    /// The presentation timestamps of `chunk`'s frames.
    pub fn chunk_pts(&self, chunk: &Chunk) -> &[i64] {
        chunk_pts(&self.pts, chunk)
    }
}

/// The presentation timestamps of `chunk`'s frames, out of a whole video's (clamped, so a
/// chunk that does not belong to this video gives a short slice rather than a panic).
pub fn chunk_pts<'a>(pts: &'a [i64], chunk: &Chunk) -> &'a [i64] {
    let start = (chunk.first_frame as usize).min(pts.len());
    let end = (chunk.first_frame.saturating_add(chunk.frame_count) as usize).min(pts.len());
    &pts[start..end]
}

/// Probes with the default [`Limits`].
pub fn probe(path: &Path) -> Result<Probe, MediaError> {
    probe_with(path, &Limits::default())
}

/// Demuxes `path`: its properties and packet index. Refuses, with a clear error, a video
/// beyond `limits` (before its packets are all read), and one whose frames share timestamps.
pub fn probe_with(path: &Path, limits: &Limits) -> Result<Probe, MediaError> {
    probe_until(path, limits, None)
}

/// [`probe_with`] that also ends, with [`MediaError::Stopped`], as soon as `stop` is raised (a
/// task past its time limit, a worker shutting down): indexing a long file reads all of it.
pub fn probe_until(
    path: &Path,
    limits: &Limits,
    stop: Option<Arc<AtomicBool>>,
) -> Result<Probe, MediaError> {
    crate::init();
    let stopped = || stop.as_ref().is_some_and(|f| f.load(Ordering::Relaxed));
    let too_large = |reason: String| MediaError::TooLarge {
        path: path.to_path_buf(),
        reason,
    };
    let open_err = |reason: String| MediaError::Open {
        path: path.to_path_buf(),
        reason,
    };
    if std::fs::metadata(path)
        .map_err(|e| open_err(e.to_string()))?
        .len()
        == 0
    {
        return Err(open_err("the file is empty".into()));
    }
    let mut interrupt = Interrupt::after(
        limits.probe_timeout(),
        format!("ARGUS_PROBE_TIMEOUT_S = {}", limits.probe_timeout_s),
    );
    if let Some(flag) = &stop {
        interrupt = interrupt.or_when(flag.clone());
    }
    let mut input = open_input(path, interrupt.clone()).map_err(|e| {
        if stopped() {
            MediaError::Stopped("while opening the file".into())
        } else {
            e
        }
    })?;
    let stream = input
        .streams()
        .best(MediaType::Video)
        .ok_or_else(|| MediaError::NoVideo {
            path: path.to_path_buf(),
        })?;
    let stream_index = stream.index();
    let time_base = stream.time_base();
    let declared_frames = stream.frames().max(0) as u64;
    let rotation = rotation_of(&stream);
    let frame_rate = [stream.avg_frame_rate(), stream.rate()]
        .into_iter()
        .find(|r| r.numerator() > 0 && r.denominator() > 0);
    let stream_duration = stream.duration();
    let parameters = stream.parameters();
    let codec = parameters.id().name().to_string();
    let decoder = ffmpeg::codec::context::Context::from_parameters(parameters)
        .and_then(|c| c.decoder().video())
        .map_err(|e| open_err(format!("video stream: {e}")))?;
    let (coded_w, coded_h) = (decoder.width(), decoder.height());
    if coded_w == 0 || coded_h == 0 {
        return Err(open_err("video stream has no frame size".into()));
    }
    let container = input.format().name().to_string();
    let container_duration = input.duration();
    limits.check_frame(coded_w, coded_h).map_err(too_large)?;
    let declared_s = if stream_duration > 0 {
        stream_duration as f64 * f64::from(time_base)
    } else {
        container_duration.max(0) as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE)
    };
    limits.check_duration(declared_s).map_err(too_large)?;

    let mut packets = Vec::new();
    let mut read_error = None;
    loop {
        // A fresh packet per read: av_read_frame does not release what a reused packet
        // still holds, so reusing one leaked every packet's data (a 1 GB upload's probe
        // grew the server by ~1 GB); dropping a packet releases it.
        let mut packet = ffmpeg::Packet::empty();
        let read = packet.read(&mut input);
        // Checked on every packet, not only when a read fails: a crafted file can make a
        // demuxer hand out packets (or errors) without end.
        if stopped() {
            return Err(MediaError::Stopped("while indexing its packets".into()));
        }
        if interrupt.fired() {
            return Err(MediaError::TimedOut {
                path: path.to_path_buf(),
                what: "indexing its packets".into(),
                limit: interrupt.limit.clone(),
            });
        }
        match read {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => break,
            // A demuxer resyncs past one bad packet.
            Err(ffmpeg::Error::InvalidData) => continue,
            Err(e) => {
                read_error = Some(e.to_string());
                break;
            }
        }
        if packet.stream() != stream_index || is_discarded(&packet) {
            continue;
        }
        if packet.is_corrupt() {
            // A short read: the file stops inside this packet.
            read_error = Some("the last frame is cut off".into());
            break;
        }
        let pts = packet.pts().ok_or_else(|| MediaError::NoTimestamps {
            path: path.to_path_buf(),
        })?;
        packets.push(PacketEntry {
            pts,
            dts: packet.dts(),
            key: packet.is_key(),
        });
        // Checked while reading: an index that lies about its length cannot make us hold
        // more than the limit.
        limits
            .check_frames(packets.len() as u64)
            .map_err(too_large)?;
    }
    if packets.is_empty() {
        return Err(MediaError::NoFrames {
            path: path.to_path_buf(),
        });
    }
    let frame_count = packets.len() as u64;
    let mut pts: Vec<i64> = packets.iter().map(|p| p.pts).collect();
    pts.sort_unstable();
    let duplicates: Vec<i64> = pts
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    if let Some(&first) = duplicates.first() {
        return Err(MediaError::DuplicateTimestamps {
            path: path.to_path_buf(),
            count: duplicates.len() as u64,
            pts: first,
        });
    }
    let truncated = match read_error {
        Some(e) => Some(format!("reading stopped after {frame_count} frames: {e}")),
        None if declared_frames > frame_count => Some(format!(
            "the file holds {frame_count} of the {declared_frames} frames its index lists"
        )),
        None => None,
    };
    let tb = f64::from(time_base);
    let duration_s = if declared_s > 0.0 {
        declared_s
    } else {
        // No declared duration: the span of the timestamps.
        (pts[pts.len() - 1] - pts[0]) as f64 * tb
    };
    limits.check_duration(duration_s).map_err(too_large)?;
    let fps = match frame_rate {
        Some(r) => f64::from(r),
        None if duration_s > 0.0 => frame_count as f64 / duration_s,
        None => 0.0,
    };
    let (width, height) = if rotation % 180 == 90 {
        (coded_h, coded_w)
    } else {
        (coded_w, coded_h)
    };
    Ok(Probe {
        info: VideoInfo {
            container,
            codec,
            width,
            height,
            rotation,
            fps,
            frame_count,
            duration_s,
            stream_index,
            time_base: [time_base.numerator(), time_base.denominator()],
            start_pts: pts[0],
        },
        packets,
        pts,
        truncated,
    })
}

/// Packets before an edit list's start are demuxed but their frames are never shown.
fn is_discarded(packet: &ffmpeg::Packet) -> bool {
    // SAFETY: reading a field of a valid packet.
    unsafe { (*packet.as_ptr()).flags & ffmpeg::ffi::AV_PKT_FLAG_DISCARD != 0 }
}

/// Degrees clockwise to turn frames upright, from the stream's display matrix (phones record
/// portrait video as rotated landscape).
fn rotation_of(stream: &ffmpeg::format::stream::Stream) -> u32 {
    for side in stream.side_data() {
        if side.kind() == SideDataType::DisplayMatrix && side.data().len() >= 36 {
            // SAFETY: a display matrix is 9 i32s; the length was checked.
            let ccw = unsafe { ffmpeg::ffi::av_display_rotation_get(side.data().as_ptr().cast()) };
            if ccw.is_finite() {
                return ((-ccw / 90.0).round() as i64).rem_euclid(4) as u32 * 90;
            }
        }
    }
    0
}
