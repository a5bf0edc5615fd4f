//! Decoding exactly one chunk: seek to the keyframe at or before it, decode forward, skip the
//! frames before it, stop after its last frame. Frames are matched by presentation timestamp,
//! so the pixels equal those of a sequential decode whatever the GOP structure.

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

/// Decodes `chunk` of the video at `path`, calling `on_frame` for each of its frames in order.
///
/// `threads` is the decoder's thread count (0: FFmpeg picks). Fails with
/// [`MediaError::IncompleteChunk`] unless exactly the chunk's frames came out.
pub fn decode_chunk<E: From<MediaError>>(
    path: &Path,
    info: &VideoInfo,
    chunk: &Chunk,
    threads: usize,
    mut on_frame: impl FnMut(DecodedFrame<'_>) -> Result<(), E>,
) -> Result<(), E> {
    crate::init();
    let read_err = |reason: String| MediaError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let mut input = ffmpeg::format::input(path).map_err(|e| MediaError::Open {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
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

    let end = chunk.first_frame + chunk.frame_count;
    let mut next = chunk.first_frame;
    let mut previous_pts: Option<i64> = None;
    let mut checked_seek = chunk.seek_dts.is_none();
    let mut frame = ffmpeg::frame::Video::empty();
    let mut packet = ffmpeg::Packet::empty();
    let incomplete = |next: u64, reason: &str| MediaError::IncompleteChunk {
        path: path.to_path_buf(),
        chunk: chunk.index,
        got: next - chunk.first_frame,
        expected: chunk.frame_count,
        reason: reason.to_string(),
    };

    // Hands every frame the decoder has ready to `on_frame`; true once the chunk is complete.
    let mut drain = |decoder: &mut ffmpeg::decoder::Video,
                     next: &mut u64,
                     previous_pts: &mut Option<i64>|
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
            let Some(pts) = frame.pts().or(frame.timestamp()) else {
                continue;
            };
            if pts < chunk.first_pts {
                continue; // decoded only to reach the chunk
            }
            if pts > chunk.last_pts {
                // Output is in presentation order: every frame of the chunk has come out.
                return Err(incomplete(*next, "frames missing before the chunk's end").into());
            }
            if previous_pts.is_some_and(|p| p >= pts) {
                return Err(incomplete(*next, "timestamps out of order").into());
            }
            *previous_pts = Some(pts);
            on_frame(DecodedFrame {
                index: *next,
                pts,
                video: &frame,
            })?;
            *next += 1;
            if *next == end {
                return Ok(true);
            }
        }
    };

    loop {
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
        if let Err(e) = decoder.send_packet(&packet) {
            // A damaged packet: the decoder conceals or drops it; a dropped frame is caught
            // by the frame count below.
            tracing::warn!(path = %path.display(), chunk = chunk.index, error = %e, "bad packet");
        }
        if drain(&mut decoder, &mut next, &mut previous_pts)? {
            return Ok(());
        }
    }
    let _ = decoder.send_eof();
    if drain(&mut decoder, &mut next, &mut previous_pts)? {
        return Ok(());
    }
    Err(incomplete(next, "the stream ended first").into())
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

/// Turns decoded frames into upright packed RGB.
pub struct RgbConverter {
    rotation: u32,
    scaler: Option<(scaling::Context, Pixel, u32, u32)>,
    rgb: ffmpeg::frame::Video,
}

impl RgbConverter {
    /// `rotation`: degrees clockwise, from [`VideoInfo::rotation`].
    pub fn new(rotation: u32) -> Self {
        RgbConverter {
            rotation,
            scaler: None,
            rgb: ffmpeg::frame::Video::empty(),
        }
    }

    pub fn convert(&mut self, video: &ffmpeg::frame::Video) -> Result<Frame, MediaError> {
        let (format, w, h) = (video.format(), video.width(), video.height());
        // The size or format may change mid-stream: rebuild the scaler when it does.
        if !matches!(&self.scaler, Some((_, f, sw, sh)) if (*f, *sw, *sh) == (format, w, h)) {
            let ctx =
                scaling::Context::get(format, w, h, Pixel::RGB24, w, h, scaling::Flags::BILINEAR)
                    .map_err(|e| MediaError::Decoder {
                    path: Default::default(),
                    codec: format!("{format:?}"),
                    reason: format!("no RGB conversion: {e}"),
                })?;
            self.scaler = Some((ctx, format, w, h));
        }
        let (scaler, ..) = self.scaler.as_mut().expect("set above");
        scaler
            .run(video, &mut self.rgb)
            .map_err(|e| MediaError::Decoder {
                path: Default::default(),
                codec: format!("{format:?}"),
                reason: e.to_string(),
            })?;
        let stride = self.rgb.stride(0);
        let row = w as usize * 3;
        let data = self.rgb.data(0);
        let mut packed = Vec::with_capacity(row * h as usize);
        for y in 0..h as usize {
            packed.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        Ok(rotate(
            Frame {
                width: w,
                height: h,
                rgb: packed,
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
