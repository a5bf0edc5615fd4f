//! Photo collections as jobs: `POST /api/v1/collections` takes many photos at once (form parts
//! named `file`, archives in parts named `archive`, or one archive as the body), stores them
//! under the collection's folder ([`intake`]) and queues `process_collection`; the processors
//! and detectors detect them as a chord of batches (`argus_pipeline::collections`). The
//! collection's state lives in the result backend like a video's, so the listener records it
//! and webhooks announce its end (`collection.succeeded`, …).

pub mod intake;
pub mod records;
pub mod upload;

use actix_multipart::Multipart;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use argus_common::state::{VideoState, VideoStatus};
use argus_pipeline::collections::{CollectionOptions, ProcessCollection, MAX_PHOTOS};
use argus_pipeline::store::RunStore;
use argus_pipeline::tasks::PROCESSOR_QUEUE;
use argus_queue::message::TaskMessage;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;
use crate::users::{Role, User};
use crate::videos::ingest::{Budget, Metered};
use intake::{Intake, IntakeError, IntakeLimits};
use records::{CollectionRecord, NewCollection};

pub const COLLECTIONS_PATH: &str = "/api/v1/collections";
/// Most bytes of options (names and values, the query's included).
const MAX_OPTION_BYTES: usize = 64 * 1024;

/// Collection limits (`ARGUS_MAX_COLLECTION_*`, `ARGUS_MAX_PHOTO_BYTES`).
#[derive(clap::Args, Clone, Debug)]
pub struct CollectionArgs {
    /// Most photos one collection may hold (entries refused on the way in count apart, up to
    /// as many); more refuse the collection with 413.
    #[arg(long = "max-collection-photos", env = "ARGUS_MAX_COLLECTION_PHOTOS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(1..=MAX_PHOTOS))]
    pub max_photos: u64,
    /// Most bytes of photos one collection may hold, archives unpacked: the request body (413
    /// beyond) and what its archives unpack to (a decompression bomb stops here).
    #[arg(long = "max-collection-bytes", env = "ARGUS_MAX_COLLECTION_BYTES", default_value_t = 4 << 30)]
    pub max_bytes: u64,
    /// Largest photo: a bigger one is listed with its error, the others go on.
    #[arg(long = "max-photo-bytes", env = "ARGUS_MAX_PHOTO_BYTES", default_value_t = 50 << 20)]
    pub max_photo_bytes: u64,
}

impl Default for CollectionArgs {
    fn default() -> Self {
        CollectionArgs {
            max_photos: 20_000,
            max_bytes: 4 << 30,
            max_photo_bytes: 50 << 20,
        }
    }
}

/// Progress of a collection.
#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionProgress {
    pub photos_done: u64,
    pub photos_total: u64,
    pub batches_done: u64,
    pub batches_total: u64,
    /// 0..=100; 100 once succeeded.
    pub percent: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionLinks {
    #[serde(rename = "self")]
    pub self_: String,
    pub result: String,
}

/// A collection: what came in, where detection is, and (once succeeded) its summary.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": "0f8e4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e", "owner": "alice", "status": "succeeded",
    "options": {"model": "faces"}, "photos": 3, "refused": 1, "size_bytes": 1498412,
    "progress": {"photos_done": 3, "photos_total": 3, "batches_done": 1, "batches_total": 1, "percent": 100.0},
    "summary": {"entries": 4, "photos_detected": 3, "photos_failed": 1, "objects": {"face": 2},
                "photos_with": {"face": 2}, "faces": {"count": 2, "mean_embedding": [0.01, 0.03]}},
    "created_at": "2026-01-02T03:04:05.678Z", "updated_at": "2026-01-02T03:04:09.123Z",
    "links": {"self": "/api/v1/collections/0f8e4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e",
              "result": "/api/v1/collections/0f8e4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e/result"}
}))]
pub struct CollectionView {
    pub id: String,
    pub owner: String,
    pub status: VideoStatus,
    #[schema(value_type = Object)]
    pub options: Value,
    /// Photos stored.
    pub photos: u64,
    /// Entries refused on the way in (listed in the result with their errors).
    pub refused: u64,
    pub size_bytes: u64,
    pub progress: CollectionProgress,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Once succeeded: entries, photos detected and failed, objects and photos per class, and
    /// for a face model the faces' count and mean embedding (a unit vector).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub summary: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub links: CollectionLinks,
}

