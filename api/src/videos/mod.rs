//! The video endpoints under `/api/v1/videos`: upload ([`upload`]), list, status with
//! progress, result (JSON, COCO, CSV: [`export`]), progress events ([`events`]) and delete.
//!
//! Sources of truth: the SQL record says who owns a video and what was uploaded; the result
//! backend's state is the live status and progress (a run's workers write it); storage holds the
//! files. [`listener`] copies status changes from the backend into the records, which keeps the
//! status filter and the metrics current and outlives the backend's one-week expiry.
//!
//! A video that is not the caller's answers exactly as a missing one (404 `video_not_found`,
//! the same message), on every route; so does a malformed id. Admins see every video.

pub mod annotated;
pub mod events;
pub mod export;
pub mod frames;
pub mod hub;
pub mod ingest;
pub mod listener;
pub mod media;
mod options;
pub mod reaper;
pub mod records;
pub mod upload;

use argus_pipeline::store::RunStore;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
pub use argus_common::state::VideoStatus;
use argus_common::state::{without_paths, VideoState};
use argus_pipeline::run::{self, cancel_video, Cancelled};
use argus_pipeline::tasks::VideoOptions;
use argus_queue::backend::BackendError;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;
use crate::users::{Role, User};
use records::VideoRecord;

/// Where the video routes live.
pub const VIDEOS_PATH: &str = "/api/v1/videos";
/// Most videos one list page holds.
pub const MAX_PAGE: u32 = 100;
/// Videos per page unless `limit` says otherwise.
pub const DEFAULT_PAGE: u32 = 20;

/// Per-video options, as given at upload (absent: the worker's default). Carried as the
/// keyword arguments of `process_video`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"model": "coco-centernet", "chunk_size": 64, "score_threshold": 0.5,
                          "classes": ["person", "car"]}))]
pub struct Options {
    /// A model the detectors serve (`ARGUS_SERVED_MODELS`).
    pub model: Option<String>,
    /// Target frames per chunk (1..=10000).
    pub chunk_size: Option<u64>,
    /// Minimum score kept (0..=1).
    pub score_threshold: Option<f32>,
    /// Class labels kept; every class when absent.
    pub classes: Option<Vec<String>>,
    /// The annotated MP4 is made as soon as detection succeeds.
    pub annotate: Option<bool>,
    /// Objects are followed across frames (on unless `false`).
    pub track: Option<bool>,
    /// Zones tracks are counted in.
    #[schema(value_type = Option<Vec<Object>>)]
    pub zones: Option<Vec<serde_json::Value>>,
    /// Lines tracks are counted across.
    #[schema(value_type = Option<Vec<Object>>)]
    pub lines: Option<Vec<serde_json::Value>>,
    /// Every Nth frame is detected.
    pub stride: Option<u32>,
    /// Only keyframes are decoded and detected.
    pub keyframes_only: Option<bool>,
}

/// How far processing is.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"frames_done": 64, "frames_total": 120, "chunks_done": 1,
                          "chunks_total": 2, "percent": 53.3}))]
pub struct Progress {
    /// Frames detected so far.
    pub frames_done: u64,
    /// Frames in the video (known once probed).
    pub frames_total: u64,
    pub chunks_done: u64,
    /// Chunks the video was split into (known once split).
    pub chunks_total: u64,
    /// 0..=100, one decimal; 100 once succeeded.
    pub percent: f64,
}

/// Where to go from a video.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Links {
    #[serde(rename = "self")]
    pub self_: String,
    pub result: String,
    pub events: String,
}

impl Links {
    fn of(id: &str) -> Links {
        Links {
            self_: format!("{VIDEOS_PATH}/{id}"),
            result: format!("{VIDEOS_PATH}/{id}/result"),
            events: format!("{VIDEOS_PATH}/{id}/events"),
        }
    }
}

