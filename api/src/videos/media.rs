//! A video's own file, for a `<video>` element: `GET /api/v1/videos/{id}/file` answers range
//! requests (206, `Accept-Ranges`, `Content-Range`, `If-Range`, ETags: actix-files), authorized
//! by a bearer token or by a link that `POST /api/v1/videos/{id}/file-url` signs for that one
//! video and that one user, for an hour.
//!
//! Why a signed link: a `<video>` element cannot send an `Authorization` header, and a bearer
//! token in a URL would end up in logs and histories with the power of the whole account for its
//! whole lifetime. A link opens one file, read-only, and dies early with the user's tokens (a
//! password change or a disable moves the generation it carries). A link for another user's
//! video cannot be made; a bearer token of another user answers 404, as on every video route.

use actix_files::NamedFile;
use actix_web::dev::Payload;
use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use chrono::{SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{load, VIDEOS_PATH};
use crate::auth::{AuthUser, LinkGrant, LinkedFile};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;
use crate::users::{self, User};

/// How long a signed link opens its file.
pub const LINK_TTL_S: u64 = 3600;

/// A link to a video's file that needs no header.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "url": "/api/v1/videos/7d0f4a52-2c4e-4f55-9c3a-1b8f0f6f1d2e/file?u=alice&g=0&expires=1767323045&sig=3q2-7w",
    "expires_at": "2026-01-02T03:04:05Z"}))]
pub struct FileLink {
    /// A path on this server, for a `<video src>` or a plain download.
    pub url: String,
    /// RFC 3339, UTC: an hour from now, or when the caller's token expires if that is sooner.
    pub expires_at: String,
}

/// Which file a link is asked for.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkFor {
    /// `video` (default: the file as uploaded) or `annotated` (its annotated copy).
    pub file: Option<LinkedFile>,
}

/// A signed link to the video's file (or its annotated copy).
#[utoipa::path(
    post,
    path = "/api/v1/videos/{id}/file-url",
    tag = "videos",
    params(("id" = String, Path, description = "The video's id (a UUID)"), LinkFor),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A link for this user and this video, valid for an hour", body = FileLink),
        (status = 400, description = "`invalid_query`: `file` is not `video` or `annotated`", body = ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 404, description = "`video_not_found`", body = ErrorBody),
    )
)]
pub async fn create_file_link(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<LinkFor>,
) -> Result<web::Json<FileLink>, ApiError> {
    let AuthUser(user, token_expires) = user;
    let file = query.file.unwrap_or(LinkedFile::Video);
    let record = load(&state, &user, &id).await?;
    // Never longer than the token that asked for it.
    let expires = (jsonwebtoken::get_current_timestamp() + LINK_TTL_S).min(token_expires.0);
    let grant = LinkGrant {
        video_id: record.id.clone(),
        file,
        username: user.username.clone(),
        generation: user.token_generation,
        expires,
    };
    let signature = state.jwt.sign_link(&grant);
    let query = serde_urlencoded::to_string([
        ("u", user.username.as_str()),
        ("g", &user.token_generation.to_string()),
        ("expires", &expires.to_string()),
        ("sig", &signature),
    ])
    .map_err(ApiError::internal)?;
    let expires_at = Utc
        .timestamp_opt(expires as i64, 0)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default();
    Ok(web::Json(FileLink {
        url: format!("{VIDEOS_PATH}/{}/{}?{query}", record.id, route(file)),
        expires_at,
    }))
}

/// A signed link's parameters (all four, or none with a bearer token instead).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkQuery {
    /// The user the link was signed for.
    pub u: Option<String>,
    /// That user's token generation when it was signed.
    pub g: Option<i64>,
    /// Seconds since the epoch.
    pub expires: Option<u64>,
    pub sig: Option<String>,
}

/// The `Range` header (documentation only: actix-files reads it).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct RangeHeader {
    /// `bytes=START-END`, `bytes=START-` or `bytes=-LENGTH`: a part of the file (206). A value
    /// that is not byte ranges is ignored (the whole file, 200).
    #[param(rename = "Range")]
    range: Option<String>,
}

/// Whether `value` reads as byte ranges: `bytes=` and comma-separated `A-B`, `A-` or `-N`.
fn is_byte_ranges(value: &[u8]) -> bool {
    let Some(ranges) = value.strip_prefix(b"bytes=") else {
        return false;
    };
    ranges.split(|&b| b == b',').all(|range| {
        let range = range.trim_ascii();
        let Some(dash) = range.iter().position(|&b| b == b'-') else {
            return false;
        };
        let (start, end) = (&range[..dash], &range[dash + 1..]);
        let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
        digits(start) && digits(end) && !(start.is_empty() && end.is_empty())
    })
}

