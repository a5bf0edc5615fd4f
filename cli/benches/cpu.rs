//! CPU throughput against the strongest honest baseline (issue 12). Prints figures and ratios,
//! asserts nothing: `cargo bench -p argus --bench cpu` (scripts/bench.sh). One run, on this
//! machine, the sides interleaved, medians of `ARGUS_BENCH_REPS` (default 3):
//!
//! - the baseline: a plain Python loop over the same TorchScript file (cli/benches/
//!   python_baseline.py: OpenCV decode, NumPy letterbox, `torch.jit.load`, tcmalloc preloaded)
//!   at 1 and 2 threads × batch 1, 2, 4 in one process, and 2 processes × 1 thread together
//!   (aggregate frames/s of two videos at once); and a plain Rust loop (our decode, the
//!   letterbox in libtorch ops, then the model, one frame at a time, no pipeline), which also gives the
//!   per-stage profile: decode, RGB conversion, letterbox, forward, post-processing;
//! - `argus detect` (the release binary, defaults) on carphone (176×144), bikes (640×272) and
//!   1280×720 and 1920×1080 versions of bikes made here with ffmpeg, its frames/s over the best
//!   single-process baseline and over the two-process one, and its peak RSS; and the same with
//!   the opt-in `--fast-resize`;
//! - the detection-equality check: every frame's detections from `argus detect` against the
//!   pre-issue pipeline (the Rust loop: libtorch's float letterbox, the model's `forward` with its
//!   in-graph decoder): same labels, scores within 0.01, boxes within 1 px.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

mod support;

use argus_common::detection::Detection;
use argus_detector::preprocess::{letterbox_batch, letterbox_batch_torch};
use argus_detector::Registry;
use argus_media::{decode_chunk, plan_chunks, probe, MediaError, RgbConverter};
use tch::{CModule, Device, IValue, Kind};

const TCMALLOC: &str = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4";
/// Frames each baseline run covers (steady state; the whole video for argus detect).
const BASELINE_FRAMES: u32 = 100;

fn home() -> PathBuf {
    argus_common::paths::argus_home()
}

fn python() -> PathBuf {
    std::env::var("ARGUS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| home().join("venv"))
        .join("bin/python")
}

fn model_path() -> PathBuf {
    argus_common::paths::models_dir().join("coco-centernet.pt")
}

/// The sample videos, and bikes scaled to 720p and 1080p (made once, kept in $ARGUS_HOME/bench).
fn videos() -> Vec<(String, PathBuf)> {
    let media = argus_common::paths::media_dir();
    let mut videos = vec![
        (
            "carphone 176x144".to_string(),
            media.join("carphone_pristine.mp4"),
        ),
        ("bikes 640x272".to_string(), media.join("bikes.mp4")),
    ];
    for (w, h) in [(1280, 720), (1920, 1080)] {
        let path = home().join("bench").join(format!("bikes-{w}x{h}.mp4"));
        if !path.is_file() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let part = path.with_extension("part.mp4");
            let status = Command::new("ffmpeg")
                .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
                .arg(media.join("bikes.mp4"))
                .args([
                    "-vf",
                    &format!("scale={w}:{h}"),
                    "-c:v",
                    "libx264",
                    "-crf",
                    "18",
                ])
                .arg(&part)
                .status()
                .expect("ffmpeg");
            assert!(status.success());
            std::fs::rename(&part, &path).unwrap();
        }
        videos.push((format!("bikes {w}x{h}"), path));
    }
    videos
}

/// One run of the Python loop: frames/s.
fn python_loop(video: &Path, threads: u32, batch: u32) -> f64 {
    let out = python_command(video, threads, batch).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_fps(&out.stdout)
}

fn python_command(video: &Path, threads: u32, batch: u32) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python_baseline.py"))
        .arg(model_path())
        .arg(video)
        .args([
            threads.to_string(),
            batch.to_string(),
            BASELINE_FRAMES.to_string(),
        ])
        .env("LD_PRELOAD", TCMALLOC);
    cmd
}