/// A video: what was uploaded, where processing is, and (once succeeded) the result's summary.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "7d0f4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e", "owner": "alice",
    "filename": "carphone.mp4", "size_bytes": 588804, "content_type": "video/mp4",
    "status": "detecting", "options": {"chunk_size": 64},
    "task_id": "0b9d2c1e-5f7a-4b8e-9a6d-3c2f1e0d9b8a",
    "video": {"container": "mov,mp4,m4a,3gp,3g2,mj2", "codec": "h264", "width": 176,
              "height": 144, "rotation": 0, "fps": 29.97, "frame_count": 120,
              "duration_s": 4.004, "stream_index": 0, "time_base": [1, 30000], "start_pts": 0},
    "progress": {"frames_done": 64, "frames_total": 120, "chunks_done": 1, "chunks_total": 2,
                 "percent": 53.3},
    "warnings": [],
    "created_at": "2026-01-02T03:04:05.678Z", "updated_at": "2026-01-02T03:04:07.123Z",
    "links": {"self": "/api/v1/videos/7d0f4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e",
              "result": "/api/v1/videos/7d0f4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e/result",
              "events": "/api/v1/videos/7d0f4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e/events"}
}))]
pub struct VideoView {
    pub id: String,
    /// The uploader's username.
    pub owner: String,
    /// The file's name as uploaded (path components removed).
    pub filename: String,
    pub size_bytes: u64,
    pub content_type: Option<String>,
    pub status: VideoStatus,
    #[schema(value_type = Options)]
    pub options: VideoOptions,
    /// The run's `process_video` task id: its Celery result holds the video's result.
    pub task_id: Option<String>,
    /// What the probe found: container, codec, displayed size, rotation, fps, frame count,
    /// duration.
    #[schema(value_type = Option<Object>)]
    pub video: Option<Value>,
    pub progress: Progress,
    /// Why it failed or was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What went wrong without failing it (damaged frames, a truncated file).
    pub warnings: Vec<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub updated_at: String,
    /// When it succeeded, failed or was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The result's summary (`frames_processed`, `classes`, `top_classes`, …), once succeeded;
    /// only on `GET /api/v1/videos/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub summary: Option<Value>,
    pub links: Links,
}

/// A page of videos, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct VideoList {
    pub videos: Vec<VideoView>,
    /// Videos matching the query in all.
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
    /// `offset` of the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
}

fn time_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The view of a record, with the backend's live state when there is one.
pub fn view(record: &VideoRecord, live: Option<&VideoState>) -> VideoView {
    let video = record.probe();
    let probed_frames = record.frame_count();
    // A stored status this code never wrote reads as failed.
    let status = live.map_or_else(
        || VideoStatus::parse(&record.status).unwrap_or(VideoStatus::Failed),
        |s| s.status,
    );
    let (frames_done, frames_total, chunks_done, chunks_total) = match live {
        Some(s) => (
            s.frames_done,
            if s.frames_total > 0 {
                s.frames_total
            } else {
                probed_frames
            },
            s.chunks_done,
            s.chunks_total,
        ),
        None if status == VideoStatus::Succeeded => (probed_frames, probed_frames, 0, 0),
        None => (0, probed_frames, 0, 0),
    };
    let percent = if status == VideoStatus::Succeeded {
        100.0
    } else if frames_total > 0 {
        ((frames_done as f64 / frames_total as f64) * 1000.0)
            .round()
            .min(1000.0)
            / 10.0
    } else {
        0.0
    };
    let updated_at = live.map_or_else(|| record.updated_at.clone(), |s| time_text(&s.updated_at));
    let finished_at = if status.is_final() {
        live.map(|s| time_text(&s.updated_at))
            .or_else(|| record.finished_at.clone())
    } else {
        None
    };
    VideoView {
        id: record.id.clone(),
        owner: record.owner.clone(),
        filename: record.filename.clone(),
        size_bytes: record.size_bytes.max(0) as u64,
        content_type: record.content_type.clone(),
        status,
        options: serde_json::from_str(&record.options).unwrap_or_default(),
        task_id: live
            .and_then(|s| s.task_id.clone())
            .or_else(|| record.task_id.clone()),
        video,
        progress: Progress {
            frames_done,
            frames_total,
            chunks_done,
            chunks_total,
            percent,
        },
        // Workers strip their paths from reasons; records and warnings from before did not.
        error: live
            .and_then(|s| s.error.as_deref())
            .or(record.error.as_deref())
            .map(without_paths),
        warnings: live
            .map(|s| s.warnings.iter().map(|w| without_paths(w)).collect())
            .unwrap_or_default(),
        created_at: record.created_at.clone(),
        updated_at,
        finished_at,
        summary: None,
        links: Links::of(&record.id),
    }
}

