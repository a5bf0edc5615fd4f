//! A succeeded video's result read by parts, through its index
//! ([`argus_common::result_index`]): `GET /api/v1/videos/{id}/frames?from=&to=` (the detections
//! of a frame range), `GET /api/v1/videos/{id}/timeline` (where each class appears) and the
//! summary that `GET /api/v1/videos/{id}` shows. A page over a three-hour video reads a few
//! kilobytes per request, as over a four-second one.
//!
//! A result without a usable index (written before indexes existed) is indexed by reading it
//! once per request; nothing is written back, so a DELETE racing a read leaves nothing behind.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

use actix_web::web;
use argus_common::result_index::{self, Lane};
use argus_common::storage::Storage;
use argus_common::FrameDetections;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::{load_succeeded, result_gone};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Most frames one `frames` request may span.
pub const MAX_FRAMES_PER_REQUEST: u64 = 1000;

/// The part of a result document the status shows.
#[derive(Debug, Deserialize)]
pub struct ResultHead {
    pub summary: Value,
    #[serde(default)]
    pub warnings: Vec<String>,
}

fn read_at(file: &mut File, range: std::ops::Range<u64>) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(range.start))?;
    let mut bytes = Vec::with_capacity((range.end - range.start) as usize);
    file.take(range.end - range.start).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The summary and warnings of video `id`'s result: from its tail when indexed, else by
/// reading the document through.
pub fn read_head(storage: &Storage, id: &str) -> std::io::Result<ResultHead> {
    let path = storage.result_path(id).map_err(std::io::Error::other)?;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    if let Some(index) = storage
        .read_result_index(id, len)
        .map_err(std::io::Error::other)?
    {
        // `,"skipped_frames":…,"summary":…}` read as the object `{"skipped_frames":…}`.
        let mut tail = read_at(&mut file, index.tail_offset()..len)?;
        if tail.first() == Some(&b',') {
            tail[0] = b'{';
            return serde_json::from_slice(&tail).map_err(std::io::Error::other);
        }
        tracing::warn!(
            video_id = id,
            "a result's index points at no tail: reading it whole"
        );
        file.seek(SeekFrom::Start(0))?;
    }
    serde_json::from_reader(BufReader::new(file)).map_err(std::io::Error::other)
}

async fn blocking<T: Send + 'static>(
    video_id: &str,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match web::block(work).await.map_err(ApiError::internal)? {
        Ok(value) => Ok(value),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(result_gone(video_id)),
        Err(e) => Err(ApiError::internal(e)),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FramesQuery {
    /// First frame (presentation index, from 0), inclusive.
    pub from: u64,
    /// Last frame, exclusive; at most 1000 past `from` (or the video's end, which is where a
    /// `to` past it reads to).
    pub to: u64,
}

/// The detections of a range of frames.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"video_id": "7d0f4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e", "frame_count": 120,
    "from": 60, "to": 62, "frames": [
        {"index": 60, "pts_ms": 2002.0, "detections": [
            {"label": "person", "class_id": 0, "score": 0.71, "box": [3.4, 0.0, 175.1, 144.0]}]},
        {"index": 61, "pts_ms": 2035.4, "detections": []}]}))]
pub struct FramesPage {
    pub video_id: String,
    pub frame_count: u64,
    pub from: u64,
    /// `to` as asked, or the video's end if that came first.
    pub to: u64,
    /// The frames in `from..to` in order; a frame that could not be decoded is absent (the
    /// result's `skipped_frames`).
    #[schema(value_type = Vec<Object>)]
    pub frames: Vec<FrameDetections>,
}

/// Detections of a frame range.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{id}/frames",
    tag = "videos",
    params(("id" = String, Path, description = "The video's id (a UUID)"), FramesQuery),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The frames of `from..to`", body = FramesPage),
        (status = 400, description = "`invalid_query`: `from` or `to` missing or not a number", body = ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 404, description = "`video_not_found`", body = ErrorBody),
        (status = 409, description = "`not_ready`, `video_failed`, `video_cancelled`", body = ErrorBody),
        (status = 410, description = "`result_gone`", body = ErrorBody),
        (status = 422, description = "`invalid_input`: `to` before `from`, or more than 1000 frames of the video", body = ErrorBody),
    )
)]
pub async fn get_frames(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<FramesQuery>,
) -> Result<web::Json<FramesPage>, ApiError> {
    let FramesQuery { from, to } = query.into_inner();
    let record = load_succeeded(&state, &user.0, &id).await?;
    let count = record.frame_count();
    // Past the end reads to the end: the span is what is left of the video.
    let end = to.min(count.max(from));
    if to < from || end - from > MAX_FRAMES_PER_REQUEST {
        return Err(ApiError::invalid_input(format!(
            "from..to must be a range of at most {MAX_FRAMES_PER_REQUEST} frames, got {from}..{to}"
        )));
    }
    let (storage, video_id) = (state.storage.clone(), record.id.clone());
    let frames = blocking(&record.id, move || {
        let (mut file, index) = storage.open_result(&video_id, count)?;
        result_index::read_frames(&mut file, &index, from, end)
    })
    .await?;
    Ok(web::Json(FramesPage {
        video_id: record.id,
        frame_count: count,
        from,
        to: end,
        frames,
    }))
}

/// Where each class appears, block by block.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"frame_count": 120, "block_frames": 1, "fps": 29.97,
    "lanes": [{"label": "person", "class_id": 0, "blocks": [[0, 0.69], [1, 0.7]]}]}))]
pub struct Timeline {
    pub frame_count: u64,
    /// Block `k` covers frames `k·block_frames .. (k+1)·block_frames` (at most 4096 blocks).
    pub block_frames: u64,
    pub fps: f64,
    /// One per class found: `blocks` lists `[block, best score in it]` for the blocks where
    /// the class appears, ascending.
    #[schema(value_type = Vec<Object>)]
    pub lanes: Vec<Lane>,
}

/// Where each class appears along the video.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{id}/timeline",
    tag = "videos",
    params(("id" = String, Path, description = "The video's id (a UUID)")),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "One lane per class", body = Timeline),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 404, description = "`video_not_found`", body = ErrorBody),
        (status = 409, description = "`not_ready`, `video_failed`, `video_cancelled`", body = ErrorBody),
        (status = 410, description = "`result_gone`", body = ErrorBody),
    )
)]
pub async fn get_timeline(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<Timeline>, ApiError> {
    let record = load_succeeded(&state, &user.0, &id).await?;
    let count = record.frame_count();
    let fps = record
        .probe()
        .and_then(|v| v["fps"].as_f64())
        .unwrap_or(0.0);
    let (storage, video_id) = (state.storage.clone(), record.id.clone());
    let index = blocking(&record.id, move || {
        Ok(storage.open_result(&video_id, count)?.1)
    })
    .await?;
    Ok(web::Json(Timeline {
        frame_count: index.frame_count,
        block_frames: index.block_frames,
        fps,
        lanes: index.lanes,
    }))
}
