//! A run's life on the embedded backend (`memory://`, which behaves as Redis does: the
//! backend's own tests hold that): every transition through `argus_pipeline::run`, and the
//! races a DELETE can land in.

use argus_common::state::VideoStatus;
use argus_pipeline::chord::ChordProgress;
use argus_pipeline::run::{self, Cancelled};
use argus_pipeline::store::RunStore;
use argus_queue::backend::Backend;

async fn backend() -> Backend {
    Backend::connect("memory://").await.unwrap()
}

fn progress(chunks: u64, frames: u64) -> ChordProgress {
    ChordProgress { chunks, frames }
}

#[tokio::test]
async fn a_run_goes_forward_once_and_its_celery_result_agrees() {
    let b = backend().await;
    let queued = run::queue_video(&b, "v", "r1").await.unwrap().unwrap();
    assert_eq!(queued.status, VideoStatus::Queued);
    assert!(
        run::queue_video(&b, "v", "r1").await.unwrap().is_none(),
        "queued once"
    );
    for status in [VideoStatus::Splitting, VideoStatus::Detecting] {
        assert!(run::advance(&b, "v", "r1", status, |_| {})
            .await
            .unwrap()
            .is_some());
    }
    let s = run::progress(&b, "v", "r1", progress(2, 64))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((s.chunks_done, s.frames_done), (2, 64));
    // Progress never goes back, and another run's progress is not this run's.
    assert!(run::progress(&b, "v", "r1", progress(1, 32))
        .await
        .unwrap()
        .is_none());
    assert!(run::progress(&b, "v", "r2", progress(3, 96))
        .await
        .unwrap()
        .is_none());
    // Another run cannot take the video while this one is in progress.
    assert!(run::advance(&b, "v", "r2", VideoStatus::Splitting, |_| {})
        .await
        .unwrap()
        .is_none());
    run::advance(&b, "v", "r1", VideoStatus::Merging, |_| {})
        .await
        .unwrap()
        .unwrap();
    run::advance(&b, "v", "r1", VideoStatus::Succeeded, |_| {})
        .await
        .unwrap()
        .unwrap();
    // Ended: nothing moves it, not even a failure of a late task.
    assert!(!run::fail_video(&b, "v", "r1", "late").await.unwrap());
    assert!(run::advance(&b, "v", "r1", VideoStatus::Detecting, |_| {})
        .await
        .unwrap()
        .is_none());
    // A DELETE after the run succeeded finds it ended: the Celery result the merge stores next
    // (SUCCESS) agrees with what the API said before the video went.
    assert_eq!(
        run::cancel_video(&b, "v").await.unwrap(),
        Cancelled::AlreadyEnded(VideoStatus::Succeeded)
    );
}

#[tokio::test]
async fn a_deleted_video_stays_deleted_whatever_comes_late() {
    let b = backend().await;
    run::queue_video(&b, "v", "r1").await.unwrap().unwrap();
    // DELETE: cancel (REVOKED), then the tombstone.
    assert!(matches!(
        run::cancel_video(&b, "v").await.unwrap(),
        Cancelled::Stopped(_)
    ));
    run::delete(&b, "v").await.unwrap();
    assert_eq!(b.get_state("v").await.unwrap(), None);
    assert!(b.is_deleted("v").await.unwrap());
    assert_eq!(
        b.get_result("r1").await.unwrap().unwrap()["status"],
        "REVOKED"
    );
    // The processor starting late, a chunk, a failure, a lost-run reaper, a new run: nothing
    // brings a state back.
    for status in [
        VideoStatus::Splitting,
        VideoStatus::Detecting,
        VideoStatus::Merging,
    ] {
        assert!(run::advance(&b, "v", "r1", status, |_| {})
            .await
            .unwrap()
            .is_none());
    }
    assert!(run::progress(&b, "v", "r1", progress(1, 10))
        .await
        .unwrap()
        .is_none());
    assert!(!run::fail_video(&b, "v", "r1", "not in storage")
        .await
        .unwrap());
    assert!(run::fail_lost_run(&b, "v", Some("r1"), "lost")
        .await
        .unwrap()
        .is_none());
    assert!(run::queue_video(&b, "v", "r2").await.unwrap().is_none());
    assert_eq!(b.get_state("v").await.unwrap(), None);
    // Still REVOKED: a late failure did not turn it into FAILURE.
    assert_eq!(
        b.get_result("r1").await.unwrap().unwrap()["status"],
        "REVOKED"
    );
}

#[tokio::test]
async fn a_delete_during_detection_or_the_merge_ends_the_run_as_cancelled() {
    for during in [VideoStatus::Detecting, VideoStatus::Merging] {
        let b = backend().await;
        run::queue_video(&b, "v", "r1").await.unwrap().unwrap();
        run::advance(&b, "v", "r1", VideoStatus::Splitting, |_| {})
            .await
            .unwrap();
        run::advance(&b, "v", "r1", VideoStatus::Detecting, |_| {})
            .await
            .unwrap();
        if during == VideoStatus::Merging {
            run::advance(&b, "v", "r1", VideoStatus::Merging, |_| {})
                .await
                .unwrap();
        }
        assert!(matches!(
            run::cancel_video(&b, "v").await.unwrap(),
            Cancelled::Stopped(_)
        ));
        run::delete(&b, "v").await.unwrap();
        // The merge finishing afterwards cannot succeed: it removes what it wrote.
        assert!(run::advance(&b, "v", "r1", VideoStatus::Succeeded, |_| {})
            .await
            .unwrap()
            .is_none());
        assert_eq!(
            b.get_result("r1").await.unwrap().unwrap()["status"],
            "REVOKED",
            "{during:?}"
        );
    }
}

#[tokio::test]
async fn a_lost_run_fails_and_an_ended_run_is_settled() {
    let b = backend().await;
    // Nothing in the backend (Redis restarted empty): the reaper's failure writes one.
    let failed = run::fail_lost_run(&b, "v", Some("r1"), "lost")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed.status, VideoStatus::Failed);
    assert_eq!(
        b.get_result("r1").await.unwrap().unwrap()["status"],
        "FAILURE"
    );
    // A run that ended, delivered again: its Celery result is made to say so.
    let b = backend().await;
    run::queue_video(&b, "w", "r9").await.unwrap().unwrap();
    run::fail_video(&b, "w", "r9", "boom").await.unwrap();
    let state = b.get_state("w").await.unwrap().unwrap();
    let b2 = backend().await; // a fresh backend: the Celery result is missing
    run::settle(&b2, "r9", &state).await.unwrap();
    assert_eq!(
        b2.get_result("r9").await.unwrap().unwrap()["status"],
        "FAILURE"
    );
}
