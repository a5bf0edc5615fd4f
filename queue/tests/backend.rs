//! The result backend against a real Redis server, and its memory twin: same behaviour.

use argus_common::state::{VideoState, VideoStatus};
use argus_queue::backend::{Backend, ChordProgress, TaskStatus};
use argus_testkit::RedisServer;
use serde_json::json;

async fn exercise(backend: &Backend) {
    let mut events = backend.subscribe_states(Some("v")).await.unwrap();
    // Celery layout, and a ready state is final.
    let stored = |status, result| async move {
        backend
            .store_result("t1", status, &result, None)
            .await
            .unwrap()
    };
    assert!(stored(TaskStatus::Started, json!(null)).await);
    assert!(stored(TaskStatus::Success, json!({"frames": 3})).await);
    assert!(!stored(TaskStatus::Failure, json!({"exc_type": "X"})).await);
    assert!(!stored(TaskStatus::Started, json!(null)).await);
    let meta = backend.get_result("t1").await.unwrap().unwrap();
    assert_eq!(meta["status"], "SUCCESS");
    assert_eq!(meta["result"]["frames"], 3);
    assert_eq!(meta["task_id"], "t1");
    assert!(meta["date_done"].as_str().unwrap().ends_with('Z'));
    assert_eq!(meta["children"], json!([]));
    assert!(backend.get_result("missing").await.unwrap().is_none());
    // REVOKED and FAILURE are final too: a late merge cannot turn a cancelled run into SUCCESS.
    for end in [TaskStatus::Revoked, TaskStatus::Failure] {
        let id = format!("t-{end:?}");
        assert!(backend
            .store_result(&id, end, &json!({}), None)
            .await
            .unwrap());
        assert!(!backend
            .store_result(&id, TaskStatus::Success, &json!(1), None)
            .await
            .unwrap());
    }

    // The chord counts distinct chunks: a redelivered chunk counts once.
    let p = |chunks, frames| ChordProgress { chunks, frames };
    assert_eq!(backend.chord_done("c", 0, 10).await.unwrap(), p(1, 10));
    assert_eq!(backend.chord_done("c", 1, 7).await.unwrap(), p(2, 17));
    assert_eq!(
        backend.chord_done("c", 0, 10).await.unwrap(),
        p(2, 17),
        "redelivered: counted once"
    );
    assert!(backend
        .claim("argus:chord:c:fired", "task-a")
        .await
        .unwrap());
    assert!(!backend
        .claim("argus:chord:c:fired", "task-b")
        .await
        .unwrap());
    assert!(
        backend
            .claim("argus:chord:c:fired", "task-a")
            .await
            .unwrap(),
        "its own retry"
    );

    // A finished run's chord keys are cleaned up.
    backend.clean_run("c").await.unwrap();
    assert_eq!(
        backend.chord_done("c", 0, 10).await.unwrap(),
        p(1, 10),
        "sets gone"
    );
    assert!(
        !backend
            .claim("argus:chord:c:fired", "task-b")
            .await
            .unwrap(),
        "the fired mark stays: a late duplicate cannot fire the chord again"
    );

    // State changes go through the guard.
    let detecting = backend
        .update_state("v", |_| {
            let mut s = VideoState::queued("v", Some("t1".into()));
            s.status = VideoStatus::Detecting;
            Some(s)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(backend.get_state("v").await.unwrap().unwrap(), detecting);
    // The change was published to subscribers of that video.
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(&event).unwrap();
    assert_eq!(event["status"], "detecting");
    let back = backend
        .update_state("v", |old| {
            let mut s = old.unwrap().clone();
            s.status = VideoStatus::Queued;
            Some(s)
        })
        .await
        .unwrap();
    assert_eq!(back, None, "no going back");

    // Many writers at once: progress from 40 chunk tasks, a cancel among them, and a merge
    // trying to succeed. Every update is atomic: the end state is cancelled, progress never
    // went backwards, and nothing overwrote the terminal state.
    let mut subscriber = backend.subscribe_states(Some("race")).await.unwrap();
    backend
        .update_state("race", |_| {
            let mut s = VideoState::queued("race", Some("run".into()));
            s.status = VideoStatus::Detecting;
            s.chunks_total = 40;
            Some(s)
        })
        .await
        .unwrap()
        .unwrap();
    let mut writers = Vec::new();
    for i in 1..=40u64 {
        let backend = backend.clone();
        writers.push(tokio::spawn(async move {
            if i == 20 {
                // A cancel, as argus_pipeline::run::cancel_video writes it.
                backend
                    .update_state("race", |old| {
                        let mut s = old.filter(|s| !s.status.is_final())?.clone();
                        s.status = VideoStatus::Cancelled;
                        Some(s)
                    })
                    .await
                    .unwrap();
            }
            backend
                .update_state("race", |old| {
                    let old = old?;
                    if old.status.is_final() || i <= old.chunks_done {
                        return None;
                    }
                    let mut s = old.clone();
                    s.chunks_done = i;
                    s.status = if i == 40 {
                        VideoStatus::Succeeded
                    } else {
                        s.status
                    };
                    Some(s)
                })
                .await
                .unwrap()
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let end = backend.get_state("race").await.unwrap().unwrap();
    assert_eq!(end.status, VideoStatus::Cancelled, "{end:?}");
    let mut last = 0;
    let mut seen_final = false;
    while let Ok(Some(event)) =
        tokio::time::timeout(std::time::Duration::from_millis(300), subscriber.recv()).await
    {
        let s: VideoState = serde_json::from_str(&event).unwrap();
        assert!(!seen_final, "a change after the terminal state: {s:?}");
        assert!(s.chunks_done >= last, "progress went back: {s:?}");
        last = s.chunks_done;
        seen_final = s.status.is_final();
    }
    assert!(seen_final, "the cancel was published");
}

#[tokio::test]
async fn redis_backend_keeps_celerys_layout_and_an_idempotent_chord() {
    let server = RedisServer::start();
    let backend = Backend::connect(&server.url()).await.unwrap();
    exercise(&backend).await;
    // A Celery client reads exactly this key.
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg("celery-task-meta-t1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((86_000..=86_400).contains(&ttl), "a day, as Celery: {ttl}");
}

/// Each chunk's completion costs the same few O(1) commands however large the chord: 5,000
/// chunks, counted by Redis itself (`INFO commandstats`: a script's inner commands count).
#[tokio::test]
async fn chord_completion_costs_the_same_whatever_the_chord_size() {
    let server = RedisServer::start();
    let backend = Backend::connect(&server.url()).await.unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stats = |conn: redis::aio::MultiplexedConnection| async move {
        let mut conn = conn;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .unwrap();
        // cmdstat_sadd:calls=5000,usec=…
        info.lines()
            .filter_map(|l| l.strip_prefix("cmdstat_"))
            .filter_map(|l| {
                let (name, rest) = l.split_once(':')?;
                let calls = rest
                    .strip_prefix("calls=")?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()?;
                Some((name.to_string(), calls))
            })
            .collect::<std::collections::HashMap<String, u64>>()
    };
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    const CHUNKS: u32 = 5_000;
    for chunk in 0..CHUNKS {
        let progress = backend.chord_done("big", chunk, 3).await.unwrap();
        assert_eq!(progress.chunks, chunk as u64 + 1);
        assert_eq!(progress.frames, 3 * (chunk as u64 + 1));
    }
    let calls = stats(conn.clone()).await;
    for whole in ["hvals", "hgetall", "smembers", "keys", "scan"] {
        assert!(!calls.contains_key(whole), "{whole} called: {calls:?}");
    }
    let total: u64 = calls
        .iter()
        .filter(|(name, _)| !["info", "config"].contains(&name.as_str()))
        .map(|(_, n)| n)
        .sum();
    let per_chunk = total as f64 / CHUNKS as f64;
    eprintln!("{per_chunk:.2} Redis commands per chunk completion: {calls:?}");
    assert!(per_chunk <= 8.0, "{per_chunk} commands per completion");
}

#[tokio::test]
async fn memory_backend_behaves_the_same() {
    let backend = Backend::connect("memory://").await.unwrap();
    exercise(&backend).await;
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    let err = Backend::connect("mongodb://x").await.err().unwrap();
    assert!(
        err.to_string().contains("unsupported result backend URL"),
        "{err}"
    );
}

/// `connected_clients` of a Redis server, less the connection that asks.
async fn connected_clients(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(conn)
        .await
        .unwrap();
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .unwrap();
    line.trim().parse::<u64>().unwrap() - 1
}

/// A subscription ends, its connection closed, as soon as its receiver is dropped, without
/// waiting for a message that may never come.
#[tokio::test]
async fn dropped_subscriptions_leave_no_connection_or_subscriber() {
    let server = RedisServer::start();
    let backend = Backend::connect(&server.url()).await.unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let before = connected_clients(&mut conn).await;
    let mut receivers = Vec::new();
    for i in 0..50 {
        receivers.push(
            backend
                .subscribe_states(Some(&format!("v{i}")))
                .await
                .unwrap(),
        );
    }
    assert_eq!(connected_clients(&mut conn).await, before + 50);
    drop(receivers);
    let started = std::time::Instant::now();
    while connected_clients(&mut conn).await != before {
        assert!(started.elapsed().as_secs() < 5, "subscriptions left open");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let memory = Backend::connect("memory://").await.unwrap();
    let Backend::Memory(m) = &memory else {
        unreachable!()
    };
    let receivers: Vec<_> = futures::future::join_all(
        (0..50).map(|i| memory.subscribe_states(Some(if i % 2 == 0 { "a" } else { "b" }))),
    )
    .await;
    assert_eq!(m.subscribers(), 50);
    drop(receivers);
    let started = std::time::Instant::now();
    while m.subscribers() != 0 {
        assert!(started.elapsed().as_secs() < 5, "memory subscribers left");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
