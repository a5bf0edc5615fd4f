//! `GET /api/v1/videos/{id}/events`: server-sent events of a video's state. The current state
//! comes first, then every change (`event: state`, `data:` a [`StateEvent`]); the stream ends
//! after a final state (succeeded, failed, cancelled) or when the server stops. A comment line
//! (`: keepalive`) every `ARGUS_SSE_KEEPALIVE_S` keeps proxies from closing an idle stream.

use std::convert::Infallible;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use argus_common::state::VideoState;
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use super::records::VideoRecord;
use super::{live_state, load, view, Progress, VideoStatus};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// One state of a video, as an event's `data`.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"id": "7d0f4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e", "status": "detecting",
    "progress": {"frames_done": 64, "frames_total": 120, "chunks_done": 1, "chunks_total": 2,
                 "percent": 53.3},
    "warnings": [], "updated_at": "2026-01-02T03:04:07.123Z"}))]
pub struct StateEvent {
    pub id: String,
    pub status: VideoStatus,
    pub progress: Progress,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub warnings: Vec<String>,
    pub updated_at: String,
}

impl StateEvent {
    /// The event for `record` in state `live` (the video's view, less what does not change).
    fn of(record: &VideoRecord, live: Option<&VideoState>) -> StateEvent {
        let v = view(record, live);
        StateEvent {
            id: v.id,
            status: v.status,
            progress: v.progress,
            error: v.error,
            warnings: v.warnings,
            updated_at: v.updated_at,
        }
    }
}

/// Where a run is, for ordering the events of one run: status, then progress.
fn position(state: &VideoState) -> (Option<&str>, VideoStatus, u64, u64) {
    (
        state.task_id.as_deref(),
        state.status,
        state.chunks_done,
        state.frames_done,
    )
}

fn frame(event: &StateEvent) -> Bytes {
    let data = serde_json::to_string(event).expect("events serialize");
    Bytes::from(format!("event: state\ndata: {data}\n\n"))
}

/// A video's progress as server-sent events.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{id}/events",
    tag = "videos",
    params(("id" = String, Path, description = "The video's id (a UUID)")),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "`text/event-stream`: `event: state` with a `StateEvent` as `data`, the current state first, then each change; the stream ends after a final state. Comment lines (`: keepalive`) keep it open.",
         content_type = "text/event-stream", body = StateEvent,
         example = "event: state\ndata: {\"id\":\"7d0f4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e\",\"status\":\"queued\",\"progress\":{\"frames_done\":0,\"frames_total\":120,\"chunks_done\":0,\"chunks_total\":0,\"percent\":0.0},\"warnings\":[],\"updated_at\":\"2026-01-02T03:04:05.678Z\"}\n\n"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 404, description = "`video_not_found`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: the result backend cannot be reached", body = ErrorBody),
    )
)]
pub async fn video_events(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = load(&state, &user.0, &id).await?;
    // Subscribed before the current state is read: no change falls between the two.
    let mut changes = state
        .queue
        .backend
        .subscribe_states(Some(&record.id))
        .await
        .map_err(|e| ApiError::unavailable("result backend", e))?;
    let current = live_state(&state, &record).await;
    let first = StateEvent::of(&record, current.as_ref());

    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let keepalive = state.videos.sse_keepalive;
    let mut closing = state.closing.clone();
    tokio::spawn(async move {
        if tx.send(frame(&first)).await.is_err() || first.status.is_final() {
            return;
        }
        let mut last = current;
        let mut last_event = first;
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        loop {
            tokio::select! {
                message = changes.recv() => {
                    let Some(json) = message else {
                        tracing::warn!(video_id = %record.id, "state subscription ended; closing the event stream");
                        return;
                    };
                    let Ok(next) = serde_json::from_str::<VideoState>(&json) else { continue };
                    // Changes that reached the subscription before the current state was read.
                    if let Some(last) = &last {
                        if last.task_id == next.task_id && position(&next) < position(last) {
                            continue;
                        }
                    }
                    let event = StateEvent::of(&record, Some(&next));
                    if event == last_event {
                        continue;
                    }
                    if tx.send(frame(&event)).await.is_err() || event.status.is_final() {
                        return;
                    }
                    last = Some(next);
                    last_event = event;
                }
                _ = ticks.tick() => {
                    if tx.send(Bytes::from_static(b": keepalive\n\n")).await.is_err() {
                        return;
                    }
                }
                _ = closing.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // nginx and friends must not buffer the stream.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body))
}
