//! Tracking speed: ByteTrack over a synthetic scene of 20 moving objects per frame (10,000
//! frames; objects enter and leave, scores vary, boxes jitter), on one core, against the
//! reference (supervision's ByteTrack, PyPI) on the very same detections in the same run.
//!
//!     cargo bench --workspace --bench tracking
//!
//! Prints frames/s for both and their ratio; the goal is ≥ 20,000 frames/s here.

use std::io::Write;
use std::process::Command;
use std::time::Instant;

use argus_track::{ByteTrack, TrackerParams};

const FRAMES: usize = 10_000;
const OBJECTS: usize = 20;

/// A deterministic scene: each frame's boxes and scores.
fn scene() -> Vec<(Vec<[f32; 4]>, Vec<f32>)> {
    let mut seed = 7u64;
    let mut rand = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as f32 / (1u64 << 31) as f32
    };
    // Each object: start position, velocity, size, and a life of about 300 frames.
    let mut objects: Vec<[f32; 7]> = (0..OBJECTS)
        .map(|k| {
            [
                rand() * 1800.0,
                rand() * 1000.0,
                rand() * 6.0 - 3.0,
                rand() * 4.0 - 2.0,
                30.0 + rand() * 60.0,
                60.0 + rand() * 120.0,
                (k * 15) as f32,
            ]
        })
        .collect();
    (0..FRAMES)
        .map(|t| {
            let mut boxes = Vec::with_capacity(OBJECTS);
            let mut scores = Vec::with_capacity(OBJECTS);
            for o in objects.iter_mut() {
                let age = t as f32 - o[6];
                if age > 300.0 {
                    // Leaves; a new object enters elsewhere.
                    *o = [
                        rand() * 1800.0,
                        rand() * 1000.0,
                        rand() * 6.0 - 3.0,
                        rand() * 4.0 - 2.0,
                        30.0 + rand() * 60.0,
                        60.0 + rand() * 120.0,
                        t as f32,
                    ];
                }
                let age = t as f32 - o[6];
                let (x, y) = (
                    o[0] + o[2] * age + rand() * 2.0,
                    o[1] + o[3] * age + rand() * 2.0,
                );
                boxes.push([x, y, x + o[4], y + o[5]]);
                scores.push(0.15 + rand() * 0.8);
            }
            (boxes, scores)
        })
        .collect()
}

fn main() {
    let frames = scene();
    // Ours: best of 3.
    let mut best = f64::INFINITY;
    let mut tracked = 0usize;
    for _ in 0..3 {
        let mut tracker = ByteTrack::new(TrackerParams::default());
        let started = Instant::now();
        tracked = 0;
        for (boxes, scores) in &frames {
            tracked += tracker.update(boxes, scores).iter().flatten().count();
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    let ours = FRAMES as f64 / best;
    println!("argus-track: {FRAMES} frames × {OBJECTS} detections in {best:.3} s: {ours:.0} frames/s ({tracked} detections tracked)");

    // The reference on the same detections.
    let dir = std::env::temp_dir().join(format!("argus-track-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("scene.json");
    let json: Vec<serde_json::Value> = frames
        .iter()
        .map(|(b, s)| serde_json::json!({"boxes": b, "scores": s}))
        .collect();
    std::fs::File::create(&input)
        .unwrap()
        .write_all(serde_json::to_string(&json).unwrap().as_bytes())
        .unwrap();
    let python = std::env::var_os("ARGUS_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/argus/venv")
        })
        .join("bin/python");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/reference/bench_supervision.py"
    );
    let output = Command::new(python)
        .arg(script)
        .arg(&input)
        .output()
        .expect("the venv's python");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&output.stdout);
    let Some(theirs) = text.trim().parse::<f64>().ok() else {
        panic!(
            "the reference failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    println!("supervision ByteTrack (best of 3, same detections): {theirs:.0} frames/s");
    println!(
        "ratio: {:.1}x the reference; goal >= 20,000 frames/s: {}",
        ours / theirs,
        if ours >= 20_000.0 { "met" } else { "NOT met" }
    );
}
