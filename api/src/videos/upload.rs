//! `POST /api/v1/videos`: an upload, as `multipart/form-data` (the file in field `file`, options
//! in fields `model`, `chunk_size`, `score_threshold`, `classes`) or as the raw body
//! (`Content-Type: video/*` or `application/octet-stream`, options and `filename` as query
//! parameters: `curl --data-binary @clip.mp4`).
//!
//! The file streams to `uploads/<id>.<ext>` under the storage dir, never whole in memory, and is
//! refused (413) the moment the body passes `ARGUS_MAX_UPLOAD_BYTES` (every byte counts, option
//! fields too; what else bounds an upload: [`super::ingest`]). It is then probed (demux only,
//! on a blocking thread, FFmpeg confined to the file: [`argus_media::input`]) and only a
//! readable video within the limits is moved to
//! `videos/<id>.<ext>`, recorded, given its `queued` state and sent to the processor. Whatever
//! ends an upload early (a refusal, the client going away, a failure) leaves no file and no
//! record behind; once the file is received, the rest runs to its end in a task of its own,
//! whether or not the client still waits.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_multipart::{Multipart, MultipartError};
use actix_web::error::PayloadError;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use argus_common::storage::clean_extension;
use argus_media::MediaError;
use argus_pipeline::tasks::{ProcessVideo, VideoOptions, PROCESSOR_QUEUE};
use argus_queue::message::TaskMessage;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};

use super::ingest::{Budget, Metered};
use super::options::{OptionsInput, MAX_FIELD_BYTES, MAX_SHAPES_BYTES, OPTION_NAMES};
use super::records::{self, NewVideo};
use super::{view, VideoView};
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::metrics::UploadOutcome;
use crate::state::AppState;
use crate::users::User;

/// Room for multipart boundaries, part headers and option fields beyond the file itself: a
/// multipart body may be this much larger than `ARGUS_MAX_UPLOAD_BYTES`.
const MULTIPART_OVERHEAD: u64 =
    (2 * MAX_SHAPES_BYTES + MAX_FIELDS * MAX_FIELD_BYTES) as u64 + 64 * 1024;
/// What the multipart parser may hold of the body ahead of the file part it hands on (a read
/// or two of the connection), on top of [`MULTIPART_OVERHEAD`]: the most body bytes that are
/// ever outside the file.
const PARSER_READ_AHEAD: u64 = 1024 * 1024;
/// Most parts in one multipart body: the file and its options (`classes` may repeat).
const MAX_FIELDS: usize = 32;
/// Longest stored file name, in characters.
const MAX_FILENAME_CHARS: usize = 255;
/// Longest the broker and result backend may take to queue a checked upload (a RabbitMQ under
/// a memory alarm holds publishes): then the upload is undone and refused with 503.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(15);

