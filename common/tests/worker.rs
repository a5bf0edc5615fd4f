//! The worker loop on a real RabbitMQ (and on memory://): tasks run and their results land in
//! the backend; poison messages reach the dead-letter queue while the worker keeps going;
//! transient errors are retried; a panicking task fails alone.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argus_common::backend::Backend;
use argus_common::broker::Broker;
use argus_common::tasks::{ProcessVideo, TaskMessage, DEAD_LETTER_QUEUE, PROCESSOR_QUEUE};
use argus_common::testing::{RabbitServer, RedisServer};
use argus_common::worker::{TaskError, Worker, WorkerOptions};
use serde_json::{json, Value};
use tokio::sync::watch;

async fn wait_result(backend: &Backend, id: &str) -> Value {
    for _ in 0..200 {
        if let Some(meta) = backend.get_result(id).await.unwrap() {
            if meta["status"] == "SUCCESS" || meta["status"] == "FAILURE" {
                return meta;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no result for {id} ({:?})",
        backend.get_result(id).await.unwrap()
    );
}

async fn exercise(broker: Broker, backend: Backend) {
    let flaky_calls = Arc::new(AtomicU32::new(0));
    let calls = flaky_calls.clone();
    let worker = Worker::new(
        broker.clone(),
        backend.clone(),
        WorkerOptions {
            retry_delay: Duration::from_millis(50),
            ..WorkerOptions::default()
        },
    )
    .task("process_video", |ctx| async move {
        let p: ProcessVideo = ctx
            .message
            .payload()
            .map_err(|e| TaskError::Permanent(e.to_string()))?;
        match p.video_id.as_str() {
            "panic" => panic!("boom"),
            "broken" => Err(TaskError::Permanent("corrupt video".into())),
            id => Ok(Some(json!({"video": id}))),
        }
    })
    .task("merge_chunks", move |_ctx| {
        let calls = calls.clone();
        async move {
            // Fails twice (transiently), then works.
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(TaskError::Transient("backend busy".into()))
            } else {
                Ok(Some(json!("merged")))
            }
        }
    });
    let stats = worker.stats.clone();
    let (stop_tx, stop) = watch::channel(false);
    let running = tokio::spawn(async move { worker.run(&[PROCESSOR_QUEUE], stop).await });

    // Poison first: not JSON, then a task nobody runs. Neither may stop the worker.
    let mut garbage = TaskMessage::new(&ProcessVideo {
        video_id: "x".into(),
    })
    .to_celery();
    garbage.raw_body = b"\xff not json".to_vec();
    broker.send_raw(PROCESSOR_QUEUE, &garbage).await.unwrap();
    let mut unknown = TaskMessage::new(&ProcessVideo {
        video_id: "x".into(),
    });
    unknown.task = "no_such_task".into();
    broker.send(PROCESSOR_QUEUE, &unknown).await.unwrap();

    let ok = TaskMessage::new(&ProcessVideo {
        video_id: "v1".into(),
    });
    let panics = TaskMessage::new(&ProcessVideo {
        video_id: "panic".into(),
    });
    let broken = TaskMessage::new(&ProcessVideo {
        video_id: "broken".into(),
    });
    let mut flaky = TaskMessage::new(&ProcessVideo {
        video_id: "flaky".into(),
    });
    flaky.task = "merge_chunks".into();
    for m in [&ok, &panics, &broken, &flaky] {
        broker.send(PROCESSOR_QUEUE, m).await.unwrap();
    }
    assert_eq!(wait_result(&backend, &ok.id).await["result"]["video"], "v1");
    let failed = wait_result(&backend, &panics.id).await;
    assert_eq!(failed["status"], "FAILURE");
    assert!(failed["result"]["exc_message"][0]
        .as_str()
        .unwrap()
        .contains("panicked: boom"));
    let failed = wait_result(&backend, &broken.id).await;
    assert_eq!(failed["result"]["exc_message"][0], "corrupt video");
    assert_eq!(failed["result"]["exc_type"], "RuntimeError");
    assert_eq!(wait_result(&backend, &flaky.id).await["result"], "merged");
    assert_eq!(
        flaky_calls.load(Ordering::SeqCst),
        3,
        "two retries, then success"
    );

    assert_eq!(stats.dead_lettered.load(Ordering::SeqCst), 2);
    assert_eq!(stats.retried.load(Ordering::SeqCst), 2);
    assert_eq!(stats.failed.load(Ordering::SeqCst), 2);
    // Both poison messages are in the dead-letter queue, intact.
    let mut dlq = broker.consume(DEAD_LETTER_QUEUE).await.unwrap();
    let mut dead = Vec::new();
    for _ in 0..2 {
        let incoming = tokio::time::timeout(Duration::from_secs(5), dlq.recv())
            .await
            .unwrap()
            .unwrap();
        dead.push(incoming.message.as_ref().unwrap().headers.task.clone());
        incoming.ack().await.unwrap();
    }
    dead.sort();
    assert_eq!(dead, ["no_such_task", "process_video"]);

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_on_rabbitmq_and_redis() {
    let (rabbit, redis) = (RabbitServer::start(), RedisServer::start());
    let broker = Broker::connect(&rabbit.url(), 2).await.unwrap();
    let backend = Backend::connect(&redis.url()).await.unwrap();
    exercise(broker, backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_in_memory() {
    let broker = Broker::connect("memory://", 2).await.unwrap();
    let backend = Backend::connect("memory://").await.unwrap();
    exercise(broker, backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_on_a_redis_broker() {
    let redis = RedisServer::start();
    let broker = Broker::connect(&redis.url().replace("/0", "/1"), 2)
        .await
        .unwrap();
    let backend = Backend::connect(&redis.url()).await.unwrap();
    exercise(broker, backend).await;
}
