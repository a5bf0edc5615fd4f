//! Benchmark of the distributed path: prints figures, asserts nothing.
//! `cargo bench --workspace --bench distributed` (scripts/bench.sh runs it too).
//!
//! In one run, on one video: `argus detect` (embedded) against one processor + 1 or 2 detector
//! processes on RabbitMQ + Redis (started here, on loopback). For each: wall time from sending
//! `process_video` to its result, where the time went (split / detect / merge, from the video's
//! state changes), and each worker's peak resident memory (VmHWM). Workers are started and
//! warmed up (one small video) before the clock starts; each side runs the video
//! `ARGUS_BENCH_REPS` times (default 3) and its median run is reported.

use argus_pipeline::store::RunStore;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use argus_common::state::VideoStatus;
use argus_pipeline::tasks::{ProcessVideo, PROCESSOR_QUEUE};
use argus_queue::backend::Backend;
use argus_queue::broker::Broker;
use argus_queue::message::TaskMessage;
use argus_testkit::{RabbitServer, RedisServer};

mod support;

struct Stages {
    total: f64,
    split: f64,
    detect: f64,
    merge: f64,
}

/// Sends process_video for `id` and follows its state until it succeeds.
async fn run_video(broker: &Broker, backend: &Backend, id: &str) -> Stages {
    let task = TaskMessage::new(&ProcessVideo {
        video_id: id.to_string(),
        options: Default::default(),
    });
    let started = Instant::now();
    broker.send(PROCESSOR_QUEUE, &task).await.unwrap();
    let (mut detecting, mut merging) = (None, None);
    loop {
        if let Some(state) = backend.get_state(id).await.unwrap() {
            let now = started.elapsed().as_secs_f64();
            match state.status {
                VideoStatus::Detecting if detecting.is_none() => detecting = Some(now),
                VideoStatus::Merging if merging.is_none() => merging = Some(now),
                VideoStatus::Succeeded => {
                    let (d, m) = (detecting.unwrap_or(0.0), merging.unwrap_or(now));
                    return Stages {
                        total: now,
                        split: d,
                        detect: m - d,
                        merge: now - m,
                    };
                }
                VideoStatus::Failed => panic!("video failed: {:?}", state.error),
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn spawn(
    name: &str,
    rabbit: &RabbitServer,
    redis: &RedisServer,
    storage: &Path,
    threads: Option<usize>,
) -> Child {
    let mut cmd = Command::new(support::binary(name));
    if let Some(threads) = threads {
        cmd.env("ARGUS_TORCH_THREADS", threads.to_string());
    }
    cmd.env("ARGUS_BROKER_URL", rabbit.url())
        .env("ARGUS_RESULT_BACKEND", redis.url())
        .env("ARGUS_STORAGE_DIR", storage)
        .env("ARGUS_DEVICE", "cpu")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("worker binary (cargo build --release --workspace)")
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let video = argus_common::paths::media_dir().join("bikes.mp4");
    let warmup = argus_common::paths::media_dir().join("carphone_pristine.mp4");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    println!("# Distributed path against embedded ({cores} cores, CPU, bikes.mp4, 250 frames)\n");

    let reps = support::reps();
    // Embedded: the same video through `argus detect` (process start and model load included).
    let mut runs: Vec<(f64, f64)> = (0..reps)
        .map(|_| {
            let run = support::argus_detect(&video, &[], &[]);
            (
                run.result["summary"]["wall_time_s"].as_f64().unwrap(),
                run.wall_s,
            )
        })
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (embedded, embedded_process) = runs[runs.len() / 2];
    println!("embedded `argus detect` (median of {reps}): pipeline {embedded:.2} s ({:.1} frames/s), whole process {embedded_process:.2} s\n", 250.0 / embedded);

    println!("| detectors x torch threads | total s (median of {reps}) | frames/s | overhead vs embedded | split s | detect s | merge s | peak RSS MB (processor; detectors) |");
    println!("|---|---|---|---|---|---|---|---|");
    // A detector given its threads runs one replica; without, one per core, 1 thread each.
    for (detectors, threads) in [(1, Some(cores)), (1, None), (2, Some(cores / 2))] {
        let (rabbit, redis) = (RabbitServer::start(), RedisServer::start());
        let storage = std::env::temp_dir().join(format!(
            "argus-bench-dist-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let mut workers = vec![spawn("argus-processor", &rabbit, &redis, &storage, Some(1))];
        workers.extend(
            (0..detectors).map(|_| spawn("argus-detector", &rabbit, &redis, &storage, threads)),
        );
        let broker = Broker::connect(&rabbit.url(), 1).await.unwrap();
        let backend = Backend::connect(&redis.url()).await.unwrap();
        let warm = support::store_video(&storage, &warmup);
        run_video(&broker, &backend, &warm).await;
        let mut runs = Vec::new();
        for _ in 0..reps {
            let id = support::store_video(&storage, &video);
            runs.push(run_video(&broker, &backend, &id).await);
        }
        runs.sort_by(|a, b| a.total.total_cmp(&b.total));
        let s = &runs[runs.len() / 2];
        let rss: Vec<String> = workers
            .iter()
            .map(|w| format!("{:.0}", support::peak_rss_mb(w.id())))
            .collect();
        let threads = threads.map_or(format!("{cores} replicas × 1 (default)"), |t| {
            t.to_string()
        });
        println!(
            "| {detectors} x {threads} | {:.2} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {}; {} |",
            s.total,
            250.0 / s.total,
            s.total / embedded,
            s.split,
            s.detect,
            s.merge,
            rss[0],
            rss[1..].join(", ")
        );
        for w in workers.iter_mut() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = std::fs::remove_dir_all(&storage);
    }

    // Frames never travel through the broker: a detect_frames message carries a reference.
    let probe = argus_media::probe(&video).unwrap();
    let chunk = argus_media::plan_chunks(&probe.packets, 64)[1];
    let message = TaskMessage::new(&argus_pipeline::tasks::DetectFrames {
        video_id: uuid::Uuid::new_v4().to_string(),
        chord_id: uuid::Uuid::new_v4().to_string(),
        video: probe.info.clone(),
        chunk,
        chunks: 4,
        pts: probe.chunk_pts(&chunk).to_vec(),
        options: Default::default(),
    });
    println!(
        "\na detect_frames message body: {} bytes (64 frames by reference, their timestamps listed)",
        message.to_celery().raw_body.len()
    );
}