/// The multipart form (documentation only: the handler streams the body itself).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The video file.
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    file: Vec<u8>,
    // Empty examples on purpose: Swagger UI pre-fills a form's fields with their examples (or
    // with placeholders such as "string" and 0 when there are none) and sends them, so a
    // person who only picks a file would silently get options. Empty fields count as absent.
    // Form fields are text: numbers are given as their decimal text.
    /// A model the detectors serve (`ARGUS_SERVED_MODELS`), e.g. `coco-centernet`; the
    /// detectors' default when empty.
    #[schema(value_type = Option<String>, example = "")]
    model: Option<String>,
    /// Target frames per chunk, a whole number in 1..=10000 (e.g. 64); the server's default
    /// when empty.
    #[schema(value_type = Option<String>, example = "")]
    chunk_size: Option<u64>,
    /// Minimum score kept, a number in 0..=1 (e.g. 0.5); the detector's own threshold when
    /// empty.
    #[schema(value_type = Option<String>, example = "")]
    score_threshold: Option<f32>,
    /// Class labels kept, comma-separated (e.g. `person,car`) or the field repeated; every
    /// class when empty.
    #[schema(value_type = Option<String>, example = "")]
    classes: Option<String>,
    /// `true` to make the annotated MP4 as soon as detection succeeds (else on request:
    /// `POST /api/v1/videos/{id}/annotated`).
    #[schema(value_type = Option<String>, example = "")]
    annotate: Option<bool>,
    /// `false` to skip tracking (every detection gets a `track_id` by default).
    #[schema(value_type = Option<String>, example = "")]
    track: Option<bool>,
    /// Zones to count tracks in, as JSON: up to 16 of
    /// `{"name": "door", "points": [[x, y], ...], "normalized": false, "anchor": "bottom_center"}`
    /// (3..=64 points in the displayed frame's pixels, or 0..=1 with `normalized`; `anchor`:
    /// `bottom_center` or `center`). The result's `zones` give each track's entry, exit and
    /// dwell.
    #[schema(value_type = Option<String>, example = "")]
    zones: Option<String>,
    /// Lines to count tracks across, as JSON: up to 16 of
    /// `{"name": "gate", "start": [x, y], "end": [x, y], "normalized": false}`. Walking from
    /// `start` to `end`, crossing from left to right is `in`.
    #[schema(value_type = Option<String>, example = "")]
    lines: Option<String>,
    /// Detect every Nth frame (1..=100); tracks carry boxes through the frames between
    /// (marked `predicted`). 1 when empty.
    #[schema(value_type = Option<String>, example = "")]
    stride: Option<u32>,
    /// `true` to decode and detect the keyframes only (the cheapest pass).
    #[schema(value_type = Option<String>, example = "")]
    keyframes_only: Option<bool>,
    /// An http(s) URL to POST the video to, signed, once its run ends (your default from
    /// `PUT /api/v1/users/me/webhook` when empty). Loopback, private and link-local
    /// addresses are refused unless the server's `ARGUS_WEBHOOK_ALLOW` lists them.
    #[schema(value_type = Option<String>, example = "")]
    callback_url: Option<String>,
}

/// Options of a raw-body upload (with a multipart body they may be given here too).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct UploadQuery {
    /// The file's name (raw body); its extension is kept.
    filename: Option<String>,
    /// A model the detectors serve.
    #[param(pattern = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")]
    model: Option<String>,
    /// Target frames per chunk, 1..=10000.
    #[param(minimum = 1, maximum = 10000)]
    chunk_size: Option<u64>,
    /// Minimum score kept, 0..=1.
    #[param(minimum = 0.0, maximum = 1.0)]
    score_threshold: Option<f32>,
    /// Class labels kept, comma-separated (or the parameter repeated).
    classes: Option<String>,
    /// Make the annotated MP4 as soon as detection succeeds.
    annotate: Option<bool>,
    /// `false` to skip tracking.
    track: Option<bool>,
    /// Zones to count tracks in, as JSON (see the multipart form's `zones`).
    zones: Option<String>,
    /// Lines to count tracks across, as JSON (see the multipart form's `lines`).
    lines: Option<String>,
    /// Detect every Nth frame, 1..=100.
    #[param(minimum = 1, maximum = 100)]
    stride: Option<u32>,
    /// Decode and detect the keyframes only.
    keyframes_only: Option<bool>,
    /// Where to POST the video, signed, once its run ends (see the multipart form's
    /// `callback_url`).
    callback_url: Option<String>,
}

