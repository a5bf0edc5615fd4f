//! The distributed path end to end: real RabbitMQ and Redis servers, one argus-processor and
//! two argus-detector processes, videos sent as Celery tasks (from Rust and from Python's
//! Celery), results read from the Celery result backend.

mod common;

use argus_pipeline::store::RunStore;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use argus_common::state::VideoStatus;
use argus_pipeline::run::{cancel_video, Cancelled};
use argus_pipeline::tasks::{ProcessVideo, VideoOptions, PROCESSOR_QUEUE};
use argus_queue::backend::Backend;
use argus_queue::broker::Broker;
use argus_queue::message::TaskMessage;
use argus_testkit::{RabbitServer, RedisServer};
use common::api::ApiProcess;
use common::workers::{python, spawn_worker, spawn_worker_with, store_video, wait_exit, Workers};
use common::{embedded_frames, media, scratch, text};
use serde_json::Value;

async fn wait_final(backend: &Backend, task_id: &str, timeout: Duration) -> Value {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Some(meta) = backend.get_result(task_id).await.unwrap() {
            if meta["status"] == "SUCCESS" || meta["status"] == "FAILURE" {
                return meta;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("task {task_id} did not finish within {timeout:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn videos_through_separate_workers_match_the_embedded_run() {
    let (rabbit, redis) = (RabbitServer::start(), RedisServer::start());
    let storage = scratch("storage");
    let broken = storage.join("notes.mp4");
    std::fs::write(&broken, "not a video\n".repeat(100)).unwrap();
    let broken_id = store_video(&storage, &broken);
    let good_id = store_video(&storage, &media("carphone_pristine.mp4"));
    let workers = Workers::start(&rabbit, &redis, &storage, 2, 32);

    let broker = Broker::connect(&rabbit.url(), 1).await.unwrap();
    let backend = Backend::connect(&redis.url()).await.unwrap();
    let bad_task = TaskMessage::new(&ProcessVideo {
        video_id: broken_id.clone(),
        options: VideoOptions::default(),
    });
    let good_task = TaskMessage::new(&ProcessVideo {
        video_id: good_id.clone(),
        options: VideoOptions::default(),
    });
    broker.send(PROCESSOR_QUEUE, &bad_task).await.unwrap();
    broker.send(PROCESSOR_QUEUE, &good_task).await.unwrap();

    // The corrupt upload fails alone, with a reason.
    let failed = wait_final(&backend, &bad_task.id, Duration::from_secs(60)).await;
    assert_eq!(failed["status"], "FAILURE");
    let state = backend.get_state(&broken_id).await.unwrap().unwrap();
    assert_eq!(state.status, VideoStatus::Failed);
    assert!(
        state.error.as_deref().unwrap().contains("cannot open"),
        "{state:?}"
    );

    // The good one: the whole video's result under process_video's id.
    let done = wait_final(&backend, &good_task.id, Duration::from_secs(300)).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    let frames = done["result"]["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 120);
    assert_eq!(done["result"]["summary"]["chunks"], 4);
    let state = backend.get_state(&good_id).await.unwrap().unwrap();
    assert_eq!(
        (state.status, state.chunks_done, state.chunks_total),
        (VideoStatus::Succeeded, 4, 4)
    );
    assert!(storage.join(format!("results/{good_id}.json")).is_file());

    // Same detections as one process running the same model on the same video.
    let reference = embedded_frames(&media("carphone_pristine.mp4"), &["--threads", "1"]);
    assert_eq!(frames.len(), reference.len());
    for (got, want) in frames.iter().zip(&reference) {
        assert_eq!(got["index"], want["index"]);
        let (g, w) = (
            got["detections"].as_array().unwrap(),
            want["detections"].as_array().unwrap(),
        );
        assert_eq!(g.len(), w.len(), "frame {}", got["index"]);
        for (a, b) in g.iter().zip(w) {
            assert_eq!(a["label"], b["label"]);
            assert!((a["score"].as_f64().unwrap() - b["score"].as_f64().unwrap()).abs() < 1e-4);
        }
    }

    // A Python Celery client sends process_video and reads the final result.
    let again = store_video(&storage, &media("carphone_pristine.mp4"));
    let python = std::env::var("ARGUS_VENV")
        .map(|v| PathBuf::from(v).join("bin/python"))
        .unwrap_or_else(|_| argus_common::paths::argus_home().join("venv/bin/python"));
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/celery_client.py");
    let out = tokio::process::Command::new(python)
        .arg(client)
        .args([rabbit.url(), redis.url(), again])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout)
            .trim()
            .ends_with("frames=120 person_frames=120"),
        "{}",
        text(&out.stdout)
    );

    workers.stop();
}

/// The first `frames` frames of bikes.mp4 re-encoded with a keyframe every 8 (many small
/// chunks), plus `extra` encoder options, as `clip.mp4` in `storage`.
fn bikes_clip(storage: &Path, frames: u32, extra: &[&str]) -> PathBuf {
    let clip = storage.join("clip.mp4");
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(media("bikes.mp4"))
        .args([
            "-frames:v",
            &frames.to_string(),
            "-c:v",
            "libx264",
            "-g",
            "8",
        ])
        .args(extra)
        .args(["-pix_fmt", "yuv420p"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(status.success());
    clip
}

/// Invariant 2 under fire: detectors and the processor are killed (SIGKILL) at random moments,
/// again and again, while several videos run. Every video completes, every frame once, and the
/// results equal an undisturbed run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_kill_9_of_workers_with_nothing_lost_or_doubled() {
    let (rabbit, redis) = (RabbitServer::start(), RedisServer::start());
    let storage = scratch("storage-kill");
    // Short clips keep the test quick; B-frames and a short GOP make many small chunks.
    let clip = bikes_clip(&storage, 48, &["-bf", "2"]);
    let reference = embedded_frames(&clip, &["--threads", "1"]);

    let ids: Vec<String> = (0..3).map(|_| store_video(&storage, &clip)).collect();
    // A kill every 2 s catches the same chunk in several crashes: far more than the start cap
    // (meant for a message that kills its worker every time) is sized for. Lift it here.
    let no_cap = [("ARGUS_MAX_STARTS", "1000")];
    let mut workers = Workers::start_with(&rabbit, &redis, &storage, 2, 8, &no_cap);
    let broker = Broker::connect(&rabbit.url(), 1).await.unwrap();
    let backend = Backend::connect(&redis.url()).await.unwrap();
    let tasks: Vec<TaskMessage> = ids
        .iter()
        .map(|id| {
            TaskMessage::new(&ProcessVideo {
                video_id: id.clone(),
                options: VideoOptions::default(),
            })
        })
        .collect();
    for task in &tasks {
        broker.send(PROCESSOR_QUEUE, task).await.unwrap();
    }

    // Chaos: every 1.5-3 s kill one worker (a detector mostly, the processor sometimes) with
    // SIGKILL and start a new one in its place, until every video is done.
    let started = Instant::now();
    let mut kills = 0;
    let mut rng = uuid::Uuid::new_v4().as_u128();
    loop {
        let mut done = 0;
        for task in &tasks {
            if let Some(meta) = backend.get_result(&task.id).await.unwrap() {
                assert_ne!(meta["status"], "FAILURE", "{meta}");
                done += (meta["status"] == "SUCCESS") as usize;
            }
        }
        if done == tasks.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(420),
            "videos not done: {done}/3 after {kills} kills"
        );
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        tokio::time::sleep(Duration::from_millis(1500 + (rng >> 64) as u64 % 1500)).await;
        let victim = if kills % 4 == 3 {
            0
        } else {
            1 + (rng >> 100) as usize % 2
        };
        let child = &mut workers.0[victim];
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let name = if victim == 0 {
            "argus-processor"
        } else {
            "argus-detector"
        };
        workers.0[victim] = spawn_worker_with(name, &rabbit, &redis, &storage, 8, &no_cap);
        kills += 1;
    }
    assert!(
        kills >= 3,
        "the run was too short to test anything: {kills} kills"
    );

    for (task, id) in tasks.iter().zip(&ids) {
        let meta = backend.get_result(&task.id).await.unwrap().unwrap();
        let frames = meta["result"]["frames"].as_array().unwrap();
        let indices: Vec<u64> = frames
            .iter()
            .map(|f| f["index"].as_u64().unwrap())
            .collect();
        assert_eq!(
            indices,
            (0..48).collect::<Vec<_>>(),
            "every frame exactly once"
        );
        for (got, want) in frames.iter().zip(&reference) {
            let labels = |f: &Value| -> Vec<Value> {
                f["detections"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["label"].clone())
                    .collect()
            };
            assert_eq!(labels(got), labels(want), "frame {}", got["index"]);
        }
        let state = backend.get_state(id).await.unwrap().unwrap();
        assert_eq!(state.status, VideoStatus::Succeeded);
    }
    eprintln!("{kills} kills survived");
    // A worker respawned a moment ago may not have reached main yet; give it time to install
    // its handlers, then check that every worker stops cleanly.
    tokio::time::sleep(Duration::from_secs(3)).await;
    workers.stop();
}

/// Every Celery event the workers publish, as it arrives (a queue bound to `celeryev`).
struct EventLog(std::sync::Arc<std::sync::Mutex<Vec<Value>>>);

impl EventLog {
    async fn start(rabbit: &RabbitServer) -> EventLog {
        use futures::StreamExt;
        use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
        use lapin::types::FieldTable;
        let connection =
            lapin::Connection::connect(&rabbit.url(), lapin::ConnectionProperties::default())
                .await
                .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        let queue = channel
            .queue_declare("", exclusive, FieldTable::default())
            .await
            .unwrap();
        // The workers declare the exchange too; whoever comes first creates it.
        channel
            .exchange_declare(
                "celeryev",
                lapin::ExchangeKind::Topic,
                lapin::options::ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                queue.name().as_str(),
                "celeryev",
                "task.#",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let no_ack = BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        };
        let mut consumer = channel
            .basic_consume(
                queue.name().as_str(),
                "events",
                no_ack,
                FieldTable::default(),
            )
            .await
            .unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        tokio::spawn(async move {
            let _keep = connection;
            while let Some(Ok(delivery)) = consumer.next().await {
                if let Ok(event) = serde_json::from_slice::<Value>(&delivery.data) {
                    sink.lock().unwrap().push(event);
                }
            }
        });
        EventLog(log)
    }

    /// Each task's name, from its `task-received` event.
    fn names(&self) -> std::collections::HashMap<String, String> {
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter(|e| e["type"] == "task-received")
            .map(|e| {
                let field = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                (field("uuid"), field("name"))
            })
            .collect()
    }

    /// The events of `kind` so far, as (task id, node).
    fn of(&self, kind: &str) -> Vec<(String, String)> {
        let pair = |e: &Value| {
            let field = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (field("uuid"), field("hostname"))
        };
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter(|e| e["type"] == kind)
            .map(pair)
            .collect()
    }
}

/// A scale-down as Kubernetes does it: SIGTERM to a detector in the middle of a chunk. It
/// finishes the chunks it holds and exits 0; none of them is started again by the other
/// detector (Celery's `task-started` events, counted cluster-wide), and the result is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_detector_finishes_its_chunks_and_none_starts_twice() {
    let (rabbit, redis) = (RabbitServer::start(), RedisServer::start());
    let storage = scratch("storage-drain");
    // 64 frames of 640x272 with a keyframe every 8 or so: 8-9 chunks of about a second each.
    let clip = bikes_clip(&storage, 64, &[]);
    let id = store_video(&storage, &clip);
    let events = EventLog::start(&rabbit).await;
    let mut workers = Workers::start(&rabbit, &redis, &storage, 2, 8);
    let backend = Backend::connect(&redis.url()).await.unwrap();
    let task = TaskMessage::new(&ProcessVideo {
        video_id: id.clone(),
        options: VideoOptions::default(),
    });
    let broker = Broker::connect(&rabbit.url(), 1).await.unwrap();
    broker.send(PROCESSOR_QUEUE, &task).await.unwrap();

    // The moment the first detector starts a chunk, it is told to stop.
    let victim = workers.0[1].id();
    let node = format!("detector-{victim}@");
    let started = Instant::now();
    while !events
        .of("task-started")
        .iter()
        .any(|(_, n)| n.starts_with(&node))
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the detector never started a chunk"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unsafe { libc::kill(victim as i32, libc::SIGTERM) };
    let mut stopped = workers.0.remove(1);
    let exit =
        tokio::task::spawn_blocking(move || wait_exit(&mut stopped, Duration::from_secs(120)))
            .await
            .unwrap()
            .expect("the detector stops once its chunks are done");
    assert!(exit.success(), "detector exit: {exit}");

    let meta = wait_final(&backend, &task.id, Duration::from_secs(300)).await;
    assert_eq!(meta["status"], "SUCCESS", "{meta}");
    let indices: Vec<u64> = meta["result"]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, (0..64).collect::<Vec<_>>(), "every frame once");

    // Events of the last tasks may still be on their way.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let starts = events.of("task-started");
    let mut per_task = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (task, node) in &starts {
        per_task.entry(task.clone()).or_default().push(node.clone());
    }
    let twice: Vec<_> = per_task
        .iter()
        .filter(|(_, nodes)| nodes.len() > 1)
        .collect();
    assert!(twice.is_empty(), "started more than once: {twice:?}");
    // The stopped detector finished what it had started.
    let finished_there = events
        .of("task-succeeded")
        .into_iter()
        .filter(|(_, n)| n.starts_with(&node))
        .count();
    let started_there = starts.iter().filter(|(_, n)| n.starts_with(&node)).count();
    assert!(started_there >= 1);
    assert_eq!(
        finished_there, started_there,
        "it finished every chunk it started"
    );
    // Each chunk of the plan was started, once.
    let names = events.names();
    let chunks = per_task
        .keys()
        .filter(|task| names.get(*task).map(String::as_str) == Some("detect_frames"))
        .count() as u64;
    let state = backend.get_state(&id).await.unwrap().unwrap();
    assert_eq!(chunks, state.chunks_total, "{per_task:?}");
    assert!(chunks >= 6, "{chunks} chunks: too few to test a drain");
    workers.stop();
}

