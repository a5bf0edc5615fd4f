//! Authentication: the token endpoint (OAuth2 password flow, so Swagger UI's Authorize dialog logs
//! in directly; throttled, see [`crate::throttle`]), password changes, JWTs (HS256, algorithm
//! pinned, `nbf` honoured when present), and the extractors [`AuthUser`] and [`AdminUser`] that
//! guard the routes.
//!
//! A token is checked against the database on every request: a disabled or removed user's tokens
//! stop working at once, and a demoted admin loses admin rights at once (the role is read from
//! the database, not from the token). A token carries its user's token generation (`gen`); a
//! password change, a reset or a disable moves the generation on, so every token issued before
//! stops working at once, while one issued in the same second after it works. One indexed
//! lookup per request is cheap next to what the routes do.

use std::io::Write;
use std::path::Path;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse};
use futures::future::LocalBoxFuture;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::{Secret, MIN_JWT_SECRET_BYTES};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;
use crate::users::{self, Role, User, UserError};

/// Tokens longer than this are not JWTs we issued; refuse before any parsing.
const MAX_TOKEN_BYTES: usize = 4096;
/// Clock skew tolerated between the replicas that issue and check tokens.
const LEEWAY_SECONDS: u64 = 5;
/// The file under the storage dir that [`load_or_create_secret`] keeps.
pub const SECRET_FILE: &str = "jwt-secret";

/// What a token says. The role is informational; authorization reads the database.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The username.
    pub sub: String,
    pub role: Role,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// Expires at (seconds since the epoch).
    pub exp: u64,
    /// The user's token generation when the token was issued; tokens without one read as 0.
    #[serde(rename = "gen", default)]
    pub generation: i64,
}

/// Signing and verification keys, with the algorithm pinned to HS256.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: u64,
    /// The key of media links ([`JwtKeys::sign_link`]), derived from the secret so that a link
    /// signature can never pass for a token's, nor the other way round.
    link_key: [u8; 32],
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Which file of a video a link opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LinkedFile {
    /// The video as uploaded.
    Video,
    /// Its annotated copy.
    Annotated,
}

impl LinkedFile {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkedFile::Video => "video",
            LinkedFile::Annotated => "annotated",
        }
    }
}

/// What a media link grants: one user reading one file of one video until `expires`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkGrant {
    pub video_id: String,
    pub file: LinkedFile,
    pub username: String,
    /// The user's token generation when signed: a password change or a disable ends the link
    /// as it ends the user's tokens.
    pub generation: i64,
    /// Seconds since the epoch.
    pub expires: u64,
}

impl LinkGrant {
    fn message(&self) -> String {
        format!(
            "argus-link-v2\n{}\n{}\n{}\n{}\n{}",
            self.video_id,
            self.file.as_str(),
            self.username,
            self.generation,
            self.expires
        )
    }
}

impl JwtKeys {
    pub fn new(secret: &Secret, ttl: u64) -> JwtKeys {
        // Only HS256 is accepted: a token whose header names any other algorithm (`none`
        // included, which does not even parse as a jsonwebtoken `Algorithm`) is refused before
        // its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        // Checked when present: a token that is not valid yet is refused.
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        use hmac::Mac;
        let mut derive = HmacSha256::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC takes any key length");
        derive.update(b"argus media links");
        JwtKeys {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            ttl,
            link_key: derive.finalize().into_bytes().into(),
        }
    }

