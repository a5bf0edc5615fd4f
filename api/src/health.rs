//! `/healthz` (the process is alive) and `/readyz` (it can serve: every [`ReadinessCheck`]
//! passes). The database is the first check; the broker and the result backend plug in the same
//! way when the video endpoints arrive.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use futures::future::{join_all, BoxFuture};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::Db;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;

/// A check that must pass for the server to take traffic (`/readyz`).
pub trait ReadinessCheck: Send + Sync {
    /// A short name, shown in `/readyz` (e.g. `database`, `broker`).
    fn name(&self) -> &str;
    /// `Err` with a reason when the dependency cannot be used now.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// Longest a single check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// The database answers a query.
pub struct DatabaseCheck(pub Db);

impl ReadinessCheck for DatabaseCheck {
    fn name(&self) -> &str {
        "database"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.0.ping().await.map_err(|e| e.to_string()) })
    }
}

/// `/healthz`, `/readyz` answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "ok", "checks": ["database"]}))]
pub struct Status {
    /// `ok`.
    pub status: String,
    /// The readiness checks that passed (empty for `/healthz`).
    pub checks: Vec<String>,
}

/// Liveness: answers as long as the process serves HTTP; checks nothing else.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Alive", body = Status))
)]
pub async fn healthz() -> web::Json<Status> {
    web::Json(Status {
        status: "ok".to_string(),
        checks: Vec::new(),
    })
}

/// Readiness: every check (database, later broker and result backend) passes.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "`not_ready`: the failing checks and why", body = ErrorBody,
         example = json!({"code": "not_ready", "message": "database: pool timed out while waiting for an open connection"})),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let results = join_all(state.checks.iter().map(|check| {
        let check = Arc::clone(check);
        async move {
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check.check()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
            };
            (check.name().to_string(), outcome)
        }
    }))
    .await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(name, outcome)| outcome.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    if !failed.is_empty() {
        tracing::warn!(failed = %failed.join("; "), "not ready");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::NotReady,
            failed.join("; "),
        ));
    }
    Ok(HttpResponse::Ok().json(Status {
        status: "ok".to_string(),
        checks: results.into_iter().map(|(name, _)| name).collect(),
    }))
}
