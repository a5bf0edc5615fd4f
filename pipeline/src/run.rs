//! Every transition of a video's run, in one place. A run is one `process_video` task id; its
//! state lives in the result backend (`argus:video:<id>`) and changes only through the
//! backend's guarded update under `argus_common::state::check_transition`:
//! - [`queue_video`]: the API's upload (a new video, no state yet);
//! - [`advance`]: the processor's steps (splitting, detecting with its totals, merging,
//!   succeeded), each refused once the run ended, another run holds the video or the video
//!   was deleted;
//! - [`progress`]: a detector's chunk (chunks and frames only move forward);
//! - [`fail_video`], [`fail_task_video`]: a task failed for good; [`fail_lost_run`]: the run's
//!   bookkeeping was lost; [`cancel_video`], [`revoke_run`]: a user or an operator stopped it;
//! - [`delete`]: the video is gone; its tombstone refuses every later change.
//!
//! Each ending resolves the run's Celery result (`process_video`'s task id), so a client waiting
//! on it with `AsyncResult.get()` gets an answer instead of waiting for ever: FAILURE raises
//! the reason, REVOKED raises `TaskRevokedError`.

use argus_common::state::{without_paths, VideoState, VideoStatus};
use argus_queue::backend::{celery_exception, Backend, BackendError, TaskStatus};

use crate::chord::ChordProgress;
use crate::store::{update_state, RunStore};
use argus_queue::worker::TaskContext;
use serde_json::Value;

/// A new video's first state, `queued` for run `run`; `None` when the video already has one.
pub async fn queue_video(
    backend: &Backend,
    video_id: &str,
    run: &str,
) -> Result<Option<VideoState>, BackendError> {
    update_state(backend, video_id, |old| {
        old.is_none()
            .then(|| VideoState::queued(video_id, Some(run.to_string())))
    })
    .await
}

/// Moves run `run` of a video to `status` (applying `edit`) and returns the state written;
/// `None` when the guarded update refused (the run ended, was cancelled, or another run holds
/// the video), when the video was deleted, or, past splitting, when the state is gone.
pub async fn advance(
    backend: &Backend,
    video_id: &str,
    run: &str,
    status: VideoStatus,
    edit: impl Fn(&mut VideoState),
) -> Result<Option<VideoState>, BackendError> {
    update_state(backend, video_id, |old| {
        let mut s = match old {
            Some(s) if s.is_run(run) => s.clone(),
            None if status > VideoStatus::Splitting => return None,
            // A new run (or none yet): start from scratch.
            _ => VideoState::queued(video_id, Some(run.to_string())),
        };
        s.task_id = Some(run.to_string());
        s.status = status;
        edit(&mut s);
        Some(s)
    })
    .await
}

/// Records a chord's progress on run `run`: chunks and frames only move forward, and only
/// within this run while it is not over.
pub async fn progress(
    backend: &Backend,
    video_id: &str,
    run: &str,
    done: ChordProgress,
) -> Result<Option<VideoState>, BackendError> {
    update_state(backend, video_id, |old| {
        let old = old?;
        if !old.is_run(run) || old.status.is_final() || done.chunks <= old.chunks_done {
            return None;
        }
        let mut s = old.clone();
        s.chunks_done = done.chunks;
        s.frames_done = s.frames_done.max(done.frames);
        Some(s)
    })
    .await
}

