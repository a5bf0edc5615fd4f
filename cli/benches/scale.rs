//! The scale benchmark (issue 20.6): the platform's own cost, with a model that costs almost
//! nothing (`bench-null`: coco-centernet's interface, no real compute; never a default).
//! `cargo bench --workspace --bench scale` (scripts/bench.sh runs it too); prints figures,
//! asserts nothing.
//!
//! One processor and `ARGUS_SCALE_DETECTORS` (8) detector processes on RabbitMQ + Redis
//! (started here, on loopback), `ARGUS_SCALE_CHUNK` frames per chunk (the default rule when
//! unset):
//! - phase A, one long synthetic video (`ARGUS_SCALE_FRAMES`, 300,000 frames of 64x64): frames/s
//!   against FFmpeg's decode-only speed on the same file (its best configuration: all cores);
//! - phase B, 200 short videos (60 frames) sent at once, and one more sent after them whose time
//!   from sending to result is the latency a user sees under that load.
//!
//! For each phase: broker messages per 1,000 frames (RabbitMQ's own global counters: published,
//! delivered), Redis commands per 1,000 frames (`total_commands_processed`), Redis's peak memory
//! (sampled `used_memory`), and each worker's peak RSS. Then the capacity model those figures
//! give at 1,000,000 frames/s (docs/performance.md).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_pipeline::tasks::{ProcessVideo, PROCESSOR_QUEUE};
use argus_queue::backend::Backend;
use argus_queue::broker::Broker;
use argus_queue::message::TaskMessage;
use argus_testkit::{RabbitServer, RedisServer};

mod support;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A synthetic clip of `frames` 64x64 frames (a keyframe every 250), kept between runs.
fn synthetic(frames: u64) -> PathBuf {
    let dir = argus_common::paths::argus_home().join("bench-media");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("testsrc-64-{frames}.mp4"));
    if !path.is_file() {
        let part = dir.join(format!("testsrc-64-{frames}.part.mp4"));
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i"])
            .arg("testsrc=size=64x64:rate=30")
            .args(["-frames:v", &frames.to_string()])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "250"])
            .args(["-pix_fmt", "yuv420p"])
            .arg(&part)
            .status()
            .expect("ffmpeg");
        assert!(status.success());
        std::fs::rename(&part, &path).unwrap();
    }
    path
}

/// FFmpeg decoding the file to nothing, as fast as it can (its own thread choice): frames/s.
fn ffmpeg_decode_fps(video: &Path, frames: u64) -> f64 {
    let started = Instant::now();
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-i"])
        .arg(video)
        .args(["-f", "null", "-"])
        .status()
        .expect("ffmpeg");
    assert!(status.success());
    frames as f64 / started.elapsed().as_secs_f64()
}

fn spawn(
    name: &str,
    rabbit: &RabbitServer,
    redis: &RedisServer,
    storage: &Path,
    chunk: Option<u64>,
) -> Child {
    let mut cmd = Command::new(support::binary(name));
    if let Some(chunk) = chunk {
        cmd.env("ARGUS_CHUNK_SIZE", chunk.to_string());
    }
    cmd.env("ARGUS_BROKER_URL", rabbit.url())
        .env("ARGUS_RESULT_BACKEND", redis.url())
        .env("ARGUS_STORAGE_DIR", storage)
        .env("ARGUS_DEVICE", "cpu")
        .env("ARGUS_TORCH_THREADS", "1")
        .env("ARGUS_MODEL", "bench-null")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("worker binary (cargo build --release --workspace)")
}