    /// The signature of a media link: base64url of HMAC-SHA256 over the grant.
    pub fn sign_link(&self, grant: &LinkGrant) -> String {
        use base64::Engine;
        use hmac::Mac;
        let mut mac = HmacSha256::new_from_slice(&self.link_key).expect("any key length");
        mac.update(grant.message().as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `signature` is this server's for `grant` (compared in constant time). Expiry is
    /// the caller's to check.
    pub fn verify_link(&self, grant: &LinkGrant, signature: &str) -> bool {
        use base64::Engine;
        use hmac::Mac;
        let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        let mut mac = HmacSha256::new_from_slice(&self.link_key).expect("any key length");
        mac.update(grant.message().as_bytes());
        mac.verify_slice(&raw).is_ok()
    }

    /// Token lifetime in seconds.
    pub fn ttl(&self) -> u64 {
        self.ttl
    }

    /// A fresh token for `user`.
    pub fn issue(&self, user: &User) -> Result<String, ApiError> {
        let iat = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user.username.clone(),
            role: user.role,
            iat,
            exp: iat + self.ttl,
            generation: user.token_generation,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    /// The claims of a token we signed and that has not expired.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(ApiError::unauthorized(
                ErrorCode::InvalidToken,
                "the token is malformed",
            ));
        }
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                let message = match e.kind() {
                    ErrorKind::ExpiredSignature => {
                        return ApiError::unauthorized(
                            ErrorCode::TokenExpired,
                            "the token has expired; get a new one at /api/v1/auth/token",
                        )
                    }
                    ErrorKind::InvalidAlgorithm => "the token is not signed with HS256",
                    ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)",
                    ErrorKind::InvalidSignature => "the token's signature does not verify",
                    ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
                    _ => "the token is malformed or names an unsupported algorithm",
                };
                ApiError::unauthorized(ErrorCode::InvalidToken, message)
            })
    }
}

/// The bearer token of an `Authorization` header. The scheme is case-insensitive; a token that
/// itself starts with `Bearer ` (pasted with its scheme into Swagger UI's bearer field, which
/// adds one) is accepted too.
fn bearer_token(value: Option<&HeaderValue>) -> Result<String, ApiError> {
    let value = value.ok_or_else(|| {
        ApiError::unauthorized(
            ErrorCode::MissingToken,
            "send a bearer token: Authorization: Bearer <token> (get one at /api/v1/auth/token)",
        )
    })?;
    let malformed = || {
        ApiError::unauthorized(
            ErrorCode::InvalidToken,
            "the Authorization header must be: Bearer <token>",
        )
    };
    let value = value.to_str().map_err(|_| malformed())?;
    let strip = |s: &str| -> Option<String> {
        let (scheme, rest) = s.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| rest.trim().to_string())
    };
    let token = strip(value).ok_or_else(malformed)?;
    let token = strip(&token).unwrap_or(token);
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(malformed());
    }
    Ok(token)
}

/// The authenticated caller: a valid token whose user exists and is active.
#[derive(Clone, Debug)]
pub struct AuthUser(pub User, pub TokenExpiry);

/// When the caller's token expires (seconds since the epoch): what a long-lived response (an
/// event stream, a signed link) must not outlive.
#[derive(Clone, Copy, Debug)]
pub struct TokenExpiry(pub u64);

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<AuthUser, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req.headers().get(header::AUTHORIZATION).cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal("AppState missing from app"))?;
            let token = bearer_token(header.as_ref())?;
            let claims = state.jwt.verify(&token)?;
            let user = users::find_user(&state.db, &claims.sub)
                .await
                .map_err(ApiError::database)?
                .ok_or_else(|| {
                    ApiError::unauthorized(
                        ErrorCode::InvalidToken,
                        "the token's user does not exist",
                    )
                })?;
            if user.disabled {
                return Err(ApiError::unauthorized(
                    ErrorCode::UserDisabled,
                    "the token's user has been disabled",
                ));
            }
            if claims.generation != user.token_generation {
                return Err(ApiError::unauthorized(
                    ErrorCode::InvalidToken,
                    "the token was revoked by a password change; log in again",
                ));
            }
            Ok(AuthUser(user, TokenExpiry(claims.exp)))
        })
    }
}

/// Whether the user a long-lived response was opened for may still see it: still there, active,
/// with the same tokens (no password change), an admin still when `admin` is asked, and the
/// token not expired. Event streams ask on every keepalive and end when not.
pub async fn still_authorized(
    state: &AppState,
    user: &User,
    expires: TokenExpiry,
    admin: bool,
) -> bool {
    if jsonwebtoken::get_current_timestamp() >= expires.0 {
        return false;
    }
    match users::find_user(&state.db, &user.username).await {
        Ok(Some(now)) => {
            !now.disabled
                && now.token_generation == user.token_generation
                && (!admin || now.role == Role::Admin)
        }
        Ok(None) => false,
        // The database is down: the stream goes on, as the routes' reads do; asked again later.
        Err(_) => true,
    }
}

