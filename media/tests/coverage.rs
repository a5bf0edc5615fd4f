//! Invariant 1, exact frame coverage: for videos of every GOP shape, the chunks' decoded frames
//! are each frame of the video once, in presentation order, with the pixels of a sequential
//! decode — checked against FFmpeg's own CLI (`-f framemd5`), for several chunk sizes.

use std::path::{Path, PathBuf};
use std::process::Command;

use argus_media::{decode_chunk, plan_chunks, probe, MediaError};
use md5::{Digest, Md5};

/// (name, ffmpeg output arguments) of the test videos; the source is a moving test pattern.
const SHAPES: &[(&str, &str)] = &[
    ("closed-gop.mp4", "-g 12 -bf 0 -pix_fmt yuv420p"),
    ("b-frames.mp4", "-g 12 -bf 3 -pix_fmt yuv420p"),
    (
        "open-gop.mp4",
        "-g 12 -bf 3 -x264-params open-gop=1 -pix_fmt yuv420p",
    ),
    ("one-keyframe.mp4", "-g 1000 -bf 2 -pix_fmt yuv420p"),
    ("long-gop.mp4", "-g 40 -bf 2 -pix_fmt yuv420p"),
    (
        "odd-size.mp4",
        "-g 10 -bf 2 -pix_fmt yuv444p -vf scale=97:61",
    ),
    (
        "vfr.mp4",
        "-g 12 -bf 2 -pix_fmt yuv420p -vf select='lt(mod(n\\,10)\\,6)' -fps_mode vfr",
    ),
    ("one-frame.mp4", "-frames:v 1 -pix_fmt yuv420p"),
    (
        "vp9.webm",
        "-c:v libvpx-vp9 -g 15 -deadline realtime -pix_fmt yuv420p",
    ),
];

fn make_video(dir: &Path, name: &str, args: &str) -> PathBuf {
    let path = dir.join(name);
    if path.is_file() {
        return path;
    }
    let codec = if name.ends_with(".webm") {
        ""
    } else {
        "-c:v libx264"
    };
    let cmd = format!(
        "ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=size=96x64:rate=25 -t 3 {codec} {args} {}",
        path.display()
    );
    let status = Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .status()
        .expect("ffmpeg CLI");
    assert!(status.success(), "{cmd}");
    path
}

/// Per-frame MD5 of the decoded pictures, in output order, as FFmpeg's CLI computes them.
fn reference_md5s(path: &Path) -> Vec<String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-f",
            "framemd5",
            "-",
        ])
        .output()
        .expect("ffmpeg CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit(',').next().unwrap().trim().to_string())
        .collect()
}

