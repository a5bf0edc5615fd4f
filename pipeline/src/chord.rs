//! A run's chord: one `detect_frames` per chunk (the header), counted once each, and
//! `merge_chunks` (the body) sent once, by whichever chunk completes the set.
//!
//! Keys (Redis), all expiring with the run's work:
//! - `argus:chord:<chord>:done` / `…:framecount`: the finished chunk indices, and the frames in
//!   them. A set, not a counter: a chunk delivered twice is counted once; the frame count grows
//!   only when a chunk is new, so each completion costs O(1) whatever the chord's size.
//! - `argus:chord:<chord>:fired`: claimed by the task that sends the body. It stays (until it
//!   expires) after the run's other keys are cleaned, so a late duplicate cannot fire again.
//!
//! Chunk results themselves are not here but in storage (`argus_common::storage`): they grow
//! with the video.

use argus_queue::backend::{Backend, BackendError};
use argus_queue::broker::Broker;
use argus_queue::message::TaskMessage;

use crate::store::WORK_TTL_S;
use crate::tasks::{DetectFrames, MergeChunks, PROCESSOR_QUEUE};

/// How far a chord is: distinct chunks done, and the frames in them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChordProgress {
    pub chunks: u64,
    pub frames: u64,
}

/// The id of a run's chord: derived from the run's (`process_video`'s) task id, so that a
/// redelivered `process_video` (its worker was killed) re-sends the same chord, whose chunks
/// count once.
pub fn chord_of(run: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, run.as_bytes()).to_string()
}

/// The task id of chunk `index` of a chord: the same for every re-send of the chord, so a
/// chunk's deliveries are counted together (see the worker's start cap).
pub fn chunk_task_id(chord_id: &str, index: u32) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_OID,
        format!("{chord_id}/{index}").as_bytes(),
    )
    .to_string()
}

fn keys(chord_id: &str) -> (String, String) {
    (
        format!("argus:chord:{chord_id}:done"),
        format!("argus:chord:{chord_id}:framecount"),
    )
}

/// Sends the chord of run `run` to `queue` (its model's: [`crate::tasks::detector_queue`]):
/// one `detect_frames` per chunk, all in one group, with the run as their root (the video's result is stored under it). Sent again (the run was
/// redelivered), the same chunks have the same ids and count once.
pub async fn send_header(
    broker: &Broker,
    run: &str,
    queue: &str,
    chunks: impl IntoIterator<Item = DetectFrames>,
) -> Result<(), argus_queue::broker::BrokerError> {
    for payload in chunks {
        let mut message = TaskMessage::new(&payload)
            .with_id(chunk_task_id(&payload.chord_id, payload.chunk.index))
            .with_group(&payload.chord_id);
        message.root_id = Some(run.to_string());
        message.parent_id = Some(run.to_string());
        broker.send(queue, &message).await?;
    }
    Ok(())
}

/// Records chunk `chunk` (of `frames` decoded frames) of the chord as done; returns how many
/// distinct chunks, and frames in them, are done. Idempotent: a chunk counts once. O(1).
pub async fn chunk_done(
    backend: &Backend,
    chord_id: &str,
    chunk: u32,
    frames: u64,
) -> Result<ChordProgress, BackendError> {
    let (done, framecount) = keys(chord_id);
    let (chunks, frames) = backend
        .add_counted(&done, &framecount, chunk, frames, WORK_TTL_S)
        .await?;
    Ok(ChordProgress { chunks, frames })
}

/// Whether header task `task_id` is the one that sends chord `chord_id`'s body: the first to
/// see the chord complete claims it, and only it sends (again, when it is retried).
pub async fn claim_body(
    backend: &Backend,
    chord_id: &str,
    task_id: &str,
) -> Result<bool, BackendError> {
    let claim = format!("argus:chord:{chord_id}:fired");
    backend.claim(&claim, task_id, WORK_TTL_S).await
}

/// Sends the chord's body, once ([`claim_body`]). Returns whether it sent.
pub async fn send_body(
    backend: &Backend,
    broker: &Broker,
    task: &TaskMessage,
    chunk: &DetectFrames,
) -> Result<bool, anyhow::Error> {
    if !claim_body(backend, &chunk.chord_id, &task.id).await? {
        return Ok(false);
    }
    let merge = MergeChunks {
        video_id: chunk.video_id.clone(),
        chord_id: chunk.chord_id.clone(),
        video: chunk.video.clone(),
        chunks: chunk.chunks,
        options: chunk.options.clone(),
    };
    // The merge's id is its chord's: a body sent twice merges once.
    let mut message = TaskMessage::new(&merge)
        .with_id(&chunk.chord_id)
        .with_group(&chunk.chord_id);
    message.root_id = task.root_id.clone();
    message.parent_id = Some(task.id.clone());
    broker.send(PROCESSOR_QUEUE, &message).await?;
    Ok(true)
}

/// Forgets a finished run's chord keys (but its `fired` claim, which expires on its own).
pub async fn clean(backend: &Backend, chord_id: &str) -> Result<(), BackendError> {
    let (done, framecount) = keys(chord_id);
    backend.delete(&[done, framecount]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_ids_are_stable() {
        assert_eq!(chord_of("run"), chord_of("run"));
        assert_ne!(chord_of("run"), chord_of("other"));
        assert_eq!(chunk_task_id("c", 3), chunk_task_id("c", 3));
        assert_ne!(chunk_task_id("c", 3), chunk_task_id("c", 4));
    }
}
