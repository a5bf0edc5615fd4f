//! Event streams (SSE) cannot exhaust anything: the real server (support/) with a real Redis as
//! result backend, or `memory://`, and streams opened over loopback TCP like any client's.
//!
//! - A thousand streams opened and dropped leave Redis's connected clients, the server's
//!   internal subscribers and the process's RSS where they were, while a stream kept open
//!   still gets every change (one backend subscription per server, fanned out in process).
//! - A user holds at most `ARGUS_MAX_STREAMS_PER_USER` streams; one more is 429.
//! - A failed video's reason, in its view and in its events, names no server path.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use argus_common::state::VideoStatus;
use argus_queue::backend::Backend as ResultBackend;
use argus_queue::broker::Broker;
use reqwest::header::RETRY_AFTER;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(20);
const STREAMS: usize = 1000;

/// The tests of this file run one at a time: the process's RSS is measured, and tests running
/// beside it would move it.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Opens an event stream over a raw TCP connection and reads until its first event: the
/// server holds the stream from then on. The connection, to drop.
async fn open_raw(addr: &str, id: &str, token: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let request = format!(
        "GET /api/v1/videos/{id}/events HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("event: state") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buffer))
            .await
            .expect("the first event within the wait")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buffer[..n]);
    }
    let head = String::from_utf8_lossy(&seen);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream
}

/// `count` streams of one video, opened 50 at a time.
async fn open_many(api: &TestApi, id: &str, token: &str, count: usize) -> Vec<TcpStream> {
    let addr = api.base.trim_start_matches("http://").to_string();
    let mut streams = Vec::with_capacity(count);
    while streams.len() < count {
        let batch = (count - streams.len()).min(50);
        let opened = futures::future::join_all((0..batch).map(|_| open_raw(&addr, id, token)));
        streams.extend(opened.await);
    }
    streams
}

/// `connected_clients` of a Redis server (INFO clients, spoken in RESP by hand).
async fn redis_clients(port: u16) -> u64 {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    conn.write_all(b"*2\r\n$4\r\nINFO\r\n$7\r\nclients\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = conn.read(&mut buffer).await.unwrap();
        assert!(n > 0, "redis closed the connection");
        reply.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&reply);
        // A bulk string: `$<len>\r\n<body>\r\n`.
        if let Some((len, body)) = text.strip_prefix('$').and_then(|t| t.split_once("\r\n")) {
            let len: usize = len.parse().unwrap();
            if body.len() >= len {
                let line = body[..len]
                    .lines()
                    .find_map(|l| l.strip_prefix("connected_clients:"))
                    .expect("connected_clients in INFO clients")
                    .trim()
                    .to_string();
                // This connection counts too.
                return line.parse::<u64>().unwrap() - 1;
            }
        }
    }
}

/// This process's resident memory, in KiB (the server runs in it).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// The value of an unlabelled sample in a Prometheus text exposition.
fn sample(text: &str, metric: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{metric} ")))
        .and_then(|v| v.parse().ok())
}

/// Open streams and watched videos, as the server's metrics say.
async fn open_streams(api: &TestApi) -> (f64, f64) {
    let base = api.metrics_base.as_deref().unwrap_or(&api.base);
    let text = api
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (
        sample(&text, "argus_api_event_streams").expect("argus_api_event_streams"),
        sample(&text, "argus_api_watched_videos").expect("argus_api_watched_videos"),
    )
}