pub fn view(record: &CollectionRecord, live: Option<&VideoState>) -> CollectionView {
    let status = live.map_or_else(
        || VideoStatus::parse(&record.status).unwrap_or(VideoStatus::Failed),
        |s| s.status,
    );
    let photos = record.photos.max(0) as u64;
    let (done, batches_done, batches_total) = match live {
        Some(s) => (s.frames_done, s.chunks_done, s.chunks_total),
        None => (0, 0, 0),
    };
    let done = if status == VideoStatus::Succeeded {
        photos
    } else {
        done.min(photos)
    };
    let percent = if status == VideoStatus::Succeeded {
        100.0
    } else if photos > 0 {
        (1000.0 * done as f64 / photos as f64).round() / 10.0
    } else {
        0.0
    };
    let id = &record.id;
    CollectionView {
        id: id.clone(),
        owner: record.owner.clone(),
        status,
        options: serde_json::from_str(&record.options).unwrap_or(Value::Null),
        photos,
        refused: record.refused.max(0) as u64,
        size_bytes: record.size_bytes.max(0) as u64,
        progress: CollectionProgress {
            photos_done: done,
            photos_total: photos,
            batches_done,
            batches_total,
            percent,
        },
        error: live
            .and_then(|s| s.error.clone())
            .or_else(|| record.error.clone()),
        summary: None,
        callback_url: record.callback_url.clone(),
        created_at: record.created_at.clone(),
        updated_at: live.map_or_else(
            || record.updated_at.clone(),
            |s| {
                s.updated_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            },
        ),
        finished_at: record.finished_at.clone(),
        links: CollectionLinks {
            self_: format!("{COLLECTIONS_PATH}/{id}"),
            result: format!("{COLLECTIONS_PATH}/{id}/result"),
        },
    }
}

fn not_found(raw_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::CollectionNotFound,
        format!(
            "no collection with id {:?}",
            raw_id.chars().take(64).collect::<String>()
        ),
    )
}

/// The caller's collection `raw_id` (an admin's: anyone's); 404 otherwise.
pub async fn load(
    state: &AppState,
    user: &User,
    raw_id: &str,
) -> Result<CollectionRecord, ApiError> {
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

/// The summary the merge wrote, once succeeded.
fn read_summary(state: &AppState, id: &str) -> Option<Value> {
    let path = state.storage.collection_dir(id).ok()?.join("summary.json");
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// A collection's status, progress and (once succeeded) summary.
#[utoipa::path(
    get,
    path = "/api/v1/collections/{id}",
    tag = "collections",
    params(("id" = String, Path, description = "The collection's id")),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The collection", body = CollectionView),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 404, description = "`collection_not_found`: no such collection, or not yours", body = ErrorBody),
    )
)]
pub async fn get_collection(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<CollectionView>, ApiError> {
    let record = load(&state, &user.0, &id).await?;
    let live = match state.queue.backend.get_state(&record.id).await {
        Ok(live) => {
            if let Some(live) = &live {
                if let Err(e) =
                    crate::videos::listener::record(&state.db, &state.webhooks, live).await
                {
                    tracing::warn!(collection_id = %record.id, error = %e, "cannot record a status");
                }
            }
            live
        }
        Err(_) => None,
    };
    let mut view = view(&record, live.as_ref());
    if view.status == VideoStatus::Succeeded {
        let (state2, id2) = (state.clone(), record.id.clone());
        view.summary = web::block(move || read_summary(&state2, &id2))
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(web::Json(view))
}

/// A page of the caller's collections.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Collections per page, 1..=100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// Collections to skip (default 0).
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

/// A page of collections, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionList {
    pub collections: Vec<CollectionView>,
    pub total: i64,
    pub limit: u32,
    pub offset: u64,
}

/// The caller's collections, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/collections",
    tag = "collections",
    params(ListQuery),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of collections", body = CollectionList),
        (status = 400, description = "`invalid_query`: a parameter cannot be read (a negative offset, for instance)", body = ErrorBody),
        (status = 422, description = "`invalid_input`: `limit` outside 1..=100", body = ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
    )
)]
pub async fn list_collections(
    user: AuthUser,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<web::Json<CollectionList>, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_input(format!(
            "limit must lie in 1..=100, got {limit}"
        )));
    }
    let Ok(offset) = u64::try_from(query.offset.unwrap_or(0)) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuery,
            "invalid query string: offset must be 0 or more",
        ));
    };
    let (records, total) = records::list(&state.db, Some(&user.0.id), limit, offset)
        .await
        .map_err(ApiError::database)?;
    let mut collections = Vec::with_capacity(records.len());
    for r in &records {
        let live = state.queue.backend.get_state(&r.id).await.ok().flatten();
        collections.push(view(r, live.as_ref()));
    }
    Ok(web::Json(CollectionList {
        collections,
        total,
        limit,
        offset,
    }))
}