/// RabbitMQ restarted while videos are in flight: workers reconnect and every video completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completes_when_rabbitmq_restarts_mid_run() {
    let (rabbit, redis) = (RabbitServer::start(), RedisServer::start());
    let storage = scratch("storage-restart");
    let ids: Vec<String> = (0..2)
        .map(|_| store_video(&storage, &media("carphone_pristine.mp4")))
        .collect();
    let workers = Workers::start(&rabbit, &redis, &storage, 2, 16);
    let backend = Backend::connect(&redis.url()).await.unwrap();
    let tasks: Vec<TaskMessage> = {
        let broker = Broker::connect(&rabbit.url(), 1).await.unwrap();
        let mut tasks = Vec::new();
        for id in &ids {
            let task = TaskMessage::new(&ProcessVideo {
                video_id: id.clone(),
                options: VideoOptions::default(),
            });
            broker.send(PROCESSOR_QUEUE, &task).await.unwrap();
            tasks.push(task);
        }
        tasks
    };
    // Mid-run: some chunks detected, others queued or in hand.
    let started = Instant::now();
    loop {
        let state = backend.get_state(&ids[0]).await.unwrap();
        if state.is_some_and(|s| s.chunks_done >= 1) || started.elapsed() > Duration::from_secs(120)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let restart = std::thread::spawn(move || {
        rabbit.restart();
        rabbit
    });
    let rabbit = tokio::task::spawn_blocking(move || restart.join().unwrap())
        .await
        .unwrap();
    for task in &tasks {
        let meta = wait_final(&backend, &task.id, Duration::from_secs(300)).await;
        assert_eq!(meta["status"], "SUCCESS", "{meta}");
        assert_eq!(meta["result"]["frames"].as_array().unwrap().len(), 120);
    }
    drop(rabbit);
    drop(workers);
}

