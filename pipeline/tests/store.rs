//! The pipeline's keys on a real Redis server, and on its memory twin: same behaviour. A
//! chord counts each chunk once at O(1) cost; a video's state changes only through the guarded
//! update, atomically, under many writers; subscriptions to state changes leave nothing open.

use argus_common::state::{VideoState, VideoStatus};
use argus_pipeline::chord::{self, ChordProgress};
use argus_pipeline::store::{update_state, RunStore};
use argus_queue::backend::Backend;
use argus_testkit::RedisServer;

async fn exercise(backend: &Backend) {
    let mut events = backend.subscribe_states(Some("v")).await.unwrap();
    // The chord counts distinct chunks: a redelivered chunk counts once.
    let p = |chunks, frames| ChordProgress { chunks, frames };
    let done = |chunk, frames| chord::chunk_done(backend, "c", chunk, frames);
    assert_eq!(done(0, 10).await.unwrap(), p(1, 10));
    assert_eq!(done(1, 7).await.unwrap(), p(2, 17));
    assert_eq!(
        done(0, 10).await.unwrap(),
        p(2, 17),
        "redelivered: counted once"
    );
    assert!(backend
        .claim("argus:chord:c:fired", "task-a", 60)
        .await
        .unwrap());
    assert!(!backend
        .claim("argus:chord:c:fired", "task-b", 60)
        .await
        .unwrap());
    assert!(
        backend
            .claim("argus:chord:c:fired", "task-a", 60)
            .await
            .unwrap(),
        "its own retry"
    );

    // A finished run's chord keys are cleaned up.
    chord::clean(backend, "c").await.unwrap();
    assert_eq!(done(0, 10).await.unwrap(), p(1, 10), "sets gone");
    assert!(
        !backend
            .claim("argus:chord:c:fired", "task-b", 60)
            .await
            .unwrap(),
        "the fired mark stays: a late duplicate cannot fire the chord again"
    );

    // State changes go through the guard.
    let detecting = update_state(backend, "v", |_| {
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
    let back = update_state(backend, "v", |old| {
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
    update_state(backend, "race", |_| {
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
                update_state(&backend, "race", |old| {
                    let mut s = old.filter(|s| !s.status.is_final())?.clone();
                    s.status = VideoStatus::Cancelled;
                    Some(s)
                })
                .await
                .unwrap();
            }
            update_state(&backend, "race", |old| {
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
async fn on_redis_a_chord_counts_once_and_states_change_atomically() {
    let server = RedisServer::start();
    let backend = Backend::connect(&server.url()).await.unwrap();
    exercise(&backend).await;
}

#[tokio::test]
async fn on_memory_the_same() {
    let backend = Backend::connect("memory://").await.unwrap();
    exercise(&backend).await;
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
        let progress = chord::chunk_done(&backend, "big", chunk, 3).await.unwrap();
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
