//! The video pipeline's runs: [`run`] is the one owner of a run's life. Every change of a
//! video's state goes through it: queued (the API's upload), started, fanned out, progress
//! (a detector's chunk), merging, succeeded, failed (a task that failed for good, or a run
//! whose bookkeeping was lost), cancelled (a DELETE, a revoke) and deleted (a tombstone). Each
//! is a guarded update under the transition rules of `argus_common::state`, and each ending
//! also settles the run's Celery result, so that the API, the state and a Python client's
//! `AsyncResult.get()` tell one story.
//!
//! `argus-queue` below it is the Celery runtime (brokers, the worker loop, the result
//! backend's primitives, events and remote control); the processor, the detector and the API
//! call this crate rather than writing a state themselves.

pub mod run;
