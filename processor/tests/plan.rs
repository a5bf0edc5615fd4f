//! Plans of real files, as the processor makes them (probe + plan), checked the way a detector
//! checks the chunk it is sent: no plan may hold a chunk a detector refuses, and planning is
//! quick whatever the keyframes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_common::limits::MAX_CHUNK_FRAMES;
use argus_common::Limits;
use argus_pipeline::tasks::{DetectFrames, VideoOptions};
use argus_processor::split_video;

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("argus-plan-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `frames` frames of 64x64 test pattern, a keyframe every `gop` frames exactly.
fn encode(path: &Path, frames: u64, gop: u64) {
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=64x64:rate=30")
        .args([
            "-frames:v",
            &frames.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args(["-g", &gop.to_string(), "-keyint_min", &gop.to_string()])
        .args(["-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p"])
        .arg(path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
}

/// The plan's chunks as the detector validates them.
fn assert_detectable(path: &Path, chunk_size: u64, frames: u64) -> usize {
    let limits = Limits::default();
    let plan = split_video(path, chunk_size, &limits, None).unwrap();
    assert_eq!(plan.info.frame_count, frames);
    let mut next = 0;
    for chunk in &plan.chunks {
        assert_eq!(chunk.first_frame, next);
        assert!(
            chunk.frame_count <= chunk_size,
            "{chunk:?} past {chunk_size}"
        );
        next += chunk.frame_count;
        let task = DetectFrames {
            video_id: "v".into(),
            chord_id: "c".into(),
            video: plan.info.clone(),
            chunk: *chunk,
            chunks: plan.chunks.len() as u32,
            pts: plan.chunk_pts(chunk).to_vec(),
            options: VideoOptions::default(),
        };
        task.validate(&limits)
            .unwrap_or_else(|e| panic!("chunk {}: {e}", chunk.index));
    }
    assert_eq!(next, frames);
    plan.chunks.len()
}

/// The largest chunk size the API documents, on a video whose keyframe nearest the first cut
/// lies past it (10,020): the plan used to snap to it and the detector refused the chunk.
#[test]
fn the_largest_documented_chunk_size_plans_detectable_chunks() {
    let dir = scratch("cap");
    let path = dir.join("long-gop.mp4");
    encode(&path, 20_040, 60);
    assert_eq!(MAX_CHUNK_FRAMES, 10_000);
    let chunks = assert_detectable(&path, MAX_CHUNK_FRAMES, 20_040);
    assert_eq!(chunks, 3); // 9,960 + 9,960 + 120, each cut on a keyframe
    let _ = std::fs::remove_dir_all(dir);
}

/// All-intra, one frame per chunk: planning 100,000 chunks takes well under a second (it used
/// to compare every keyframe with every cut).
#[test]
fn an_all_intra_video_plans_one_frame_chunks_quickly() {
    let dir = scratch("intra");
    let path = dir.join("all-intra.mp4");
    encode(&path, 100_000, 1);
    let indexing = Instant::now();
    let probed = argus_media::probe_with(&path, &Limits::default()).unwrap();
    let indexed = indexing.elapsed();
    let started = Instant::now();
    let chunks = argus_media::plan_chunks(&probed.packets, 1);
    let took = started.elapsed();
    eprintln!(
        "indexed in {indexed:?}, planned {} chunks in {took:?}",
        chunks.len()
    );
    assert_eq!(chunks.len(), 100_000);
    assert!(took < Duration::from_secs(1), "{took:?}");

    // Indexing is the long part of a split, and it stops when told to (a task past its time
    // limit, a worker shutting down): a flag raised an eighth of the way in ends it.
    let stop = Arc::new(AtomicBool::new(false));
    let raise = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(indexed / 8);
            stop.store(true, Ordering::Relaxed);
        })
    };
    let started = Instant::now();
    let split = split_video(&path, 1, &Limits::default(), Some(stop));
    let took = started.elapsed();
    raise.join().unwrap();
    assert!(
        matches!(split, Err(argus_media::MediaError::Stopped(_))),
        "{:?}",
        split.map(|p| p.chunks.len())
    );
    assert!(
        took < indexed * 3 / 4,
        "stopped after {took:?} of {indexed:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