/// An authenticated admin; any other user gets 403.
#[derive(Clone, Debug)]
pub struct AdminUser(pub User);

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<AdminUser, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let user = AuthUser::from_request(req, payload);
        Box::pin(async move {
            let AuthUser(user, _) = user.await?;
            if user.role != Role::Admin {
                return Err(ApiError::forbidden("only admins may do this"));
            }
            Ok(AdminUser(user))
        })
    }
}

/// Credentials, as a form (OAuth2 password flow; Swagger UI also sends `scope`, `client_id` and
/// `client_secret`, which are ignored) or as JSON.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"username": "admin", "password": "a long passphrase"}))]
pub struct TokenRequest {
    /// OAuth2: `password` when sent.
    #[serde(default)]
    pub grant_type: Option<String>,
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
}

/// An access token (RFC 6749 section 5.1).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.…", "token_type": "bearer", "expires_in": 3600}))]
pub struct TokenResponse {
    /// A JWT (HS256); send it as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

fn parse_token_request(req: &HttpRequest, body: &[u8]) -> Result<TokenRequest, ApiError> {
    let expected = "application/x-www-form-urlencoded or application/json";
    let mime = req
        .mime_type()
        .map_err(|_| ApiError::unsupported_media_type(expected))?
        .ok_or_else(|| ApiError::unsupported_media_type(expected))?;
    match mime.essence_str() {
        "application/x-www-form-urlencoded" => serde_urlencoded::from_bytes(body)
            .map_err(|e| ApiError::invalid_input(format!("invalid form: {e}"))),
        "application/json" => serde_json::from_slice(body).map_err(|e| {
            if e.classify() == serde_json::error::Category::Data {
                ApiError::invalid_input(format!("invalid request body: {e}"))
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidJson,
                    format!("the body is not valid JSON: {e}"),
                )
            }
        }),
        _ => Err(ApiError::unsupported_media_type(expected)),
    }
}

