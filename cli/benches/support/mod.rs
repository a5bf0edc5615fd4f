//! What the benchmarks share: running the release `argus detect` as a user does.

#![allow(dead_code)] // each benchmark reads its own subset of the figures

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub struct Run {
    pub frames: u64,
    pub wall_s: f64,
    pub pipeline_fps: f64,
    pub peak_rss_mb: f64,
    /// The result file, as written.
    pub result: serde_json::Value,
}

/// Interleaved repetitions per side: `ARGUS_BENCH_REPS`, default 3.
pub fn reps() -> usize {
    std::env::var("ARGUS_BENCH_REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1)
}

/// Runs the release `argus detect` on `video` and reads its result and peak memory.
pub fn argus_detect(video: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = std::env::temp_dir().join(format!("argus-bench-{}.json", std::process::id()));
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%M"]).arg(env!("CARGO_BIN_EXE_argus"));
    cmd.args(["detect", "-q", "--device", "cpu", "-o"])
        .arg(&out)
        .arg(video)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = Instant::now();
    let output = cmd.output().expect("run argus under /usr/bin/time");
    let wall_s = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "argus failed: {stderr}");
    let peak_kb: f64 = stderr
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(f64::NAN);
    let result: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    Run {
        frames: result["summary"]["frames_processed"].as_u64().unwrap(),
        wall_s,
        pipeline_fps: result["summary"]["frames_per_second"].as_f64().unwrap(),
        peak_rss_mb: peak_kb / 1024.0,
        result,
    }
}

/// A sibling binary of `argus` in this build.
pub fn binary(name: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_argus")).with_file_name(name)
}

/// Copies `source` into storage as a new video; its id.
pub fn store_video(storage: &Path, source: &Path) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::create_dir_all(storage.join("videos")).unwrap();
    std::fs::copy(source, storage.join(format!("videos/{id}.mp4"))).unwrap();
    id
}

/// A process's peak resident memory (VmHWM), MB.
pub fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .map(|kb| kb.parse::<f64>().unwrap_or(0.0) / 1024.0)
            })
        })
        .unwrap_or(f64::NAN)
}