/// A collection's result formats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CollectionFormat {
    /// The document: every entry, the model, the summary.
    #[default]
    Json,
    /// One row per detection (`name, index, width, height, label, class_id, score, x1, y1, x2,
    /// y2, error`), and one per photo without any or with an error.
    Csv,
}

/// Which form of a collection's result.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CollectionResultQuery {
    /// `json` (default) or `csv`.
    pub format: Option<CollectionFormat>,
}

/// The result document: every entry in order (`name`, and `index`, `width`, `height`,
/// `detections` or `error`), the model, and the summary.
#[utoipa::path(
    get,
    path = "/api/v1/collections/{id}/result",
    tag = "collections",
    params(("id" = String, Path, description = "The collection's id"), CollectionResultQuery),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The result document (JSON), or its CSV export", content(("application/json"), ("text/csv"))),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 404, description = "`collection_not_found`", body = ErrorBody),
        (status = 409, description = "`not_ready`: not succeeded (yet)", body = ErrorBody),
        (status = 410, description = "`result_gone`: the result is no longer in storage", body = ErrorBody),
        (status = 400, description = "`invalid_query`: a format other than json or csv", body = ErrorBody),
    )
)]
pub async fn get_collection_result(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<CollectionResultQuery>,
) -> Result<HttpResponse, ApiError> {
    let csv = query.format.unwrap_or_default() == CollectionFormat::Csv;
    let record = load(&state, &user.0, &id).await?;
    let live = state
        .queue
        .backend
        .get_state(&record.id)
        .await
        .ok()
        .flatten();
    let status = live.as_ref().map_or_else(
        || VideoStatus::parse(&record.status).unwrap_or(VideoStatus::Failed),
        |s| s.status,
    );
    if status != VideoStatus::Succeeded {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::NotReady,
            format!("the collection is {}", status.as_str()),
        ));
    }
    let (path, content_type) = if csv {
        let dir = state
            .storage
            .collection_dir(&record.id)
            .map_err(ApiError::internal)?;
        (dir.join("detections.csv"), "text/csv; charset=utf-8")
    } else {
        let path = state
            .storage
            .result_path(&record.id)
            .map_err(ApiError::internal)?;
        (path, "application/json")
    };
    let file = tokio::fs::File::open(&path).await.map_err(|_| {
        ApiError::new(
            StatusCode::GONE,
            ErrorCode::ResultGone,
            "the collection's result is gone from storage",
        )
    })?;
    let _ = req;
    Ok(HttpResponse::Ok().content_type(content_type).streaming(
        tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024),
    ))
}

/// Cancels a collection still running and removes it: its photos, result and record.
#[utoipa::path(
    delete,
    path = "/api/v1/collections/{id}",
    tag = "collections",
    params(("id" = String, Path, description = "The collection's id")),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "Cancelled (when running) and removed"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 404, description = "`collection_not_found`", body = ErrorBody),
        (status = 503, description = "`service_unavailable`", body = ErrorBody),
    )
)]
pub async fn delete_collection(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = load(&state, &user.0, &id).await?;
    let backend = &state.queue.backend;
    let unavailable =
        |e: argus_queue::backend::BackendError| ApiError::unavailable("result backend", e);
    argus_pipeline::run::cancel_video(backend, &record.id)
        .await
        .map_err(unavailable)?;
    argus_pipeline::run::delete(backend, &record.id)
        .await
        .map_err(unavailable)?;
    let (storage, cid) = (state.storage.clone(), record.id.clone());
    web::block(move || storage.delete_collection(&cid))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    crate::webhooks::store::delete_job(&state.db, &record.id)
        .await
        .map_err(ApiError::database)?;
    records::delete(&state.db, &record.id)
        .await
        .map_err(ApiError::database)?;
    tracing::info!(collection_id = %record.id, by = %user.0.username, "collection deleted");
    Ok(HttpResponse::NoContent().finish())
}