/// 404 for a missing video, another user's video and a malformed id alike.
fn not_found(raw_id: &str) -> ApiError {
    let shown: String = raw_id.chars().take(64).collect();
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::VideoNotFound,
        format!("no video with id {shown:?}"),
    )
}

/// The record of video `raw_id` if the caller may see it (theirs, or any for an admin).
pub async fn load(state: &AppState, user: &User, raw_id: &str) -> Result<VideoRecord, ApiError> {
    let Ok(id) = uuid::Uuid::parse_str(raw_id) else {
        return Err(not_found(raw_id));
    };
    let record = records::get(&state.db, &id.hyphenated().to_string())
        .await
        .map_err(ApiError::database)?
        .ok_or_else(|| not_found(raw_id))?;
    if record.owner_id != user.id && user.role != Role::Admin {
        return Err(not_found(raw_id));
    }
    Ok(record)
}

/// The backend's state of a video; `None` when it has none (expired) or cannot be reached
/// (then the record's last known status is shown: reads keep working while Redis is down).
pub async fn live_state(state: &AppState, record: &VideoRecord) -> Option<VideoState> {
    match state.queue.backend.get_state(&record.id).await {
        Ok(live) => {
            if let Some(live) = &live {
                // Reads repair what the listener may have missed.
                if let Err(e) = listener::record(&state.db, &state.webhooks, live).await {
                    tracing::warn!(video_id = %record.id, error = %e, "cannot record a status");
                }
            }
            live
        }
        Err(e) => {
            tracing::warn!(video_id = %record.id, error = %e, "result backend unavailable; showing the stored status");
            None
        }
    }
}

fn backend_error(e: BackendError) -> ApiError {
    ApiError::unavailable("result backend", e)
}

/// The caller's videos, newest first (`?all=true`: every user's, admins only).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Videos per page, 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Videos to skip (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
    /// Only videos with this status (as last recorded; the answer shows the live status).
    pub status: Option<VideoStatus>,
    /// Every user's videos (admins only).
    pub all: Option<bool>,
}

/// List videos.
#[utoipa::path(
    get,
    path = "/api/v1/videos",
    tag = "videos",
    params(ListQuery),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of videos, newest first", body = VideoList),
        (status = 400, description = "`invalid_query`: a parameter cannot be read (an unknown status, for instance)", body = ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 403, description = "`forbidden`: `all=true` from a non-admin", body = ErrorBody),
        (status = 422, description = "`invalid_input`: `limit` outside 1..=100", body = ErrorBody),
    )
)]
pub async fn list_videos(
    user: AuthUser,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<VideoList>, ApiError> {
    let user = user.0;
    let query = query.into_inner();
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid_input(format!(
            "limit must lie in 1..={MAX_PAGE}, got {limit}"
        )));
    }
    let offset = query.offset.unwrap_or(0);
    // Typed i64 so that the query parser refuses what SQL cannot take (2^63 and beyond).
    let Ok(offset) = u64::try_from(offset) else {
        return Err(ApiError::new(
            actix_web::http::StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuery,
            format!("invalid query string: offset must be 0 or more, got {offset}"),
        ));
    };
    let all = query.all.unwrap_or(false);
    if all && user.role != Role::Admin {
        return Err(ApiError::forbidden(
            "only admins may list every user's videos",
        ));
    }
    let filter = records::Filter {
        owner_id: (!all).then_some(user.id.as_str()),
        status: query.status.map(VideoStatus::as_str),
    };
    let (page, total) = records::list(&state.db, &filter, limit, offset)
        .await
        .map_err(ApiError::database)?;
    let lives = futures::future::join_all(page.iter().map(|r| live_state(&state, r))).await;
    let videos: Vec<VideoView> = page
        .iter()
        .zip(&lives)
        .map(|(record, live)| view(record, live.as_ref()))
        .collect();
    let total = total.max(0) as u64;
    let end = offset + videos.len() as u64;
    Ok(web::Json(VideoList {
        next_offset: (end < total && !videos.is_empty()).then_some(end),
        videos,
        total,
        limit,
        offset,
    }))
}

