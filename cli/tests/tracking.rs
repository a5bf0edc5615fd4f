//! Tracks, end to end with the real model (`argus detect`, the pipeline's own workers):
//! - chunk invariance: bikes, carphone and a 720p copy of bikes give the same tracks (the same
//!   ids on the same detections, and the same track summaries) whatever the chunk size, the
//!   whole video in one chunk included;
//! - faithful to the reference: on the same detections (carphone, bikes, bikes at 720p),
//!   supervision's ByteTrack (PyPI, run by `track/reference/supervision_tracks.py`) agrees with
//!   ours at IDF1 ≥ 0.99, taking its tracks as the ground truth.

mod common;

use std::path::Path;
use std::process::Command;

use common::{detect_json, media, scratch};
use serde_json::Value;

/// What of a result depends on tracking: each frame's detections with their track ids, and the
/// tracks.
fn tracking_of(result: &Value) -> (Vec<Value>, Value) {
    let frames = result["frames"].as_array().unwrap().clone();
    (frames, result["tracks"].clone())
}

fn assert_invariant(video: &Path, chunk_sizes: &[&str], tag: &str) -> Value {
    let dir = scratch(tag);
    let mut reference: Option<(Vec<Value>, Value)> = None;
    let mut first = Value::Null;
    for chunk in chunk_sizes {
        let out = dir.join(format!("c{chunk}.json"));
        let result = detect_json(video, &["--chunk-size", chunk], &out);
        let tracking = tracking_of(&result);
        let tracks = tracking.1.as_array().map_or(0, Vec::len);
        assert!(tracks > 0, "{tag}: no tracks at chunk size {chunk}");
        match &reference {
            None => {
                reference = Some(tracking);
                first = result;
            }
            Some(expected) => {
                assert_eq!(
                    expected.1, tracking.1,
                    "{tag}: the tracks at chunk size {chunk}"
                );
                assert_eq!(
                    expected.0, tracking.0,
                    "{tag}: the frames at chunk size {chunk}"
                );
            }
        }
    }
    first
}

#[test]
fn tracks_do_not_depend_on_how_the_video_was_cut() {
    for (name, tag) in [
        ("carphone_pristine.mp4", "track-carphone"),
        ("bikes.mp4", "track-bikes"),
    ] {
        let result = assert_invariant(&media(name), &["16", "64", "10000"], tag);
        // Every confirmed track's detections carry its id, and its summary adds up.
        let tracks = result["tracks"].as_array().unwrap();
        for track in tracks {
            let id = track["id"].as_u64().unwrap();
            let seen: Vec<u64> = result["frames"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| {
                    f["detections"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|d| d["track_id"].as_u64() == Some(id))
                })
                .map(|f| f["index"].as_u64().unwrap())
                .collect();
            assert_eq!(
                track["frames"].as_u64().unwrap(),
                seen.len() as u64,
                "{track}"
            );
            assert_eq!(track["first_frame"].as_u64(), seen.first().copied());
            assert_eq!(track["last_frame"].as_u64(), seen.last().copied());
            assert!(track["path"].as_array().unwrap().len() <= 64);
        }
        let summary = &result["summary"];
        assert_eq!(summary["tracks"].as_u64().unwrap(), tracks.len() as u64);
    }
    // A 720p copy of bikes: the size the benchmarks use. Two cuts (16 frames, one chunk).
    let clip = bikes_720p(&scratch("track-720p"));
    assert_invariant(&clip, &["16", "10000"], "track-720p-runs");
}

/// bikes scaled to 1280×720.
fn bikes_720p(dir: &Path) -> std::path::PathBuf {
    let clip = dir.join("bikes-720p.mp4");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(media("bikes.mp4"))
        .args([
            "-vf",
            "scale=1280:720,setsar=1",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
        ])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(status.success());
    clip
}

fn reference(result_file: &Path) -> Value {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../track/reference/supervision_tracks.py");
    let output = Command::new(argus_common::paths::venv().join("bin/python"))
        .arg(script)
        .arg(result_file)
        .output()
        .expect("the venv's python (scripts/setup.sh)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn tracks_agree_with_supervisions_bytetrack() {
    let dir = scratch("track-reference");
    let hd = bikes_720p(&dir);
    for (name, video) in [
        ("carphone_pristine.mp4", media("carphone_pristine.mp4")),
        ("bikes.mp4", media("bikes.mp4")),
        ("bikes-720p.mp4", hd),
    ] {
        let out = dir.join(format!("{name}.json"));
        detect_json(&video, &["--chunk-size", "32"], &out);
        let report = reference(&out);
        println!("{name}: {report}");
        assert!(
            report["tracked_by_supervision"].as_u64().unwrap() > 100,
            "{report}"
        );
        let idf1 = report["idf1"].as_f64().unwrap();
        assert!(
            idf1 >= 0.99,
            "{name}: IDF1 {idf1} against supervision: {report}"
        );
    }
}
