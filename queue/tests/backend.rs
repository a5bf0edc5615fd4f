//! The result backend against a real Redis server, and its memory twin: same behaviour
//! (Celery's result layout, and the primitives the pipeline builds on).

use argus_queue::backend::{Backend, TaskStatus};
use argus_testkit::RedisServer;
use serde_json::json;

async fn exercise(backend: &Backend) {
    let mut events = backend.subscribe("chan").await.unwrap();
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

    // A set with a count: each member counts once.
    let add = |member, amount| backend.add_counted("s", "s:n", member, amount, 60);
    assert_eq!(add(0, 10).await.unwrap(), (1, 10));
    assert_eq!(add(1, 7).await.unwrap(), (2, 17));
    assert_eq!(add(0, 10).await.unwrap(), (2, 17), "a member counts once");
    backend
        .delete(&["s".to_string(), "s:n".to_string()])
        .await
        .unwrap();
    assert_eq!(add(0, 1).await.unwrap(), (1, 1), "deleted");

    // A claim is its first owner's, and again its owner's.
    assert!(backend.claim("k", "a", 60).await.unwrap());
    assert!(!backend.claim("k", "b", 60).await.unwrap());
    assert!(backend.claim("k", "a", 60).await.unwrap(), "its own retry");

    // Compare and set: written only over what the writer read, then published.
    assert!(backend
        .compare_and_set("cas", None, "one", 60, &["chan"])
        .await
        .unwrap());
    assert!(!backend
        .compare_and_set("cas", None, "two", 60, &["chan"])
        .await
        .unwrap());
    assert!(!backend
        .compare_and_set("cas", Some("zero"), "two", 60, &["chan"])
        .await
        .unwrap());
    assert!(backend
        .compare_and_set("cas", Some("one"), "two", 60, &["chan"])
        .await
        .unwrap());
    assert_eq!(
        backend.get_text("cas").await.unwrap().as_deref(),
        Some("two")
    );
    for expected in ["one", "two"] {
        let event = tokio::time::timeout(std::time::Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event, expected);
    }

    // A moving average.
    backend.blend("avg", 100.0, 0.5, 60).await.unwrap();
    backend.blend("avg", 200.0, 0.5, 60).await.unwrap();
    let avg: f64 = backend
        .get_text("avg")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    assert!((avg - 150.0).abs() < 1e-9, "{avg}");

    // A roster: each member until its own expiry, renewals not doubled.
    backend.present("roster", "short", 1).await.unwrap();
    backend.present("roster", "long", 60).await.unwrap();
    backend.present("roster", "short", 1).await.unwrap();
    assert_eq!(
        backend.present_members("roster").await.unwrap(),
        ["long", "short"]
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(backend.present_members("roster").await.unwrap(), ["long"]);
    assert!(backend.present_members("nobody").await.unwrap().is_empty());
}

#[tokio::test]
async fn redis_backend_keeps_celerys_layout() {
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