/// A video's status, progress, timings and (once succeeded) result summary.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{id}",
    tag = "videos",
    params(("id" = String, Path, description = "The video's id (a UUID)")),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The video", body = VideoView),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 404, description = "`video_not_found`: no such video, not yours, or a malformed id", body = ErrorBody,
         example = json!({"code": "video_not_found", "message": "no video with id \"7d0f4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e\""})),
    )
)]
pub async fn get_video(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<VideoView>, ApiError> {
    let record = load(&state, &user.0, &id).await?;
    let live = live_state(&state, &record).await;
    let mut view = view(&record, live.as_ref());
    if view.status == VideoStatus::Succeeded {
        let (storage, video_id) = (state.storage.clone(), record.id.clone());
        let head = web::block(move || frames::read_head(&storage, &video_id))
            .await
            .map_err(ApiError::internal)?;
        match head {
            Ok(head) => {
                view.summary = Some(head.summary);
                if view.warnings.is_empty() {
                    view.warnings = head.warnings;
                }
            }
            Err(e) => {
                tracing::warn!(video_id = %record.id, error = %e, "cannot read the result's summary")
            }
        }
    }
    Ok(web::Json(view))
}

/// The record of the caller's video `raw_id` once it succeeded; 409 (`not_ready`,
/// `video_failed`, `video_cancelled`) before or instead.
pub async fn load_succeeded(
    state: &AppState,
    user: &User,
    raw_id: &str,
) -> Result<VideoRecord, ApiError> {
    let record = load(state, user, raw_id).await?;
    let live = live_state(state, &record).await;
    let view = view(&record, live.as_ref());
    match view.status {
        VideoStatus::Succeeded => Ok(record),
        VideoStatus::Failed => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::VideoFailed,
            format!(
                "video {} failed: {}",
                record.id,
                view.error.as_deref().unwrap_or("no reason recorded")
            ),
        )),
        VideoStatus::Cancelled => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::VideoCancelled,
            format!("video {} was cancelled; it has no result", record.id),
        )),
        running => {
            let p = &view.progress;
            Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::NotReady,
                format!(
                    "video {} is {} ({} of {} frames); its result is not ready",
                    record.id,
                    running.as_str(),
                    p.frames_done,
                    p.frames_total
                ),
            ))
        }
    }
}

/// 410: the result of a succeeded video is no longer in storage.
pub fn result_gone(video_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        ErrorCode::ResultGone,
        format!("the result of video {video_id} is no longer in storage"),
    )
}

/// Result formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResultFormat {
    /// The result document, as `argus detect --output` writes it.
    #[default]
    Json,
    /// COCO-style detections: `images` (one per frame, with `frame_index` and `pts_ms`),
    /// `annotations` (`bbox` = [x, y, width, height], `score`), `categories`.
    Coco,
    /// `frame,pts_ms,label,class_id,score,x1,y1,x2,y2,track_id`, one row per detection.
    Csv,
    /// MOT Challenge text, `frame,id,bb_left,bb_top,bb_width,bb_height,conf,-1,-1,-1`: one line
    /// per tracked detection, frames counted from 1.
    Mot,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResultQuery {
    /// `json` (default), `coco`, `csv` or `mot`.
    pub format: Option<ResultFormat>,
}

