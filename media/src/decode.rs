//! Decoding exactly one chunk: seek to the keyframe at or before it, decode forward, skip the
//! frames before it, stop after its last frame. Frames are matched by presentation timestamp,
//! so the pixels equal those of a sequential decode whatever the GOP structure, and a frame
//! that cannot be decoded is reported by its own index.

use std::path::Path;

use argus_common::{Chunk, Frame, VideoInfo};
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;

use crate::MediaError;

/// A decoded frame of the chunk, in presentation order.
pub struct DecodedFrame<'a> {
    /// Presentation index in the whole video.
    pub index: u64,
    pub pts: i64,
    pub video: &'a ffmpeg::frame::Video,
}

/// What decoding a chunk came to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Frames handed to `on_frame`.
    pub frames: u64,
    /// Indices (in the whole video) of the chunk's frames that never came out of the decoder:
    /// damaged or missing data. Empty for a healthy file.
    pub skipped: Vec<u64>,
}

/// Decodes `chunk` of the video at `path`, calling `on_frame` for each of its frames in
/// presentation order. `pts` are the chunk's presentation timestamps (ascending, one per frame,
/// from the probe): a frame is known by its timestamp, so a frame the decoder cannot produce
/// (FFmpeg drops what it cannot conceal) is reported in [`Decoded::skipped`] and the frames
/// after it keep their own indices, as FFmpeg's own CLI carries on past damage.
///
/// `threads` is the decoder's thread count (0: FFmpeg picks). `stop` is asked before each
/// packet: when it returns a reason, decoding ends with [`MediaError::Stopped`] (a cancelled
/// video, a task past its time limit).
pub fn decode_chunk<E: From<MediaError>>(
    path: &Path,
    info: &VideoInfo,
    chunk: &Chunk,
    pts: &[i64],
    threads: usize,
    stop: &dyn Fn() -> Option<String>,
    on_frame: impl FnMut(DecodedFrame<'_>) -> Result<(), E>,
) -> Result<Decoded, E> {
    decode(path, info, chunk, pts, threads, false, stop, on_frame)
}

/// [`decode_chunk`] of the chunk's keyframes only: the other packets are never sent to the
/// decoder (an intra frame decodes alone), so the cost is one frame per GOP. `skipped` lists
/// the keyframes that could not be decoded; the chunk's other frames are neither handed on nor
/// listed.
pub fn decode_keyframes<E: From<MediaError>>(
    path: &Path,
    info: &VideoInfo,
    chunk: &Chunk,
    pts: &[i64],
    threads: usize,
    stop: &dyn Fn() -> Option<String>,
    on_frame: impl FnMut(DecodedFrame<'_>) -> Result<(), E>,
) -> Result<Decoded, E> {
    decode(path, info, chunk, pts, threads, true, stop, on_frame)
}

#[allow(clippy::too_many_arguments)]
fn decode<E: From<MediaError>>(
    path: &Path,
    info: &VideoInfo,
    chunk: &Chunk,
    pts: &[i64],
    threads: usize,
    keyframes_only: bool,
    stop: &dyn Fn() -> Option<String>,
    mut on_frame: impl FnMut(DecodedFrame<'_>) -> Result<(), E>,
) -> Result<Decoded, E> {
    crate::init();
    let read_err = |reason: String| MediaError::Read {
        path: path.to_path_buf(),
        reason,
    };
    if pts.len() as u64 != chunk.frame_count || pts.is_empty() {
        return Err(read_err(format!(
            "chunk {} lists {} timestamps for its {} frames",
            chunk.index,
            pts.len(),
            chunk.frame_count
        ))
        .into());
    }
    // Confined like the probe; no deadline of its own: the same open already passed the probe
    // within ARGUS_PROBE_TIMEOUT_S, and `stop` bounds the reading below.
    let mut input = crate::input::open_input(path, crate::input::Interrupt::none())?;
    let stream = input
        .stream(info.stream_index)
        .ok_or_else(|| read_err(format!("no stream {}", info.stream_index)))?;
    let mut context = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
        .map_err(|e| decoder_err(path, info, e))?;
    context.set_threading(ffmpeg::codec::threading::Config {
        kind: ffmpeg::codec::threading::Type::Frame,
        count: threads,
        ..Default::default()
    });
    let mut decoder = context
        .decoder()
        .video()
        .map_err(|e| decoder_err(path, info, e))?;
    if let Some(dts) = chunk.seek_dts {
        seek(&mut input, info.stream_index, dts).map_err(|e| read_err(format!("seek: {e}")))?;
    }

    let (first_pts, last_pts) = (pts[0], pts[pts.len() - 1]);
    let mut seen = vec![false; pts.len()];
    // Keyframes only: which of the chunk's frames were sent to the decoder (the others are
    // not expected out of it).
    let mut expected = vec![!keyframes_only; pts.len()];
    let mut report = Decoded::default();
    let mut checked_seek = chunk.seek_dts.is_none();
    let mut frame = ffmpeg::frame::Video::empty();

    // Hands every frame the decoder has ready to `on_frame`; true once the decoder has moved
    // past the chunk (its output is in presentation order: nothing of the chunk is to come).
    let mut drain = |decoder: &mut ffmpeg::decoder::Video,
                     seen: &mut Vec<bool>,
                     report: &mut Decoded|
     -> Result<bool, E> {
        loop {
            match decoder.receive_frame(&mut frame) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => return Ok(false),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::error::EAGAIN => {
                    return Ok(false)
                }
                Err(e) => return Err(decoder_err(path, info, e).into()),
            }
            let Some(frame_pts) = frame.pts().or(frame.timestamp()) else {
                continue;
            };
            if frame_pts < first_pts {
                continue; // decoded only to reach the chunk
            }
            if frame_pts > last_pts {
                return Ok(true);
            }
            let Ok(slot) = pts.binary_search(&frame_pts) else {
                // A timestamp the index does not have (a damaged frame's guess): not ours.
                tracing::debug!(chunk = chunk.index, pts = frame_pts, "stray frame");
                continue;
            };
            if std::mem::replace(&mut seen[slot], true) {
                continue; // the same frame again (a concealed duplicate)
            }
            on_frame(DecodedFrame {
                index: chunk.first_frame + slot as u64,
                pts: frame_pts,
                video: &frame,
            })?;
            report.frames += 1;
            if report.frames == chunk.frame_count {
                return Ok(true);
            }
        }
    };

    let mut past_chunk = false;
    loop {
        if let Some(why) = stop() {
            return Err(MediaError::Stopped(why).into());
        }
        // A fresh packet per read: av_read_frame does not release what a reused packet
        // still holds, so reusing one leaked every packet's data (a 1 GB upload's probe
        // grew the server by ~1 GB); dropping a packet releases it.
        let mut packet = ffmpeg::Packet::empty();
        match packet.read(&mut input) {
            Ok(()) => {}
            Err(ffmpeg::Error::Eof) => break,
            Err(ffmpeg::Error::InvalidData) => continue,
            Err(e) => {
                tracing::warn!(path = %path.display(), chunk = chunk.index, error = %e, "read stopped");
                break;
            }
        }
        if packet.stream() != info.stream_index {
            continue;
        }
        if !checked_seek {
            checked_seek = true;
            // A demuxer that lands after the keyframe would lose frames: start over instead.
            if packet
                .dts()
                .zip(chunk.seek_dts)
                .is_some_and(|(got, want)| got > want)
            {
                tracing::warn!(
                    chunk = chunk.index,
                    "seek overshot; decoding from the start"
                );
                seek(&mut input, info.stream_index, i64::MIN)
                    .map_err(|e| read_err(format!("seek: {e}")))?;
                continue;
            }
        }
        if keyframes_only {
            // Decode order: a packet decoded after the chunk's last frame (dts > its pts ≥ its
            // dts) and everything after it lies beyond the chunk. Stops a chunk cut mid-GOP
            // from reading to the next keyframe, or to the end of a one-keyframe file.
            if packet.dts().is_some_and(|d| d > last_pts) {
                break;
            }
            if !packet.is_key() {
                continue;
            }
            let packet_pts = packet.pts().or(packet.dts());
            if packet_pts.is_some_and(|p| p > last_pts) {
                break; // the next GOP's keyframe: nothing of the chunk is left
            }
            if let Some(slot) = packet_pts.and_then(|p| pts.binary_search(&p).ok()) {
                expected[slot] = true;
            }
        }
        if let Err(e) = decoder.send_packet(&packet) {
            // A damaged packet: the decoder conceals or drops it; a dropped frame is
            // reported as skipped below.
            tracing::debug!(path = %path.display(), chunk = chunk.index, error = %e, "bad packet");
        }
        if drain(&mut decoder, &mut seen, &mut report)? {
            past_chunk = true;
            break;
        }
    }
    if !past_chunk {
        let _ = decoder.send_eof();
        drain(&mut decoder, &mut seen, &mut report)?;
    }
    report.skipped = seen
        .iter()
        .zip(&expected)
        .enumerate()
        .filter(|(_, (&s, &e))| e && !s)
        .map(|(i, _)| chunk.first_frame + i as u64)
        .collect();
    if !report.skipped.is_empty() {
        tracing::warn!(
            path = %path.display(),
            chunk = chunk.index,
            skipped = report.skipped.len(),
            "frames could not be decoded"
        );
    }
    Ok(report)
}

fn decoder_err(path: &Path, info: &VideoInfo, e: ffmpeg::Error) -> MediaError {
    MediaError::Decoder {
        path: path.to_path_buf(),
        codec: info.codec.clone(),
        reason: e.to_string(),
    }
}

/// Seeks the stream to the last keyframe whose decode timestamp is at or before `dts`.
fn seek(
    input: &mut ffmpeg::format::context::Input,
    stream: usize,
    dts: i64,
) -> Result<(), ffmpeg::Error> {
    // SAFETY: a valid, open input context; ffmpeg-next's own seek cannot name a stream.
    let ret = unsafe {
        ffmpeg::ffi::avformat_seek_file(input.as_mut_ptr(), stream as i32, i64::MIN, dts, dts, 0)
    };
    if ret < 0 {
        Err(ffmpeg::Error::from(ret))
    } else {
        Ok(())
    }
}

/// Turns decoded frames into upright packed RGB, optionally scaled down to fit a box.
pub struct RgbConverter {
    rotation: u32,
    /// Frames larger than this (upright) box are scaled down to fit it.
    fit: Option<(u32, u32)>,
    scaler: Option<(scaling::Context, Pixel, u32, u32)>,
    rgb: ffmpeg::frame::Video,
}

impl RgbConverter {
    /// `rotation`: degrees clockwise, from [`VideoInfo::rotation`].
    pub fn new(rotation: u32) -> Self {
        RgbConverter {
            rotation,
            fit: None,
            scaler: None,
            rgb: ffmpeg::frame::Video::empty(),
        }
    }

    /// Like [`RgbConverter::new`], but a frame larger than `width` × `height` comes out scaled
    /// down to fit it (aspect kept, [`argus_common::frame::fit`]) by the same swscale pass that
    /// converts it to RGB, its [`Frame::source`] keeping the upright size. For a model's input
    /// this is ~4× less work than converting at full size and resizing afterwards in float
    /// (1080p), it runs in the decoding thread, and no full-size RGB copy is made. But its
    /// 8-bit, differently filtered pixels move detection scores (by 0.003 at the median, 0.013
    /// at the 95th percentile on bikes 720p), hence opt-in (`--fast-resize`). Smaller frames
    /// are left at their size (the model's letterbox scales them up).
    pub fn fitting(rotation: u32, width: u32, height: u32) -> Self {
        RgbConverter {
            fit: Some((width, height)),
            ..Self::new(rotation)
        }
    }

    /// The size a `w` × `h` decoded frame is converted to (before rotation).
    fn output_size(&self, w: u32, h: u32) -> (u32, u32) {
        let Some((box_w, box_h)) = self.fit else {
            return (w, h);
        };
        let turned = matches!(self.rotation % 360, 90 | 270);
        let (uw, uh) = if turned { (h, w) } else { (w, h) };
        match argus_common::frame::fit(uw, uh, box_w, box_h) {
            (scale, ..) if scale >= 1.0 => (w, h),
            (_, fw, fh) if turned => (fh, fw),
            (_, fw, fh) => (fw, fh),
        }
    }

    pub fn convert(&mut self, video: &ffmpeg::frame::Video) -> Result<Frame, MediaError> {
        let (format, w, h) = (video.format(), video.width(), video.height());
        // The size or format may change mid-stream: rebuild the scaler when it does.
        if !matches!(&self.scaler, Some((_, f, sw, sh)) if (*f, *sw, *sh) == (format, w, h)) {
            let (out_w, out_h) = self.output_size(w, h);
            // Scaling down in swscale: accurate rounding and full chroma resolution bring it
            // closest to the float resize (measured, issue 12); plain conversion as before.
            let flags = if (out_w, out_h) == (w, h) {
                scaling::Flags::BILINEAR
            } else {
                scaling::Flags::BILINEAR
                    | scaling::Flags::ACCURATE_RND
                    | scaling::Flags::FULL_CHR_H_INT
            };
            let ctx = scaling::Context::get(format, w, h, Pixel::RGB24, out_w, out_h, flags)
                .map_err(|e| MediaError::Decoder {
                    path: Default::default(),
                    codec: format!("{format:?}"),
                    reason: format!("no RGB conversion: {e}"),
                })?;
            self.scaler = Some((ctx, format, w, h));
        }
        let (scaler, ..) = self.scaler.as_mut().expect("set above");
        let (out_w, out_h) = (scaler.output().width, scaler.output().height);
        scaler
            .run(video, &mut self.rgb)
            .map_err(|e| MediaError::Decoder {
                path: Default::default(),
                codec: format!("{format:?}"),
                reason: e.to_string(),
            })?;
        let stride = self.rgb.stride(0);
        let row = out_w as usize * 3;
        let data = self.rgb.data(0);
        let mut packed = Vec::with_capacity(row * out_h as usize);
        for y in 0..out_h as usize {
            packed.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        Ok(rotate(
            Frame {
                width: out_w,
                height: out_h,
                rgb: packed,
                source: (w, h),
            },
            self.rotation,
        ))
    }
}

/// Turns a frame `rotation` degrees clockwise (a multiple of 90).
pub fn rotate(frame: Frame, rotation: u32) -> Frame {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let src = |x: usize, y: usize| &frame.rgb[(y * w + x) * 3..(y * w + x) * 3 + 3];
    let (nw, nh) = match rotation % 360 {
        90 | 270 => (h, w),
        180 => (w, h),
        _ => return frame,
    };
    let source = match rotation % 360 {
        90 | 270 => (frame.source.1, frame.source.0),
        _ => frame.source,
    };
    let mut rgb = Vec::with_capacity(frame.rgb.len());
    for y in 0..nh {
        for x in 0..nw {
            let pixel = match rotation % 360 {
                90 => src(y, h - 1 - x),
                180 => src(w - 1 - x, h - 1 - y),
                _ => src(w - 1 - y, x), // 270
            };
            rgb.extend_from_slice(pixel);
        }
    }
    Frame {
        width: nw as u32,
        height: nh as u32,
        rgb,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_turns_clockwise() {
        // 2x1: left red, right blue.
        let f = Frame::new(2, 1, vec![255, 0, 0, 0, 0, 255]).unwrap();
        let r90 = rotate(f.clone(), 90);
        assert_eq!((r90.width, r90.height), (1, 2));
        assert_eq!(
            r90.rgb,
            vec![255, 0, 0, 0, 0, 255],
            "red on top after 90 cw"
        );
        let r270 = rotate(f.clone(), 270);
        assert_eq!(
            r270.rgb,
            vec![0, 0, 255, 255, 0, 0],
            "blue on top after 270 cw"
        );
        assert_eq!(rotate(f.clone(), 180).rgb, vec![0, 0, 255, 255, 0, 0]);
        assert_eq!(rotate(rotate(f.clone(), 90), 270), f);
    }
}
