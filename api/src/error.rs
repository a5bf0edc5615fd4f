//! Every failure the API answers is JSON `{"code", "message"}` with a stable snake_case `code`
//! ([`ErrorCode`], listed in the OpenAPI document). Our handlers return [`ApiError`]; actix's own
//! failures (bad JSON, wrong method, unknown route, body too large, …) are mapped here too, either
//! by the extractor configs below or, for responses actix builds itself, by [`json_error_body`].

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{error, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// Largest JSON body any endpoint of this slice accepts.
pub const JSON_LIMIT: usize = 64 * 1024;
/// Largest form body (the token endpoint).
pub const FORM_LIMIT: usize = 16 * 1024;

/// The stable error codes. Clients switch on these, never on `message`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed in a way no other code names.
    BadRequest,
    /// 400: the body is not well-formed JSON.
    InvalidJson,
    /// 400: the form body cannot be read.
    InvalidForm,
    /// 400: a path parameter cannot be read.
    InvalidPath,
    /// 400: a query parameter cannot be read.
    InvalidQuery,
    /// 400: a `multipart/form-data` body cannot be parsed (or ended before its last boundary).
    InvalidMultipart,
    /// 400: the token endpoint got a `grant_type` other than `password`.
    UnsupportedGrantType,
    /// 401: no bearer token was sent.
    MissingToken,
    /// 401: the token is malformed, forged, signed with another algorithm, or its user is gone.
    InvalidToken,
    /// 401: the token has expired.
    TokenExpired,
    /// 401: the token's user has been disabled.
    UserDisabled,
    /// 401: wrong username or password.
    InvalidCredentials,
    /// 403: the caller may not do this (admin only).
    Forbidden,
    /// 403: a password change with a wrong current password.
    WrongPassword,
    /// 404: no such route.
    NotFound,
    /// 404: no such user.
    UserNotFound,
    /// 404: no such video, or not the caller's (the same answer either way), or a malformed id.
    VideoNotFound,
    /// 404: no such photo collection, or not the caller's, or a malformed id.
    CollectionNotFound,
    /// 405: the route exists but not with this method (see the `Allow` header).
    MethodNotAllowed,
    /// 408: the request body stalled.
    RequestTimeout,
    /// 409: a user of that name exists (disabled users keep their name).
    UserExists,
    /// 409: an admin cannot disable their own account.
    CannotDisableSelf,
    /// 409: the last active admin cannot be disabled.
    LastAdmin,
    /// 409: the video's processing failed; `message` says why.
    VideoFailed,
    /// 409: the video's processing was cancelled.
    VideoCancelled,
    /// 410: the video succeeded but its result file is gone from storage.
    ResultGone,
    /// 410: the video's own file is gone from storage.
    FileGone,
    /// 416: the `Range` asked for lies outside the file, or cannot be read.
    RangeNotSatisfiable,
    /// 413: the body is larger than the endpoint accepts.
    PayloadTooLarge,
    /// 415: the body's `Content-Type` is not one the endpoint reads.
    UnsupportedMediaType,
    /// 422: well-formed input with invalid values (see `message`).
    InvalidInput,
    /// 422: the uploaded file is empty.
    EmptyFile,
    /// 422: the upload is not a video FFmpeg can read (or is cut off before its index).
    NotAVideo,
    /// 422: the upload has no video stream or no video frames (audio only, for instance).
    NoVideoStream,
    /// 422: the video is beyond the limits (frame size, frame count, duration).
    VideoTooLarge,
    /// 422: a video FFmpeg reads but Argus cannot process (frames without or with shared
    /// timestamps); `message` says how to remux it.
    UnsupportedVideo,
    /// 422: the upload names a model the detectors do not serve; `message` lists those.
    UnknownModel,
    /// 429: too many uploads in progress; retry after `Retry-After` seconds.
    TooManyUploads,
    /// 429: too many failed logins for this name or from this address; retry after
    /// `Retry-After` seconds (the wait doubles with each further failure).
    TooManyAttempts,
    /// 429: too many passwords are being checked at once; retry after `Retry-After` seconds.
    HashingBusy,
    /// 429: the caller holds as many event streams as allowed (`ARGUS_MAX_STREAMS_PER_USER`);
    /// retry after `Retry-After` seconds or close one.
    TooManyStreams,
    /// 500: a bug or an unexpected failure on our side; the log has the details.
    InternalError,
    /// 503: a dependency (the database) is unavailable; retry later.
    ServiceUnavailable,
    /// 503 on `/readyz`: a readiness check failed. 409 on a video's result: the video is not
    /// finished yet (`message` says its status).
    NotReady,
}

