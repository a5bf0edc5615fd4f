//! Users: the store (add, find, list, disable, set a password; usable without HTTP, e.g. by
//! `argus user add`), the admin bootstrap at start, and the admin-only `/api/v1/users`
//! endpoints.
//!
//! There is no open registration: only admins create users. "Deleting" a user disables it: its
//! row (and so its name) stays, because videos reference it, and its tokens stop working at once.
//! A password change or reset and a disable move the user's token generation on, which ends
//! every token issued before (see `auth`). The last active admin cannot be disabled.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;
use utoipa::ToSchema;

use crate::auth::AdminUser;
use crate::config::ApiConfig;
use crate::db::Backend;
use crate::db::{now_text, Db};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::password::{Hasher, PasswordError};
use crate::state::AppState;
use crate::StartupError;

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;
pub const PASSWORD_MIN: usize = 8;
/// Bounds the work one login asks of argon2 (in characters, as the OpenAPI document counts them:
/// at most 4 KiB of UTF-8).
pub const PASSWORD_MAX: usize = 1024;

/// What a user may do: admins manage users; users use the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    #[default]
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    fn parse(s: &str) -> Result<Role, sqlx::Error> {
        match s {
            "admin" => Ok(Role::Admin),
            "user" => Ok(Role::User),
            other => Err(sqlx::Error::Decode(
                format!("unknown role {other:?} in the users table").into(),
            )),
        }
    }
}

/// A user as the API shows it (never the hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({"username": "alice", "role": "user", "disabled": false,
                          "created_at": "2026-01-02T03:04:05.678Z"}))]
pub struct User {
    /// Internal id (UUID); videos reference it.
    #[serde(skip)]
    pub id: String,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// When the user was disabled (RFC 3339, UTC); absent while active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<String>,
    /// Tokens carry it; only those of the current generation are accepted.
    #[serde(skip)]
    pub token_generation: i64,
}

impl User {
    fn from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
        let disabled_at: Option<String> = row.try_get("disabled_at")?;
        Ok(User {
            id: row.try_get("id")?,
            username: row.try_get("username")?,
            role: Role::parse(&row.try_get::<String, _>("role")?)?,
            disabled: disabled_at.is_some(),
            created_at: row.try_get("created_at")?,
            disabled_at,
            token_generation: row.try_get("token_generation")?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error("a user named {0:?} exists")]
    Exists(String),
    #[error("no user named {0:?}")]
    NotFound(String),
    #[error("{0:?} is the last active admin")]
    LastAdmin(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Password(#[from] PasswordError),
}

impl From<UserError> for ApiError {
    fn from(err: UserError) -> ApiError {
        match err {
            UserError::Invalid(message) => ApiError::invalid_input(message),
            UserError::Exists(name) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::UserExists,
                format!("a user named {name:?} exists"),
            ),
            UserError::NotFound(name) => ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::UserNotFound,
                format!("no user named {name:?}"),
            ),
            UserError::LastAdmin(name) => ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::LastAdmin,
                format!("{name:?} is the last active admin; make another admin first"),
            ),
            UserError::Db(e) => ApiError::database(e),
            UserError::Password(PasswordError::Busy) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::HashingBusy,
                "too many passwords are being checked; retry in a moment",
            )
            .retry_after(1),
            UserError::Password(e) => ApiError::internal(e),
        }
    }
}

/// Names are lowercase ASCII so that "Alice" and "alice" cannot both exist.
pub fn validate_username(name: &str) -> Result<(), UserError> {
    let len = name.chars().count();
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&len) {
        return Err(UserError::Invalid(format!(
            "username must be {USERNAME_MIN} to {USERNAME_MAX} characters long"
        )));
    }
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let all_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !first_ok || !all_ok {
        return Err(UserError::Invalid(
            "username may hold lowercase letters a-z, digits, '.', '_' and '-', and must start \
             with a letter or digit"
                .to_string(),
        ));
    }
    Ok(())
}

pub fn validate_password(password: &str) -> Result<(), UserError> {
    if password.chars().count() < PASSWORD_MIN {
        return Err(UserError::Invalid(format!(
            "password must be at least {PASSWORD_MIN} characters long"
        )));
    }
    if password.chars().count() > PASSWORD_MAX {
        return Err(UserError::Invalid(format!(
            "password must be at most {PASSWORD_MAX} characters long"
        )));
    }
    Ok(())
}

