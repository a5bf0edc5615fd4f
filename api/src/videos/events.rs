//! `GET /api/v1/videos/{id}/events`: server-sent events of a video's state; and
//! `GET /api/v1/videos/events`, of every video of the caller (see [`all_video_events`]). The current state
//! comes first, then every change (`event: state`, `data:` a [`StateEvent`]); the stream ends
//! after a final state (succeeded, failed, cancelled), when the client goes or when the server
//! stops. A comment line (`: keepalive`) every `ARGUS_SSE_KEEPALIVE_S` keeps proxies from
//! closing an idle stream.
//!
//! A stream holds no backend connection: it watches its video through the server's
//! [`StateHub`](super::hub::StateHub). Each user may hold `ARGUS_MAX_STREAMS_PER_USER` at once;
//! one more is 429 `too_many_streams`.

use argus_pipeline::store::RunStore;
use std::collections::HashMap;
use std::convert::Infallible;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use argus_common::state::VideoState;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};

use super::hub::{Change, Watch};
use super::records::{self, VideoRecord};
use super::{live_state, load, view, Progress, VideoStatus};
use crate::auth::{still_authorized, AuthUser, TokenExpiry};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;
use crate::users::{Role, User};

/// Seconds a client refused for holding too many streams is asked to wait.
const STREAMS_RETRY_AFTER_S: u64 = 5;

/// One event of the stream, as `text/event-stream` carries it: the event's name and its data.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only: frames are written by hand
pub struct StateFrame {
    /// Always `state`.
    #[schema(pattern = "^state$", example = "state")]
    event: String,
    /// A [`StateEvent`] as JSON.
    #[schema(
        content_media_type = "application/json",
        example = "{\"id\":\"7d0f4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e\",\"status\":\"queued\",\"progress\":{\"frames_done\":0,\"frames_total\":120,\"chunks_done\":0,\"chunks_total\":0,\"percent\":0.0},\"warnings\":[],\"updated_at\":\"2026-01-02T03:04:05.678Z\"}"
    )]
    data: String,
}

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

/// What a stream watches: a video, or a photo collection (its photos counted as frames, its
/// batches as chunks).
pub enum Watched {
    Video(VideoRecord),
    Collection(crate::collections::records::CollectionRecord),
}

impl Watched {
    fn id(&self) -> &str {
        match self {
            Watched::Video(r) => &r.id,
            Watched::Collection(r) => &r.id,
        }
    }

    fn event(&self, live: Option<&VideoState>) -> StateEvent {
        match self {
            Watched::Video(r) => StateEvent::of(r, live),
            Watched::Collection(r) => {
                let v = crate::collections::view(r, live);
                StateEvent {
                    id: v.id,
                    status: v.status,
                    progress: Progress {
                        frames_done: v.progress.photos_done,
                        frames_total: v.progress.photos_total,
                        chunks_done: v.progress.batches_done,
                        chunks_total: v.progress.batches_total,
                        percent: v.progress.percent,
                    },
                    error: v.error,
                    warnings: Vec::new(),
                    updated_at: v.updated_at,
                }
            }
        }
    }
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
        (status = 200, description = "`text/event-stream`: each event is `event: state` with a `StateEvent` as JSON in `data` (the schema here is that of one parsed event), the current state first, then each change; the stream ends after a final state. Comment lines (`: keepalive`) keep it open.",
         content_type = "text/event-stream", body = StateFrame,
         example = "event: state\ndata: {\"id\":\"7d0f4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e\",\"status\":\"queued\",\"progress\":{\"frames_done\":0,\"frames_total\":120,\"chunks_done\":0,\"chunks_total\":0,\"percent\":0.0},\"warnings\":[],\"updated_at\":\"2026-01-02T03:04:05.678Z\"}\n\n"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 404, description = "`video_not_found`", body = ErrorBody),
        (status = 429, description = "`too_many_streams`: the caller holds `ARGUS_MAX_STREAMS_PER_USER` streams already; retry after `Retry-After` seconds or close one", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn video_events(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let AuthUser(user, expires) = user;
    let record = load(&state, &user, &id).await?;
    // Watching before the current state is read: no change falls between the two.
    let watch = state
        .hub
        .watch(&user.id, &record.id)
        .map_err(too_many_streams)?;
    let current = live_state(&state, &record).await;
    Ok(start_stream(
        &state,
        user,
        expires,
        Watched::Video(record),
        current,
        watch,
    ))
}

/// Sends the first event, then every change of `watched`, on a task of its own.
fn start_stream(
    state: &web::Data<AppState>,
    user: User,
    expires: TokenExpiry,
    watched: Watched,
    current: Option<VideoState>,
    watch: Watch,
) -> HttpResponse {
    let first = watched.event(current.as_ref());
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let stream = EventStream {
        state: state.clone(),
        user,
        expires,
        record: watched,
        last: current,
        last_event: first.clone(),
        tx,
    };
    tokio::spawn(stream.run(watch, first));
    event_stream(rx)
}

/// Server-sent events of a photo collection's state: as a video's, its photos counted as
/// `frames_done` / `frames_total` and its batches as `chunks_done` / `chunks_total`.
#[utoipa::path(
    get,
    path = "/api/v1/collections/{id}/events",
    tag = "collections",
    params(("id" = String, Path, description = "The collection's id")),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The stream: the current state first, then every change, until a final one", content_type = "text/event-stream", body = StateFrame),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 404, description = "`collection_not_found`", body = ErrorBody),
        (status = 429, description = "`too_many_streams`: ARGUS_MAX_STREAMS_PER_USER open; see `Retry-After`", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn collection_events(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let AuthUser(user, expires) = user;
    let record = crate::collections::load(&state, &user, &id).await?;
    let watch = state
        .hub
        .watch(&user.id, &record.id)
        .map_err(too_many_streams)?;
    let current = match state.queue.backend.get_state(&record.id).await {
        Ok(live) => {
            if let Some(live) = &live {
                if let Err(e) = super::listener::record(&state.db, &state.webhooks, live).await {
                    tracing::warn!(collection_id = %record.id, error = %e, "cannot record a status");
                }
            }
            live
        }
        Err(_) => None,
    };
    Ok(start_stream(
        &state,
        user,
        expires,
        Watched::Collection(record),
        current,
        watch,
    ))
}

/// 429 for a user who holds as many streams as allowed.
fn too_many_streams(e: super::hub::TooManyStreams) -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooManyStreams,
        format!("{e}: close one or retry later (ARGUS_MAX_STREAMS_PER_USER)"),
    )
    .retry_after(STREAMS_RETRY_AFTER_S)
}

/// The `text/event-stream` response of what a stream's task sends on `rx`.
fn event_stream(rx: mpsc::Receiver<Bytes>) -> HttpResponse {
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), rx))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // nginx and friends must not buffer the stream.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body)
}

