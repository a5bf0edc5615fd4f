//! The worker loop on a real RabbitMQ (and on memory:// and a Redis broker): tasks run and
//! their results land in the backend; poison messages reach the dead-letter queue while the
//! worker keeps going; transient errors are retried, waiting in the broker and not in a worker
//! slot; a task past its time limit is stopped before its retry starts; a delivery started too
//! often is dead-lettered; a panicking task fails alone.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argus_queue::backend::Backend;
use argus_queue::broker::Broker;
use argus_queue::broker::DEAD_LETTER_QUEUE;
use argus_queue::message::{TaskMessage, TaskPayload};
use argus_queue::worker::{TaskError, Worker, WorkerOptions};
use argus_testkit::{RabbitServer, RedisServer};
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

/// The queues of these tests: the runtime knows none of its own.
const PROCESSOR_QUEUE: &str = "work";
const DETECTOR_QUEUE: &str = "other-work";

/// A payload of the tests' own: the runtime runs whatever tasks its application registers.
#[derive(serde::Serialize, serde::Deserialize)]
struct ProcessVideo {
    video_id: String,
}

impl TaskPayload for ProcessVideo {
    const NAME: &'static str = "process_video";
    const ARGS: &'static [&'static str] = &["video_id"];
}

fn video(id: &str) -> TaskMessage {
    TaskMessage::new(&ProcessVideo {
        video_id: id.into(),
    })
}

/// When each run of the `slow` task started and ended.
type Runs = Arc<Mutex<Vec<(u32, Instant, Instant)>>>;