/// Log in: trade a username and password for an access token.
#[utoipa::path(
    post,
    path = "/api/v1/auth/token",
    tag = "auth",
    request_body(
        description = "Credentials as a form (OAuth2 password flow) or as JSON",
        content(
            (TokenRequest = "application/x-www-form-urlencoded"),
            (TokenRequest = "application/json"),
        )
    ),
    responses(
        (status = 200, description = "A bearer token", body = TokenResponse),
        (status = 400, description = "`invalid_json`, `unsupported_grant_type`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`: unknown user, wrong password or disabled user", body = ErrorBody,
         example = json!({"code": "invalid_credentials", "message": "wrong username or password"})),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_input`: a field is missing", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: too many failed logins for this name or from this address, \
                                      retry after `Retry-After` seconds (the back-off doubles with each failure); \
                                      `hashing_busy`: too many passwords are being checked",
         body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait")),
         example = json!({"code": "too_many_attempts", "message": "too many failed logins; retry in 4 s"})),
    )
)]
pub async fn issue_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request = parse_token_request(&req, &body)?;
    if let Some(grant) = request.grant_type.as_deref() {
        if grant != "password" {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::UnsupportedGrantType,
                "only grant_type=password is supported",
            ));
        }
    }
    let client = state.logins.client_address(&req);
    // Before any hashing, and the same for every name, known or not.
    state
        .logins
        .check(&request.username, client)
        .map_err(too_many_attempts)?;
    let user = users::check_login(
        &state.db,
        &state.hasher,
        &request.username,
        &request.password,
    )
    .await?;
    let Some(user) = user else {
        state.logins.failed(&request.username, client);
        // The name is not logged: people type passwords into the username field.
        tracing::info!(client = ?client, "login failed");
        return Err(ApiError::unauthorized(
            ErrorCode::InvalidCredentials,
            "wrong username or password",
        ));
    };
    state.logins.succeeded(&request.username);
    tracing::info!(user = %user.username, "login");
    token_response(&state, &user)
}

fn token_response(state: &AppState, user: &User) -> Result<HttpResponse, ApiError> {
    let access_token = state.jwt.issue(user)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(TokenResponse {
            access_token,
            token_type: "bearer".to_string(),
            expires_in: state.jwt.ttl(),
        }))
}

fn too_many_attempts(wait: std::time::Duration) -> ApiError {
    // Whole seconds, rounded up: a client that waits that long is let through.
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::TooManyAttempts,
        format!("too many failed logins; retry in {seconds} s"),
    )
    .retry_after(seconds)
}

/// A password change: the current password, and the new one.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"current_password": "a long passphrase", "new_password": "another long passphrase"}))]
pub struct ChangePassword {
    #[schema(format = Password)]
    pub current_password: String,
    /// 8 to 1024 characters.
    #[schema(format = Password, min_length = 8, max_length = 1024)]
    pub new_password: String,
}

/// Change the caller's password. Every token issued before (the one sent included) stops
/// working; the answer carries a fresh one.
#[utoipa::path(
    put,
    path = "/api/v1/auth/password",
    tag = "auth",
    request_body = ChangePassword,
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Changed; a token that works with the new password (the old tokens do not)", body = TokenResponse),
        (status = 400, description = "`invalid_json`", body = ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 403, description = "`wrong_password`: the current password is wrong (counts as a failed login)", body = ErrorBody,
         example = json!({"code": "wrong_password", "message": "the current password is wrong"})),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_input`: the new password is too short or too long", body = ErrorBody),
        (status = 429, description = "`too_many_attempts` (as at login), `hashing_busy`", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn change_password(
    req: HttpRequest,
    AuthUser(user, _): AuthUser,
    state: web::Data<AppState>,
    body: web::Json<ChangePassword>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    // The new password's rules first: a bad one costs no hash and no attempt.
    users::validate_password(&body.new_password).map_err(ApiError::from)?;
    // Someone holding a stolen token must not get a faster way to guess the password than
    // the login: the same throttle, the same records.
    let client = state.logins.client_address(&req);
    state
        .logins
        .check(&user.username, client)
        .map_err(too_many_attempts)?;
    let current = users::check_login(
        &state.db,
        &state.hasher,
        &user.username,
        &body.current_password,
    )
    .await?;
    if current.is_none() {
        state.logins.failed(&user.username, client);
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::WrongPassword,
            "the current password is wrong",
        ));
    }
    state.logins.succeeded(&user.username);
    let user = users::set_password(&state.db, &state.hasher, &user.username, &body.new_password)
        .await
        .map_err(|e| match e {
            // Removed between the check and the update: as if the token's user were gone.
            UserError::NotFound(_) => {
                ApiError::unauthorized(ErrorCode::InvalidToken, "the token's user does not exist")
            }
            other => other.into(),
        })?;
    tracing::info!(user = %user.username, "password changed");
    token_response(&state, &user)
}

/// The caller.
#[utoipa::path(
    get,
    path = "/api/v1/auth/me",
    tag = "auth",
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The user the token belongs to", body = User),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody,
         example = json!({"code": "missing_token", "message": "send a bearer token: Authorization: Bearer <token> (get one at /api/v1/auth/token)"})),
    )
)]
pub async fn me(user: AuthUser) -> web::Json<User> {
    web::Json(user.0)
}