/// Makes run `run`'s Celery result say how the run ended, as `state` (its video's) says (a run
/// cancelled before it started, or failed, whose task is delivered again). A ready result is
/// kept as it is.
pub async fn settle(backend: &Backend, run: &str, state: &VideoState) -> Result<(), BackendError> {
    let reason = state.error.clone().unwrap_or_default();
    match state.status {
        VideoStatus::Cancelled => revoked(backend, run, &reason).await,
        VideoStatus::Failed => {
            let failure = celery_exception("RuntimeError", "builtins", &reason);
            backend
                .store_result(run, TaskStatus::Failure, &failure, None)
                .await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Run `run`'s Celery result: REVOKED, with `reason` (`TaskRevokedError` in Python).
pub async fn revoked(backend: &Backend, run: &str, reason: &str) -> Result<(), BackendError> {
    let revoked = celery_exception("TaskRevokedError", "celery.exceptions", reason);
    backend
        .store_result(run, TaskStatus::Revoked, &revoked, None)
        .await?;
    Ok(())
}

/// The video is gone: its state becomes a tombstone that refuses every later change (a task of
/// one of its runs still queued or running cannot bring it back). Cancel its run first
/// ([`cancel_video`]) so that its Celery result says so.
pub async fn delete(backend: &Backend, video_id: &str) -> Result<(), BackendError> {
    backend.delete_state(video_id).await
}

/// The failure hook of every video and collection task: the task's run (its root task) fails
/// with the task's error. A message without a `video_id` (or `collection_id`) concerns no run.
pub async fn fail_task_video(ctx: TaskContext, error: String) {
    let message = &ctx.message;
    let Some(video_id) = message
        .kwargs
        .get("video_id")
        .or_else(|| message.kwargs.get("collection_id"))
        .and_then(Value::as_str)
        .or_else(|| message.args.first().and_then(Value::as_str))
    else {
        return;
    };
    let run = message
        .root_id
        .clone()
        .unwrap_or_else(|| message.id.clone());
    if let Err(e) = fail_video(&ctx.backend, video_id, &run, &error).await {
        tracing::error!(video_id, error = %e, "cannot mark the video failed");
    }
}

/// Fails run `run` (a `process_video` task id) of a video with `reason`, less the server's
/// paths in it (users see it; the worker's log has it whole). Does nothing to a run that
/// already ended or to another run. Returns whether the state changed.
pub async fn fail_video(
    backend: &Backend,
    video_id: &str,
    run: &str,
    reason: &str,
) -> Result<bool, BackendError> {
    let reason = &without_paths(reason);
    let changed = update_state(backend, video_id, |old| {
        // A video without a state was deleted (or never started): nothing to fail.
        let old = old?;
        if !old.is_run(run) || old.status.is_final() {
            return None;
        }
        let mut s = old.clone();
        s.status = VideoStatus::Failed;
        s.error = Some(reason.to_string());
        Some(s)
    })
    .await?;
    if changed.is_some() {
        let failure = celery_exception("RuntimeError", "builtins", reason);
        backend
            .store_result(run, TaskStatus::Failure, &failure, None)
            .await?;
    }
    Ok(changed.is_some())
}

/// Fails run `run` of a video whose state is gone from the backend (lost with a Redis that
/// restarted without persistence; not deleted, which leaves a tombstone): writes a failed state
/// for the run, so that its late tasks stop and the API's record can follow, and stores the
/// run's Celery FAILURE. Returns the state written; `None` when a state appeared meanwhile.
pub async fn fail_lost_run(
    backend: &Backend,
    video_id: &str,
    run: Option<&str>,
    reason: &str,
) -> Result<Option<VideoState>, BackendError> {
    let written = update_state(backend, video_id, |old| {
        if old.is_some() {
            return None;
        }
        let mut s = VideoState::queued(video_id, run.map(str::to_string));
        s.status = VideoStatus::Failed;
        s.error = Some(reason.to_string());
        Some(s)
    })
    .await?;
    if let (Some(_), Some(run)) = (&written, run) {
        let failure = celery_exception("RuntimeError", "builtins", reason);
        backend
            .store_result(run, TaskStatus::Failure, &failure, None)
            .await?;
    }
    Ok(written)
}

/// The revoke hook of every worker: revoking a video's run (its `process_video` task id,
/// e.g. `celery control revoke <id>`) cancels the video, as the API's DELETE does. Ids that
/// are no run, and runs already ended or replaced, are left alone.
pub async fn revoke_run(backend: Backend, task_id: String) {
    let video_id = match backend.video_of_run(&task_id).await {
        Ok(Some(video_id)) => video_id,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(task_id, error = %e, "cannot look up the revoked run");
            return;
        }
    };
    let reason = "revoked";
    let changed = update_state(&backend, &video_id, |old| {
        let old = old?;
        if !old.is_run(&task_id) || old.status.is_final() {
            return None;
        }
        let mut s = old.clone();
        s.status = VideoStatus::Cancelled;
        s.error = Some(reason.to_string());
        Some(s)
    })
    .await;
    match changed {
        Ok(Some(_)) => {
            tracing::info!(video_id, task_id, "run revoked: video cancelled");
            let revoked = celery_exception("TaskRevokedError", "celery.exceptions", reason);
            let _ = backend
                .store_result(&task_id, TaskStatus::Revoked, &revoked, None)
                .await;
        }
        Ok(None) => {}
        Err(e) => tracing::error!(video_id, error = %e, "cannot cancel the revoked video"),
    }
}

/// What [`cancel_video`] came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancelled {
    /// The run was stopped: its chunks are skipped (running ones stop at their next frame)
    /// and no merge runs.
    Stopped(VideoState),
    /// Too late: the video had already ended this way.
    AlreadyEnded(VideoStatus),
    /// No such video.
    Unknown,
}

/// Cancels a video's current run.
pub async fn cancel_video(backend: &Backend, video_id: &str) -> Result<Cancelled, BackendError> {
    let reason = "cancelled";
    let changed = update_state(backend, video_id, |old| {
        let mut s = old.filter(|s| !s.status.is_final())?.clone();
        s.status = VideoStatus::Cancelled;
        s.error = Some(reason.to_string());
        Some(s)
    })
    .await?;
    match changed {
        Some(state) => {
            if let Some(run) = &state.task_id {
                let revoked = celery_exception("TaskRevokedError", "celery.exceptions", reason);
                backend
                    .store_result(run, TaskStatus::Revoked, &revoked, None)
                    .await?;
            }
            Ok(Cancelled::Stopped(state))
        }
        None => Ok(match backend.get_state(video_id).await? {
            Some(s) => Cancelled::AlreadyEnded(s.status),
            None => Cancelled::Unknown,
        }),
    }
}