/// Starts the Python Celery client (tests/celery_client.py) on a video, in the background.
fn python_client(
    rabbit: &RabbitServer,
    redis: &RedisServer,
    video_id: &str,
    kwargs: &str,
) -> tokio::process::Child {
    let client = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/celery_client.py");
    tokio::process::Command::new(python())
        .arg(client)
        .args([
            rabbit.url(),
            redis.url(),
            video_id.to_string(),
            kwargs.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// What a [`python_client`] printed, once its `get()` returned (within `timeout`).
async fn client_output(client: &mut tokio::process::Child, timeout: Duration) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = String::new();
    let mut stdout = client.stdout.take().expect("piped");
    tokio::time::timeout(timeout, stdout.read_to_string(&mut out))
        .await
        .expect("the client's get() returned")
        .unwrap();
    out
}

async fn wait_state(
    backend: &Backend,
    id: &str,
    timeout: Duration,
    done: impl Fn(&argus_common::state::VideoState) -> bool,
) -> argus_common::state::VideoState {
    let started = Instant::now();
    loop {
        if let Some(state) = backend.get_state(id).await.unwrap() {
            if done(&state) {
                return state;
            }
        }
        assert!(
            started.elapsed() < timeout,
            "video {id}: {:?}",
            backend.get_state(id).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn labels(result: &Value) -> std::collections::BTreeSet<String> {
    result["frames"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["detections"].as_array().unwrap().iter())
        .map(|d| d["label"].as_str().unwrap().to_string())
        .collect()
}

/// The failure paths of issue 8 on real RabbitMQ + Redis with real workers: a video damaged
/// mid-file succeeds with its skipped frames listed; the same video run twice with other
/// options gives each run its own result (and a third run sent meanwhile is refused, leaving
/// the second alone); a video cancelled during detection stops, never merges, and a Python
/// client's `get()` on it raises instead of waiting for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_video_hangs_and_runs_do_not_mix() {
    let (rabbit, redis) = (RabbitServer::start(), RedisServer::start());
    let storage = scratch("storage-runs");
    let workers = Workers::start(&rabbit, &redis, &storage, 2, 16);
    let broker = Broker::connect(&rabbit.url(), 1).await.unwrap();
    let backend = Backend::connect(&redis.url()).await.unwrap();
    let send = |id: &str, options: VideoOptions| {
        let task = TaskMessage::new(&ProcessVideo {
            video_id: id.to_string(),
            options,
        });
        let broker = broker.clone();
        async move {
            broker.send(PROCESSOR_QUEUE, &task).await.unwrap();
            task
        }
    };

    // Damaged mid-file: probe passes, a chunk cannot decode three frames.
    let damaged_file = storage.join("damaged-src.mp4");
    common::damage_packets(
        &media("carphone_pristine.mp4"),
        &damaged_file,
        &[50, 51, 52],
    );
    let damaged = store_video(&storage, &damaged_file);
    let task = send(&damaged, VideoOptions::default()).await;
    let meta = wait_final(&backend, &task.id, Duration::from_secs(300)).await;
    assert_eq!(meta["status"], "SUCCESS", "{meta}");
    assert_eq!(
        meta["result"]["skipped_frames"],
        serde_json::json!([50, 51, 52])
    );
    assert_eq!(meta["result"]["frames"].as_array().unwrap().len(), 117);
    let state = backend.get_state(&damaged).await.unwrap().unwrap();
    assert_eq!(state.status, VideoStatus::Succeeded);
    assert!(
        state.warnings.iter().any(|w| w.contains("3 of 120 frames")),
        "{state:?}"
    );

    // One video, run twice with other options: each result is that run's own.
    let video = store_video(&storage, &media("bikes.mp4"));
    let first = send(
        &video,
        VideoOptions {
            chunk_size: Some(100),
            classes: Some(vec!["person".into()]),
            ..VideoOptions::default()
        },
    )
    .await;
    let first = wait_final(&backend, &first.id, Duration::from_secs(300)).await;
    assert_eq!(first["status"], "SUCCESS", "{first}");
    // As many chunks as the plan makes at 100 frames (none longer): 250 frames, 3 or more.
    let plan = argus_processor::split_video(
        &media("bikes.mp4"),
        100,
        &argus_common::Limits::default(),
        None,
    )
    .unwrap();
    assert!(plan.chunks.len() >= 3);
    assert!(plan.chunks.iter().all(|c| c.frame_count <= 100));
    assert_eq!(first["result"]["summary"]["chunks"], plan.chunks.len());
    assert_eq!(labels(&first["result"]), ["person".to_string()].into());
    let second = send(
        &video,
        VideoOptions {
            chunk_size: Some(32),
            score_threshold: Some(0.5),
            ..VideoOptions::default()
        },
    )
    .await;
    // A third run while the second is in progress is refused, and the second is unharmed.
    wait_state(&backend, &video, Duration::from_secs(60), |s| {
        s.task_id.as_deref() == Some(second.id.as_str()) && s.status == VideoStatus::Detecting
    })
    .await;
    let third = send(&video, VideoOptions::default()).await;
    let third = wait_final(&backend, &third.id, Duration::from_secs(60)).await;
    assert_eq!(third["status"], "FAILURE", "{third}");
    assert!(third["result"]["exc_message"][0]
        .as_str()
        .unwrap()
        .contains("already being processed"));
    let second = wait_final(&backend, &second.id, Duration::from_secs(300)).await;
    assert_eq!(second["status"], "SUCCESS", "{second}");
    assert_eq!(second["result"]["summary"]["chunks"], 8);
    let frames = second["result"]["frames"].as_array().unwrap();
    assert_eq!(frames.len(), 250);
    let scores: Vec<f64> = frames
        .iter()
        .flat_map(|f| f["detections"].as_array().unwrap().iter())
        .map(|d| d["score"].as_f64().unwrap())
        .collect();
    assert!(
        !scores.is_empty() && scores.iter().all(|&s| s >= 0.5),
        "{scores:?}"
    );
    assert!(labels(&second["result"]).len() > 1, "all classes this time");
    // Tracks over RabbitMQ, cut in 8 chunks, are those of `argus detect` cutting it in 4 (the
    // same threshold as the model's own): chunk invariance holds distributed too.
    let local = common::detect_json(
        &media("bikes.mp4"),
        &["--chunk-size", "64", "--threshold", "0.5"],
        &scratch("distributed-tracks").join("bikes.json"),
    );
    assert!(!local["tracks"].as_array().unwrap().is_empty());
    assert_eq!(
        second["result"]["tracks"], local["tracks"],
        "the tracks, distributed and local"
    );
    assert_eq!(
        second["result"]["frames"], local["frames"],
        "the frames' track ids"
    );
    let state = backend.get_state(&video).await.unwrap().unwrap();
    assert_eq!(
        (state.status, state.chunks_done),
        (VideoStatus::Succeeded, 8)
    );
    // The runs' chunk results were cleaned up after their merges.
    let chord = argus_pipeline::chord::chord_of(state.task_id.as_deref().unwrap());
    let chunks = argus_common::storage::Storage::new(&storage);
    assert!(!chunks.has_chunk(&video, &chord, 0).unwrap());
    assert!(
        !storage.join("chunks").join(&video).exists()
            || std::fs::read_dir(storage.join("chunks").join(&video))
                .unwrap()
                .next()
                .is_none(),
        "no run's chunks left"
    );

    // Cancelled during detection: a Python client waiting on the result gets an answer.
    let cancelled = store_video(&storage, &media("bikes.mp4"));
    let mut client = python_client(&rabbit, &redis, &cancelled, r#"{"chunk_size": 16}"#);
    let detecting = wait_state(&backend, &cancelled, Duration::from_secs(120), |s| {
        s.status == VideoStatus::Detecting && s.chunks_done >= 1
    })
    .await;
    let Cancelled::Stopped(state) = cancel_video(&backend, &cancelled).await.unwrap() else {
        panic!("not cancelled");
    };
    assert_eq!(state.status, VideoStatus::Cancelled);
    let out = client_output(&mut client, Duration::from_secs(30)).await;
    assert!(out.contains("raised=TaskRevokedError"), "{out}");
    // The run stopped: no chunk counted later, no merge, no result file.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end = backend.get_state(&cancelled).await.unwrap().unwrap();
    assert_eq!(end.status, VideoStatus::Cancelled);
    assert!(
        end.chunks_done < end.chunks_total,
        "{end:?} (from {detecting:?})"
    );
    assert!(!storage.join(format!("results/{cancelled}.json")).exists());
    let run = end.task_id.clone().unwrap();
    assert_eq!(
        backend.get_result(&run).await.unwrap().unwrap()["status"],
        "REVOKED"
    );

    workers.stop();
}

/// A message that kills its worker every time it runs (simulated: the detector is SIGKILLed
/// whenever it starts that chunk) is dead-lettered after three starts and fails its video,
/// instead of looping for ever; the video queued behind it then completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_kills_its_worker_is_dead_lettered() {
    let (rabbit, redis) = (RabbitServer::start(), RedisServer::start());
    let storage = scratch("storage-poison");
    let one_slot = [("ARGUS_CONCURRENCY", "1"), ("ARGUS_MAX_STARTS", "3")];
    let mut processor = spawn_worker("argus-processor", &rabbit, &redis, &storage, 1000);
    let mut detector =
        spawn_worker_with("argus-detector", &rabbit, &redis, &storage, 1000, &one_slot);
    let broker = Broker::connect(&rabbit.url(), 1).await.unwrap();
    let backend = Backend::connect(&redis.url()).await.unwrap();
    let poison = store_video(&storage, &media("bikes.mp4"));
    let good = store_video(&storage, &media("carphone_pristine.mp4"));
    let poison_task = TaskMessage::new(&ProcessVideo {
        video_id: poison.clone(),
        options: VideoOptions::default(),
    });
    broker.send(PROCESSOR_QUEUE, &poison_task).await.unwrap();
    // The poison's one chunk, as the processor will name it.
    let chunk_id =
        argus_pipeline::chord::chunk_task_id(&argus_pipeline::chord::chord_of(&poison_task.id), 0);
    wait_state(&backend, &poison, Duration::from_secs(60), |s| {
        s.status == VideoStatus::Detecting
    })
    .await;
    let good_task = TaskMessage::new(&ProcessVideo {
        video_id: good.clone(),
        options: VideoOptions::default(),
    });
    broker.send(PROCESSOR_QUEUE, &good_task).await.unwrap();

    // Each time the detector starts the poison chunk, it dies.
    let started = Instant::now();
    for kill in 1..=3u64 {
        while backend.starts(&chunk_id, 0).await.unwrap() < kill {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "start {kill} never came"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = detector.kill();
        let _ = detector.wait();
        detector = spawn_worker_with("argus-detector", &rabbit, &redis, &storage, 1000, &one_slot);
    }
    let failed = wait_final(&backend, &poison_task.id, Duration::from_secs(120)).await;
    assert_eq!(failed["status"], "FAILURE", "{failed}");
    let state = backend.get_state(&poison).await.unwrap().unwrap();
    assert_eq!(state.status, VideoStatus::Failed);
    assert!(
        state
            .error
            .as_deref()
            .unwrap()
            .contains("started 3 times without finishing"),
        "{state:?}"
    );
    let done = wait_final(&backend, &good_task.id, Duration::from_secs(300)).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    // The chunk is in the dead-letter queue, for someone to look at.
    let mut dlq = broker
        .consume(argus_queue::broker::DEAD_LETTER_QUEUE)
        .await
        .unwrap();
    let dead = tokio::time::timeout(Duration::from_secs(10), dlq.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dead.message.as_ref().unwrap().headers.id, chunk_id);
    dead.ack().await.unwrap();
    for child in [&mut processor, &mut detector] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The whole flow distributed, each role its own process as in a cluster: `argus-api` on
/// PostgreSQL, RabbitMQ and Redis, one `argus-processor`, two `argus-detector`s; a video uploaded
/// over HTTP by `argus submit` comes back with its result, and the API's records follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_drives_separate_workers_on_rabbitmq_redis_and_postgresql() {
    let (rabbit, redis) = (RabbitServer::start(), RedisServer::start());
    let database = argus_testkit::PgServer::shared().fresh_database().await;
    let storage = scratch("storage-api");
    let workers = Workers::start(&rabbit, &redis, &storage, 2, 32);
    let api = ApiProcess::start(&rabbit, &redis, &storage, Some(&database)).await;
    let (url, http, token) = (&api.url, &api.http, &api.token);
    let out_dir = storage.join("client");
    let submit = tokio::process::Command::new(env!("CARGO_BIN_EXE_argus"))
        .args(["submit", media("carphone_pristine.mp4").to_str().unwrap()])
        .args([
            "--url",
            url,
            "--user",
            "admin",
            "-o",
            out_dir.to_str().unwrap(),
        ])
        .env("ARGUS_PASSWORD", common::api::ADMIN_PASSWORD)
        .output()
        .await
        .unwrap();
    let stdout = text(&submit.stdout);
    assert!(submit.status.success(), "{stdout}{}", text(&submit.stderr));
    assert!(stdout.contains("120 frames in 4 chunks"), "{stdout}");
    let result: Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("carphone_pristine.json")).unwrap())
            .unwrap();
    assert_eq!(result["frames"].as_array().unwrap().len(), 120);
    // The record in PostgreSQL follows the state in Redis.
    let started = Instant::now();
    loop {
        let list: Value = http
            .get(format!("{url}/api/v1/videos?status=succeeded"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if list["videos"].as_array().unwrap().len() == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    api.stop();
    workers.stop();
}

/// Two models on one cluster, side by side: a detector of the default model (coco-centernet,
/// queue `detector`) and one of `bench-null` (queue `detector.bench-null`), over RabbitMQ.
/// Videos for each at once, one of them from a plain Python Celery client naming no model: each
/// result is its own model's, every chunk of a video from one model. A model nobody serves fails
/// its video at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_models_serve_one_cluster_side_by_side() {
    let (rabbit, redis) = (RabbitServer::start(), RedisServer::start());
    let storage = scratch("storage-models");
    let served = [("ARGUS_SERVED_MODELS", "coco-centernet,bench-null")];
    let mut workers = Workers::start_with(&rabbit, &redis, &storage, 1, 16, &served);
    let broker = Broker::connect(&rabbit.url(), 1).await.unwrap();
    let backend = Backend::connect(&redis.url()).await.unwrap();
    // The processor publishes the cluster's default (the first served model).
    let started = Instant::now();
    while argus_pipeline::models::published_default(&backend)
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no default published"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        argus_pipeline::models::published_default(&backend)
            .await
            .unwrap()
            .as_deref(),
        Some("coco-centernet")
    );
    // A detector deployed without the cluster's model settings: by its own it would take
    // bench-null for the default and wait on `detector`; it follows the processors' default
    // and consumes `detector.bench-null`.
    workers.0.push(spawn_worker_with(
        "argus-detector",
        &rabbit,
        &redis,
        &storage,
        16,
        &[("ARGUS_MODEL", "bench-null")],
    ));
    let send = |id: String, model: Option<&str>| {
        let task = TaskMessage::new(&ProcessVideo {
            video_id: id,
            options: VideoOptions {
                model: model.map(str::to_string),
                ..VideoOptions::default()
            },
        });
        let broker = broker.clone();
        async move {
            broker.send(PROCESSOR_QUEUE, &task).await.unwrap();
            task.id
        }
    };
    let carphone = media("carphone_pristine.mp4");
    let (default_id, coco_id, null_id, unknown_id) = (
        store_video(&storage, &carphone),
        store_video(&storage, &carphone),
        store_video(&storage, &carphone),
        store_video(&storage, &carphone),
    );
    // All at once: chunks of both models are in the queues together.
    let mut python = python_client(&rabbit, &redis, &default_id, "{}");
    let coco = send(coco_id.clone(), Some("coco-centernet")).await;
    let null = send(null_id.clone(), Some("bench-null")).await;
    let unknown = send(unknown_id.clone(), Some("yolo-v9")).await;

    let unknown = wait_final(&backend, &unknown, Duration::from_secs(60)).await;
    assert_eq!(unknown["status"], "FAILURE", "{unknown}");
    let why = unknown["result"]["exc_message"][0].as_str().unwrap();
    assert!(why.contains("model 'yolo-v9' is not served here"), "{why}");
    let coco = wait_final(&backend, &coco, Duration::from_secs(300)).await;
    let null = wait_final(&backend, &null, Duration::from_secs(300)).await;
    assert_eq!(
        (&coco["status"], &null["status"]),
        (&"SUCCESS".into(), &"SUCCESS".into())
    );
    let (coco, null) = (&coco["result"], &null["result"]);
    assert_eq!(coco["model"]["name"], "coco-centernet");
    assert_eq!(null["model"]["name"], "bench-null");
    assert_eq!(null["model"]["input_size"], serde_json::json!([64, 64]));
    assert!(
        coco["summary"]["chunks"].as_u64().unwrap() > 1,
        "several chunks"
    );
    // bench-null gives one "person" at 0.9 in the same box on every frame: all 120 frames, in
    // every chunk, are its; coco-centernet's are not that.
    let null_frames = null["frames"].as_array().unwrap();
    assert_eq!(null_frames.len(), 120);
    let first = &null_frames[0]["detections"][0];
    for f in null_frames {
        let d = f["detections"].as_array().unwrap();
        assert_eq!(d.len(), 1, "{f}");
        assert_eq!(
            (&d[0]["label"], &d[0]["score"], &d[0]["box"]),
            (&first["label"], &first["score"], &first["box"])
        );
    }
    assert!(labels(coco).contains("tie"), "coco-centernet sees the tie");
    assert!(coco["frames"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["detections"][0]["box"] != first["box"]));

    // The Python client's video (no model named) went to the default queue and model.
    let out = client_output(&mut python, Duration::from_secs(300)).await;
    assert!(out.contains("frames=120"), "{out}");
    let state = backend.get_state(&default_id).await.unwrap().unwrap();
    assert_eq!(state.status, VideoStatus::Succeeded);
    let default_result: Value = serde_json::from_slice(
        &std::fs::read(storage.join("results").join(format!("{default_id}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(default_result["model"]["name"], "coco-centernet");
    assert_eq!(
        default_result["frames"], coco["frames"],
        "the same model, the same detections"
    );

    // Each model's queue is its own, and both are drained.
    assert_eq!(broker.queue_depth("detector").await.unwrap(), 0);
    assert_eq!(broker.queue_depth("detector.bench-null").await.unwrap(), 0);
    workers.stop();
}