/// Where `file` is served, under the video's path.
fn route(file: LinkedFile) -> &'static str {
    match file {
        LinkedFile::Video => "file",
        LinkedFile::Annotated => "annotated/file",
    }
}

fn bad_link(message: &str) -> ApiError {
    ApiError::unauthorized(ErrorCode::InvalidToken, message)
}

/// The user a signed link speaks for, if it is ours, unexpired, for this video and that user
/// is still active with the same tokens.
async fn link_user(
    state: &AppState,
    raw_id: &str,
    file: LinkedFile,
    q: LinkQuery,
) -> Result<User, ApiError> {
    let (Some(username), Some(generation), Some(expires), Some(sig)) = (q.u, q.g, q.expires, q.sig)
    else {
        return Err(bad_link("a file link needs u, g, expires and sig"));
    };
    // The id as links are signed: the canonical form (an id in capitals is the same video).
    let video_id = uuid::Uuid::parse_str(raw_id)
        .map(|id| id.hyphenated().to_string())
        .unwrap_or_default();
    let grant = LinkGrant {
        video_id,
        file,
        username,
        generation,
        expires,
    };
    if !state.jwt.verify_link(&grant, &sig) {
        return Err(bad_link("the link's signature does not verify"));
    }
    if expires < jsonwebtoken::get_current_timestamp() {
        return Err(ApiError::unauthorized(
            ErrorCode::TokenExpired,
            "the link has expired; ask for a new one at POST /api/v1/videos/{id}/file-url",
        ));
    }
    let user = users::find_user(&state.db, &grant.username)
        .await
        .map_err(ApiError::database)?
        .ok_or_else(|| bad_link("the link's user does not exist"))?;
    if user.disabled {
        return Err(ApiError::unauthorized(
            ErrorCode::UserDisabled,
            "the link's user has been disabled",
        ));
    }
    if user.token_generation != grant.generation {
        return Err(bad_link(
            "the link was revoked by a password change; ask for a new one",
        ));
    }
    Ok(user)
}

/// The video's file, with range requests.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{id}/file",
    tag = "videos",
    params(("id" = String, Path, description = "The video's id (a UUID)"), LinkQuery, RangeHeader),
    security(("oauth2" = []), ("bearer" = []), ()),
    responses(
        (status = 200, description = "The whole file, as uploaded (`Accept-Ranges: bytes`): a video, or an animated GIF", content(("video/*"), ("image/gif"))),
        (status = 206, description = "The range asked for (`Content-Range`)", content(("video/*"), ("image/gif"))),
        (status = 400, description = "`invalid_query`: a link parameter cannot be read (`g` beyond a 64-bit integer, for instance)", body = ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token` (also a forged or revoked link), `token_expired` (also an expired link), `user_disabled`", body = ErrorBody),
        (status = 404, description = "`video_not_found`", body = ErrorBody),
        (status = 410, description = "`file_gone`: the file is no longer in storage", body = ErrorBody),
        (status = 416, description = "`range_not_satisfiable`: the range lies outside the file or cannot be read", body = ErrorBody),
    )
)]
pub async fn get_file(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<LinkQuery>,
) -> Result<HttpResponse, ApiError> {
    serve(req, state, &id, query.into_inner(), LinkedFile::Video).await
}

/// The video's annotated copy, with range requests.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{id}/annotated/file",
    tag = "videos",
    params(("id" = String, Path, description = "The video's id (a UUID)"), LinkQuery, RangeHeader),
    security(("oauth2" = []), ("bearer" = []), ()),
    responses(
        (status = 200, description = "The whole annotated MP4 (`Accept-Ranges: bytes`)", content_type = "video/mp4"),
        (status = 206, description = "The range asked for (`Content-Range`)", content_type = "video/mp4"),
        (status = 400, description = "`invalid_query`: a link parameter cannot be read", body = ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token` (also a forged or revoked link), `token_expired` (also an expired link), `user_disabled`", body = ErrorBody),
        (status = 404, description = "`video_not_found`; `not_found`: no annotated copy was made (`POST /api/v1/videos/{id}/annotated` makes one)", body = ErrorBody),
        (status = 416, description = "`range_not_satisfiable`", body = ErrorBody),
    )
)]
pub async fn get_annotated_file(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<LinkQuery>,
) -> Result<HttpResponse, ApiError> {
    serve(req, state, &id, query.into_inner(), LinkedFile::Annotated).await
}