impl ErrorCode {
    /// Every code (the unit test keeps this and the OpenAPI enum in step).
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::BadRequest,
        ErrorCode::InvalidJson,
        ErrorCode::InvalidForm,
        ErrorCode::InvalidPath,
        ErrorCode::InvalidQuery,
        ErrorCode::InvalidMultipart,
        ErrorCode::UnsupportedGrantType,
        ErrorCode::MissingToken,
        ErrorCode::InvalidToken,
        ErrorCode::TokenExpired,
        ErrorCode::UserDisabled,
        ErrorCode::InvalidCredentials,
        ErrorCode::Forbidden,
        ErrorCode::WrongPassword,
        ErrorCode::NotFound,
        ErrorCode::UserNotFound,
        ErrorCode::VideoNotFound,
        ErrorCode::CollectionNotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RequestTimeout,
        ErrorCode::UserExists,
        ErrorCode::CannotDisableSelf,
        ErrorCode::LastAdmin,
        ErrorCode::VideoFailed,
        ErrorCode::VideoCancelled,
        ErrorCode::ResultGone,
        ErrorCode::FileGone,
        ErrorCode::RangeNotSatisfiable,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::InvalidInput,
        ErrorCode::EmptyFile,
        ErrorCode::NotAVideo,
        ErrorCode::NoVideoStream,
        ErrorCode::VideoTooLarge,
        ErrorCode::UnsupportedVideo,
        ErrorCode::UnknownModel,
        ErrorCode::TooManyUploads,
        ErrorCode::TooManyAttempts,
        ErrorCode::HashingBusy,
        ErrorCode::TooManyStreams,
        ErrorCode::InternalError,
        ErrorCode::ServiceUnavailable,
        ErrorCode::NotReady,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidForm => "invalid_form",
            ErrorCode::InvalidPath => "invalid_path",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::InvalidMultipart => "invalid_multipart",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::MissingToken => "missing_token",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::UserDisabled => "user_disabled",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::WrongPassword => "wrong_password",
            ErrorCode::NotFound => "not_found",
            ErrorCode::UserNotFound => "user_not_found",
            ErrorCode::VideoNotFound => "video_not_found",
            ErrorCode::CollectionNotFound => "collection_not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::UserExists => "user_exists",
            ErrorCode::CannotDisableSelf => "cannot_disable_self",
            ErrorCode::LastAdmin => "last_admin",
            ErrorCode::VideoFailed => "video_failed",
            ErrorCode::VideoCancelled => "video_cancelled",
            ErrorCode::ResultGone => "result_gone",
            ErrorCode::FileGone => "file_gone",
            ErrorCode::RangeNotSatisfiable => "range_not_satisfiable",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::EmptyFile => "empty_file",
            ErrorCode::NotAVideo => "not_a_video",
            ErrorCode::NoVideoStream => "no_video_stream",
            ErrorCode::VideoTooLarge => "video_too_large",
            ErrorCode::UnsupportedVideo => "unsupported_video",
            ErrorCode::UnknownModel => "unknown_model",
            ErrorCode::TooManyUploads => "too_many_uploads",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::HashingBusy => "hashing_busy",
            ErrorCode::TooManyStreams => "too_many_streams",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::ServiceUnavailable => "service_unavailable",
            ErrorCode::NotReady => "not_ready",
        }
    }
}

/// The body of every error response.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": "invalid_token", "message": "the token's signature does not verify"}))]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// An error answer: status, code, message, and the headers some statuses call for.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// `WWW-Authenticate` for 401s (RFC 6750).
    www_authenticate: Option<String>,
    /// `Allow` for 405s.
    allow: Option<&'static str>,
    /// `Retry-After` (seconds) for 429s and 503s.
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            www_authenticate: None,
            allow: None,
            retry_after: None,
        }
    }

    /// Adds `Retry-After: <seconds>`.
    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    /// 401 with `WWW-Authenticate: Bearer …`; RFC 6750 names the token errors `invalid_token`.
    pub fn unauthorized(code: ErrorCode, message: impl Into<String>) -> ApiError {
        let challenge = match code {
            ErrorCode::MissingToken | ErrorCode::InvalidCredentials => {
                r#"Bearer realm="argus""#.to_string()
            }
            _ => r#"Bearer realm="argus", error="invalid_token""#.to_string(),
        };
        ApiError {
            www_authenticate: Some(challenge),
            ..ApiError::new(StatusCode::UNAUTHORIZED, code, message)
        }
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    pub fn invalid_input(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::InvalidInput,
            message,
        )
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    pub fn method_not_allowed(allow: &'static str) -> ApiError {
        ApiError {
            allow: Some(allow),
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                format!("method not allowed here; allowed: {allow}"),
            )
        }
    }

    pub fn payload_too_large(limit: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than this endpoint accepts ({limit} bytes)"),
        )
    }

    /// 503 with `Retry-After`: a dependency (database, broker, result backend) failed.
    pub fn unavailable(what: &str, cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "{what} unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServiceUnavailable,
            format!("the {what} is unavailable; retry later"),
        )
        .retry_after(5)
    }

    pub fn unsupported_media_type(expected: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedMediaType,
            format!("unsupported Content-Type; send {expected}"),
        )
    }

    /// 500; the cause goes to the log (inside the request's span), not to the client.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            "internal error; see the server log",
        )
    }

    /// A database failure: 503 when the database cannot be reached (retry later), else 500.
    pub fn database(err: sqlx::Error) -> ApiError {
        match err {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::error!(error = %err, "database unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::ServiceUnavailable,
                    "the database is unavailable; retry later",
                )
            }
            other => ApiError::internal(other),
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.code,
            message: self.message.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(challenge) = &self.www_authenticate {
            response.insert_header((header::WWW_AUTHENTICATE, challenge.as_str()));
        }
        if let Some(allow) = self.allow {
            response.insert_header((header::ALLOW, allow));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(self.body())
    }
}