/// Upload a video; it is probed, then queued for detection.
#[utoipa::path(
    post,
    path = "/api/v1/videos",
    tag = "videos",
    params(UploadQuery),
    request_body(
        description = "The video: as `multipart/form-data` with the file in field `file` (and options in fields), or as the body itself with `Content-Type: video/*` or `application/octet-stream` (options as query parameters).",
        content(
            (UploadForm = "multipart/form-data"),
            (Vec<u8> = "application/octet-stream"),
            (Vec<u8> = "video/*"),
        )
    ),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 202, description = "Stored and queued; `Location` is the video", body = VideoView,
         headers(("Location" = String, description = "/api/v1/videos/{id}"))),
        (status = 400, description = "`invalid_multipart`: the multipart body cannot be parsed; `bad_request`: the body could not be read (cut off); `invalid_query`", body = ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 408, description = "`request_timeout`: the body came slower than ARGUS_UPLOAD_MIN_RATE over a window of ARGUS_UPLOAD_IDLE_TIMEOUT_S, or took longer than ARGUS_UPLOAD_TIMEOUT_S", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: the body (option fields included) is over ARGUS_MAX_UPLOAD_BYTES", body = ErrorBody,
         example = json!({"code": "payload_too_large", "message": "the body is larger than this endpoint accepts (2147483648 bytes)"})),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`empty_file`, `not_a_video` (also any container Argus does not accept: playlists, concat scripts, image sequences), `no_video_stream`, `video_too_large`, `unsupported_video` (the probe's reason in `message`, e.g. a probe past ARGUS_PROBE_TIMEOUT_S); `unknown_model` (the served models in `message`); `invalid_input` (a bad option, an unknown field, too many fields, no `file` field)", body = ErrorBody,
         example = json!({"code": "no_video_stream", "message": "notes.m4a has no video stream"})),
        (status = 429, description = "`too_many_uploads`: ARGUS_MAX_CONCURRENT_UPLOADS are in progress, or ARGUS_MAX_UPLOADS_PER_USER of the caller's; see `Retry-After`", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "`service_unavailable`: the database, broker or result backend cannot be reached; nothing was kept", body = ErrorBody),
    )
)]
pub async fn upload_video(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let result = receive(&req, user.0, &state, payload).await;
    let outcome = match &result {
        Ok(_) => UploadOutcome::Accepted,
        Err(e) if e.status.is_server_error() => UploadOutcome::Failed,
        Err(_) => UploadOutcome::Rejected,
    };
    state.metrics.observe_upload(outcome);
    result
}

/// How the body carries the video.
enum Body {
    Multipart,
    Raw { content_type: String },
}

fn body_kind(req: &HttpRequest) -> Result<Body, ApiError> {
    let expected = "multipart/form-data (the file in field `file`), or the video itself as \
                    video/* or application/octet-stream";
    let mime = req
        .mime_type()
        .map_err(|_| ApiError::unsupported_media_type(expected))?
        .ok_or_else(|| ApiError::unsupported_media_type(expected))?;
    match (mime.type_().as_str(), mime.subtype().as_str()) {
        ("multipart", "form-data") => Ok(Body::Multipart),
        ("video", _) | ("application", "octet-stream") => Ok(Body::Raw {
            content_type: mime.essence_str().to_string(),
        }),
        _ => Err(ApiError::unsupported_media_type(expected)),
    }
}