const USER_COLUMNS: &str = "id, username, role, disabled_at, created_at, token_generation";

/// Adds a user (for the API, the admin bootstrap and a CLI): validates the name and password,
/// stores an argon2id hash. A taken name (even of a disabled user) is [`UserError::Exists`].
pub async fn add_user(
    db: &Db,
    hasher: &Hasher,
    username: &str,
    password: &str,
    role: Role,
) -> Result<User, UserError> {
    validate_username(username)?;
    validate_password(password)?;
    // Checked first so that a taken name costs no argon2 hash; the UNIQUE constraint below
    // still decides races.
    if find_user(db, username).await?.is_some() {
        return Err(UserError::Exists(username.to_string()));
    }
    let hash = hasher.hash(password.to_string()).await?;
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_text();
    let inserted = sqlx::query(
        "INSERT INTO users (id, username, password_hash, role, disabled_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, NULL, $5, $5)",
    )
    .bind(&id)
    .bind(username)
    .bind(&hash)
    .bind(role.as_str())
    .bind(&now)
    .execute(db.pool())
    .await;
    match inserted {
        Ok(_) => Ok(User {
            id,
            username: username.to_string(),
            role,
            disabled: false,
            created_at: now,
            disabled_at: None,
            token_generation: 0,
        }),
        Err(sqlx::Error::Database(e)) if e.kind() == sqlx::error::ErrorKind::UniqueViolation => {
            Err(UserError::Exists(username.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// The user of that name, disabled or not.
pub async fn find_user(db: &Db, username: &str) -> Result<Option<User>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
    ))
    .bind(username)
    .fetch_optional(db.pool())
    .await?
    .map(|row| User::from_row(&row))
    .transpose()
}

/// Every user, by name.
pub async fn list_users(db: &Db) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT {USER_COLUMNS} FROM users ORDER BY username"
    ))
    .fetch_all(db.pool())
    .await?
    .iter()
    .map(User::from_row)
    .collect()
}

/// Disables a user and ends its tokens. Idempotent: an already disabled user keeps its first
/// `disabled_at`. The last active admin is [`UserError::LastAdmin`]: the check and the update
/// are one statement, serialized with other disables, so two admins disabling each other at the
/// same moment cannot leave none.
pub async fn disable_user(db: &Db, username: &str) -> Result<User, UserError> {
    const DISABLE: &str = "UPDATE users \
         SET disabled_at = $1, updated_at = $1, token_generation = token_generation + 1 \
         WHERE username = $2 AND disabled_at IS NULL AND (role <> 'admin' OR EXISTS ( \
             SELECT 1 FROM users AS other \
             WHERE other.role = 'admin' AND other.disabled_at IS NULL AND other.username <> $2))";
    let now = now_text();
    let updated = match db.backend() {
        // A single write statement: SQLite runs writers one at a time, so the admin count the
        // statement reads is current.
        Backend::Sqlite => {
            sqlx::query(DISABLE)
                .bind(&now)
                .bind(username)
                .execute(db.pool())
                .await?
        }
        // Under READ COMMITTED two such statements could each see the other's admin still
        // active: locking the active admins' rows first puts them one after the other (the
        // second then reads the first's change).
        Backend::Postgres => {
            let mut tx = db.pool().begin().await?;
            sqlx::query(
                "SELECT id FROM users WHERE role = 'admin' AND disabled_at IS NULL \
                 ORDER BY id FOR UPDATE",
            )
            .fetch_all(&mut *tx)
            .await?;
            let updated = sqlx::query(DISABLE)
                .bind(&now)
                .bind(username)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            updated
        }
    };
    let user = find_user(db, username)
        .await?
        .ok_or_else(|| UserError::NotFound(username.to_string()))?;
    if updated.rows_affected() == 0 && !user.disabled {
        return Err(UserError::LastAdmin(username.to_string()));
    }
    Ok(user)
}