/// `web::JsonConfig` for every JSON body: size limit and our error bodies. A syntax error is 400
/// `invalid_json`; well-formed JSON of the wrong shape (missing field, unknown role) is 422.
pub fn json_config() -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default()
        .limit(JSON_LIMIT)
        .error_handler(|err, _req| from_json_error(err).into())
}

fn from_json_error(err: error::JsonPayloadError) -> ApiError {
    use error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => {
            ApiError::payload_too_large(JSON_LIMIT)
        }
        E::ContentType => ApiError::unsupported_media_type("application/json"),
        E::Deserialize(e) if e.classify() == serde_json::error::Category::Data => {
            ApiError::invalid_input(format!("invalid request body: {e}"))
        }
        E::Deserialize(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidJson,
            format!("the body is not valid JSON: {e}"),
        ),
        E::Payload(error::PayloadError::Overflow) => ApiError::payload_too_large(JSON_LIMIT),
        other => ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadRequest,
            format!("cannot read the body: {other}"),
        ),
    }
}

/// `web::PathConfig`: a path parameter that does not parse.
pub fn path_config() -> actix_web::web::PathConfig {
    actix_web::web::PathConfig::default().error_handler(|err, _req| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidPath,
            format!("invalid path parameter: {err}"),
        )
        .into()
    })
}

/// `web::QueryConfig`: a query string that does not parse.
pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQuery,
            format!("invalid query string: {err}"),
        )
        .into()
    })
}

/// `web::FormConfig`: a form body that does not parse or is too large.
pub fn form_config() -> actix_web::web::FormConfig {
    actix_web::web::FormConfig::default()
        .limit(FORM_LIMIT)
        .error_handler(|err, _req| {
            match err {
                error::UrlencodedError::Overflow { .. } => ApiError::payload_too_large(FORM_LIMIT),
                error::UrlencodedError::ContentType => {
                    ApiError::unsupported_media_type("application/x-www-form-urlencoded")
                }
                other => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidForm,
                    format!("invalid form body: {other}"),
                ),
            }
            .into()
        })
}

/// The app's default service: any path no route matches.
pub async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!("no route for {}", req.path())))
}

/// The code and message for an error response that actix (or a library service) built without
/// our JSON body: a 413 from the payload reader, a 404 from a library's resource, and so on.
pub fn json_error_body(status: StatusCode) -> ErrorBody {
    let code = match status {
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::REQUEST_TIMEOUT => ErrorCode::RequestTimeout,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::RANGE_NOT_SATISFIABLE => ErrorCode::RangeNotSatisfiable,
        StatusCode::UNAUTHORIZED => ErrorCode::MissingToken,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::InvalidInput,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::TooManyUploads,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::ServiceUnavailable,
        s if s.is_client_error() => ErrorCode::BadRequest,
        _ => ErrorCode::InternalError,
    };
    ErrorBody {
        code,
        message: format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("error")
        ),
    }
}

/// Whether a response already carries a JSON body (ours, or a handler's).
pub fn is_json(headers: &actix_web::http::header::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(|v| v.starts_with("application/json"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed() {
        let schema = serde_json::to_value(<ErrorCode as utoipa::PartialSchema>::schema()).unwrap();
        let listed: Vec<String> = schema["enum"]
            .as_array()
            .expect("an enum schema")
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        let ours: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(listed, ours);
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }
}