/// `file` of video `raw_id` to the user of a link or a bearer token.
async fn serve(
    req: HttpRequest,
    state: web::Data<AppState>,
    raw_id: &str,
    query: LinkQuery,
    file: LinkedFile,
) -> Result<HttpResponse, ApiError> {
    let user = if query.sig.is_some() || query.u.is_some() {
        link_user(&state, raw_id, file, query).await?
    } else {
        AuthUser::from_request(&req, &mut Payload::None).await?.0
    };
    let record = load(&state, &user, raw_id).await?;
    let gone = || match file {
        LinkedFile::Video => ApiError::new(
            StatusCode::GONE,
            ErrorCode::FileGone,
            format!("the file of video {} is no longer in storage", record.id),
        ),
        LinkedFile::Annotated => ApiError::not_found(format!(
            "video {} has no annotated copy: POST /api/v1/videos/{}/annotated makes one",
            record.id, record.id
        )),
    };
    let storage = state.storage.clone();
    let video_id = record.id.clone();
    // The name it was stored under first: a `<video>` asks for dozens of ranges per play.
    let extension =
        super::upload::extension_of(Some(&record.filename), record.content_type.as_deref());
    let path = web::block(move || match file {
        LinkedFile::Video => storage.video_path_with(&video_id, &extension),
        LinkedFile::Annotated => {
            storage
                .annotated_path(&video_id)
                .and_then(|p| match p.is_file() {
                    true => Ok(p),
                    false => Err(argus_common::storage::StorageError::Missing(video_id)),
                })
        }
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|_| gone())?;
    let opened = match NamedFile::open_async(&path).await {
        Ok(opened) => opened,
        // Deleted since it was found.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(gone()),
        Err(e) => return Err(ApiError::internal(e)),
    };
    // A `Range` that is not one (RFC 9110 §14.2: a server ignores what it cannot read) gets
    // the whole file, as no `Range` would; a readable one outside the file is 416.
    let garbage_range = req
        .headers()
        .get(header::RANGE)
        .is_some_and(|v| !is_byte_ranges(v.as_bytes()));
    let content_type = record
        .content_type
        .as_deref()
        .and_then(|t| t.parse::<actix_web::mime::Mime>().ok())
        .filter(|m| m.type_() == actix_web::mime::VIDEO && file == LinkedFile::Video)
        .unwrap_or_else(|| {
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default();
            actix_files::file_extension_to_mime(ext)
        });
    let filename = match file {
        LinkedFile::Video => record.filename.clone(),
        LinkedFile::Annotated => {
            let stem = std::path::Path::new(&record.filename)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| record.id.clone());
            format!("{stem}.annotated.mp4")
        }
    };
    let mut parameters = vec![DispositionParam::Filename(filename.clone())];
    if !filename.is_ascii() {
        parameters.push(DispositionParam::FilenameExt(header::ExtendedValue {
            charset: header::Charset::Ext("UTF-8".into()),
            language_tag: None,
            value: filename.into_bytes(),
        }));
    }
    let opened = opened
        .set_content_type(content_type)
        .set_content_disposition(ContentDisposition {
            disposition: DispositionType::Inline,
            parameters,
        });
    let mut response = if garbage_range {
        let len = opened.metadata().len();
        let disposition = opened.content_disposition().clone();
        let kind = opened.content_type().clone();
        let stream = tokio_util::io::ReaderStream::with_capacity(
            tokio::fs::File::from_std(opened.file().try_clone().map_err(ApiError::internal)?),
            64 * 1024,
        );
        HttpResponse::Ok()
            .content_type(kind)
            .insert_header((header::CONTENT_DISPOSITION, disposition))
            .insert_header((header::ACCEPT_RANGES, "bytes"))
            .no_chunking(len)
            .streaming(stream)
    } else {
        opened.into_response(&req)
    };
    let headers = response.headers_mut();
    for (name, value) in [
        // A link is for one user: shared caches must not keep what it opened.
        (header::CACHE_CONTROL, "private, max-age=300"),
        // Uploaded bytes on the console's origin: never sniffed into a page, never scripted.
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CONTENT_SECURITY_POLICY, "sandbox"),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::is_byte_ranges;

    #[test]
    fn only_byte_ranges_are_ranges() {
        for good in [
            "bytes=0-99",
            "bytes=100-",
            "bytes=-5",
            "bytes=0-1, 5-9",
            "bytes=99999999999-",
        ] {
            assert!(is_byte_ranges(good.as_bytes()), "{good}");
        }
        for bad in [
            "null",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "items=0-1",
            "bytes=1-2-3",
            "bytes=0-1,",
        ] {
            assert!(!is_byte_ranges(bad.as_bytes()), "{bad}");
        }
    }
}