fn parse_fps(stdout: &[u8]) -> f64 {
    let line: serde_json::Value = serde_json::from_slice(stdout).expect("one JSON line");
    line["fps"].as_f64().unwrap()
}

/// Two Python processes × 1 thread, each on the video at once: their frames/s together.
fn python_two_processes(video: &Path) -> f64 {
    let children: Vec<_> = (0..2)
        .map(|_| {
            python_command(video, 1, 1)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            parse_fps(&out.stdout)
        })
        .sum()
}

/// Seconds per stage of the plain Rust loop, and its frames/s.
#[derive(Default, Clone, Copy)]
struct Profile {
    frames: u64,
    decode: f64,
    convert: f64,
    letterbox: f64,
    forward: f64,
    post: f64,
    total: f64,
    /// Argus's CPU split: its letterbox (`resample`), the network alone (`heads`), its decoder.
    our_letterbox: f64,
    network: f64,
    our_decoder: f64,
}

/// Our decode, libtorch's letterbox, then the model one frame at a time on `threads` threads: what a
/// Rust user would write with tch, stage by stage, timed over the first `BASELINE_FRAMES`.
/// Every frame's detections by this path (the model's `forward` with its in-graph decoder,
/// the float letterbox: the pipeline as it was before issue 12) are the reference that
/// `argus detect` must reproduce. Off the clock, it also times what argus does instead: its
/// Rust letterbox (`resample`), `heads` (the network alone) and the Rust decoder.
fn rust_loop(video: &Path, threads: i32) -> (Profile, Vec<Vec<Detection>>) {
    tch::set_num_threads(threads);
    let spec = Registry::new(argus_common::paths::models_dir())
        .resolve("coco-centernet")
        .unwrap();
    let module = CModule::load_on_device(&spec.path, Device::Cpu).unwrap();
    let probed = probe(video).unwrap();
    let whole = plan_chunks(&probed.packets, u64::MAX)[0];
    let mut converter = RgbConverter::new(probed.info.rotation);
    let mut p = Profile::default();
    let mut reference = Vec::new();
    let started = Instant::now();
    let mut last = Instant::now();
    let pts = probed.chunk_pts(&whole);
    tch::no_grad(|| {
        // Warm-up, as the Python side does.
        let zeros = tch::Tensor::zeros([1, 512, 512, 3], (Kind::Float, Device::Cpu));
        for _ in 0..3 {
            let _ = module.forward_ts(&[&zeros]).unwrap();
            let _ = module.method_is("heads", &[IValue::Tensor(zeros.shallow_clone())]);
        }
        last = Instant::now();
        let mut paused = 0.0;
        let _ = decode_chunk::<MediaError>(video, &probed.info, &whole, pts, 1, &|| None, |f| {
            let timed = p.frames < BASELINE_FRAMES as u64;
            let t0 = Instant::now();
            let frame = converter.convert(f.video)?;
            let t1 = Instant::now();
            let (input, boxes) =
                letterbox_batch_torch(&[&frame], spec.input_width, spec.input_height, Device::Cpu)
                    .unwrap();
            let t2 = Instant::now();
            let output = module.forward_ts(&[&input]).unwrap().to_kind(Kind::Float);
            let t3 = Instant::now();
            let detections = spec
                .adapter
                .decode(&spec, &output, &boxes, spec.score_threshold)
                .unwrap();
            let t4 = Instant::now();
            reference.extend(detections);
            if timed {
                p.decode += (t0 - last).as_secs_f64();
                p.convert += (t1 - t0).as_secs_f64();
                p.letterbox += (t2 - t1).as_secs_f64();
                p.forward += (t3 - t2).as_secs_f64();
                p.post += (t4 - t3).as_secs_f64();
                p.frames += 1;
                p.total = (t4 - started).as_secs_f64() - paused;
                // Argus's split, off the clock: its letterbox, `heads`, its decoder.
                let ours =
                    letterbox_batch(&[&frame], spec.input_width, spec.input_height, Device::Cpu)
                        .unwrap();
                let _ = std::hint::black_box(ours);
                let t5 = Instant::now();
                let heads = module.method_is("heads", &[IValue::Tensor(input)]).unwrap();
                let t6 = Instant::now();
                let heads = argus_detector::model::tensors(heads);
                let k = output.size()[1] as usize;
                let ours = spec
                    .adapter
                    .decode_heads(&spec, &heads, k, &boxes, spec.score_threshold)
                    .unwrap();
                std::hint::black_box(ours);
                let t7 = Instant::now();
                p.our_letterbox += (t5 - t4).as_secs_f64();
                p.network += (t6 - t5).as_secs_f64();
                p.our_decoder += (t7 - t6).as_secs_f64();
                paused += (t7 - t4).as_secs_f64();
            }
            last = Instant::now();
            Ok(())
        })
        .unwrap();
    });
    (p, reference)
}

