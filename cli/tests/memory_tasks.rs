//! The embedded transport: the very same processor and detector task code, on the memory://
//! broker and backend, in one process.

mod common;

use argus_pipeline::store::RunStore;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_common::state::{VideoState, VideoStatus};
use argus_common::storage::Storage;
use argus_detector::config::model_info;
use argus_detector::tasks::DetectorConfig;
use argus_detector::{Batcher, Detector, DetectorOptions, DeviceChoice, Registry};
use argus_pipeline::tasks::{ProcessVideo, DETECTOR_QUEUE, PROCESSOR_QUEUE};
use argus_processor::tasks::ProcessorConfig;
use argus_processor::ChunkRule;
use argus_queue::backend::Backend;
use argus_queue::broker::Broker;
use argus_queue::message::TaskMessage;
use argus_queue::worker::{Worker, WorkerOptions};
use common::{media, scratch};
use tokio::sync::watch;

/// A task's Celery result once it is final (SUCCESS or FAILURE).
async fn final_result(backend: &Backend, task_id: &str) -> serde_json::Value {
    let started = Instant::now();
    loop {
        if let Some(meta) = backend.get_result(task_id).await.unwrap() {
            if meta["status"] == "SUCCESS" || meta["status"] == "FAILURE" {
                return meta;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(300), "no result");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processor_and_detector_tasks_run_in_one_process_on_memory() {
    let broker = Broker::connect("memory://", 4).await.unwrap();
    let backend = Backend::connect("memory://").await.unwrap();
    let storage = Storage::new(scratch("memory-storage"));
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::copy(
        media("carphone_pristine.mp4"),
        storage.new_video_path(&id, "mp4").unwrap(),
    )
    .unwrap();
    let cancelled = uuid::Uuid::new_v4().to_string();
    std::fs::copy(
        media("carphone_pristine.mp4"),
        storage.new_video_path(&cancelled, "mp4").unwrap(),
    )
    .unwrap();

    let spec = Registry::new(Registry::default_dir())
        .resolve("coco-centernet")
        .unwrap();
    let options = DetectorOptions {
        device: DeviceChoice::Cpu,
        ..DetectorOptions::default()
    };
    let detector = Arc::new(Detector::load(spec, &options).unwrap());
    let model = model_info(&detector);
    let batcher = Arc::new(Batcher::start(detector, Duration::from_millis(5)));
    let processor = argus_processor::tasks::register(
        Worker::new(broker.clone(), backend.clone(), WorkerOptions::default()),
        ProcessorConfig {
            storage: storage.clone(),
            // The default rule: 64-frame chunks until the detectors' speed is known, then a
            // minute of a detector's work per chunk.
            chunk_size: ChunkRule::Seconds(60.0),
            limits: Default::default(),
            result_inline_max: argus_processor::tasks::DEFAULT_RESULT_INLINE_MAX,
            default_model: argus_pipeline::tasks::DEFAULT_MODEL.into(),
            served_models: vec![argus_pipeline::tasks::DEFAULT_MODEL.into()],
        },
    );
    let detectors = argus_detector::tasks::register(
        Worker::new(broker.clone(), backend.clone(), WorkerOptions::default()),
        batcher,
        DetectorConfig {
            storage: storage.clone(),
            model,
            decode_threads: 1,
            limits: Default::default(),
        },
    );
    let (stop_tx, stop) = watch::channel(false);
    let p = tokio::spawn({
        let stop = stop.clone();
        async move { processor.run(&[PROCESSOR_QUEUE], stop).await }
    });
    let d = tokio::spawn(async move { detectors.run(&[DETECTOR_QUEUE], stop).await });

    // A video cancelled before it is processed is left alone.
    argus_pipeline::store::update_state(&backend, &cancelled, |_| {
        let mut state = VideoState::queued(&cancelled, None);
        state.status = VideoStatus::Cancelled;
        Some(state)
    })
    .await
    .unwrap()
    .unwrap();
    let skip = TaskMessage::new(&ProcessVideo {
        video_id: cancelled.clone(),
        options: Default::default(),
    });
    broker.send(PROCESSOR_QUEUE, &skip).await.unwrap();

    let mut events = backend.subscribe_states(Some(&id)).await.unwrap();
    let task = TaskMessage::new(&ProcessVideo {
        video_id: id.clone(),
        options: Default::default(),
    });
    broker.send(PROCESSOR_QUEUE, &task).await.unwrap();
    let meta = final_result(&backend, &task.id).await;
    assert_eq!(meta["status"], "SUCCESS", "{meta}");
    assert_eq!(meta["result"]["frames"].as_array().unwrap().len(), 120);
    assert_eq!(meta["result"]["summary"]["chunks"], 2, "64 + 56 frames");
    let state = backend.get_state(&id).await.unwrap().unwrap();
    assert_eq!(
        (state.status, state.chunks_done),
        (VideoStatus::Succeeded, 2)
    );
    // Progress was published as it happened: chunk by chunk, with the frames in them.
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        let state: VideoState = serde_json::from_str(&event).unwrap();
        seen.push((state.status, state.chunks_done, state.frames_done));
    }
    assert!(
        seen.iter()
            .any(|&(s, c, f)| s == VideoStatus::Detecting && c > 0 && f > 0 && f < 120),
        "{seen:?}"
    );
    assert_eq!(seen.last(), Some(&(VideoStatus::Succeeded, 2, 120)));
    let skipped = backend.get_state(&cancelled).await.unwrap().unwrap();
    assert_eq!(
        (skipped.status, skipped.chunks_total),
        (VideoStatus::Cancelled, 0)
    );
    // ...and its task resolves (REVOKED), so a client waiting on it is not left waiting.
    let revoked = backend.get_result(&skip.id).await.unwrap().unwrap();
    assert_eq!(revoked["status"], "REVOKED", "{revoked}");

    // The detectors measured their speed; the next run's chunks hold a minute of it: the
    // whole clip in one chunk (it takes a CPU well under a minute).
    let speed = backend
        .detector_speed()
        .await
        .unwrap()
        .expect("a measured speed");
    assert!(speed > 2.0, "{speed} frames/s");
    let again = uuid::Uuid::new_v4().to_string();
    std::fs::copy(
        media("carphone_pristine.mp4"),
        storage.new_video_path(&again, "mp4").unwrap(),
    )
    .unwrap();
    let task = TaskMessage::new(&ProcessVideo {
        video_id: again.clone(),
        options: Default::default(),
    });
    broker.send(PROCESSOR_QUEUE, &task).await.unwrap();
    let meta = final_result(&backend, &task.id).await;
    assert_eq!(meta["status"], "SUCCESS", "{meta}");
    assert_eq!(
        meta["result"]["summary"]["chunks"], 1,
        "at {speed:.1} frames/s"
    );

    stop_tx.send(true).unwrap();
    p.await.unwrap();
    d.await.unwrap();
}
