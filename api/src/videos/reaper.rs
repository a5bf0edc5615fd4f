//! The reaper: ends the runs that nothing else would end. A run whose bookkeeping in the result
//! backend is gone (Redis restarted without persistence, its keys evicted or expired) has no
//! state left to move it on: its chunks are counted in a chord set that starts again from
//! nothing, no merge fires, and its record would stay `detecting` for ever. Every
//! `ARGUS_REAPER_INTERVAL_S` each API replica looks at the records that are not final and were
//! last changed more than `ARGUS_REAP_AFTER_S` ago, and asks the backend for their state:
//! - gone (and not deleted): the run fails with the reason, in the backend (so that its late
//!   tasks stop and a Celery client's `get()` raises) and in the record;
//! - present with another status (a change no listener recorded): the record catches up;
//! - the backend unreachable: nothing is decided this round.
//!
//! A run that is slow but alive (a deep queue, a long video) keeps its state and is left alone:
//! only lost bookkeeping is reaped, never slowness. Every replica may reap the same run: each
//! step is idempotent.

use argus_pipeline::store::RunStore;
use std::time::Duration;

use argus_pipeline::run::fail_lost_run;
use argus_queue::backend::Backend;
use tokio::sync::watch;

use super::listener::record;
use super::records;
use crate::db::Db;

/// Why a run was reaped, as its user reads it.
pub const LOST_REASON: &str = "the run's bookkeeping in the result backend was lost (was Redis \
    restarted without persistence?): nothing could finish it; upload the video again or \
    re-run it";

/// Records looked at per round, oldest first: a backlog is worked off over several rounds.
const PER_ROUND: i64 = 500;

/// Reaps every `interval` until `closing` turns true.
pub async fn run(
    db: Db,
    webhooks: std::sync::Arc<crate::webhooks::Webhooks>,
    backend: Backend,
    interval: Duration,
    reap_after: Duration,
    mut closing: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = closing.changed() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        match reap(&db, &webhooks, &backend, reap_after).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(runs = n, "reaped runs whose bookkeeping was lost"),
            Err(e) => tracing::warn!(error = %e, "reaper round skipped"),
        }
    }
}

/// One round; how many runs it failed.
pub async fn reap(
    db: &Db,
    webhooks: &crate::webhooks::Webhooks,
    backend: &Backend,
    reap_after: Duration,
) -> anyhow::Result<usize> {
    let cutoff = chrono::Utc::now()
        - chrono::Duration::from_std(reap_after).unwrap_or(chrono::Duration::MAX);
    let cutoff = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut reaped = 0;
    for (id, task_id, status) in records::unfinished_since(db, &cutoff, PER_ROUND).await? {
        match backend.get_state(&id).await? {
            Some(state) => {
                if state.status.as_str() != status {
                    record(db, webhooks, &state).await?;
                }
            }
            None if backend.is_deleted(&id).await? => {}
            None => {
                let Some(failed) =
                    fail_lost_run(backend, &id, task_id.as_deref(), LOST_REASON).await?
                else {
                    continue; // a state appeared meanwhile: the next round looks again
                };
                // The listener records it too; this write does not wait for it.
                record(db, webhooks, &failed).await?;
                tracing::warn!(video_id = %id, task_id = ?task_id, was = %status, "run reaped: its bookkeeping was lost");
                reaped += 1;
            }
        }
    }
    Ok(reaped)
}
