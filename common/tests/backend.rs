//! The result backend against a real Redis server, and its memory twin: same behaviour.

use argus_common::backend::{Backend, ChordProgress, TaskStatus};
use argus_common::state::{VideoState, VideoStatus};
use argus_common::testing::RedisServer;
use serde_json::json;

async fn exercise(backend: &Backend) {
    let mut events = backend.subscribe_states(Some("v")).await.unwrap();
    // Celery layout, and SUCCESS is final.
    backend
        .store_result("t1", TaskStatus::Started, json!(null), None)
        .await
        .unwrap();
    backend
        .store_result("t1", TaskStatus::Success, json!({"frames": 3}), None)
        .await
        .unwrap();
    backend
        .store_result("t1", TaskStatus::Failure, json!({"exc_type": "X"}), None)
        .await
        .unwrap();
    let meta = backend.get_result("t1").await.unwrap().unwrap();
    assert_eq!(meta["status"], "SUCCESS");
    assert_eq!(meta["result"]["frames"], 3);
    assert_eq!(meta["task_id"], "t1");
    assert!(meta["date_done"].as_str().unwrap().ends_with('Z'));
    assert_eq!(meta["children"], json!([]));
    assert!(backend.get_result("missing").await.unwrap().is_none());

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

    backend
        .put_chunk("v", 2, &json!([{"index": 5}]))
        .await
        .unwrap();
    assert_eq!(
        backend.get_chunk("v", 2).await.unwrap().unwrap()[0]["index"],
        5
    );

    let mut state = VideoState::queued("v", Some("t1".into()));
    state.status = VideoStatus::Detecting;
    backend.set_state(&state).await.unwrap();
    assert_eq!(backend.get_state("v").await.unwrap().unwrap(), state);
    // The change was published to subscribers of that video.
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    let event: serde_json::Value = serde_json::from_str(&event).unwrap();
    assert_eq!(event["status"], "detecting");
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
