//! The Rust workers as Celery's own tools see them, against real RabbitMQ and Redis servers,
//! real worker processes and the real tools from the venv: Flower 2.2 lists them online from
//! their events and shows their tasks with states and runtimes, `celery inspect` and
//! `celery control` (Celery 5.7) get answers, `revoke` cancels a video while another
//! completes, `shutdown` stops a worker cleanly, and a worker's `/metrics` parses with the
//! Prometheus client's parser and counts the frames it detected.

mod common;

use argus_pipeline::store::RunStore;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use argus_common::state::VideoStatus;
use argus_pipeline::tasks::{ProcessVideo, VideoOptions, PROCESSOR_QUEUE};
use argus_queue::backend::Backend;
use argus_queue::broker::Broker;
use argus_queue::message::TaskMessage;
use argus_testkit::{free_port, RabbitServer, RedisServer};
use common::workers::{python, spawn_worker_with, store_video, wait_exit, Workers};
use common::{media, scratch, text};
use serde_json::Value;

const PROCESSOR: &str = "processor@argus-test";
const DETECTOR: &str = "detector@argus-test";

/// Flower on the broker, killed on drop.
struct Flower {
    child: Child,
    url: String,
}

impl Flower {
    fn start(rabbit: &RabbitServer) -> Flower {
        let port = free_port();
        let child = Command::new(python())
            .args(["-m", "celery", "--broker", &rabbit.url(), "flower"])
            .arg("--address=127.0.0.1")
            .arg(format!("--port={port}"))
            .env("FLOWER_UNAUTHENTICATED_API", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start flower");
        let flower = Flower {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_for("Flower to answer", Duration::from_secs(60), || {
            reqwest::blocking::get(&flower.url).is_ok_and(|r| r.status().is_success())
        });
        flower
    }

    fn get(&self, path: &str) -> reqwest::blocking::Response {
        reqwest::blocking::Client::new()
            .get(format!("{}{path}", self.url))
            .timeout(Duration::from_secs(10))
            .send()
            .unwrap()
    }

    fn json(&self, path: &str) -> Value {
        let response = self.get(path);
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().unwrap()
    }

    /// `{node: alive}` from the events Flower received.
    fn alive(&self) -> Value {
        self.json("/api/workers?status=1")
    }
}

impl Drop for Flower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
    started.elapsed()
}

/// `celery -b <broker> <args>` from the venv.
fn celery(rabbit: &RabbitServer, args: &[&str]) -> Output {
    Command::new(python())
        .args(["-m", "celery", "-b", &rabbit.url()])
        .args(args)
        .output()
        .expect("run celery")
}

/// `celery inspect <method> --json`: the replies by node.
fn inspect(rabbit: &RabbitServer, method: &str) -> Value {
    let out = celery(rabbit, &["inspect", method, "--json", "--timeout", "3"]);
    assert!(
        out.status.success(),
        "inspect {method}: {}",
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    let last = stdout.lines().rev().find(|l| l.starts_with('{'));
    serde_json::from_str(last.unwrap_or_else(|| panic!("inspect {method}: {stdout}"))).unwrap()
}

fn spawn(
    binary: &str,
    node: &str,
    metrics_port: u16,
    rabbit: &RabbitServer,
    redis: &RedisServer,
    storage: &Path,
) -> Child {
    let bind = format!("127.0.0.1:{metrics_port}");
    spawn_worker_with(
        binary,
        rabbit,
        redis,
        storage,
        16,
        // Two model replicas in the detector (the processor has none).
        &[
            ("ARGUS_NODE_NAME", node),
            ("ARGUS_METRICS_BIND", &bind),
            ("ARGUS_CPU_REPLICAS", "2"),
        ],
    )
}

fn send_video(rt: &tokio::runtime::Runtime, broker: &Broker, video_id: &str) -> String {
    send_video_with(rt, broker, video_id, VideoOptions::default())
}

fn send_video_with(
    rt: &tokio::runtime::Runtime,
    broker: &Broker,
    video_id: &str,
    options: VideoOptions,
) -> String {
    let message = TaskMessage::new(&ProcessVideo {
        video_id: video_id.to_string(),
        options,
    });
    rt.block_on(broker.send(PROCESSOR_QUEUE, &message)).unwrap();
    message.id
}

fn wait_result(rt: &tokio::runtime::Runtime, backend: &Backend, task_id: &str) -> Value {
    let mut meta = Value::Null;
    wait_for("a video's result", Duration::from_secs(180), || {
        meta = rt
            .block_on(backend.get_result(task_id))
            .unwrap()
            .unwrap_or_default();
        matches!(
            meta["status"].as_str(),
            Some("SUCCESS" | "FAILURE" | "REVOKED")
        )
    });
    meta
}

/// The sum of a counter's samples, read with prometheus_client's text-format parser.
fn prometheus_sum(exposition: &str, family: &str) -> f64 {
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
text, wanted = sys.stdin.read(), sys.argv[1]
families = {f.name: f for f in text_string_to_metric_families(text)}
print(sum(s.value for s in families[wanted].samples if s.name.endswith("_total")))
"#;
    let mut child = Command::new(python())
        .args(["-c", script, family])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "parser: {}", text(&out.stderr));
    text(&out.stdout).trim().parse().unwrap()
}

#[test]
fn flower_and_celery_see_and_steer_the_rust_workers() {
    let (rabbit, redis) = (RabbitServer::start(), RedisServer::start());
    let storage = scratch("observability");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let backend = rt.block_on(Backend::connect(&redis.url())).unwrap();
    let broker = rt.block_on(Broker::connect(&rabbit.url(), 1)).unwrap();
    let flower = Flower::start(&rabbit);
    let (processor_port, detector_port) = (free_port(), free_port());
    let processor = spawn(
        "argus-processor",
        PROCESSOR,
        processor_port,
        &rabbit,
        &redis,
        &storage,
    );
    let detector = spawn(
        "argus-detector",
        DETECTOR,
        detector_port,
        &rabbit,
        &redis,
        &storage,
    );
    // Killed on drop, so that a failing test leaves no worker behind.
    let mut workers = Workers(vec![processor, detector]);
    let metrics_url = format!("http://127.0.0.1:{detector_port}");
    wait_for("the detector to be ready", Duration::from_secs(60), || {
        reqwest::blocking::get(format!("{metrics_url}/readyz")).is_ok_and(|r| r.status() == 200)
    });

    // Flower lists both workers online, from their events alone.
    wait_for(
        "both workers online in Flower",
        Duration::from_secs(30),
        || {
            let alive = flower.alive();
            alive[PROCESSOR] == true && alive[DETECTOR] == true
        },
    );

    // celery inspect: every node answers, in the shapes Celery's tools read.
    let ping = inspect(&rabbit, "ping");
    for node in [PROCESSOR, DETECTOR] {
        assert_eq!(ping[node], serde_json::json!({"ok": "pong"}), "{ping}");
    }
    let stats = inspect(&rabbit, "stats");
    // Unless ARGUS_CONCURRENCY says, a detector takes two chunks per model replica.
    assert_eq!(stats[DETECTOR]["pool"]["max-concurrency"], 4, "{stats}");
    assert_eq!(stats[DETECTOR]["broker"]["transport"], "amqp");
    assert!(stats[PROCESSOR]["total"].is_object(), "{stats}");
    let queues = inspect(&rabbit, "active_queues");
    assert_eq!(queues[PROCESSOR][0]["name"], "processor", "{queues}");
    assert_eq!(queues[DETECTOR][0]["name"], "detector", "{queues}");
    let registered = inspect(&rabbit, "registered");
    assert_eq!(
        registered[PROCESSOR],
        serde_json::json!([
            "annotate_video",
            "merge_chunks",
            "merge_collection",
            "process_collection",
            "process_video"
        ])
    );
    assert_eq!(
        registered[DETECTOR],
        serde_json::json!(["detect_frames", "detect_photos"])
    );
    let active = inspect(&rabbit, "active");
    assert_eq!(active[DETECTOR], serde_json::json!([]), "{active}");

    // A video: Flower shows its tasks with their states, workers and runtimes; the detector's
    // metrics count its frames.
    let video = store_video(&storage, &media("carphone_pristine.mp4"));
    let run = send_video(&rt, &broker, &video);
    let meta = wait_result(&rt, &backend, &run);
    assert_eq!(meta["status"], "SUCCESS", "{meta}");
    let frames = meta["result"]["frames"].as_array().unwrap().len();
    let mut tasks = Value::Null;
    wait_for(
        "the video's tasks in Flower",
        Duration::from_secs(15),
        || {
            tasks = flower.json("/api/tasks");
            tasks
                .as_object()
                .unwrap()
                .values()
                .filter(|t| t["name"] == "merge_chunks" && t["state"] == "SUCCESS")
                .count()
                == 1
        },
    );
    let tasks = tasks.as_object().unwrap();
    let process = &tasks[&run];
    assert_eq!(process["state"], "SUCCESS", "{process}");
    assert_eq!(process["worker"], PROCESSOR);
    assert!(process["runtime"].as_f64().unwrap() > 0.0, "{process}");
    assert!(process["kwargs"].as_str().unwrap().contains(&video));
    let chunks: Vec<&Value> = tasks
        .values()
        .filter(|t| t["name"] == "detect_frames")
        .collect();
    assert_eq!(chunks.len(), frames.div_ceil(16), "{tasks:?}");
    for chunk in &chunks {
        assert_eq!(chunk["state"], "SUCCESS", "{chunk}");
        assert_eq!(chunk["worker"], DETECTOR);
        assert!(chunk["runtime"].as_f64().unwrap() > 0.0);
        assert_eq!(chunk["root_id"], run.as_str());
    }
    let page = flower.get(&format!("/worker/{DETECTOR}"));
    assert_eq!(page.status(), 200, "Flower's worker page");
    assert!(page.text().unwrap().contains(DETECTOR));

    let exposition = reqwest::blocking::get(format!("{metrics_url}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    let counted = prometheus_sum(&exposition, "argus_detector_frames");
    assert_eq!(counted as usize, frames, "{exposition}");
    // Each device says how many frames a batch takes (the dashboard's batch fill divides by it).
    let capacities: Vec<f64> = exposition
        .lines()
        .filter(|l| l.starts_with("argus_detector_batch_capacity{device=\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(
        !capacities.is_empty() && capacities.iter().all(|&c| c >= 1.0),
        "{exposition}"
    );
    let succeeded = prometheus_sum(&exposition, "argus_worker_tasks");
    assert_eq!(succeeded as usize, chunks.len(), "{exposition}");

    // celery control revoke <process_video id> cancels that video; another one completes.
    let (doomed, other) = (
        store_video(&storage, &media("carphone_pristine.mp4")),
        store_video(&storage, &media("carphone_pristine.mp4")),
    );
    let doomed_run = send_video(&rt, &broker, &doomed);
    let other_run = send_video(&rt, &broker, &other);
    wait_for(
        "the first video to be detecting",
        Duration::from_secs(60),
        || {
            rt.block_on(backend.get_state(&doomed))
                .unwrap()
                .is_some_and(|s| s.status == VideoStatus::Detecting)
        },
    );
    let out = celery(&rabbit, &["control", "revoke", &doomed_run]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let meta = wait_result(&rt, &backend, &doomed_run);
    assert_eq!(meta["status"], "REVOKED", "{meta}");
    let state = rt.block_on(backend.get_state(&doomed)).unwrap().unwrap();
    assert_eq!(state.status, VideoStatus::Cancelled, "{state:?}");
    let meta = wait_result(&rt, &backend, &other_run);
    assert_eq!(meta["status"], "SUCCESS", "{meta}");
    assert_eq!(meta["result"]["frames"].as_array().unwrap().len(), frames);
    let revoked = inspect(&rabbit, "revoked");
    assert!(revoked[PROCESSOR]
        .as_array()
        .unwrap()
        .contains(&Value::from(doomed_run)));

    // revoke --terminate of a running chunk stops it; its video cannot complete and fails.
    let chunked = store_video(&storage, &media("carphone_pristine.mp4"));
    // One chunk for the whole video: long enough to be caught running.
    let whole = VideoOptions {
        chunk_size: Some(1000),
        ..VideoOptions::default()
    };
    let chunked_run = send_video_with(&rt, &broker, &chunked, whole);
    let mut running = String::new();
    wait_for(
        "a chunk running on the detector",
        Duration::from_secs(60),
        || {
            let active = inspect(&rabbit, "active");
            match active[DETECTOR].as_array().and_then(|a| a.first()) {
                Some(task) if task["kwargs"]["video_id"] == chunked.as_str() => {
                    running = task["id"].as_str().unwrap().to_string();
                    true
                }
                _ => false,
            }
        },
    );
    // Celery's CLI revokes without terminate; Flower's button and the Python API terminate.
    let terminate = "import sys; from celery import Celery; \
        Celery(broker=sys.argv[1]).control.revoke(sys.argv[2], terminate=True)";
    let out = Command::new(python())
        .args(["-c", terminate, &rabbit.url(), &running])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let meta = wait_result(&rt, &backend, &running);
    assert_eq!(meta["status"], "REVOKED", "{meta}");
    let meta = wait_result(&rt, &backend, &chunked_run);
    assert_eq!(meta["status"], "FAILURE", "{meta}");
    let state = rt.block_on(backend.get_state(&chunked)).unwrap().unwrap();
    assert_eq!(state.status, VideoStatus::Failed);
    assert!(state.error.unwrap().contains("revoked"));

    // Switches and what is not supported answer clearly.
    let out = celery(&rabbit, &["control", "disable_events"]);
    assert!(
        text(&out.stdout).contains("task events disabled"),
        "{}",
        text(&out.stdout)
    );
    let out = celery(&rabbit, &["control", "enable_events"]);
    assert!(
        text(&out.stdout).contains("task events enabled"),
        "{}",
        text(&out.stdout)
    );
    let out = celery(&rabbit, &["control", "time_limit", "detect_frames", "10"]);
    assert!(
        text(&out.stdout).contains("not supported"),
        "{}",
        text(&out.stdout)
    );

    // Consumers and pool slots, steered from the CLI.
    let control = |args: &[&str]| {
        let out = celery(&rabbit, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let out = control(&["control", "add_consumer", "extra", "-d", DETECTOR]);
    assert!(out.contains("add consumer extra"), "{out}");
    let queues = inspect(&rabbit, "active_queues");
    let names: Vec<&str> = queues[DETECTOR]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["detector", "extra"]);
    let out = control(&["control", "cancel_consumer", "extra", "-d", DETECTOR]);
    assert!(out.contains("no longer consuming from extra"), "{out}");
    assert_eq!(
        inspect(&rabbit, "active_queues")[DETECTOR]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let slots = |stats: &Value| stats[DETECTOR]["pool"]["max-concurrency"].as_u64().unwrap();
    let before = slots(&inspect(&rabbit, "stats"));
    control(&["control", "pool_grow", "2", "-d", DETECTOR]);
    assert_eq!(slots(&inspect(&rabbit, "stats")), before + 2);
    control(&["control", "pool_shrink", "2", "-d", DETECTOR]);
    assert_eq!(slots(&inspect(&rabbit, "stats")), before);

    // The broker restarts: the control connections come back and answer again.
    rabbit.restart();
    wait_for(
        "both nodes answering after a broker restart",
        Duration::from_secs(60),
        || {
            let out = celery(&rabbit, &["inspect", "ping", "--json", "--timeout", "2"]);
            let stdout = text(&out.stdout);
            stdout.contains(PROCESSOR) && stdout.contains(DETECTOR)
        },
    );

    // celery control shutdown: the detector drains and exits 0; Flower sees it leave at once.
    let out = celery(&rabbit, &["control", "shutdown", "--destination", DETECTOR]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status = wait_exit(&mut workers.0[1], Duration::from_secs(30)).expect("shutdown stops it");
    assert!(status.success(), "detector exit: {status}");
    let took = wait_for(
        "the detector offline in Flower",
        Duration::from_secs(3),
        || flower.alive()[DETECTOR] == false,
    );
    eprintln!("offline after shutdown in {took:?}");

    // A SIGKILLed worker sends nothing: Flower marks it offline from its missing heartbeats.
    let killed_node = "detector2@argus-test";
    workers.0.push(spawn(
        "argus-detector",
        killed_node,
        free_port(),
        &rabbit,
        &redis,
        &storage,
    ));
    wait_for(
        "the second detector online",
        Duration::from_secs(60),
        || flower.alive()[killed_node] == true,
    );
    workers.0[2].kill().unwrap();
    workers.0[2].wait().unwrap();
    let took = wait_for(
        "the killed detector offline",
        Duration::from_secs(10),
        || flower.alive()[killed_node] == false,
    );
    eprintln!("offline after SIGKILL in {took:?}");

    // SIGTERM: a clean stop says goodbye.
    unsafe { libc::kill(workers.0[0].id() as i32, libc::SIGTERM) };
    let status = wait_exit(&mut workers.0[0], Duration::from_secs(30)).expect("SIGTERM stops it");
    assert!(status.success(), "processor exit: {status}");
    wait_for(
        "the processor offline in Flower",
        Duration::from_secs(3),
        || flower.alive()[PROCESSOR] == false,
    );
}