/// Redis's `INFO` field `name`.
async fn redis_info(conn: &mut redis::aio::MultiplexedConnection, name: &str) -> u64 {
    let info: String = redis::cmd("INFO").query_async(conn).await.unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// What the servers counted over a phase.
struct Counts {
    published: u64,
    delivered: u64,
    redis_commands: u64,
}

async fn counts(rabbit: &RabbitServer, conn: &mut redis::aio::MultiplexedConnection) -> Counts {
    let c = rabbit.counters();
    Counts {
        published: c.get("messages_received_total").copied().unwrap_or(0),
        delivered: c.get("messages_delivered_total").copied().unwrap_or(0),
        redis_commands: redis_info(conn, "total_commands_processed").await,
    }
}

/// Samples Redis's `used_memory` until stopped: the peak, in bytes.
fn sample_redis_memory(url: String) -> (Arc<AtomicU64>, tokio::sync::watch::Sender<bool>) {
    let peak = Arc::new(AtomicU64::new(0));
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let seen = peak.clone();
    tokio::spawn(async move {
        let client = redis::Client::open(url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        loop {
            let used = redis_info(&mut conn, "used_memory").await;
            seen.fetch_max(used, Ordering::Relaxed);
            tokio::select! {
                _ = stopped.changed() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    });
    (peak, stop)
}

async fn wait_success(backend: &Backend, task_id: &str) -> serde_json::Value {
    loop {
        if let Some(meta) = backend.get_result(task_id).await.unwrap() {
            match meta["status"].as_str() {
                Some("SUCCESS") => return meta,
                Some("FAILURE") | Some("REVOKED") => panic!("{task_id}: {meta}"),
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn send(broker: &Broker, id: &str) -> String {
    let task = TaskMessage::new(&ProcessVideo {
        video_id: id.to_string(),
        options: Default::default(),
    });
    broker.send(PROCESSOR_QUEUE, &task).await.unwrap();
    task.id
}

struct Phase {
    name: String,
    frames: u64,
    wall_s: f64,
    chunks: u64,
    before: Counts,
    after: Counts,
    redis_peak: u64,
}

impl Phase {
    fn per_1000(&self, n: u64) -> f64 {
        n as f64 * 1000.0 / self.frames as f64
    }

    fn row(&self, reference_fps: Option<f64>) -> String {
        let fps = self.frames as f64 / self.wall_s;
        format!(
            "| {} | {} | {} | {:.1} | {:.0} | {} | {:.2} | {:.2} | {:.1} | {:.1} |",
            self.name,
            self.frames,
            self.chunks,
            self.wall_s,
            fps,
            reference_fps.map_or("–".to_string(), |r| format!("{:.0} ({:.2}×)", r, fps / r)),
            self.per_1000(self.after.published - self.before.published),
            self.per_1000(self.after.delivered - self.before.delivered),
            self.per_1000(self.after.redis_commands - self.before.redis_commands),
            self.redis_peak as f64 / 1048576.0,
        )
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let long_frames = env_or("ARGUS_SCALE_FRAMES", 300_000);
    let detectors = env_or("ARGUS_SCALE_DETECTORS", 8) as usize;
    let chunk = std::env::var("ARGUS_SCALE_CHUNK")
        .ok()
        .and_then(|c| c.parse().ok());
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let long = synthetic(long_frames);
    let short = synthetic(60);
    let ffmpeg_fps = ffmpeg_decode_fps(&long, long_frames);

    let (rabbit, redis) = (RabbitServer::start(), RedisServer::start());
    let storage = std::env::temp_dir().join(format!(
        "argus-bench-scale-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut workers = vec![spawn("argus-processor", &rabbit, &redis, &storage, chunk)];
    workers
        .extend((0..detectors).map(|_| spawn("argus-detector", &rabbit, &redis, &storage, chunk)));
    let broker = Broker::connect(&rabbit.url(), 1).await.unwrap();
    let backend = Backend::connect(&redis.url()).await.unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // Warm up: every detector loads its model.
    for _ in 0..2 {
        let id = support::store_video(&storage, &short);
        wait_success(&backend, &send(&broker, &id).await).await;
    }
    println!(
        "# Scale: 1 processor + {detectors} detectors (bench-null, 1 thread each) on {cores} cores, RabbitMQ + Redis on loopback, chunk size {}\n",
        chunk.map_or("by the default rule".to_string(), |c| c.to_string())
    );
    println!("| phase | frames | chunks | wall s | frames/s | FFmpeg decode-only frames/s (ratio) | broker msgs published /1000 frames | delivered /1000 frames | Redis commands /1000 frames | Redis peak MB |");
    println!("|---|---|---|---|---|---|---|---|---|---|");

    // Phase A: one long video.
    let id = support::store_video(&storage, &long);
    let before = counts(&rabbit, &mut conn).await;
    let (peak, stop) = sample_redis_memory(redis.url());
    let started = Instant::now();
    let meta = wait_success(&backend, &send(&broker, &id).await).await;
    let wall_s = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let long_phase = Phase {
        name: "A: one long video".into(),
        frames: long_frames,
        wall_s,
        chunks: meta["result"]["summary"]["chunks"].as_u64().unwrap_or(0),
        before,
        after: counts(&rabbit, &mut conn).await,
        redis_peak: peak.load(Ordering::Relaxed),
    };
    let stored_as = meta["result"]["result_stored_as"]
        .as_str()
        .map(str::to_string);
    println!("{}", long_phase.row(Some(ffmpeg_fps)));

    // Phase B: 200 short videos at once, then one more: its latency under that load.
    let ids: Vec<String> = (0..200)
        .map(|_| support::store_video(&storage, &short))
        .collect();
    let probe = support::store_video(&storage, &short);
    let before = counts(&rabbit, &mut conn).await;
    let (peak, stop) = sample_redis_memory(redis.url());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for id in &ids {
        tasks.push(send(&broker, id).await);
    }
    let probe_sent = Instant::now();
    let probe_task = send(&broker, &probe).await;
    wait_success(&backend, &probe_task).await;
    let probe_latency = probe_sent.elapsed().as_secs_f64();
    let mut chunks = 0;
    for task in &tasks {
        chunks += wait_success(&backend, task).await["result"]["summary"]["chunks"]
            .as_u64()
            .unwrap_or(0);
    }
    let wall_s = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let short_phase = Phase {
        name: "B: 200 short videos at once".into(),
        frames: 201 * 60,
        wall_s,
        chunks,
        before,
        after: counts(&rabbit, &mut conn).await,
        redis_peak: peak.load(Ordering::Relaxed),
    };
    println!("{}", short_phase.row(None));
    let rss: Vec<f64> = workers
        .iter()
        .map(|w| support::peak_rss_mb(w.id()))
        .collect();
    let detector_max = rss[1..].iter().copied().fold(0.0, f64::max);
    println!(
        "\npeak RSS: processor {:.0} MB, detectors up to {detector_max:.0} MB; the short video sent after the 200 took {probe_latency:.2} s from send to result; the long video's Celery result: {}",
        rss[0],
        stored_as.map_or("the whole document".to_string(), |p| format!("its summary and a reference ({p})"))
    );

    // The capacity model: what 1,000,000 frames/s across a cluster asks of one broker and one
    // Redis, from the per-frame costs just measured.
    println!("\n## At 1,000,000 frames/s (from the figures above)\n");
    println!("| workload | broker msgs/s (published + delivered) | Redis commands/s |");
    println!("|---|---|---|");
    for phase in [&long_phase, &short_phase] {
        let msgs = phase.per_1000(phase.after.published - phase.before.published)
            + phase.per_1000(phase.after.delivered - phase.before.delivered);
        let redis = phase.per_1000(phase.after.redis_commands - phase.before.redis_commands);
        println!(
            "| like {} | {:.0} | {:.0} |",
            phase.name,
            msgs * 1000.0,
            redis * 1000.0
        );
    }

    for w in workers.iter_mut() {
        let _ = w.kill();
        let _ = w.wait();
    }
    let _ = std::fs::remove_dir_all(&storage);
}
