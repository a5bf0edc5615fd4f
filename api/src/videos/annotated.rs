//! A video's annotated MP4 (every frame with its boxes drawn, made by the `annotate_video`
//! task beside the result): `POST /api/v1/videos/{id}/annotated` queues it once (again after a
//! failure), `GET` says how far it is; the file itself is `GET …/annotated/file` (range
//! requests, bearer or signed link: [`super::media`]).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use argus_pipeline::annotation::{self, AnnotationState, AnnotationStatus};
use serde::Serialize;
use utoipa::ToSchema;

use super::records::VideoRecord;
use super::{load, load_succeeded, VIDEOS_PATH};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// How far a video's annotated MP4 is.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "running", "frames_done": 60, "frames_total": 120,
    "percent": 50.0}))]
pub struct AnnotationView {
    /// `absent` (never asked for), `queued`, `running`, `succeeded` or `failed`.
    #[schema(pattern = "^(absent|queued|running|succeeded|failed)$")]
    pub status: String,
    pub frames_done: u64,
    pub frames_total: u64,
    /// 0..=100, one decimal.
    pub percent: f64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The file's size, once made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// Where the file is (bearer token, or a link from `POST …/file-url?file=annotated`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// The view of video `record`'s annotation: the file in storage is what counts as made.
async fn view(
    state: &AppState,
    record: &VideoRecord,
    live: Option<AnnotationState>,
) -> Result<AnnotationView, ApiError> {
    let path = state
        .storage
        .annotated_path(&record.id)
        .map_err(ApiError::internal)?;
    let size = tokio::fs::metadata(&path).await.ok().map(|m| m.len());
    let total = live
        .as_ref()
        .map_or(record.frame_count(), |s| s.frames_total);
    let (status, done, error) = match (&size, &live) {
        (Some(_), _) => ("succeeded", total, None),
        (None, Some(s)) if s.status != AnnotationStatus::Succeeded => (
            match s.status {
                AnnotationStatus::Queued => "queued",
                AnnotationStatus::Running => "running",
                _ => "failed",
            },
            s.frames_done.min(total),
            s.error.clone(),
        ),
        _ => ("absent", 0, None),
    };
    let percent = if total > 0 {
        ((done as f64 / total as f64) * 1000.0).round() / 10.0
    } else {
        0.0
    };
    Ok(AnnotationView {
        status: status.to_string(),
        frames_done: done,
        frames_total: total,
        percent,
        error,
        size_bytes: size,
        file: size.map(|_| format!("{VIDEOS_PATH}/{}/annotated/file", record.id)),
    })
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable("result backend", e)
}

/// Make the video's annotated MP4.
#[utoipa::path(
    post,
    path = "/api/v1/videos/{id}/annotated",
    tag = "videos",
    params(("id" = String, Path, description = "The video's id (a UUID)")),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Made already", body = AnnotationView),
        (status = 202, description = "Queued (or already queued or running): follow it with GET", body = AnnotationView),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 404, description = "`video_not_found`", body = ErrorBody),
        (status = 409, description = "`not_ready`, `video_failed`, `video_cancelled`: only a succeeded video has detections to draw", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: the broker or the result backend cannot be reached", body = ErrorBody),
    )
)]
pub async fn request_annotated(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = load_succeeded(&state, &user.0, &id).await?;
    let made = view(&state, &record, None).await?;
    if made.status == "succeeded" {
        return Ok(HttpResponse::Ok().json(made));
    }
    let live = annotation::request(
        &state.queue.backend,
        &state.queue.broker,
        &record.id,
        record.frame_count(),
    )
    .await
    .map_err(unavailable)?;
    let view = view(&state, &record, Some(live)).await?;
    let status = if view.status == "succeeded" {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok(HttpResponse::build(status).json(view))
}

/// How far the video's annotated MP4 is.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{id}/annotated",
    tag = "videos",
    params(("id" = String, Path, description = "The video's id (a UUID)")),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Its status (`absent` when never asked for)", body = AnnotationView),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 404, description = "`video_not_found`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`: the result backend cannot be reached", body = ErrorBody),
    )
)]
pub async fn get_annotated(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<AnnotationView>, ApiError> {
    let record = load(&state, &user.0, &id).await?;
    let live = annotation::get(&state.queue.backend, &record.id)
        .await
        .map_err(unavailable)?;
    Ok(web::Json(view(&state, &record, live).await?))
}
