//! DELETE against a run in flight, timed for real: the argus-api binary, one argus-processor
//! and two argus-detector processes (the benchmark model, so that chunks go at decode speed
//! and a long video's merge takes long enough to be hit) on real RabbitMQ and Redis. A DELETE
//! lands at spread-out moments of the merge and just after it; whenever it lands, nothing of
//! the video stays (no state but its tombstone, no chord keys, no video, chunk or result file,
//! no record), and the run's Celery result agrees with what happened: REVOKED when the DELETE
//! came before the run succeeded, SUCCESS when after.
//!
//! A DELETE that lands while the merge reads its chunks takes the chunk files from under it:
//! the merge fails, is retried, finds the tombstone and ends. The narrowest window (the result
//! file renamed into place, the state not yet succeeded: a few hundred microseconds) is shorter
//! than an HTTP DELETE and was never hit by timing in 12 tries; `pipeline/tests/run.rs` holds
//! that case at the state level.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use argus_common::state::{VideoState, VideoStatus};
use argus_pipeline::chord::chord_of;
use argus_pipeline::store::RunStore;
use argus_queue::backend::Backend;
use argus_testkit::{RabbitServer, RedisServer};
use common::api::ApiProcess;
use common::scratch;
use common::workers::Workers;
use serde_json::Value;

/// Uploads `video`; its id and run (task id).
async fn upload(api: &ApiProcess, video: &Path) -> (String, String) {
    let response = api
        .http
        .post(format!("{}/api/v1/videos?filename=clip.mp4", api.url))
        .bearer_auth(&api.token)
        .header("content-type", "video/mp4")
        .body(std::fs::read(video).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    (
        body["id"].as_str().unwrap().to_string(),
        body["task_id"].as_str().unwrap().to_string(),
    )
}

async fn status_of(api: &ApiProcess, method: reqwest::Method, id: &str) -> u16 {
    api.http
        .request(method, format!("{}/api/v1/videos/{id}", api.url))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits on `changes` (the video's state events) for a state that passes `until`.
async fn wait_for(
    changes: &mut tokio::sync::mpsc::Receiver<String>,
    until: impl Fn(&VideoState) -> bool,
) -> VideoState {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(120), changes.recv())
            .await
            .expect("a state change within 2 minutes")
            .expect("the subscription lives");
        let state: VideoState = serde_json::from_str(&event).unwrap();
        if until(&state) {
            return state;
        }
    }
}

/// Every file under `storage` whose path names `id`.
fn files_of(storage: &Path, id: &str) -> Vec<String> {
    fn walk(dir: &Path, id: &str, found: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.to_string_lossy().contains(id) {
                found.push(path.display().to_string());
            }
            if path.is_dir() {
                walk(&path, id, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(storage, id, &mut found);
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_at_any_moment_of_the_merge_leaves_nothing_and_agrees_with_celery() {
    let (rabbit, redis) = (RabbitServer::start(), RedisServer::start());
    let storage = scratch("races");
    // 12,000 small frames: detected at decode speed by the benchmark model, merged from 12
    // chunk files into a document of a few megabytes (tens of milliseconds of merge).
    let clip = storage.join("long.mp4");
    let ffmpeg = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=64x48:rate=100", "-frames:v", "12000"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "250"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(ffmpeg.success());
    let workers = Workers::start_with(
        &rabbit,
        &redis,
        &storage,
        2,
        1000,
        &[("ARGUS_MODEL", "bench-null")],
    );
    let api = ApiProcess::start(&rabbit, &redis, &storage, None).await;
    let backend = Backend::connect(&redis.url()).await.unwrap();

    // How long a merge takes here, from a run left alone.
    let (id, _) = upload(&api, &clip).await;
    let mut changes = backend.subscribe_states(Some(&id)).await.unwrap();
    wait_for(&mut changes, |s| s.status == VideoStatus::Merging).await;
    let merging = Instant::now();
    let done = wait_for(&mut changes, |s| s.status.is_final()).await;
    let merge = merging.elapsed();
    assert_eq!(done.status, VideoStatus::Succeeded, "{done:?}");
    eprintln!("a merge of 12,000 frames takes {merge:?} here");

    // DELETEs from the moment the merge starts to past its end.
    let mut runs = Vec::new();
    for eighths in [0u32, 1, 2, 3, 4, 6, 8, 12] {
        let delay = merge * eighths / 8;
        let (id, run) = upload(&api, &clip).await;
        let mut changes = backend.subscribe_states(Some(&id)).await.unwrap();
        wait_for(&mut changes, |s| s.status == VideoStatus::Merging).await;
        tokio::time::sleep(delay).await;
        let seen = backend.get_state(&id).await.unwrap().map(|s| s.status);
        assert_eq!(status_of(&api, reqwest::Method::DELETE, &id).await, 204);
        runs.push((id, run, delay, seen));
    }

    let mut revoked = 0;
    for (id, run, delay, seen) in &runs {
        // The run's Celery result settles either way.
        let started = Instant::now();
        let celery = loop {
            let meta = backend.get_result(run).await.unwrap();
            if let Some(meta) =
                meta.filter(|m| m["status"] == "SUCCESS" || m["status"] == "REVOKED")
            {
                break meta;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{id}: no final result"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // Let a merge that was still going finish what it does.
        tokio::time::sleep(merge * 2 + Duration::from_millis(500)).await;
        let what = format!("DELETE {delay:?} into the merge (state then: {seen:?})");
        assert_eq!(backend.get_state(id).await.unwrap(), None, "{what}");
        assert!(backend.is_deleted(id).await.unwrap(), "{what}: tombstone");
        assert_eq!(files_of(&storage, id), Vec::<String>::new(), "{what}");
        assert_eq!(
            status_of(&api, reqwest::Method::GET, id).await,
            404,
            "{what}"
        );
        let chord = chord_of(run);
        let client = redis::Client::open(redis.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("argus:chord:{chord}:*"))
            .query_async(&mut conn)
            .await
            .unwrap();
        // The `fired` claim stays until it expires: a late duplicate cannot fire again.
        assert!(
            keys.iter().all(|k| k.ends_with(":fired")),
            "{what}: chord keys {keys:?}"
        );
        // Celery's story is the video's: REVOKED when the DELETE beat the success (and then
        // no result file survived the merge: checked above), SUCCESS when it came after.
        match celery["status"].as_str() {
            Some("REVOKED") => revoked += 1,
            Some("SUCCESS") => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    eprintln!(
        "{revoked} of {} DELETEs landed before the run succeeded",
        runs.len()
    );
    assert!(
        revoked > 0,
        "no DELETE landed during a merge: widen the window"
    );

    api.stop();
    workers.stop();
}