/// How `argus detect`'s detections compare with the reference, per the rule: the same
/// labels, scores within 0.01, boxes within 1 px. A detection may be missing on one side only
/// when its score is within 0.01 of the threshold (it may cross it by that much).
struct Equality {
    matched: usize,
    near_threshold: usize,
    unmatched: usize,
    score: f32,
    bbox: f32,
}

fn compare(reference: &[Vec<Detection>], result: &serde_json::Value, threshold: f32) -> Equality {
    let frames = result["frames"].as_array().expect("frames");
    let mut e = Equality {
        matched: 0,
        near_threshold: 0,
        unmatched: 0,
        score: 0.0,
        bbox: 0.0,
    };
    if frames.len() != reference.len() {
        e.unmatched = reference.len().abs_diff(frames.len()).max(1);
    }
    for (expected, frame) in reference.iter().zip(frames) {
        let got: Vec<Detection> =
            serde_json::from_value(frame["detections"].clone()).expect("detections");
        let mut taken = vec![false; got.len()];
        for want in expected {
            let found = got.iter().enumerate().position(|(i, d)| {
                !taken[i]
                    && d.label == want.label
                    && (d.score - want.score).abs() <= 0.01
                    && box_diff(d, want) <= 1.0
            });
            match found {
                Some(i) => {
                    taken[i] = true;
                    e.matched += 1;
                    e.score = e.score.max((got[i].score - want.score).abs());
                    e.bbox = e.bbox.max(box_diff(&got[i], want));
                }
                None if want.score < threshold + 0.01 => e.near_threshold += 1,
                None => e.unmatched += 1,
            }
        }
        for (d, taken) in got.iter().zip(taken) {
            if !taken {
                if d.score < threshold + 0.01 {
                    e.near_threshold += 1;
                } else {
                    e.unmatched += 1;
                }
            }
        }
    }
    e
}