/// The signing secret kept in `<storage_dir>/jwt-secret` (mode 0600), created with 32 random
/// bytes (64 hex characters) when missing: for the embedded `argus serve`, where nobody should
/// have to invent a secret. Clustered deployments set `ARGUS_JWT_SECRET` instead, the same on
/// every replica.
pub fn load_or_create_secret(storage_dir: &Path) -> std::io::Result<Secret> {
    use std::os::unix::fs::OpenOptionsExt;

    std::fs::create_dir_all(storage_dir)?;
    let path = storage_dir.join(SECRET_FILE);
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    let fresh: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            file.write_all(fresh.as_bytes())?;
            file.sync_all()?;
            Ok(Secret::new(fresh))
        }
        // Made by an earlier start (or a concurrent one): use it.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let stored = std::fs::read_to_string(&path)?;
            let stored = stored.trim();
            if stored.len() < MIN_JWT_SECRET_BYTES {
                return Err(std::io::Error::other(format!(
                    "{} holds fewer than {MIN_JWT_SECRET_BYTES} bytes; remove it to make a new one",
                    path.display()
                )));
            }
            Ok(Secret::new(stored))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(v: &str) -> HeaderValue {
        HeaderValue::from_str(v).unwrap()
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(
            bearer_token(Some(&header("Bearer abc.def.ghi"))).unwrap(),
            "abc.def.ghi"
        );
        assert_eq!(bearer_token(Some(&header("bearer  abc"))).unwrap(), "abc");
        assert_eq!(
            bearer_token(Some(&header("Bearer Bearer abc"))).unwrap(),
            "abc"
        );
        let code = |v: Option<&str>| bearer_token(v.map(header).as_ref()).unwrap_err().code;
        assert_eq!(code(None), ErrorCode::MissingToken);
        assert_eq!(code(Some("abc")), ErrorCode::InvalidToken);
        assert_eq!(code(Some("Basic YTpi")), ErrorCode::InvalidToken);
        assert_eq!(code(Some("Bearer ")), ErrorCode::InvalidToken);
        assert_eq!(code(Some("Bearer a b")), ErrorCode::InvalidToken);
    }

    #[test]
    fn tokens_round_trip_and_pin_the_algorithm() {
        let keys = JwtKeys::new(&Secret::new("k".repeat(32)), 60);
        let user = User {
            id: "1".into(),
            username: "alice".into(),
            role: Role::User,
            disabled: false,
            created_at: "now".into(),
            disabled_at: None,
            token_generation: 7,
        };
        let token = keys.issue(&user).unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.role), ("alice", Role::User));
        assert_eq!(claims.exp - claims.iat, 60);
        assert_eq!(claims.generation, 7);
        let other = JwtKeys::new(&Secret::new("j".repeat(32)), 60);
        assert_eq!(
            other.verify(&token).unwrap_err().code,
            ErrorCode::InvalidToken
        );
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret("k".repeat(32).as_bytes()),
        )
        .unwrap();
        assert_eq!(
            keys.verify(&hs512).unwrap_err().message,
            "the token is not signed with HS256"
        );
    }

    #[test]
    fn a_link_signature_binds_every_field_of_its_grant() {
        let keys = JwtKeys::new(&Secret::new("k".repeat(32)), 60);
        let grant = LinkGrant {
            video_id: "v".into(),
            file: LinkedFile::Video,
            username: "alice".into(),
            generation: 3,
            expires: 1_000,
        };
        let sig = keys.sign_link(&grant);
        assert!(keys.verify_link(&grant, &sig));
        let changed = [
            LinkGrant {
                video_id: "w".into(),
                ..grant.clone()
            },
            LinkGrant {
                file: LinkedFile::Annotated,
                ..grant.clone()
            },
            LinkGrant {
                username: "alicf".into(),
                ..grant.clone()
            },
            LinkGrant {
                generation: 4,
                ..grant.clone()
            },
            LinkGrant {
                expires: 1_001,
                ..grant.clone()
            },
        ];
        for other in changed {
            assert!(!keys.verify_link(&other, &sig), "{other:?}");
        }
        // Another secret's links, garbage and a token's signature do not verify.
        let foreign = JwtKeys::new(&Secret::new("j".repeat(32)), 60);
        assert!(!foreign.verify_link(&grant, &sig));
        assert!(!keys.verify_link(&grant, "%%%"));
        assert!(!keys.verify_link(&grant, ""));
    }

    #[test]
    fn secret_file_is_made_once() {
        let dir = std::env::temp_dir().join(format!("argus-secret-{}", uuid::Uuid::new_v4()));
        let first = load_or_create_secret(&dir).unwrap();
        assert_eq!(first.expose().len(), 64);
        let second = load_or_create_secret(&dir).unwrap();
        assert_eq!(first, second);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