/// MD5 of an 8-bit planar picture laid out as FFmpeg's rawvideo does (rows without padding).
fn md5_of(video: &ffmpeg_next::frame::Video) -> String {
    let mut md5 = Md5::new();
    for plane in 0..video.planes() {
        let (width, stride) = (video.plane_width(plane) as usize, video.stride(plane));
        let data = video.data(plane);
        for y in 0..video.plane_height(plane) as usize {
            md5.update(&data[y * stride..y * stride + width]);
        }
    }
    format!("{:x}", md5.finalize())
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("argus-coverage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn chunks_cover_every_frame_once_in_order_for_every_gop_shape() {
    let dir = scratch();
    for (name, args) in SHAPES {
        let path = make_video(&dir, name, args);
        let reference = reference_md5s(&path);
        let probed = probe(&path).unwrap();
        assert_eq!(
            probed.info.frame_count as usize,
            reference.len(),
            "{name}: frame count"
        );
        assert!(probed.truncated.is_none(), "{name}");
        for chunk_size in [1, 7, 25, 1000] {
            let chunks = plan_chunks(&probed.packets, chunk_size);
            let mut seen: Vec<(u64, i64, String)> = Vec::new();
            for chunk in &chunks {
                let pts = probed.chunk_pts(chunk);
                let decoded =
                    decode_chunk::<MediaError>(&path, &probed.info, chunk, pts, 1, &|| None, |f| {
                        seen.push((f.index, f.pts, md5_of(f.video)));
                        Ok(())
                    })
                    .unwrap_or_else(|e| panic!("{name} chunk size {chunk_size}: {e}"));
                assert_eq!(decoded.skipped, Vec::<u64>::new(), "{name}/{chunk_size}");
                assert_eq!(decoded.frames, chunk.frame_count, "{name}/{chunk_size}");
            }
            let indices: Vec<u64> = seen.iter().map(|s| s.0).collect();
            assert_eq!(
                indices,
                (0..reference.len() as u64).collect::<Vec<_>>(),
                "{name}/{chunk_size}"
            );
            assert!(
                seen.windows(2).all(|w| w[0].1 < w[1].1),
                "{name}/{chunk_size}: pts order"
            );
            let hashes: Vec<&String> = seen.iter().map(|s| &s.2).collect();
            let expected: Vec<&String> = reference.iter().collect();
            assert_eq!(hashes, expected, "{name} chunk size {chunk_size}: pixels");
        }
    }
}

#[test]
fn probe_reports_the_video() {
    let dir = scratch();
    let path = make_video(&dir, "b-frames.mp4", SHAPES[1].1);
    let info = probe(&path).unwrap().info;
    assert_eq!((info.width, info.height, info.rotation), (96, 64, 0));
    assert_eq!(info.codec, "h264");
    assert!(info.container.contains("mp4"));
    assert_eq!(info.frame_count, 75);
    assert!(
        (info.fps - 25.0).abs() < 1e-6 && (info.duration_s - 3.0).abs() < 0.05,
        "{info:?}"
    );
}

#[test]
fn rotated_video_is_probed_and_decoded_upright() {
    let dir = scratch();
    let plain = make_video(&dir, "b-frames.mp4", SHAPES[1].1);
    let rotated = dir.join("rotated.mp4");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(&plain)
        .args(["-c", "copy", "-metadata:s:v:0", "rotate=90"])
        .arg(&rotated)
        .status()
        .unwrap();
    assert!(status.success());
    let probed = probe(&rotated).unwrap();
    assert_eq!((probed.info.width, probed.info.height), (64, 96));
    assert_eq!(probed.info.rotation % 180, 90);
    let chunk = plan_chunks(&probed.packets, 1000)[0];
    let mut converter = argus_media::RgbConverter::new(probed.info.rotation);
    // Scaled to fit a 32x32 box while converting (`--fast-resize`): upright 64x96 -> 21x32.
    let mut fitting = argus_media::RgbConverter::fitting(probed.info.rotation, 32, 32);
    let (mut sizes, mut fitted) = (Vec::new(), Vec::new());
    let pts = probed.chunk_pts(&chunk);
    decode_chunk::<MediaError>(&rotated, &probed.info, &chunk, pts, 0, &|| None, |f| {
        let frame = converter.convert(f.video)?;
        sizes.push((frame.width, frame.height, frame.source));
        let small = fitting.convert(f.video)?;
        assert_eq!(small.rgb.len(), (small.width * small.height * 3) as usize);
        fitted.push((small.width, small.height, small.source));
        Ok(())
    })
    .unwrap();
    assert_eq!(sizes.len(), 75);
    assert!(
        sizes.iter().all(|&s| s == (64, 96, (64, 96))),
        "{:?}",
        sizes[0]
    );
    assert!(
        fitted.iter().all(|&s| s == (21, 32, (64, 96))),
        "{:?}",
        fitted[0]
    );
}

#[test]
fn bad_files_are_clear_errors() {
    let dir = scratch();
    let empty = dir.join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.join("notes.mp4");
    std::fs::write(&text, "this is not a video\n".repeat(50)).unwrap();
    let audio = dir.join("audio.m4a");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ffmpeg -nostdin -loglevel error -y -f lavfi -i sine=frequency=440:duration=1 {}",
            audio.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    let cases: [(&Path, &str); 3] = [
        (&empty, "the file is empty"),
        (&text, "cannot open"),
        (&audio, "has no video stream"),
    ];
    for (path, expected) in cases {
        let err = probe(path).unwrap_err().to_string();
        assert!(err.contains(expected), "{}: {err}", path.display());
    }
}

#[test]
fn limits_and_shared_timestamps_are_refused_at_probe() {
    let dir = scratch();
    let path = make_video(&dir, "b-frames.mp4", SHAPES[1].1); // 96x64, 75 frames, 3 s
    let refused = |limits: argus_common::Limits, expected: &str| {
        let err = argus_media::probe_with(&path, &limits).unwrap_err();
        assert!(matches!(err, MediaError::TooLarge { .. }), "{err}");
        assert!(err.to_string().contains(expected), "{err}");
    };
    let ok = argus_common::Limits::default();
    assert!(argus_media::probe_with(&path, &ok).is_ok());
    refused(
        argus_common::Limits {
            max_frame_pixels: 96 * 64 - 1,
            ..ok
        },
        "ARGUS_MAX_FRAME_PIXELS",
    );
    refused(
        argus_common::Limits {
            max_frames: 74,
            ..ok
        },
        "ARGUS_MAX_FRAMES",
    );
    refused(
        argus_common::Limits {
            max_duration_s: 2,
            ..ok
        },
        "ARGUS_MAX_DURATION_S",
    );

    // Frames that share presentation timestamps (a broken muxer): which frame is which is
    // unknowable, so the file is refused with the way out.
    let dup = dir.join("dup.mkv");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args([
            "-i",
            "testsrc=size=64x48:rate=10",
            "-frames:v",
            "10",
            "-c:v",
            "mjpeg",
        ])
        .args(["-bsf:v", "setts=ts=floor(N/2)", "-f", "matroska"])
        .arg(&dup)
        .status()
        .unwrap();
    assert!(status.success());
    let err = probe(&dup).unwrap_err();
    assert!(
        matches!(err, MediaError::DuplicateTimestamps { count: 5, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("+genpts"), "{err}");
}