async fn receive(
    req: &HttpRequest,
    user: User,
    state: &web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = body_kind(req)?;
    let slot = state.uploads.acquire(&user.id)?;
    let limit = state.videos.max_upload_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (overhead, outside_file) = match body {
        Body::Multipart => (
            MULTIPART_OVERHEAD,
            Some(MULTIPART_OVERHEAD + PARSER_READ_AHEAD),
        ),
        Body::Raw { .. } => (0, None),
    };
    if declared.is_some_and(|n| n > limit.saturating_add(overhead)) {
        return Err(ApiError::payload_too_large(limit));
    }
    // Every byte of the body counts from here on, whatever part of it it is.
    let budget = Budget::new(
        state
            .videos
            .ingest(limit.saturating_add(overhead), outside_file),
    );
    let payload = Metered::new(payload, Arc::clone(&budget));

    let mut options = OptionsInput::default();
    let mut query_filename = None;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidQuery,
                format!("invalid query string: {e}"),
            )
        })?;
    for (name, value) in pairs {
        match name.as_str() {
            "filename" => query_filename = Some(value),
            _ => options.set(&name, &value)?,
        }
    }

    let id = uuid::Uuid::new_v4().to_string();
    let file = match body {
        Body::Raw { content_type } => {
            // Options are checked before a byte of the file is read.
            options.check(&state.videos.served_models)?;
            options.callback_url(&state.webhooks.allow).await?;
            let ext = extension_of(query_filename.as_deref(), Some(&content_type));
            let path = state
                .storage
                .new_upload_path(&id, &ext)
                .map_err(ApiError::internal)?;
            let mut sink = FileSink::create(path, limit, state).await?;
            let mut payload = payload;
            while let Some(chunk) = budget.next(&mut payload).await? {
                sink.write(&chunk).await?;
            }
            Received {
                file: sink.finish().await?,
                filename: clean_filename(query_filename.as_deref(), &ext),
                content_type: Some(content_type),
                ext,
            }
        }
        Body::Multipart => {
            let mut multipart = Multipart::new(req.headers(), payload);
            let mut received = None;
            let mut fields = 0;
            while let Some(field) = budget.next(&mut multipart).await? {
                let mut field = field;
                fields += 1;
                if fields > MAX_FIELDS {
                    return Err(ApiError::invalid_input(format!(
                        "more than {MAX_FIELDS} fields: send the file in `file` and each option \
                         once ({OPTION_NAMES})"
                    )));
                }
                let name = field.name().unwrap_or_default().to_string();
                match name.as_str() {
                    "file" => {
                        if received.is_some() {
                            return Err(ApiError::invalid_input(
                                "one video per upload: the field `file` came twice",
                            ));
                        }
                        let part_name = field
                            .content_disposition()
                            .and_then(|cd| cd.get_filename())
                            .map(str::to_string)
                            .or_else(|| query_filename.clone());
                        let part_type = field.content_type().map(|m| m.essence_str().to_string());
                        let ext = extension_of(part_name.as_deref(), part_type.as_deref());
                        let path = state
                            .storage
                            .new_upload_path(&id, &ext)
                            .map_err(ApiError::internal)?;
                        let mut sink = FileSink::create(path, limit, state).await?;
                        while let Some(chunk) = budget.next(&mut field).await? {
                            budget.to_file(chunk.len() as u64);
                            sink.write(&chunk).await?;
                        }
                        received = Some(Received {
                            file: sink.finish().await?,
                            filename: clean_filename(part_name.as_deref(), &ext),
                            content_type: part_type,
                            ext,
                        });
                    }
                    "model" | "chunk_size" | "score_threshold" | "classes" | "annotate"
                    | "track" | "zones" | "lines" | "stride" | "keyframes_only"
                    | "callback_url" => {
                        let value = read_text(&budget, &mut field, &name).await?;
                        options.set(&name, &value)?;
                    }
                    other => {
                        return Err(ApiError::invalid_input(format!(
                            "unknown field {:?}: the video goes in the field `file`; options: \
                             {OPTION_NAMES}",
                            other.chars().take(64).collect::<String>()
                        )))
                    }
                }
            }
            received.ok_or_else(|| {
                ApiError::invalid_input("no field `file`: send the video in the field `file`")
            })?
        }
    };
    // Given, or the owner's default as it is now: announced whatever the default becomes.
    let callback_url = match options.callback_url(&state.webhooks.allow).await? {
        Some(url) => Some(url),
        None => crate::webhooks::store::user_default_url(&state.db, &user.id)
            .await
            .map_err(ApiError::database)?,
    };
    let options = options.check(&state.videos.served_models)?;
    if file.file.size == 0 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::EmptyFile,
            format!("{} is empty", file.filename),
        ));
    }

    let path = file.file.path().to_path_buf();
    let limits = state.videos.limits;
    // The probe owns the slot: a client that resets its connection drops this handler, but
    // not the probe on its blocking thread, which must go on counting against the slots.
    let probed = web::block(move || {
        let _slot = slot;
        check_video(&path, &limits)
    })
    .await
    .map_err(ApiError::internal)??
    .map_err(|e| probe_error(e, file.file.path(), &file.filename))?;
    // Pixel coordinates are checked against the frame now known.
    options
        .validate_for(&probed.info)
        .map_err(ApiError::invalid_input)?;
    if let Some(why) = &probed.truncated {
        tracing::info!(video_id = %id, why, "truncated upload accepted: the frames before the cut will be detected");
    }
    let info = serde_json::to_string(&probed.info).map_err(ApiError::internal)?;
    drop(probed);

    // Received and checked: from here on the work runs to its end even if the client goes.
    let commit = Commit {
        state: state.get_ref().clone(),
        owner: user,
        id,
        received: file,
        options,
        video_info: info,
        callback_url,
    };
    let view = tokio::spawn(commit.run())
        .await
        .map_err(ApiError::internal)??;
    Ok(HttpResponse::Accepted()
        .insert_header((header::LOCATION, view.links.self_.clone()))
        .json(view))
}

