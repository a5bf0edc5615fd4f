//! Probing by demuxing only: the video's properties and an index of its packets (timestamps and
//! keyframe flags), which is all that chunk planning needs. Nothing is decoded.

use std::path::Path;

use argus_common::VideoInfo;
use ffmpeg::codec::packet::side_data::Type as SideDataType;
use ffmpeg::media::Type as MediaType;
use ffmpeg::packet::Ref as _;
use ffmpeg_next as ffmpeg;

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
    /// Set when the file ends before its own index says it should (a cut-off upload): the
    /// frames before the cut are still all here.
    pub truncated: Option<String>,
}

pub fn probe(path: &Path) -> Result<Probe, MediaError> {
    crate::init();
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
    let mut input = ffmpeg::format::input(path).map_err(|e| match e {
        ffmpeg::Error::InvalidData => open_err(
            "not a video container FFmpeg can read (or one cut off before its index)".into(),
        ),
        e => open_err(e.to_string()),
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

    let mut packets = Vec::new();
    let mut read_error = None;
    let mut packet = ffmpeg::Packet::empty();
    loop {
        match packet.read(&mut input) {
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
    }
    if packets.is_empty() {
        return Err(MediaError::NoFrames {
            path: path.to_path_buf(),
        });
    }
    let frame_count = packets.len() as u64;
    let truncated = match read_error {
        Some(e) => Some(format!("reading stopped after {frame_count} frames: {e}")),
        None if declared_frames > frame_count => Some(format!(
            "the file holds {frame_count} of the {declared_frames} frames its index lists"
        )),
        None => None,
    };
    let tb = f64::from(time_base);
    let duration_s = if stream_duration > 0 {
        stream_duration as f64 * tb
    } else if container_duration > 0 {
        container_duration as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE)
    } else {
        0.0
    };
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
        },
        packets,
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
