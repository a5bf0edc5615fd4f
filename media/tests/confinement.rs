//! FFmpeg confined to the file it is given: every accepted container opens and probes, and
//! whatever could make FFmpeg read another file or connect anywhere is refused at open,
//! quickly, whatever the file is named.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_media::{open_input, probe_with, Interrupt, MediaError};

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("argus-media-confine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A 1-second test pattern in `name`, encoded with `codec_args`.
fn make(dir: &Path, name: &str, codec_args: &str) -> PathBuf {
    let path = dir.join(name);
    let cmd = format!(
        "ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=size=64x48:rate=10 -t 1 {codec_args} {}",
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

#[test]
fn every_accepted_container_probes() {
    let dir = scratch();
    let cases = [
        ("a.mp4", "-c:v libx264 -pix_fmt yuv420p"),
        ("a.mov", "-c:v libx264 -pix_fmt yuv420p"),
        ("a.mkv", "-c:v libx264 -pix_fmt yuv420p"),
        ("a.webm", "-c:v libvpx -deadline realtime"),
        ("a.avi", "-c:v mpeg4"),
        ("a.ts", "-c:v libx264 -pix_fmt yuv420p"),
        ("a.flv", "-c:v flv1"),
        ("a.wmv", "-c:v wmv2"),
        ("a.mxf", "-c:v mpeg2video -r 25"),
        ("a.ivf", "-c:v libvpx -deadline realtime"),
        ("a.y4m", "-pix_fmt yuv420p"),
        ("a.gif", ""),
    ];
    for (name, args) in cases {
        let path = make(&dir, name, args);
        let probed =
            probe_with(&path, &Default::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(probed.info.frame_count >= 9, "{name}: {:?}", probed.info);
        // The extension a stored upload of this kind keeps.
        let ext = name.rsplit('.').next().unwrap();
        assert!(argus_media::input::is_video_extension(ext), "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn inputs_that_reach_elsewhere_are_refused_at_open() {
    let dir = scratch().join("refused");
    std::fs::create_dir_all(&dir).unwrap();
    let target = make(&dir, "target.mp4", "-c:v libx264 -pix_fmt yuv420p");
    let target = target.display();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&connections);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let png = make(&dir, "frame.png", "-frames:v 1");
    let raw = make(&dir, "raw.h264", "-c:v libx264 -f h264");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "hls",
            format!("#EXTM3U\n#EXTINF:1.0,\n{target}\n#EXT-X-ENDLIST\n\x01").into_bytes(),
        ),
        (
            "hls to a URL",
            format!("#EXTM3U\n#EXTINF:1.0,\nhttp://{addr}/a.ts\n#EXT-X-ENDLIST\n").into_bytes(),
        ),
        (
            "ffconcat",
            format!("ffconcat version 1.0\nfile '{target}'\n").into_bytes(),
        ),
        (
            "sdp",
            format!(
                "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=video {} RTP/AVP 96\n\
                 a=rtpmap:96 H264/90000\n",
                addr.port()
            )
            .into_bytes(),
        ),
        ("png image", std::fs::read(&png).unwrap()),
        ("raw h264", std::fs::read(&raw).unwrap()),
    ];
    for (what, bytes) in cases {
        let path = dir.join("clip.mp4");
        std::fs::write(&path, bytes).unwrap();
        let started = Instant::now();
        let err = open_input(&path, Interrupt::after(Duration::from_secs(5), "test"))
            .err()
            .unwrap_or_else(|| panic!("{what} was opened"));
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{what}: {:?}",
            started.elapsed()
        );
        assert!(matches!(err, MediaError::Open { .. }), "{what}: {err}");
        let probe = probe_with(&path, &Default::default()).expect_err(what);
        assert!(matches!(probe, MediaError::Open { .. }), "{what}: {probe}");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "FFmpeg connected out"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_probe_past_its_deadline_is_refused() {
    let dir = scratch().join("deadline");
    std::fs::create_dir_all(&dir).unwrap();
    let path = make(&dir, "a.mp4", "-c:v libx264 -pix_fmt yuv420p");
    // Already past its deadline: FFmpeg's reads are interrupted at once.
    let err = open_input(
        &path,
        Interrupt::after(Duration::ZERO, "ARGUS_PROBE_TIMEOUT_S = 0"),
    )
    .err()
    .expect("interrupted");
    assert!(matches!(err, MediaError::TimedOut { .. }), "{err}");
    assert!(
        err.to_string().contains("ARGUS_PROBE_TIMEOUT_S = 0"),
        "{err}"
    );
    let limits = argus_common::Limits {
        probe_timeout_s: 0,
        ..Default::default()
    };
    let err = probe_with(&path, &limits).expect_err("timed out");
    assert!(matches!(err, MediaError::TimedOut { .. }), "{err}");
    // With time to spare, the same file probes.
    assert!(probe_with(&path, &Default::default()).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}
