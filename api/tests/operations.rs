//! The operations endpoints, against the real server (support/): `/readyz` answers from the
//! last round of background checks (a hammered `/readyz` does not hammer the database or the
//! broker, and a failing dependency shows within a few seconds), and with `ARGUS_METRICS_BIND`
//! set, `/metrics` and `/readyz` are served there and no longer on the public port.

#[macro_use]
mod support;

use argus_pipeline::store::RunStore;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argus_api::health::ReadinessCheck;
use futures::future::BoxFuture;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::*;

/// A check that counts its calls and fails while told to.
#[derive(Clone, Default)]
struct Counting {
    calls: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
}

impl ReadinessCheck for Counting {
    fn name(&self) -> &str {
        "counting"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let failing = self.failing.load(Ordering::SeqCst);
        Box::pin(async move {
            if failing {
                Err("told to fail".to_string())
            } else {
                Ok(())
            }
        })
    }
}

async fn get(client: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let response = client.get(url).send().await.expect("answers");
    (response.status(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_from_cached_checks() {
    let storage = TempDir::new("readyz");
    let config = config(Backend::Sqlite, &storage).await;
    let check = Counting::default();
    let api = TestApi::start_with(config, vec![Box::new(check.clone())])
        .await
        .unwrap();

    let started = Instant::now();
    for _ in 0..200 {
        let (status, body) = api.get("/readyz", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["checks"],
            json!(["database", "broker", "result_backend", "counting"])
        );
    }
    let elapsed = started.elapsed();
    let calls = check.calls.load(Ordering::SeqCst);
    // One round at start, then one per interval: not one per hit.
    let rounds = 2 + (elapsed.as_secs_f64() / 2.0).ceil() as usize;
    assert!(
        calls <= rounds,
        "200 hits in {elapsed:?} ran the checks {calls} times"
    );

    // A dependency that fails shows within a few seconds, and so does its return.
    check.failing.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let answer = loop {
        let answer = api.get("/readyz", None).await;
        if answer.0 != StatusCode::OK {
            break answer;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_error(&answer, StatusCode::SERVICE_UNAVAILABLE, "not_ready");
    assert_eq!(answer.1["message"], "counting: told to fail");
    check.failing.store(false, Ordering::SeqCst);
    let started = Instant::now();
    while api.get("/readyz", None).await.0 != StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still not ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_bind_takes_operations_off_the_public_port() {
    let storage = TempDir::new("metrics-bind");
    let mut config = config(Backend::Sqlite, &storage).await;
    config.metrics_bind = "127.0.0.1:0".to_string();
    let check = Counting::default();
    let api = TestApi::start_with(config, vec![Box::new(check.clone())])
        .await
        .unwrap();
    let ops = api.metrics_base.clone().expect("a metrics address");
    assert_ne!(ops, api.base);

    // The public port: no /metrics, no /readyz; /healthz tells nothing and stays.
    for path in ["/metrics", "/readyz"] {
        let answer = api.get(path, None).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    }
    let (status, _) = api.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);

    // The metrics address serves them, with the API's own metrics and checks.
    let client = &api.client;
    let (status, text) = get(client, &format!("{ops}/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains(
            "argus_api_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 2"
        ),
        "{text}"
    );
    assert!(text.contains("argus_api_event_streams 0"), "{text}");
    let (status, body) = get(client, &format!("{ops}/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["checks"],
        json!(["database", "broker", "result_backend", "counting"])
    );
    let (status, _) = get(client, &format!("{ops}/healthz")).await;
    assert_eq!(status, StatusCode::OK);

    // Hammered there too, the checks run per interval, not per hit.
    let before = check.calls.load(Ordering::SeqCst);
    for _ in 0..100 {
        assert_eq!(
            get(client, &format!("{ops}/readyz")).await.0,
            StatusCode::OK
        );
    }
    assert!(check.calls.load(Ordering::SeqCst) - before <= 3);

    check.failing.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let body = loop {
        let (status, body) = get(client, &format!("{ops}/readyz")).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break body;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "not_ready");
    assert_eq!(body["message"], "counting: told to fail");
}

async fn video(api: &TestApi, id: &str, token: &str) -> Value {
    api.get(&format!("/api/v1/videos/{id}"), Some(token))
        .await
        .1
}

/// Redis restarted without persistence in the middle of a run: the run's state and chord are
/// gone, nothing would ever finish it, and its record said `detecting` for ever. The reaper
/// fails it with the reason (record, backend state, Celery result), and leaves a live run alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_whose_bookkeeping_was_lost_are_reaped() {
    let mut redis = tokio::task::spawn_blocking(argus_testkit::RedisServer::start)
        .await
        .unwrap();
    let storage = TempDir::new("reaper");
    let mut config = config(Backend::Sqlite, &storage).await;
    config.result_backend = argus_api::Secret::new(redis.url());
    config.reaper_interval = 1;
    config.reap_after = 1;
    let api = TestApi::start_with(config, Vec::new()).await.unwrap();
    let token = api.admin_token().await;
    let (id, run) = upload(&api, &token).await;
    let backend = argus_queue::backend::Backend::connect(&redis.url())
        .await
        .unwrap();
    // The run gets going, as the processor would move it.
    moves_on(&backend, &id, argus_common::state::VideoStatus::Splitting).await;
    moves_on(&backend, &id, argus_common::state::VideoStatus::Detecting).await;
    let started = Instant::now();
    while video(&api, &id, &token).await["status"] != "detecting" {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never detecting"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A few reaper rounds: a live run is left alone.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(video(&api, &id, &token).await["status"], "detecting");

    redis = tokio::task::spawn_blocking(move || {
        redis.restart();
        redis
    })
    .await
    .unwrap();
    let started = Instant::now();
    let reaped = loop {
        let now = video(&api, &id, &token).await;
        if now["status"] != "detecting" {
            break now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still detecting after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(reaped["status"], "failed", "{reaped}");
    assert!(
        reaped["error"].as_str().unwrap().contains("bookkeeping"),
        "{reaped}"
    );
    // The test's own connection died with the server.
    let backend = argus_queue::backend::Backend::connect(&redis.url())
        .await
        .unwrap();
    let state = backend
        .get_state(&id)
        .await
        .unwrap()
        .expect("a failed state");
    assert_eq!(state.status, argus_common::state::VideoStatus::Failed);
    let celery = backend
        .get_result(&run)
        .await
        .unwrap()
        .expect("a Celery result");
    assert_eq!(celery["status"], "FAILURE", "{celery}");

    // A video uploaded after the restart has its state: a few rounds leave it queued.
    let (fresh, _) = upload(&api, &token).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(video(&api, &fresh, &token).await["status"], "queued");
    drop(redis);
}

/// A rolling update's stop (SIGTERM: `Stopper::drain`): `/readyz` turns 503 at once while every
/// route keeps serving for `ARGUS_SHUTDOWN_DELAY_S`, so the load balancer takes the pod out of
/// rotation before its listener closes; a request in flight (an upload still arriving)
/// completes; then the listener is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_server_turns_unready_first_and_finishes_what_it_serves() {
    use futures::StreamExt;
    let storage = TempDir::new("drain");
    let mut config = config(Backend::Sqlite, &storage).await;
    config.shutdown_delay = 2;
    let api = TestApi::start_with(config, Vec::new()).await.unwrap();
    let token = api.admin_token().await;
    assert_eq!(api.get("/readyz", None).await.0, StatusCode::OK);

    // An upload whose body arrives over ~3 s: it is in flight when the stop begins, and still
    // after the listener closes.
    let body = carphone();
    let parts: Vec<Vec<u8>> = body
        .chunks(body.len() / 30 + 1)
        .map(<[u8]>::to_vec)
        .collect();
    let trickle = futures::stream::iter(parts).then(|part| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok::<_, std::io::Error>(part)
    });
    let upload = api
        .request(
            reqwest::Method::POST,
            "/api/v1/videos?filename=c.mp4",
            Some(&token),
        )
        .header(reqwest::header::CONTENT_TYPE, "video/mp4")
        .body(reqwest::Body::wrap_stream(trickle))
        .send();
    let upload = tokio::spawn(upload);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let stopper = api.stopper.clone();
    let begun = Instant::now();
    let stopped = tokio::spawn(async move { stopper.drain().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, answer) = api.get("/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("draining"),
        "{answer}"
    );
    // Not ready, but serving: a user's request still gets its answer.
    let (status, list) = api.get("/api/v1/videos", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{list}");

    let uploaded = upload
        .await
        .unwrap()
        .expect("the upload in flight completes");
    assert_eq!(uploaded.status(), StatusCode::ACCEPTED);
    stopped.await.unwrap();
    assert!(
        begun.elapsed() >= Duration::from_secs(2),
        "stopped after {:?}, before the delay",
        begun.elapsed()
    );
    // The listener is closed now.
    assert!(
        reqwest::get(api.url("/healthz")).await.is_err(),
        "still listening after the stop"
    );
}