/// A finished video's result: the result document, or a COCO or CSV export of it.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{id}/result",
    tag = "videos",
    params(("id" = String, Path, description = "The video's id (a UUID)"), ResultQuery),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The result", content(
            (Object = "application/json", example = json!({
                "video": {"container": "mov,mp4,m4a,3gp,3g2,mj2", "codec": "h264", "width": 176, "height": 144,
                          "rotation": 0, "fps": 29.97, "frame_count": 120, "duration_s": 4.004,
                          "stream_index": 0, "time_base": [1, 30000]},
                "model": {"name": "coco-centernet", "adapter": "centernet", "input_size": [512, 512],
                          "score_threshold": 0.3, "devices": ["cpu"]},
                "frames": [{"index": 0, "pts_ms": 0.0, "detections": [
                    {"label": "person", "class_id": 0, "score": 0.69, "box": [3.1, 0.0, 174.2, 144.0]}]}],
                "summary": {"frames_processed": 120, "video_duration_s": 4.004, "wall_time_s": 5.1,
                            "frames_per_second": 23.5, "chunks": 2,
                            "classes": [{"label": "person", "class_id": 0, "objects": 136, "frames": 120}],
                            "top_classes": ["person"], "most_persons": {"index": 86, "count": 2}}})),
            (String = "text/csv", example = "frame,pts_ms,label,class_id,score,x1,y1,x2,y2,track_id\n0,0,person,0,0.69,3.1,0,174.2,144,1\n"),
            (String = "text/plain", example = "1,1,3.1,0,171.1,144,0.69,-1,-1,-1\n"),
        )),
        (status = 400, description = "`invalid_query`: an unknown format", body = ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 404, description = "`video_not_found`", body = ErrorBody),
        (status = 409, description = "`not_ready` (still running; the message says its status), `video_failed` (with the reason), `video_cancelled`", body = ErrorBody,
         example = json!({"code": "not_ready", "message": "video 7d0f4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e is detecting (64 of 120 frames); its result is not ready"})),
        (status = 410, description = "`result_gone`: the result file is no longer in storage", body = ErrorBody),
    )
)]
pub async fn get_result(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<ResultQuery>,
) -> Result<HttpResponse, ApiError> {
    let record = load_succeeded(&state, &user.0, &id).await?;
    let path = state
        .storage
        .result_path(&record.id)
        .map_err(ApiError::internal)?;
    let gone = || result_gone(&record.id);
    let format = query.format.unwrap_or_default();
    if format == ResultFormat::Json {
        let file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(gone()),
            Err(e) => return Err(ApiError::internal(e)),
        };
        let len = file.metadata().await.map_err(ApiError::internal)?.len();
        return Ok(HttpResponse::Ok()
            .content_type("application/json")
            .no_chunking(len)
            .streaming(tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024)));
    }
    let result = match export::read_result(path).await {
        Ok(result) => result,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(gone()),
        Err(e) => return Err(ApiError::internal(e)),
    };
    let (content_type, disposition) = match format {
        ResultFormat::Csv => (
            "text/csv; charset=utf-8",
            Some(format!("attachment; filename=\"{}.csv\"", record.id)),
        ),
        ResultFormat::Mot => (
            "text/plain; charset=utf-8",
            Some(format!("attachment; filename=\"{}.mot.txt\"", record.id)),
        ),
        _ => ("application/json", None),
    };
    let mut response = HttpResponse::Ok();
    response.content_type(content_type);
    if let Some(disposition) = disposition {
        response.insert_header((header::CONTENT_DISPOSITION, disposition));
    }
    let source = export::Source {
        video_id: record.id.clone(),
        filename: record.filename.clone(),
    };
    Ok(response.streaming(export::stream(result, source, format)))
}

/// Cancel a video's processing and delete it: its record, files, result and state.
#[utoipa::path(
    delete,
    path = "/api/v1/videos/{id}",
    tag = "videos",
    params(("id" = String, Path, description = "The video's id (a UUID)")),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "Cancelled if it was running, and deleted"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 404, description = "`video_not_found`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: the result backend or the database cannot be reached; nothing or part was deleted, retry", body = ErrorBody),
    )
)]
pub async fn delete_video(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = user.0;
    let record = load(&state, &user, &id).await?;
    let backend = &state.queue.backend;
    // Stop the run first: its chunks are skipped and no merge writes a result afterwards.
    let cancelled = cancel_video(backend, &record.id)
        .await
        .map_err(backend_error)?;
    if let Cancelled::Stopped(run) = &cancelled {
        tracing::info!(video_id = %record.id, task_id = ?run.task_id, "run cancelled");
    }
    run::delete(backend, &record.id)
        .await
        .map_err(backend_error)?;
    argus_pipeline::annotation::forget(backend, &record.id)
        .await
        .map_err(backend_error)?;
    let storage = state.storage.clone();
    let video_id = record.id.clone();
    let removed = web::block(move || storage.delete_video(&video_id))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    crate::webhooks::store::delete_job(&state.db, &record.id)
        .await
        .map_err(ApiError::database)?;
    records::delete(&state.db, &record.id)
        .await
        .map_err(ApiError::database)?;
    tracing::info!(video_id = %record.id, by = %user.username, files = removed, "video deleted");
    Ok(HttpResponse::NoContent().finish())
}
