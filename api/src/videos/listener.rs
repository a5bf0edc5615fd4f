//! The server's one subscription to the result backend: listens to every video's state changes
//! (`argus:videos`), hands each to the event streams watching that video (the [`StateHub`]) and
//! records each change of status, with the reason and end time of a run that ended. Every API
//! replica listens (the writes are idempotent); a change missed while no replica listened is
//! repaired on the next read of that video, and the streams re-read their video's state after
//! each resubscription.

use argus_pipeline::store::RunStore;
use std::sync::Arc;
use std::time::Duration;

use argus_common::state::VideoState;
use argus_queue::backend::Backend;
use chrono::SecondsFormat;
use tokio::sync::watch;

use super::hub::StateHub;
use super::records::{self, StatusUpdate};
use crate::db::Db;
use crate::webhooks::Webhooks;

/// Records `state`'s status on its video's or collection's record (when there is one and it
/// differs); the write that makes it final announces it ([`Webhooks::on_final`]).
pub async fn record(db: &Db, webhooks: &Webhooks, state: &VideoState) -> Result<bool, sqlx::Error> {
    let finished_at = state.status.is_final().then(|| {
        state
            .updated_at
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    });
    let update = StatusUpdate {
        id: &state.video_id,
        status: state.status.as_str(),
        task_id: state.task_id.as_deref(),
        error: state.error.as_deref(),
        finished_at: finished_at.as_deref(),
    };
    // A video's, or a collection's (their ids never collide).
    let changed = records::record_status(db, &update).await?
        || records::record_status_in(db, "collections", &update).await?;
    if changed && state.status.is_final() {
        webhooks.on_final(db, state).await;
    }
    Ok(changed)
}

/// Listens until `closing` turns true, resubscribing when the subscription drops.
pub async fn run(
    db: Db,
    webhooks: Arc<Webhooks>,
    backend: Backend,
    hub: Arc<StateHub>,
    mut closing: watch::Receiver<bool>,
) {
    loop {
        if *closing.borrow() {
            return;
        }
        let mut states = match backend.subscribe_states(None).await {
            Ok(states) => states,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen to video states; retrying");
                tokio::select! {
                    _ = closing.changed() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                }
            }
        };
        // What was published while no subscription was up reached no stream.
        hub.resync();
        loop {
            let message = tokio::select! {
                _ = closing.changed() => return,
                message = states.recv() => message,
            };
            let Some(json) = message else { break };
            let state: VideoState = match serde_json::from_str(&json) {
                Ok(state) => state,
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable video state event");
                    continue;
                }
            };
            match record(&db, &webhooks, &state).await {
                Ok(true) => tracing::debug!(
                    video_id = %state.video_id,
                    status = state.status.as_str(),
                    "status recorded"
                ),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(video_id = %state.video_id, error = %e, "cannot record a status")
                }
            }
            hub.publish(state);
        }
        tracing::warn!("video state subscription ended; resubscribing");
        tokio::select! {
            _ = closing.changed() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
