//! The webhook endpoints: a video's delivery log, and the caller's default URL and secret.

use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::store::{self, DeliveryView};
use super::target;
use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// A video's notifications: each with its URL, status and every attempt.
#[utoipa::path(
    get,
    path = "/api/v1/videos/{id}/webhooks",
    tag = "webhooks",
    params(("id" = String, Path, description = "The video's id (a UUID)")),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Its notifications, oldest first", body = Vec<DeliveryView>),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 404, description = "`video_not_found`: no such video, not yours, or a malformed id", body = ErrorBody),
    )
)]
pub async fn video_webhooks(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<Vec<DeliveryView>>, ApiError> {
    let record = crate::videos::load(&state, &user.0, &id).await?;
    let deliveries = store::list(&state.db, &record.id)
        .await
        .map_err(ApiError::database)?;
    Ok(web::Json(deliveries))
}

/// A collection's notifications: each with its URL, status and every attempt.
#[utoipa::path(
    get,
    path = "/api/v1/collections/{id}/webhooks",
    tag = "webhooks",
    params(("id" = String, Path, description = "The collection's id (a UUID)")),
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Its notifications, oldest first", body = Vec<DeliveryView>),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 404, description = "`collection_not_found`: no such collection, not yours, or a malformed id", body = ErrorBody),
    )
)]
pub async fn collection_webhooks(
    user: AuthUser,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<web::Json<Vec<DeliveryView>>, ApiError> {
    let record = crate::collections::load(&state, &user.0, &id).await?;
    let deliveries = store::list(&state.db, &record.id)
        .await
        .map_err(ApiError::database)?;
    Ok(web::Json(deliveries))
}

/// The caller's webhook settings.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"url": "https://hooks.example.com/argus",
    "secret": "whsec_5f0c…", "signature": "X-Argus-Signature: sha256=hex(HMAC-SHA256(secret, X-Argus-Timestamp + \".\" + body))"}))]
pub struct WebhookSettings {
    /// Where the end of each of your videos is announced unless its upload names a
    /// `callback_url`; absent: only videos uploaded with one are announced.
    pub url: Option<String>,
    /// What your notifications are signed with. Keep it secret; rotate it with
    /// `POST /api/v1/users/me/webhook/secret`.
    pub secret: String,
    /// How to check a notification.
    pub signature: &'static str,
}

const SIGNATURE: &str =
    "X-Argus-Signature: sha256=hex(HMAC-SHA256(secret, X-Argus-Timestamp + \".\" + body))";

/// A new default URL (`null` removes it).
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetWebhook {
    pub url: Option<String>,
}

async fn settings(state: &AppState, user_id: &str) -> Result<WebhookSettings, ApiError> {
    let w = store::user_webhook(&state.db, user_id)
        .await
        .map_err(ApiError::database)?;
    Ok(WebhookSettings {
        url: w.url,
        secret: w.secret,
        signature: SIGNATURE,
    })
}

/// Your default callback URL and your signing secret (made on first read).
#[utoipa::path(
    get,
    path = "/api/v1/users/me/webhook",
    tag = "webhooks",
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Your webhook settings", body = WebhookSettings),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
    )
)]
pub async fn get_webhook(
    user: AuthUser,
    state: web::Data<AppState>,
) -> Result<web::Json<WebhookSettings>, ApiError> {
    Ok(web::Json(settings(&state, &user.0.id).await?))
}

/// Sets (or, with `null`, removes) your default callback URL.
#[utoipa::path(
    put,
    path = "/api/v1/users/me/webhook",
    tag = "webhooks",
    request_body = SetWebhook,
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Your webhook settings", body = WebhookSettings),
        (status = 400, description = "`invalid_json`: the body is not JSON of that shape", body = ErrorBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send application/json", body = ErrorBody),
        (status = 422, description = "`invalid_input`: not an http(s) URL, or an address that is not allowed (loopback, private, link-local… unless ARGUS_WEBHOOK_ALLOW lists it)", body = ErrorBody),
    )
)]
pub async fn put_webhook(
    user: AuthUser,
    state: web::Data<AppState>,
    body: web::Json<SetWebhook>,
) -> Result<web::Json<WebhookSettings>, ApiError> {
    let url = match body.url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(raw) => Some(
            target::check(raw, &state.webhooks.allow)
                .await
                .map_err(ApiError::invalid_input)?,
        ),
        None => None,
    };
    store::set_user_url(&state.db, &user.0.id, url.as_deref())
        .await
        .map_err(ApiError::database)?;
    Ok(web::Json(settings(&state, &user.0.id).await?))
}

/// Replaces your signing secret: notifications from now on are signed with the new one.
#[utoipa::path(
    post,
    path = "/api/v1/users/me/webhook/secret",
    tag = "webhooks",
    security(("oauth2" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Your webhook settings, with the new secret", body = WebhookSettings),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `user_disabled`", body = ErrorBody),
    )
)]
pub async fn rotate_secret(
    user: AuthUser,
    state: web::Data<AppState>,
) -> Result<web::Json<WebhookSettings>, ApiError> {
    store::rotate_secret(&state.db, &user.0.id)
        .await
        .map_err(ApiError::database)?;
    Ok(web::Json(settings(&state, &user.0.id).await?))
}