async fn exercise(broker: Broker, backend: Backend) {
    let flaky_calls = Arc::new(AtomicU32::new(0));
    let calls = flaky_calls.clone();
    let runs: Runs = Arc::default();
    let slow_runs = runs.clone();
    let finished: Arc<Mutex<Vec<String>>> = Arc::default();
    let order = finished.clone();
    let finished_flaky = finished.clone();
    // One slot: a retry waiting for its delay must not hold it.
    let worker = Worker::new(
        broker.clone(),
        backend.clone(),
        WorkerOptions {
            concurrency: 1,
            retry_delay: Duration::from_millis(600),
            time_limit: Duration::from_millis(1500),
            max_starts: 3,
            ..WorkerOptions::default()
        },
    )
    .task("process_video", move |ctx| {
        let (runs, order) = (slow_runs.clone(), order.clone());
        async move {
            let p: ProcessVideo = ctx
                .message
                .payload()
                .map_err(|e| TaskError::Permanent(e.to_string()))?;
            order.lock().unwrap().push(p.video_id.clone());
            match p.video_id.as_str() {
                "panic" => panic!("boom"),
                "broken" => Err(TaskError::Permanent("corrupt video".into())),
                // Runs for ever the first time (checking its stop flag, as the decode loops
                // do), at once on its retry.
                "slow" => {
                    let retries = ctx.message.retries;
                    let stop = ctx.stop.clone();
                    let (started, ended) = tokio::task::spawn_blocking(move || {
                        let started = Instant::now();
                        while retries == 0 && stop.reason().is_none() {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        (started, Instant::now())
                    })
                    .await
                    .unwrap();
                    runs.lock().unwrap().push((retries, started, ended));
                    Ok(Some(json!({"video": "slow", "retries": retries})))
                }
                id => Ok(Some(json!({"video": id}))),
            }
        }
    })
    .task("merge_chunks", move |_ctx| {
        let (calls, order) = (calls.clone(), finished_flaky.clone());
        async move {
            // Fails twice (transiently), then works.
            let n = calls.fetch_add(1, Ordering::SeqCst);
            order.lock().unwrap().push(format!("flaky{n}"));
            if n < 2 {
                Err(TaskError::Transient("backend busy".into()))
            } else {
                Ok(Some(json!("merged")))
            }
        }
    });
    let metrics = worker.metrics().clone();
    let (stop_tx, stop) = watch::channel(false);
    let running = tokio::spawn(async move { worker.run(&[PROCESSOR_QUEUE], stop).await });

    // Poison first: not JSON, then a task nobody runs. Neither may stop the worker.
    let mut garbage = video("x").to_celery();
    garbage.raw_body = b"\xff not json".to_vec();
    broker.send_raw(PROCESSOR_QUEUE, &garbage).await.unwrap();
    let mut unknown = video("x");
    unknown.task = "no_such_task".into();
    broker.send(PROCESSOR_QUEUE, &unknown).await.unwrap();
    // A delivery that was started 3 times and never finished (it killed its worker each
    // time): its next start dead-letters it and fails it instead of running it again.
    let killer = video("killer");
    for _ in 0..3 {
        backend.count_start(&killer.id, 0).await.unwrap();
    }
    broker.send(PROCESSOR_QUEUE, &killer).await.unwrap();

    let ok = video("v1");
    let panics = video("panic");
    let broken = video("broken");
    let mut flaky = video("flaky");
    flaky.task = "merge_chunks".into();
    for m in [&ok, &panics, &broken, &flaky] {
        broker.send(PROCESSOR_QUEUE, m).await.unwrap();
    }
    // Sent once flaky has failed the first time: it runs while flaky waits for its retry
    // (which waits in the broker, not in the worker's only slot).
    for _ in 0..200 {
        let meta = backend.get_result(&flaky.id).await.unwrap();
        if meta.is_some_and(|m| m["status"] == "RETRY") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let meanwhile = video("meanwhile");
    broker.send(PROCESSOR_QUEUE, &meanwhile).await.unwrap();
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
    assert_eq!(
        wait_result(&backend, &meanwhile.id).await["status"],
        "SUCCESS"
    );
    {
        let order = finished.lock().unwrap();
        let at = |id: &str| order.iter().position(|v| v == id).unwrap();
        assert!(
            at("flaky0") < at("meanwhile") && at("meanwhile") < at("flaky1"),
            "meanwhile ran while flaky waited: {order:?}"
        );
    }
    let killed = wait_result(&backend, &killer.id).await;
    assert_eq!(killed["status"], "FAILURE");
    assert!(
        killed["result"]["exc_message"][0]
            .as_str()
            .unwrap()
            .contains("started 3 times without finishing"),
        "{killed}"
    );
    assert!(
        !finished.lock().unwrap().contains(&"killer".to_string()),
        "never started again"
    );

    // Past its time limit the slow task is stopped, and only then retried: the first run
    // ended before the retry began (no orphan beside it, the one slot respected).
    let slow = video("slow");
    broker.send(PROCESSOR_QUEUE, &slow).await.unwrap();
    let done = wait_result(&backend, &slow.id).await;
    assert_eq!(done["result"]["retries"], 1, "{done}");
    {
        let runs = runs.lock().unwrap();
        assert_eq!(runs.len(), 2, "{runs:?}");
        let (first, retry) = (runs[0], runs[1]);
        assert_eq!((first.0, retry.0), (0, 1));
        let ran = first.2 - first.1;
        assert!(
            ran >= Duration::from_millis(1400) && ran < Duration::from_secs(5),
            "stopped at its limit: {ran:?}"
        );
        assert!(
            first.2 <= retry.1,
            "the retry started after the first run stopped"
        );
    }

    assert_eq!(metrics.dead_lettered.get(), 3);
    assert_eq!(metrics.outcomes("retried"), 3);
    assert_eq!(metrics.outcomes("failed"), 3);
    // The poison messages are in the dead-letter queue.
    let mut dlq = broker.consume(DEAD_LETTER_QUEUE).await.unwrap();
    let mut dead = Vec::new();
    for _ in 0..3 {
        let incoming = tokio::time::timeout(Duration::from_secs(5), dlq.recv())
            .await
            .unwrap()
            .unwrap();
        let m = incoming.message.as_ref().unwrap();
        dead.push(format!(
            "{} {}",
            m.headers.task,
            String::from_utf8_lossy(&m.raw_body).contains("killer")
        ));
        incoming.ack().await.unwrap();
    }
    dead.sort();
    assert_eq!(
        dead,
        [
            "no_such_task false",
            "process_video false",
            "process_video true"
        ]
    );

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
    exercise(broker.clone(), backend.clone()).await;
    assert_queue_depth(&broker).await;
    undecodable_deliveries_reach_the_dlq_as_they_came(&rabbit.url(), broker, backend).await;
}

/// The queue depth (the autoscaler's metric) counts messages waiting in a queue.
async fn assert_queue_depth(broker: &Broker) {
    assert_eq!(broker.queue_depth(DETECTOR_QUEUE).await.unwrap(), 0);
    for _ in 0..2 {
        broker
            .send(DETECTOR_QUEUE, &video("waiting"))
            .await
            .unwrap();
    }
    assert_eq!(broker.queue_depth(DETECTOR_QUEUE).await.unwrap(), 2);
}

/// A delivery that is no Celery message at all (no task headers) lands in `argus.dlq` with
/// its body, properties and headers as sent, plus the reason.
async fn undecodable_deliveries_reach_the_dlq_as_they_came(
    url: &str,
    broker: Broker,
    backend: Backend,
) {
    use lapin::options::{BasicGetOptions, BasicPublishOptions};
    use lapin::types::{AMQPValue, FieldTable};
    let worker = Worker::new(broker, backend, WorkerOptions::default())
        .task("process_video", |_ctx| async { Ok(None) });
    let metrics = worker.metrics().clone();
    let (stop_tx, stop) = watch::channel(false);
    let running = tokio::spawn(async move { worker.run(&[PROCESSOR_QUEUE], stop).await });

    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let mut headers = FieldTable::default();
    headers.insert("trace".into(), AMQPValue::LongString("abc-123".into()));
    let props = lapin::BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_message_id("m-1".into())
        .with_headers(headers);
    channel
        .basic_publish(
            "",
            PROCESSOR_QUEUE,
            BasicPublishOptions::default(),
            b"\x00\x01 not a task",
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let mut dead = None;
    for _ in 0..100 {
        dead = channel
            .basic_get(DEAD_LETTER_QUEUE, BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        if dead.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = dead
        .expect("the undecodable delivery reached the DLQ")
        .delivery;
    assert_eq!(dead.data, b"\x00\x01 not a task");
    assert_eq!(
        dead.properties.message_id().as_ref().unwrap().as_str(),
        "m-1"
    );
    assert_eq!(
        dead.properties.content_type().as_ref().unwrap().as_str(),
        "text/plain"
    );
    let headers = dead.properties.headers().as_ref().unwrap().inner();
    assert_eq!(
        headers.get("trace"),
        Some(&AMQPValue::LongString("abc-123".into()))
    );
    let Some(AMQPValue::LongString(reason)) = headers.get("x-argus-reason") else {
        panic!("no reason header: {headers:?}");
    };
    let reason = String::from_utf8_lossy(reason.as_bytes()).into_owned();
    assert!(
        reason.contains("not a Celery protocol v2 message"),
        "{reason}"
    );
    // Counted just after the publish the DLQ read above saw.
    let counted = std::time::Instant::now();
    while metrics.dead_lettered.get() == 0 && counted.elapsed().as_secs() < 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metrics.dead_lettered.get(), 1);
    stop_tx.send(true).unwrap();
    running.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_in_memory() {
    let broker = Broker::connect("memory://", 2).await.unwrap();
    let backend = Backend::connect("memory://").await.unwrap();
    exercise(broker.clone(), backend).await;
    assert_queue_depth(&broker).await;
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

/// A stopping worker waits for its tasks in hand, but not for ever: a task that never looks
/// at its stop flag (or a disposition stuck on the broker) is left behind at the worker's own
/// deadline (its time limit, plus as much again up to 30 s), with an error, instead of holding
/// the process until SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_gives_up_on_a_stuck_task_at_its_own_deadline() {
    let broker = Broker::connect("memory://", 1).await.unwrap();
    let backend = Backend::connect("memory://").await.unwrap();
    let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
    let started_tx = Arc::new(Mutex::new(Some(started_tx)));
    let time_limit = Duration::from_millis(400);
    let worker = Worker::new(
        broker.clone(),
        backend.clone(),
        WorkerOptions {
            concurrency: 1,
            time_limit,
            ..WorkerOptions::default()
        },
    )
    .task("process_video", move |_ctx| {
        let started_tx = started_tx.clone();
        async move {
            if let Some(tx) = started_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            // Deaf to its stop flag.
            std::future::pending::<()>().await;
            Ok(None)
        }
    });
    let (stop_tx, stop) = watch::channel(false);
    let running = tokio::spawn(async move { worker.run(&[PROCESSOR_QUEUE], stop).await });
    broker.send(PROCESSOR_QUEUE, &video("stuck")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), started)
        .await
        .expect("the task started")
        .unwrap();
    let stopping = Instant::now();
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the worker exits by its own deadline")
        .unwrap();
    let took = stopping.elapsed();
    assert!(
        took >= time_limit && took < time_limit * 2 + Duration::from_secs(1),
        "stopped after {took:?} (time limit {time_limit:?})"
    );
}
