//! What the benchmarks share: running the release `argus detect` as a user does.

#![allow(dead_code)] // each benchmark reads its own subset of the figures

use std::path::Path;
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
