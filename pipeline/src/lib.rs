//! The video pipeline, on the Celery runtime of `argus-queue`:
//! - [`collections`]: photo collections as runs of the same kind (a chord of photo batches);
//! - [`tasks`]: its tasks (`process_video`, `detect_frames`, `merge_chunks`), their queues and
//!   payloads, and what a payload may carry;
//! - [`store`]: where a video's state lives, and the guarded update every change goes through;
//! - [`chord`]: a run's fan-out, counted once per chunk, and its body sent once;
//! - [`run`]: the one owner of a run's life. Every change of a video's state goes through it:
//!   queued (the API's upload), started, fanned out, progress (a detector's chunk), merging,
//!   succeeded, failed (a task that failed for good, or a run whose bookkeeping was lost),
//!   cancelled (a DELETE, a revoke) and deleted (a tombstone). Each is a guarded update under
//!   the transition rules of `argus_common::state`, and each ending also settles the run's
//!   Celery result, so that the API, the state and a Python client's `AsyncResult.get()` tell
//!   one story.
//!
//! The processor, the detector and the API call this crate rather than writing a state or a
//! key of the pipeline themselves.

pub mod annotation;
pub mod chord;
pub mod collections;
pub mod models;
pub mod run;
pub mod store;
pub mod tasks;