/// The body could not be read (when the budget did not cut it off: see [`Budget::next`]): the
/// client went away or sent less than it announced.
impl From<PayloadError> for ApiError {
    fn from(e: PayloadError) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!("the body could not be read: {e}"),
        )
    }
}

impl From<MultipartError> for ApiError {
    fn from(e: MultipartError) -> ApiError {
        match e {
            MultipartError::Payload(e) => e.into(),
            e => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidMultipart,
                format!("invalid multipart body: {e}"),
            ),
        }
    }
}

/// An option field's text.
async fn read_text(
    budget: &Budget,
    field: &mut actix_multipart::Field,
    name: &str,
) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    let max = match name {
        "zones" | "lines" => MAX_SHAPES_BYTES,
        _ => MAX_FIELD_BYTES,
    };
    while let Some(chunk) = budget.next(field).await? {
        if bytes.len() + chunk.len() > max {
            return Err(ApiError::invalid_input(format!(
                "the field `{name}` is longer than {max} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes)
        .map_err(|_| ApiError::invalid_input(format!("the field `{name}` is not UTF-8 text")))
}

/// The refusal for a file the probe cannot take; the message names the upload, not our path.
fn probe_error(error: MediaError, path: &Path, filename: &str) -> ApiError {
    let code = match &error {
        MediaError::NoVideo { .. } | MediaError::NoFrames { .. } => ErrorCode::NoVideoStream,
        MediaError::TooLarge { .. } => ErrorCode::VideoTooLarge,
        MediaError::NoTimestamps { .. }
        | MediaError::DuplicateTimestamps { .. }
        | MediaError::TimedOut { .. } => ErrorCode::UnsupportedVideo,
        _ => ErrorCode::NotAVideo,
    };
    let message = error
        .to_string()
        .replace(&path.display().to_string(), filename);
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// The extension to store under: the file name's when it is a video extension, else one the
/// content type implies, else none.
pub(crate) fn extension_of(filename: Option<&str>, content_type: Option<&str>) -> String {
    let from_name = filename
        .and_then(|n| Path::new(n).extension())
        .and_then(|e| e.to_str())
        .map(|e| clean_extension(&e.to_ascii_lowercase()))
        // Only the extensions of accepted containers are kept: FFmpeg picks a demuxer by
        // content, but some demuxers also by extension (text as ANSI art for `.txt`).
        .filter(|e| argus_media::input::is_video_extension(e));
    if let Some(ext) = from_name {
        return ext;
    }
    let implied = match content_type.unwrap_or_default() {
        "video/mp4" => "mp4",
        "video/quicktime" => "mov",
        "video/webm" => "webm",
        "video/x-matroska" => "mkv",
        "video/x-msvideo" => "avi",
        "video/mpeg" => "mpg",
        "video/mp2t" => "ts",
        "video/ogg" => "ogv",
        "video/3gpp" => "3gp",
        "video/x-flv" => "flv",
        _ => "",
    };
    implied.to_string()
}

/// Bytes of an upload looked at to tell text from a video.
const SNIFF_BYTES: usize = 8192;

/// Whether a file starts like text: UTF-8 without control characters but tab, line breaks,
/// form feed and escape. No video container does (their headers hold binary sizes and
/// magic numbers), but playlists and scripts that FFmpeg would follow to other files or
/// sockets (HLS, concat, SDP) and text it would render as video (ANSI art) do.
fn looks_like_text(head: &[u8]) -> bool {
    let printable = head
        .iter()
        .all(|&b| (b >= 0x20 && b != 0x7f) || matches!(b, b'\t' | b'\n' | b'\r' | 0x0c | 0x1b));
    let utf8 = match std::str::from_utf8(head) {
        Ok(_) => true,
        // Cut inside a character at the end of the sniffed bytes.
        Err(e) => e.error_len().is_none(),
    };
    !head.is_empty() && printable && utf8
}

/// Refuses text at once (a fast first answer for playlists and scripts; the guard is the
/// confined open of the probe), then probes (demux only): on a blocking thread.
fn check_video(
    path: &Path,
    limits: &argus_common::Limits,
) -> Result<Result<argus_media::Probe, MediaError>, ApiError> {
    let mut head = vec![0u8; SNIFF_BYTES];
    let n = std::fs::File::open(path)
        .and_then(|mut f| read_up_to(&mut f, &mut head))
        .map_err(ApiError::internal)?;
    if looks_like_text(&head[..n]) {
        return Ok(Err(MediaError::Open {
            path: path.to_path_buf(),
            reason: "it is text, not a video".to_string(),
        }));
    }
    Ok(argus_media::probe_with(path, limits))
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The name shown for an upload: its last path component, without control characters.
fn clean_filename(name: Option<&str>, ext: &str) -> String {
    let cleaned = name
        .and_then(|n| n.rsplit(['/', '\\']).next())
        .map(|n| {
            n.chars()
                .filter(|c| !c.is_control())
                .take(MAX_FILENAME_CHARS)
                .collect::<String>()
        })
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty() && n != "." && n != "..");
    cleaned.unwrap_or_else(|| {
        if ext.is_empty() {
            "upload".to_string()
        } else {
            format!("upload.{ext}")
        }
    })
}

/// A file under `uploads/` (or `videos/`) that is removed when dropped, unless kept.
struct TempFile {
    path: Option<PathBuf>,
    size: u64,
}

impl TempFile {
    fn path(&self) -> &Path {
        self.path.as_deref().expect("not kept yet")
    }

    /// The file stays; its path.
    fn keep(mut self) -> PathBuf {
        self.path.take().expect("not kept yet")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove an upload");
                }
            }
        }
    }
}

/// Writes an upload to its file, within the size limit.
struct FileSink {
    file: tokio::io::BufWriter<tokio::fs::File>,
    temp: TempFile,
    limit: u64,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl FileSink {
    async fn create(path: PathBuf, limit: u64, state: &AppState) -> Result<FileSink, ApiError> {
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(ApiError::internal)?;
        Ok(FileSink {
            file: tokio::io::BufWriter::with_capacity(256 * 1024, file),
            temp: TempFile {
                path: Some(path),
                size: 0,
            },
            limit,
            metrics: state.metrics.clone(),
        })
    }

    async fn write(&mut self, chunk: &Bytes) -> Result<(), ApiError> {
        let len = chunk.len() as u64;
        self.metrics.count_upload_bytes(len);
        self.temp.size += len;
        if self.temp.size > self.limit {
            return Err(ApiError::payload_too_large(self.limit));
        }
        self.file.write_all(chunk).await.map_err(ApiError::internal)
    }

    async fn finish(mut self) -> Result<TempFile, ApiError> {
        self.file.flush().await.map_err(ApiError::internal)?;
        self.file
            .get_mut()
            .sync_all()
            .await
            .map_err(ApiError::internal)?;
        Ok(self.temp)
    }
}

/// A received file and what the client said about it.
struct Received {
    file: TempFile,
    filename: String,
    content_type: Option<String>,
    ext: String,
}

/// Moving a checked upload into `videos/`, recording it, and queueing it.
struct Commit {
    state: AppState,
    owner: User,
    id: String,
    received: Received,
    options: VideoOptions,
    video_info: String,
    callback_url: Option<String>,
}

impl Commit {
    async fn run(self) -> Result<VideoView, ApiError> {
        let Commit {
            state,
            owner,
            id,
            received,
            options,
            video_info,
            callback_url,
        } = self;
        let size = received.file.size;
        let stored_path = state
            .storage
            .new_video_path(&id, &received.ext)
            .map_err(ApiError::internal)?;
        tokio::fs::rename(received.file.path(), &stored_path)
            .await
            .map_err(ApiError::internal)?;
        received.file.keep();
        // Removed again unless everything below succeeds.
        let stored = TempFile {
            path: Some(stored_path),
            size,
        };

        let message = TaskMessage::new(&ProcessVideo {
            video_id: id.clone(),
            options: options.clone(),
        });
        let task_id = message.id.clone();
        let options_json = serde_json::to_string(&options).map_err(ApiError::internal)?;
        records::insert(
            &state.db,
            &NewVideo {
                id: &id,
                owner_id: &owner.id,
                filename: &received.filename,
                size_bytes: size,
                content_type: received.content_type.as_deref(),
                task_id: &task_id,
                options: &options_json,
                video_info: &video_info,
                callback_url: callback_url.as_deref(),
            },
        )
        .await
        .map_err(ApiError::database)?;

        let queue = &state.queue;
        let queued = tokio::time::timeout(QUEUE_TIMEOUT, async {
            let state = argus_pipeline::run::queue_video(&queue.backend, &id, &task_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("video {id} already has a state"))?;
            queue
                .broker
                .send(PROCESSOR_QUEUE, &message)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(state)
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {QUEUE_TIMEOUT:?}")));
        let live = match queued {
            Ok(live) => live,
            Err(e) => {
                // Nothing of the video stays: its state, its record, its file (`stored`).
                if let Err(e) = argus_pipeline::run::delete(&queue.backend, &id).await {
                    tracing::warn!(video_id = %id, error = %e, "cannot remove the state of a video not queued");
                }
                if let Err(e) = records::delete(&state.db, &id).await {
                    tracing::error!(video_id = %id, error = %e, "cannot remove the record of a video not queued");
                }
                return Err(ApiError::unavailable("queue", e));
            }
        };
        stored.keep();
        tracing::info!(video_id = %id, owner = %owner.username, size_bytes = size, task_id = %task_id, "video queued");
        let record = records::get(&state.db, &id)
            .await
            .map_err(ApiError::database)?
            .ok_or_else(|| ApiError::internal(format!("video {id} vanished after its upload")))?;
        Ok(view(&record, Some(&live)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_and_names() {
        assert_eq!(extension_of(Some("Clip.MP4"), None), "mp4");
        assert_eq!(extension_of(Some("a.tar.m$kv"), None), "mkv");
        assert_eq!(extension_of(Some("noext"), Some("video/webm")), "webm");
        assert_eq!(extension_of(None, Some("application/octet-stream")), "");
        // Extensions that make FFmpeg read text as video are not kept.
        assert_eq!(extension_of(Some("notes.txt"), None), "");
        assert_eq!(extension_of(Some("x.bin"), Some("video/mp4")), "mp4");
        assert_eq!(extension_of(Some("list.m3u8"), None), "");
        assert_eq!(clean_filename(Some("../../etc/passwd"), ""), "passwd");
        assert_eq!(
            clean_filename(Some("C:\\videos\\cat.mov"), "mov"),
            "cat.mov"
        );
        assert_eq!(clean_filename(Some("a\nb\u{0}.mp4"), "mp4"), "ab.mp4");
        assert_eq!(clean_filename(Some(" .. "), "mp4"), "upload.mp4");
        assert_eq!(clean_filename(None, ""), "upload");
        assert_eq!(
            clean_filename(Some(&"x".repeat(300)), "").len(),
            MAX_FILENAME_CHARS
        );
    }

    #[test]
    fn text_is_told_from_video() {
        assert!(looks_like_text(
            b"#EXTM3U\n#EXTINF:10,\nfile:///etc/passwd\n"
        ));
        assert!(looks_like_text(b"ffconcat version 1.0\r\nfile 'a.mp4'\r\n"));
        assert!(looks_like_text("\u{1b}[31mANSI art \u{2588}".as_bytes()));
        // A multi-byte character cut by the sniff window is still text.
        assert!(looks_like_text(&"é".as_bytes()[..1]));
        assert!(!looks_like_text(b""));
        assert!(!looks_like_text(
            b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00"
        ));
        assert!(!looks_like_text(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01"));
        assert!(!looks_like_text(b"GIF89a\x10\x00\x10\x00\xf0"));
        assert!(!looks_like_text(b"\xff\xfeL\x00a\x00"));
        let mp4 = std::fs::read(argus_common::paths::media_dir().join("carphone_pristine.mp4"))
            .expect("the sample media (scripts/setup.sh)");
        assert!(!looks_like_text(&mp4[..SNIFF_BYTES]));
    }
}
