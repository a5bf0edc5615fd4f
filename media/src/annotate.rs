//! The annotated copy of a video: every frame with its boxes and labels drawn, encoded as
//! H.264 in the container the output name asks for (mp4 by default), with the source's
//! timestamps (variable frame rate survives). Frames come upright, so no rotation is kept.

use std::path::Path;

use argus_common::{Detection, Frame, VideoInfo};
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::{codec, encoder, Rational};
use ffmpeg_next as ffmpeg;
use font8x8::UnicodeFonts;

use crate::{decode_chunk, plan_chunks, probe, MediaError, RgbConverter};

/// Writes `out`: the video at `path` with each frame's detections drawn, as `detections` gives
/// them for each frame index in turn (called once per decoded frame, in order: it may read a
/// long result a window at a time, and count progress). `stop` ends it early
/// ([`MediaError::Stopped`]).
pub fn annotate_video(
    path: &Path,
    info: &VideoInfo,
    mut detections: impl FnMut(u64) -> Result<Vec<Detection>, MediaError>,
    out: &Path,
    stop: &dyn Fn() -> Option<String>,
) -> Result<(), MediaError> {
    let write_err = |reason: String| MediaError::Write {
        path: out.to_path_buf(),
        reason,
    };
    let probed = probe(path)?;
    let whole = plan_chunks(&probed.packets, u64::MAX)[0];
    // 4:2:0 needs even sizes: drop a last odd row/column.
    let (w, h) = (info.width & !1, info.height & !1);
    if w == 0 || h == 0 {
        return Err(write_err("the video is too small to encode".into()));
    }
    let time_base = Rational(info.time_base[0], info.time_base[1]);

    let mut octx = ffmpeg::format::output(out).map_err(|e| write_err(e.to_string()))?;
    let h264 = encoder::find_by_name("libx264")
        .or_else(|| encoder::find(codec::Id::H264))
        .ok_or_else(|| write_err("this FFmpeg has no H.264 encoder".into()))?;
    let global_header = octx
        .format()
        .flags()
        .contains(ffmpeg::format::Flags::GLOBAL_HEADER);
    let mut ost = octx
        .add_stream(h264)
        .map_err(|e| write_err(e.to_string()))?;
    let mut setup = codec::context::Context::new_with_codec(h264)
        .encoder()
        .video()
        .map_err(|e| write_err(e.to_string()))?;
    setup.set_width(w);
    setup.set_height(h);
    setup.set_format(Pixel::YUV420P);
    setup.set_time_base(time_base);
    if info.fps > 0.0 {
        setup.set_frame_rate(Some(Rational::from(info.fps)));
    }
    if global_header {
        setup.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    let mut options = ffmpeg::Dictionary::new();
    options.set("preset", "veryfast");
    options.set("crf", "23");
    let mut video_encoder = setup
        .open_with(options)
        .map_err(|e| write_err(e.to_string()))?;
    ost.set_parameters(&video_encoder);
    let ost_index = ost.index();
    octx.write_header().map_err(|e| write_err(e.to_string()))?;
    let ost_time_base = octx.stream(ost_index).expect("added above").time_base();

    let mut converter = RgbConverter::new(info.rotation);
    let mut to_yuv = scaling::Context::get(
        Pixel::RGB24,
        info.width,
        info.height,
        Pixel::YUV420P,
        w,
        h,
        scaling::Flags::BILINEAR,
    )
    .map_err(|e| write_err(e.to_string()))?;
    let mut rgb = ffmpeg::frame::Video::new(Pixel::RGB24, info.width, info.height);
    let mut yuv = ffmpeg::frame::Video::empty();
    let mut packet = ffmpeg::Packet::empty();
    let mut write_packets = |enc: &mut encoder::Video,
                             octx: &mut ffmpeg::format::context::Output|
     -> Result<(), MediaError> {
        while enc.receive_packet(&mut packet).is_ok() {
            packet.set_stream(ost_index);
            packet.rescale_ts(time_base, ost_time_base);
            packet
                .write_interleaved(octx)
                .map_err(|e| write_err(e.to_string()))?;
        }
        Ok(())
    };

    let pts = probed.chunk_pts(&whole);
    decode_chunk::<MediaError>(path, &probed.info, &whole, pts, 0, stop, |decoded| {
        let mut frame = converter.convert(decoded.video)?;
        draw_detections(&mut frame, &detections(decoded.index)?);
        if (frame.width, frame.height) != (info.width, info.height) {
            return Err(write_err(format!(
                "frame {} changed size mid-stream",
                decoded.index
            )));
        }
        let stride = rgb.stride(0);
        let row = frame.width as usize * 3;
        let data = rgb.data_mut(0);
        for (y, line) in frame.rgb.chunks_exact(row).enumerate() {
            data[y * stride..y * stride + row].copy_from_slice(line);
        }
        to_yuv
            .run(&rgb, &mut yuv)
            .map_err(|e| write_err(e.to_string()))?;
        yuv.set_pts(Some(decoded.pts));
        video_encoder
            .send_frame(&yuv)
            .map_err(|e| write_err(e.to_string()))?;
        write_packets(&mut video_encoder, &mut octx)
    })?;
    video_encoder
        .send_eof()
        .map_err(|e| write_err(e.to_string()))?;
    write_packets(&mut video_encoder, &mut octx)?;
    octx.write_trailer().map_err(|e| write_err(e.to_string()))
}

/// Colors by class, distinct enough to tell neighbours apart.
const PALETTE: [[u8; 3]; 8] = [
    [255, 56, 56],
    [72, 249, 10],
    [0, 194, 255],
    [255, 178, 29],
    [207, 210, 49],
    [146, 204, 23],
    [255, 55, 199],
    [52, 69, 147],
];

/// Draws each detection's box and a `label 0.87` tag above it (inside when there is no room).
pub fn draw_detections(frame: &mut Frame, detections: &[Detection]) {
    let thickness = (frame.width.min(frame.height) / 240).clamp(1, 4) as i64;
    let scale = if frame.width >= 640 { 2 } else { 1 };
    for d in detections {
        let color = PALETTE[d.class_id as usize % PALETTE.len()];
        let b = d.bbox;
        let (x1, y1, x2, y2) = (b.x1 as i64, b.y1 as i64, b.x2 as i64 - 1, b.y2 as i64 - 1);
        for t in 0..thickness {
            fill(frame, x1, y1 + t, x2, y1 + t, color);
            fill(frame, x1, y2 - t, x2, y2 - t, color);
            fill(frame, x1 + t, y1, x1 + t, y2, color);
            fill(frame, x2 - t, y1, x2 - t, y2, color);
        }
        let text = format!("{} {:.2}", d.label, d.score);
        let (tw, th) = (text.chars().count() as i64 * 8 * scale + 2, 8 * scale + 2);
        let top = if y1 >= th { y1 - th } else { y1 };
        fill(frame, x1, top, x1 + tw - 1, top + th - 1, color);
        draw_text(frame, x1 + 1, top + 1, scale, &text, [0, 0, 0]);
    }
}

/// Fills the rectangle (inclusive corners), clipped to the frame.
fn fill(frame: &mut Frame, x1: i64, y1: i64, x2: i64, y2: i64, color: [u8; 3]) {
    let (w, h) = (frame.width as i64, frame.height as i64);
    let (x1, x2) = (x1.clamp(0, w - 1), x2.clamp(0, w - 1));
    let (y1, y2) = (y1.clamp(0, h - 1), y2.clamp(0, h - 1));
    for y in y1..=y2 {
        for x in x1..=x2 {
            let at = ((y * w + x) * 3) as usize;
            frame.rgb[at..at + 3].copy_from_slice(&color);
        }
    }
}

fn draw_text(frame: &mut Frame, x: i64, y: i64, scale: i64, text: &str, color: [u8; 3]) {
    for (i, c) in text.chars().enumerate() {
        let glyph = font8x8::BASIC_FONTS.get(c).unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits >> col & 1 == 1 {
                    let px = x + (i as i64 * 8 + col) * scale;
                    let py = y + row as i64 * scale;
                    fill(frame, px, py, px + scale - 1, py + scale - 1, color);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argus_common::BoundingBox;

    #[test]
    fn draws_box_edges_and_label_inside_the_frame() {
        let mut frame = Frame::new(100, 80, vec![0; 100 * 80 * 3]).unwrap();
        let d = Detection {
            label: "cat".into(),
            class_id: 15,
            score: 0.5,
            bbox: BoundingBox::from([10.0, 30.0, 60.0, 79.0]),
            track_id: None,
            predicted: false,
            landmarks: None,
            embedding: None,
        };
        draw_detections(&mut frame, &[d]);
        let px = |x: usize, y: usize| &frame.rgb[(y * 100 + x) * 3..(y * 100 + x) * 3 + 3];
        let color = PALETTE[15 % PALETTE.len()];
        assert_eq!(px(30, 30), color, "top edge");
        assert_eq!(px(10, 50), color, "left edge");
        assert_eq!(px(30, 50), [0, 0, 0], "inside stays untouched");
        assert_eq!(px(95, 10), [0, 0, 0], "far away stays untouched");
        // The tag sits above the box: some pixels of its background are drawn there.
        assert!((20..30).any(|y| px(12, y) == color));
        // A box over the edge is clipped, not a panic.
        draw_detections(
            &mut frame,
            &[Detection {
                label: "x".into(),
                class_id: 0,
                score: 1.0,
                bbox: BoundingBox::from([90.0, 70.0, 100.0, 80.0]),
                track_id: None,
                predicted: false,
                landmarks: None,
                embedding: None,
            }],
        );
    }
}