/// Sets a user's password (a change, an admin reset, `argus user passwd`) and ends every token
/// issued before. A disabled user stays disabled. The user as it is now.
pub async fn set_password(
    db: &Db,
    hasher: &Hasher,
    username: &str,
    password: &str,
) -> Result<User, UserError> {
    validate_password(password)?;
    // Checked first so that an unknown name costs no argon2 hash.
    if find_user(db, username).await?.is_none() {
        return Err(UserError::NotFound(username.to_string()));
    }
    let hash = hasher.hash(password.to_string()).await?;
    sqlx::query(&format!(
        "UPDATE users SET password_hash = $1, updated_at = $2, \
         token_generation = token_generation + 1 WHERE username = $3 RETURNING {USER_COLUMNS}"
    ))
    .bind(&hash)
    .bind(now_text())
    .bind(username)
    .fetch_optional(db.pool())
    .await?
    .map(|row| User::from_row(&row))
    .transpose()?
    .ok_or_else(|| UserError::NotFound(username.to_string()))
}

/// The active user with that name and password, else `None` (unknown name, wrong password and
/// disabled user look the same to the caller, and take the same time).
pub async fn check_login(
    db: &Db,
    hasher: &Hasher,
    username: &str,
    password: &str,
) -> Result<Option<User>, UserError> {
    // Counting stops at the first character past the limit: a 1 MB password costs nothing.
    if password.chars().nth(PASSWORD_MAX).is_some() {
        return Ok(None);
    }
    let row = sqlx::query(&format!(
        "SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = $1"
    ))
    .bind(username)
    .fetch_optional(db.pool())
    .await?;
    let (user, hash) = match row {
        Some(row) => (
            Some(User::from_row(&row)?),
            Some(row.try_get::<String, _>("password_hash")?),
        ),
        None => (None, None),
    };
    let matches = hasher.verify(password.to_string(), hash).await?;
    Ok(user.filter(|u| matches && !u.disabled))
}

/// `ARGUS_ADMIN_USER` / `ARGUS_ADMIN_PASSWORD` at start: creates that admin when no user of that
/// name exists; never changes an existing user (see [`ApiConfig`]).
pub async fn bootstrap_admin(
    db: &Db,
    hasher: &Hasher,
    config: &ApiConfig,
) -> Result<(), StartupError> {
    let (Some(name), Some(password)) = (&config.admin_user, &config.admin_password) else {
        let admins: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled_at IS NULL",
        )
        .fetch_one(db.pool())
        .await
        .map_err(|e| StartupError::Admin(e.into()))?;
        if admins == 0 {
            tracing::warn!(
                "no active admin user: set ARGUS_ADMIN_USER and ARGUS_ADMIN_PASSWORD to create one"
            );
        }
        return Ok(());
    };
    let existing = find_user(db, name)
        .await
        .map_err(|e| StartupError::Admin(e.into()))?;
    let Some(existing) = existing else {
        match add_user(db, hasher, name, password.expose(), Role::Admin).await {
            Ok(_) => tracing::info!(user = %name, "created the admin user from ARGUS_ADMIN_USER"),
            // Another replica created it a moment ago.
            Err(UserError::Exists(_)) => {}
            Err(e) => return Err(StartupError::Admin(e)),
        }
        return Ok(());
    };
    if existing.role != Role::Admin || existing.disabled {
        tracing::warn!(
            user = %name,
            role = existing.role.as_str(),
            disabled = existing.disabled,
            "ARGUS_ADMIN_USER names an existing user that is not an active admin; left unchanged"
        );
    } else if check_login(db, hasher, name, password.expose())
        .await
        .map_err(StartupError::Admin)?
        .is_none()
    {
        tracing::warn!(
            user = %name,
            "ARGUS_ADMIN_PASSWORD does not match the stored password of this existing user; \
             the stored password stays"
        );
    }
    Ok(())
}

// --- HTTP ---------------------------------------------------------------------------------------

/// A new user.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"username": "alice", "password": "a long passphrase", "role": "user"}))]
pub struct CreateUser {
    /// 3 to 32 characters: a-z, 0-9, '.', '_', '-'; starts with a letter or digit.
    #[schema(min_length = 3, max_length = 32, pattern = "^[a-z0-9][a-z0-9._-]*$")]
    pub username: String,
    /// 8 to 1024 characters.
    #[schema(format = Password, min_length = 8, max_length = 1024)]
    pub password: String,
    /// Defaults to `user`.
    #[serde(default)]
    pub role: Role,
}