/// The task behind one stream: it lives until a final state, the client's going (the
/// response body, and with it `tx`'s receiver, is dropped) or the server's stopping, and its
/// [`Watch`] goes with it.
struct EventStream {
    state: web::Data<AppState>,
    /// Who opened it, checked again at each keepalive (see [`still_authorized`]).
    user: User,
    expires: TokenExpiry,
    record: Watched,
    last: Option<VideoState>,
    last_event: StateEvent,
    tx: mpsc::Sender<Bytes>,
}

impl EventStream {
    async fn run(mut self, mut watch: Watch, first: StateEvent) {
        if self.tx.send(frame(&first)).await.is_err() || first.status.is_final() {
            return;
        }
        let keepalive = self.state.videos.sse_keepalive;
        let mut closing = self.state.closing.clone();
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        loop {
            let go_on = tokio::select! {
                change = watch.recv() => match change {
                    Change::State(next) => self.offer(VideoState::clone(&next)).await,
                    Change::Resync => match self.state.queue.backend.get_state(self.record.id()).await {
                        Ok(Some(next)) => self.offer(next).await,
                        Ok(None) => true,
                        Err(e) => {
                            tracing::warn!(id = %self.record.id(), error = %e, "cannot re-read a state");
                            true
                        }
                    },
                },
                _ = ticks.tick() => still_authorized(&self.state, &self.user, self.expires, false).await
                    && self.tx.send(Bytes::from_static(b": keepalive\n\n")).await.is_ok(),
                _ = closing.changed() => false,
                // The client went: actix dropped the body, and with it the receiver.
                _ = self.tx.closed() => false,
            };
            if !go_on {
                return;
            }
        }
    }

    /// Sends `next` unless it says nothing new; whether the stream goes on.
    async fn offer(&mut self, next: VideoState) -> bool {
        // Changes that reached the hub before the current state was read.
        if let Some(last) = &self.last {
            if last.task_id == next.task_id && position(&next) < position(last) {
                return true;
            }
        }
        let event = self.record.event(Some(&next));
        if event == self.last_event {
            return true;
        }
        if self.tx.send(frame(&event)).await.is_err() || event.status.is_final() {
            return false;
        }
        self.last = Some(next);
        self.last_event = event;
        true
    }
}

/// One event of the stream of every video: a `state` (its data a [`StateEvent`]) or a
/// `resync` (its data `{}`).
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only: frames are written by hand
pub struct ListFrame {
    #[schema(pattern = "^(state|resync)$", example = "state")]
    event: String,
    /// A [`StateEvent`] as JSON, or `{}` for `resync`.
    #[schema(
        content_media_type = "application/json",
        example = "{\"id\":\"7d0f4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e\",\"status\":\"queued\",\"progress\":{\"frames_done\":0,\"frames_total\":120,\"chunks_done\":0,\"chunks_total\":0,\"percent\":0.0},\"warnings\":[],\"updated_at\":\"2026-01-02T03:04:05.678Z\"}"
    )]
    data: String,
}

/// Which videos a stream of every video shows.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AllEventsQuery {
    /// Every user's videos (admins only).
    pub all: Option<bool>,
}

/// Records a stream of every video remembers, at most (then it forgets them all and reads
/// again as changes come).
const KNOWN_VIDEOS: usize = 10_000;

