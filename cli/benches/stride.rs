//! The cost dial: what `stride` and `keyframes_only` save and what they keep. For bikes
//! (640×272, 250 frames) and a 1920×1080 copy of it, `argus detect` (this build, CPU) at
//! stride 1, 2, 4 and 8 and keyframes only: wall time, the detector's device-seconds per hour of
//! video (from the summary), and the share of stride 1's detections kept: matched, same class,
//! at IoU ≥ 0.5, by a detection or a predicted box of the same frame. Stride 1 is the baseline,
//! measured in the same run.
//!
//! It also times the tracking of the 1080p stride-1 result's own frames (the merge's
//! [`Tracks`], here alone) against that run's end-to-end wall time: issue 23 asks ≤ 2%.
//!
//! `cargo bench --workspace --bench stride` (a few minutes on 2 cores).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use argus_common::FrameDetections;
use argus_pipeline::tasks::Sampling;
use argus_processor::tracks::Tracks;
use serde_json::Value;

fn media(name: &str) -> PathBuf {
    argus_common::paths::media_dir().join(name)
}

fn detect(video: &Path, extra: &[&str], out: &Path) -> (f64, Value) {
    let started = Instant::now();
    let run = Command::new(env!("CARGO_BIN_EXE_argus"))
        .arg("detect")
        .arg(video)
        .args(["-q", "-o"])
        .arg(out)
        .args(extra)
        .env("ARGUS_DEVICE", "cpu")
        .output()
        .expect("run argus");
    let wall = started.elapsed().as_secs_f64();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    (
        wall,
        serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap(),
    )
}

/// Each frame's `(class, box)`.
type Boxes = Vec<Vec<(u64, [f64; 4])>>;

fn boxes(result: &Value) -> Boxes {
    result["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["detections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let b: Vec<f64> = d["box"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_f64().unwrap())
                        .collect();
                    (d["class_id"].as_u64().unwrap(), [b[0], b[1], b[2], b[3]])
                })
                .collect()
        })
        .collect()
}

fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Of `truth`'s detections, how many `got` has (greedy by IoU, same class, IoU ≥ 0.5).
fn kept(truth: &[Vec<(u64, [f64; 4])>], got: &[Vec<(u64, [f64; 4])>]) -> (usize, usize) {
    let (mut matched, mut total) = (0, 0);
    for (t, g) in truth.iter().zip(got) {
        total += t.len();
        let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
        for (i, (ct, bt)) in t.iter().enumerate() {
            for (j, (cg, bg)) in g.iter().enumerate() {
                let o = iou(bt, bg);
                if ct == cg && o >= 0.5 {
                    pairs.push((o, i, j));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (mut ti, mut gi) = (vec![false; t.len()], vec![false; g.len()]);
        for (_, i, j) in pairs {
            if !ti[i] && !gi[j] {
                ti[i] = true;
                gi[j] = true;
                matched += 1;
            }
        }
    }
    (matched, total)
}

/// Tracks the result's frames again (track ids removed): the time against `wall`.
fn tracking_share(result: &Value, wall: f64) -> String {
    let mut frames: Vec<FrameDetections> =
        serde_json::from_value(result["frames"].clone()).unwrap();
    for f in &mut frames {
        for d in &mut f.detections {
            d.track_id = None;
        }
    }
    let fps = result["video"]["fps"].as_f64().unwrap();
    let detections: usize = frames.iter().map(|f| f.detections.len()).sum();
    let rounds = 20;
    let started = Instant::now();
    for _ in 0..rounds {
        let mut tracks = Tracks::new(
            Tracks::params(fps, Sampling::Stride(1)),
            Sampling::Stride(1),
            None,
        );
        let mut ready = Vec::new();
        for f in frames.iter().cloned() {
            tracks.push(f, &mut ready);
            ready.clear();
        }
        std::hint::black_box(tracks.finish(&mut ready));
    }
    let seconds = started.elapsed().as_secs_f64() / rounds as f64;
    format!(
        "tracking the 1080p result ({} frames, {detections} detections): {:.2} ms, {:.3}% of its \
         {wall:.1} s end to end",
        frames.len(),
        seconds * 1000.0,
        100.0 * seconds / wall
    )
}

fn main() {
    let dir = std::env::temp_dir().join(format!("argus-bench-stride-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hd = dir.join("bikes-1080p.mp4");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(media("bikes.mp4"))
        .args([
            "-vf",
            "scale=1920:1080,setsar=1",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
        ])
        .arg(&hd)
        .status()
        .unwrap();
    assert!(status.success());
    println!(
        "| clip | sampling | frames detected | wall s | speed-up | device-s per video hour | stride-1 detections kept |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut share = String::new();
    for (name, video) in [
        ("bikes 640×272", media("bikes.mp4")),
        ("bikes 1920×1080", hd.clone()),
    ] {
        let mut baseline: Option<(f64, Boxes)> = None;
        for (label, args) in [
            ("stride 1", vec!["--stride", "1"]),
            ("stride 2", vec!["--stride", "2"]),
            ("stride 4", vec!["--stride", "4"]),
            ("stride 8", vec!["--stride", "8"]),
            ("keyframes only", vec!["--keyframes-only"]),
        ] {
            let out = dir.join(format!("{}.json", label.replace(' ', "-")));
            let (wall, result) = detect(&video, &args, &out);
            let s = &result["summary"];
            let got = boxes(&result);
            if label == "stride 1" && name.contains("1080") {
                share = tracking_share(&result, wall);
            }
            let (base_wall, truth) = baseline.get_or_insert_with(|| (wall, got.clone()));
            let (matched, total) = kept(truth, &got);
            println!(
                "| {name} | {label} | {} of {} | {wall:.1} | {:.2}× | {:.0} | {:.1}% ({matched} of {total}) |",
                s["frames_detected"],
                s["frames_processed"],
                *base_wall / wall,
                s["device_seconds_per_video_hour"].as_f64().unwrap(),
                100.0 * matched as f64 / total.max(1) as f64,
            );
        }
    }
    println!("\n{share}");
    let _ = std::fs::remove_dir_all(&dir);
}