fn box_diff(a: &Detection, b: &Detection) -> f32 {
    [
        (a.bbox.x1 - b.bbox.x1).abs(),
        (a.bbox.y1 - b.bbox.y1).abs(),
        (a.bbox.x2 - b.bbox.x2).abs(),
        (a.bbox.y2 - b.bbox.y2).abs(),
    ]
    .into_iter()
    .fold(0.0, f32::max)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let reps = support::reps();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    println!(
        "# Argus CPU throughput against a plain loop ({cores} cores, {reps} interleaved repetitions, medians; argus malloc: {})\n",
        argus_detector::allocator::name()
    );
    let configs: Vec<(u32, u32)> = [1, cores]
        .into_iter()
        .flat_map(|t| [1, 2, 4].map(|b| (t, b)))
        .collect();
    // ARGUS_BENCH_ONLY=1080 runs the videos whose name contains it.
    let only = std::env::var("ARGUS_BENCH_ONLY").unwrap_or_default();
    for (name, video) in videos().into_iter().filter(|(n, _)| n.contains(&only)) {
        let mut py: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
        let (mut two, mut argus, mut rss, mut rust) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut fast, mut fast_rss) = (Vec::new(), Vec::new());
        let mut fast_result = serde_json::Value::Null;
        let mut profile = Profile::default();
        let mut reference = Vec::new();
        let mut last_result = serde_json::Value::Null;
        for _ in 0..reps {
            for (i, (t, b)) in configs.iter().enumerate() {
                py[i].push(python_loop(&video, *t, *b));
            }
            two.push(python_two_processes(&video));
            let (p, r) = rust_loop(&video, cores as i32);
            rust.push(p.frames as f64 / p.total);
            (profile, reference) = (p, r);
            let d = support::argus_detect(&video, &[], &[]);
            argus.push(d.pipeline_fps);
            rss.push(d.peak_rss_mb);
            last_result = d.result;
            // The opt-in 8-bit resize while decoding (moves detections; reported, not a default).
            let f = support::argus_detect(&video, &["--fast-resize"], &[]);
            fast.push(f.pipeline_fps);
            fast_rss.push(f.peak_rss_mb);
            fast_result = f.result;
        }
        println!("## {name}\n");
        println!("| side | threads × batch | frames/s |");
        println!("|---|---|---|");
        let mut best = (0.0, String::new());
        for (i, (t, b)) in configs.iter().enumerate() {
            let fps = median(py[i].clone());
            println!("| Python loop | {t} × {b} | {fps:.1} |");
            if fps > best.0 {
                best = (fps, format!("Python {t} × {b}"));
            }
        }
        let rust_fps = median(rust);
        println!("| Rust loop (tch) | {cores} × 1 | {rust_fps:.1} |");
        if rust_fps > best.0 {
            best = (rust_fps, format!("Rust {cores} × 1"));
        }
        let two = median(two);
        println!("| Python, 2 processes | 1 × 1 each | {two:.1} (together) |");
        let argus = median(argus);
        println!("| **argus detect** | defaults | **{argus:.1}** |");
        let fast = median(fast);
        println!("| argus detect --fast-resize | opt-in | {fast:.1} |");
        println!(
            "\nratio to the best single process ({}): **{:.2}×** (goal ≥ 1.15); to two processes: **{:.2}×** (goal ≥ 1.0); peak RSS {:.0} MB",
            best.1,
            argus / best.0,
            argus / two,
            median(rss)
        );
        println!(
            "with --fast-resize: {:.2}× and {:.2}×, peak RSS {:.0} MB\n",
            fast / best.0,
            fast / two,
            median(fast_rss)
        );
        let p = profile;
        let ms = |s: f64| 1000.0 * s / p.frames.max(1) as f64;
        println!(
            "stages of the Rust loop, ms per frame: decode {:.2}, RGB conversion {:.2}, letterbox and tensor {:.2}, forward with the in-graph decoder {:.2}, post-processing (threshold, NMS, mapping) {:.2}; argus's own: letterbox {:.2}, network {:.2} + Rust decoder {:.2}\n",
            ms(p.decode),
            ms(p.convert),
            ms(p.letterbox),
            ms(p.forward),
            ms(p.post),
            ms(p.our_letterbox),
            ms(p.network),
            ms(p.our_decoder)
        );
        let threshold = argus_detector::Registry::new(argus_common::paths::models_dir())
            .resolve("coco-centernet")
            .unwrap()
            .score_threshold;
        let e = compare(&reference, &last_result, threshold);
        println!(
            "detections against the reference (model forward + in-graph decoder, pre-issue pipeline), all {} frames: {} — {} matched (score max |diff| {:.1e}, box max |diff| {:.1e} px), {} within 0.01 of the threshold on one side only, {} unmatched\n",
            reference.len(),
            if e.unmatched == 0 { "**PASS**" } else { "**FAIL**" },
            e.matched,
            e.score,
            e.bbox,
            e.near_threshold,
            e.unmatched
        );
        let e = compare(&reference, &fast_result, threshold);
        println!(
            "with --fast-resize: {} matched within tolerance (score max |diff| {:.1e}), {} within 0.01 of the threshold on one side only, {} out of tolerance\n",
            e.matched, e.score, e.near_threshold, e.unmatched
        );
    }
}