/// The users, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<User>,
}

/// Create a user (admins only).
#[utoipa::path(
    post,
    path = "/api/v1/users",
    tag = "users",
    request_body = CreateUser,
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = User),
        (status = 400, description = "`invalid_json`", body = ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 409, description = "`user_exists`", body = ErrorBody,
         example = json!({"code": "user_exists", "message": "a user named \"alice\" exists"})),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_input`: bad username, short password, unknown role", body = ErrorBody,
         example = json!({"code": "invalid_input", "message": "password must be at least 8 characters long"})),
        (status = 429, description = "`hashing_busy`: too many passwords are being checked", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn create_user(
    admin: AdminUser,
    state: web::Data<AppState>,
    body: web::Json<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let user = add_user(
        &state.db,
        &state.hasher,
        &body.username,
        &body.password,
        body.role,
    )
    .await?;
    tracing::info!(user = %user.username, role = user.role.as_str(), by = %admin.0.username, "user created");
    Ok(HttpResponse::Created().json(user))
}

/// List users (admins only).
#[utoipa::path(
    get,
    path = "/api/v1/users",
    tag = "users",
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Every user, by name", body = UserList),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
    )
)]
pub async fn get_users(
    _admin: AdminUser,
    state: web::Data<AppState>,
) -> Result<web::Json<UserList>, ApiError> {
    let users = list_users(&state.db).await.map_err(ApiError::database)?;
    Ok(web::Json(UserList { users }))
}

/// Disable a user (admins only): it can no longer log in, and its tokens stop working at once.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{name}",
    tag = "users",
    params(("name" = String, Path, description = "The username")),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The user, now disabled (repeating is harmless)", body = User),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
        (status = 409, description = "`cannot_disable_self`; `last_admin`: it is the last active admin", body = ErrorBody),
    )
)]
pub async fn delete_user(
    admin: AdminUser,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<web::Json<User>, ApiError> {
    let name = name.into_inner();
    if name == admin.0.username {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::CannotDisableSelf,
            "an admin cannot disable their own account",
        ));
    }
    let user = disable_user(&state.db, &name).await?;
    tracing::info!(user = %user.username, by = %admin.0.username, "user disabled");
    Ok(web::Json(user))
}

/// A password set by an admin.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"password": "a new long passphrase"}))]
pub struct ResetPassword {
    /// 8 to 1024 characters.
    #[schema(format = Password, min_length = 8, max_length = 1024)]
    pub password: String,
}

/// Reset a user's password (admins only): every token of that user issued before stops working.
/// A disabled user stays disabled.
#[utoipa::path(
    put,
    path = "/api/v1/users/{name}/password",
    tag = "users",
    params(("name" = String, Path, description = "The username")),
    request_body = ResetPassword,
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "The password is set; the user's earlier tokens no longer work"),
        (status = 400, description = "`invalid_json`", body = ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 403, description = "`forbidden`: not an admin", body = ErrorBody),
        (status = 404, description = "`user_not_found`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
        (status = 422, description = "`invalid_input`: the password is too short or too long", body = ErrorBody),
        (status = 429, description = "`hashing_busy`: too many passwords are being checked", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn reset_password(
    admin: AdminUser,
    state: web::Data<AppState>,
    name: web::Path<String>,
    body: web::Json<ResetPassword>,
) -> Result<HttpResponse, ApiError> {
    let user = set_password(&state.db, &state.hasher, &name, &body.password).await?;
    tracing::info!(user = %user.username, by = %admin.0.username, "password reset");
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for ok in ["alice", "bob.smith", "a_1", "x-y", "007", &"a".repeat(32)] {
            assert!(validate_username(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "Alice",
            "al ice",
            "-alice",
            ".x.",
            "élan",
            &"a".repeat(33),
            "a/b",
        ] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password("1234567").is_err());
        assert!(validate_password(&"x".repeat(PASSWORD_MAX + 1)).is_err());
    }
}