/// The progress of every video of the caller as server-sent events.
#[utoipa::path(
    get,
    path = "/api/v1/videos/events",
    tag = "videos",
    params(AllEventsQuery),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "`text/event-stream` of every video of the caller (admins with `all=true`: of everyone), for a list that stays current: first `event: resync` (read the list now: no change after it is missed), then `event: state` with a `StateEvent` for each change of any of those videos (a new upload's first is `queued`), and `event: resync` again whenever changes may have been missed. It never ends by itself; comment lines (`: keepalive`) keep it open. It takes one of the caller's `ARGUS_MAX_STREAMS_PER_USER` slots.",
         content_type = "text/event-stream", body = ListFrame),
        (status = 400, description = "`invalid_query`: `all` is not `true` or `false`", body = ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 403, description = "`forbidden`: `all=true` from a non-admin", body = ErrorBody),
        (status = 429, description = "`too_many_streams`", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn all_video_events(
    user: AuthUser,
    state: web::Data<AppState>,
    query: web::Query<AllEventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let AuthUser(user, expires) = user;
    let all = query.all.unwrap_or(false);
    if all && user.role != Role::Admin {
        return Err(ApiError::forbidden(
            "only admins may follow every user's videos",
        ));
    }
    let watch = state.hub.watch_all(&user.id).map_err(too_many_streams)?;
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let stream = ListStream {
        state: state.clone(),
        owner_id: (!all).then(|| user.id.clone()),
        admin: all,
        user,
        expires,
        known: HashMap::new(),
        tx,
    };
    tokio::spawn(stream.run(watch));
    Ok(event_stream(rx))
}

/// What a stream of every video knows of one video.
struct Known {
    /// `None`: not shown on this stream (another user's, or no record).
    record: Option<VideoRecord>,
    last: Option<StateEvent>,
    position: Option<(Option<String>, VideoStatus, u64, u64)>,
}

/// The task behind one stream of every video (see [`EventStream`] for its life).
struct ListStream {
    state: web::Data<AppState>,
    /// Only this user's videos; `None`: everyone's.
    owner_id: Option<String>,
    /// Who opened it (and whether as an admin), checked again at each keepalive.
    user: User,
    expires: TokenExpiry,
    admin: bool,
    known: HashMap<String, Known>,
    tx: mpsc::Sender<Bytes>,
}

const RESYNC: &[u8] = b"event: resync\ndata: {}\n\n";

impl ListStream {
    async fn run(mut self, mut watch: Watch) {
        if self.tx.send(Bytes::from_static(RESYNC)).await.is_err() {
            return;
        }
        let keepalive = self.state.videos.sse_keepalive;
        let mut closing = self.state.closing.clone();
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
        loop {
            let go_on = tokio::select! {
                change = watch.recv() => match change {
                    Change::State(next) => self.offer(&next).await,
                    Change::Resync => {
                        // Owners never change: what is kept is whose each video is, and how
                        // far each run was seen (a late change must not go back after it).
                        for known in self.known.values_mut() {
                            known.last = None;
                        }
                        self.tx.send(Bytes::from_static(RESYNC)).await.is_ok()
                    }
                },
                _ = ticks.tick() => still_authorized(&self.state, &self.user, self.expires, self.admin).await
                    && self.tx.send(Bytes::from_static(b": keepalive\n\n")).await.is_ok(),
                _ = closing.changed() => false,
                _ = self.tx.closed() => false,
            };
            if !go_on {
                return;
            }
        }
    }

    /// Sends the event of `next` if its video is shown here and it says something new.
    async fn offer(&mut self, next: &VideoState) -> bool {
        if !self.known.contains_key(&next.video_id) {
            if self.known.len() >= KNOWN_VIDEOS {
                self.known.clear();
            }
            let record = match records::get(&self.state.db, &next.video_id).await {
                Ok(record) => record,
                Err(e) => {
                    // Unknown for now: asked again with its next change.
                    tracing::warn!(video_id = %next.video_id, error = %e, "cannot read a video's owner");
                    return true;
                }
            };
            let shown = record.filter(|r| {
                self.owner_id
                    .as_ref()
                    .is_none_or(|owner| &r.owner_id == owner)
            });
            self.known.insert(
                next.video_id.clone(),
                Known {
                    record: shown,
                    last: None,
                    position: None,
                },
            );
        }
        let known = self.known.get_mut(&next.video_id).expect("inserted above");
        let Some(record) = &known.record else {
            return true;
        };
        let position = {
            let (task, status, chunks, frames) = position(next);
            (task.map(str::to_string), status, chunks, frames)
        };
        if let Some(last) = &known.position {
            // A change that arrived late: the same run's later state was shown already.
            if last.0 == position.0 && position < *last {
                return true;
            }
        }
        let event = StateEvent::of(record, Some(next));
        if known.last.as_ref() == Some(&event) {
            return true;
        }
        let sent = self.tx.send(frame(&event)).await.is_ok();
        known.last = Some(event);
        known.position = Some(position);
        sent
    }
}