/// Polls `probe` until it gives `want` (within the wait); the last value otherwise.
async fn settles<T: PartialEq + std::fmt::Debug, F: std::future::Future<Output = T>>(
    what: &str,
    want: T,
    probe: impl Fn() -> F,
) {
    let started = Instant::now();
    loop {
        let got = probe().await;
        if got == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what}: {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_streams_on_redis_leave_nothing_behind() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let redis = tokio::task::spawn_blocking(argus_testkit::RedisServer::start)
        .await
        .unwrap();
    let storage = TempDir::new("sse-redis");
    let mut config = config(Backend::Sqlite, &storage).await;
    config.result_backend = argus_api::Secret::new(redis.url());
    config.max_streams_per_user = 2 * STREAMS;
    let api = TestApi::start_with(config, Vec::new()).await.unwrap();
    let token = api.admin_token().await;
    let (id, _) = upload(&api, &token).await;
    let backend = ResultBackend::connect(&redis.url()).await.unwrap();

    // One stream stays open throughout.
    let mut live = EventStream::open(&api, &id, &token).await;
    assert_eq!(live.state(&mut 0).await.unwrap()["status"], "queued");
    let clients = redis_clients(redis.port).await;
    assert_eq!(open_streams(&api).await, (1.0, 1.0));

    // A first round warms the allocator up; the second is measured against it.
    let mut rss = Vec::new();
    for round in 0..2 {
        let streams = open_many(&api, &id, &token, STREAMS).await;
        assert_eq!(
            open_streams(&api).await,
            ((STREAMS + 1) as f64, 1.0),
            "round {round}"
        );
        assert_eq!(
            redis_clients(redis.port).await,
            clients,
            "round {round}: no Redis connection per stream"
        );
        drop(streams);
        settles("open streams once dropped", (1.0, 1.0), || {
            open_streams(&api)
        })
        .await;
        settles("Redis clients once dropped", clients, || {
            redis_clients(redis.port)
        })
        .await;
        rss.push(rss_kib());
    }
    assert!(
        rss[1] <= rss[0] + 16 * 1024,
        "RSS grew from {} to {} KiB over a round of {STREAMS} streams",
        rss[0],
        rss[1]
    );

    // The stream kept open still gets every change, through the one subscription.
    moves_on(&backend, &id, VideoStatus::Splitting).await;
    assert_eq!(live.state(&mut 0).await.unwrap()["status"], "splitting");
    moves_on(&backend, &id, VideoStatus::Cancelled).await;
    assert_eq!(live.state(&mut 0).await.unwrap()["status"], "cancelled");
    assert_eq!(live.state(&mut 0).await, None, "closed after a final state");
    settles("no stream left", (0.0, 0.0), || open_streams(&api)).await;
    assert_eq!(redis_clients(redis.port).await, clients);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_streams_on_memory_leave_no_subscriber() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let storage = TempDir::new("sse-memory");
    let mut config = config(Backend::Sqlite, &storage).await;
    config.max_streams_per_user = 2 * STREAMS;
    let broker = Broker::connect("memory://", 1).await.unwrap();
    let backend = ResultBackend::connect("memory://").await.unwrap();
    let ResultBackend::Memory(memory) = &backend else {
        unreachable!()
    };
    let api = TestApi::start_with_queue(config, broker, backend.clone())
        .await
        .unwrap();
    let token = api.admin_token().await;
    let (id, _) = upload(&api, &token).await;
    // The server's listener: its one subscription.
    settles("the listener's subscription", 1, || async {
        memory.subscribers()
    })
    .await;

    let streams = open_many(&api, &id, &token, STREAMS).await;
    assert_eq!(open_streams(&api).await, (STREAMS as f64, 1.0));
    assert_eq!(memory.subscribers(), 1, "no subscription per stream");
    drop(streams);
    settles("open streams once dropped", (0.0, 0.0), || {
        open_streams(&api)
    })
    .await;
    assert_eq!(memory.subscribers(), 1);

    // Changes still flow to a new stream.
    let mut live = EventStream::open(&api, &id, &token).await;
    assert_eq!(live.state(&mut 0).await.unwrap()["status"], "queued");
    moves_on(&backend, &id, VideoStatus::Splitting).await;
    assert_eq!(live.state(&mut 0).await.unwrap()["status"], "splitting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_per_user_are_capped() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let storage = TempDir::new("sse-cap");
    let mut config = config(Backend::Sqlite, &storage).await;
    config.max_streams_per_user = 3;
    let api = TestApi::start_with(config, Vec::new()).await.unwrap();
    let admin = api.admin_token().await;
    let (status, body) = api
        .create_user(&admin, "alice", "alice-password", "user")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let alice = api.login("alice", "alice-password").await;
    let (id, _) = upload(&api, &alice).await;

    let mut streams = open_many(&api, &id, &alice, 3).await;
    let refused = api
        .request(
            Method::GET,
            &format!("/api/v1/videos/{id}/events"),
            Some(&alice),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let body: Value = refused.json().await.unwrap();
    assert_error(
        &(StatusCode::TOO_MANY_REQUESTS, body),
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_streams",
    );
    // Another user (the admin sees every video) has slots of their own.
    let _admins = open_many(&api, &id, &admin, 1).await;

    // A stream that ends frees its slot as soon as the server sees the client go.
    drop(streams.pop());
    let started = Instant::now();
    loop {
        let response = api
            .request(
                Method::GET,
                &format!("/api/v1/videos/{id}/events"),
                Some(&alice),
            )
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::OK {
            break;
        }
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the slot was not freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_reasons_name_no_server_path() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let storage = TempDir::new("sse-paths");
    let config = config(Backend::Sqlite, &storage).await;
    let broker = Broker::connect("memory://", 1).await.unwrap();
    let backend = ResultBackend::connect("memory://").await.unwrap();
    let api = TestApi::start_with_queue(config, broker, backend.clone())
        .await
        .unwrap();
    let token = api.admin_token().await;
    let (id, run) = upload(&api, &token).await;
    let stored = storage.0.join("videos").join(format!("{id}.mp4"));
    assert!(stored.is_file());
    let mut events = EventStream::open(&api, &id, &token).await;
    assert_eq!(events.state(&mut 0).await.unwrap()["status"], "queued");

    // What a worker's media error says when the stored file cannot be opened.
    let reason = format!(
        "cannot open {} as a video: Invalid data found when processing input",
        stored.display()
    );
    assert!(
        argus_pipeline::run::fail_video(&backend, &id, &run, &reason)
            .await
            .unwrap()
    );
    let shown =
        format!("cannot open {id}.mp4 as a video: Invalid data found when processing input");
    let event = events.state(&mut 0).await.unwrap();
    assert_eq!(event["status"], "failed");
    assert_eq!(event["error"], shown.as_str());
    let (status, view) = api.get(&format!("/api/v1/videos/{id}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["error"], shown.as_str());
    let answer = api
        .get(&format!("/api/v1/videos/{id}/result"), Some(&token))
        .await;
    assert_error(&answer, StatusCode::CONFLICT, "video_failed");
    let root = storage.0.to_string_lossy().to_string();
    for text in [view.to_string(), answer.1.to_string(), event.to_string()] {
        assert!(!text.contains(&root), "a server path is shown: {text}");
    }
}
