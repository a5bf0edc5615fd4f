//! `/healthz` (the process is alive) and `/readyz` (it can serve: every [`ReadinessCheck`]
//! passes: database, broker, result backend). The checks run in the background every
//! [`CHECK_INTERVAL`] ([`Readiness::run`]); `/readyz` answers from their last outcome, so that
//! however often it is asked, the dependencies see one round of checks per interval.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use futures::future::{join_all, BoxFuture};
use serde::Serialize;
use tokio::sync::watch;
use utoipa::ToSchema;

use crate::db::Db;
use crate::error::{ErrorBody, ErrorCode};
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
/// Time between two rounds of checks: how stale `/readyz` may be.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);

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

/// The last outcome of the readiness checks, kept fresh by [`Readiness::run`].
pub struct Readiness {
    checks: Vec<Arc<dyn ReadinessCheck>>,
    last: watch::Sender<Option<Outcome>>,
    /// Set when the server begins to stop: `/readyz` says 503 from then on, so that load
    /// balancers take it out of rotation while it still serves.
    draining: std::sync::atomic::AtomicBool,
}

/// One round of checks: the names that passed, and `name: reason` of those that failed.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub passed: Vec<String>,
    pub failed: Vec<String>,
}

impl Readiness {
    pub fn new(checks: Vec<Arc<dyn ReadinessCheck>>) -> Arc<Readiness> {
        Arc::new(Readiness {
            checks,
            last: watch::channel(None).0,
            draining: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Runs every check now, at once, each within [`CHECK_TIMEOUT`].
    async fn check(&self) -> Outcome {
        let results = join_all(self.checks.iter().map(|check| async move {
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check.check()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
            };
            (check.name().to_string(), outcome)
        }))
        .await;
        let mut outcome = Outcome::default();
        for (name, result) in results {
            match result {
                Ok(()) => outcome.passed.push(name),
                Err(e) => outcome.failed.push(format!("{name}: {e}")),
            }
        }
        outcome
    }

    /// Checks every [`CHECK_INTERVAL`] until `closing` turns true.
    pub async fn run(self: Arc<Readiness>, mut closing: watch::Receiver<bool>) {
        let mut was_ready = true;
        loop {
            let outcome = self.check().await;
            let ready = outcome.failed.is_empty();
            if !ready {
                tracing::warn!(failed = %outcome.failed.join("; "), "not ready");
            } else if !was_ready {
                tracing::info!("ready again");
            }
            was_ready = ready;
            self.last.send_replace(Some(outcome));
            tokio::select! {
                _ = closing.changed() => return,
                _ = tokio::time::sleep(CHECK_INTERVAL) => {}
            }
        }
    }

    /// The last outcome; before the first round has ended, waits for it (within the checks'
    /// timeout: a server that cannot say is not ready).
    pub async fn outcome(&self) -> Outcome {
        let mut last = self.last.subscribe();
        let first = tokio::time::timeout(
            CHECK_TIMEOUT + Duration::from_secs(1),
            last.wait_for(Option::is_some),
        )
        .await;
        match first {
            Ok(Ok(outcome)) => outcome.clone().expect("waited for it"),
            _ => Outcome {
                passed: Vec::new(),
                failed: vec!["readiness: the first checks have not finished".to_string()],
            },
        }
    }

    /// From now on `/readyz` answers 503 `not_ready` ("draining").
    pub fn drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// `/readyz`'s answer: the status and its JSON body.
    pub async fn answer(&self) -> (StatusCode, String) {
        if self.draining.load(std::sync::atomic::Ordering::SeqCst) {
            let body = ErrorBody {
                code: ErrorCode::NotReady,
                message: "draining: the server is stopping".to_string(),
            };
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::to_string(&body).expect("serializes"),
            );
        }
        let outcome = self.outcome().await;
        if outcome.failed.is_empty() {
            let status = Status {
                status: "ok".to_string(),
                checks: outcome.passed,
            };
            (
                StatusCode::OK,
                serde_json::to_string(&status).expect("serializes"),
            )
        } else {
            let body = ErrorBody {
                code: ErrorCode::NotReady,
                message: outcome.failed.join("; "),
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::to_string(&body).expect("serializes"),
            )
        }
    }
}

/// Readiness: every check (database, broker, result backend) passed in the last round.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    description = "The outcome of the last round of checks (they run every 2 s in the background). \
                   On the public port only while `ARGUS_METRICS_BIND` is empty; else on that address.",
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "`not_ready`: the failing checks and why", body = ErrorBody,
         example = json!({"code": "not_ready", "message": "database: pool timed out while waiting for an open connection"})),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let (status, body) = state.readiness.answer().await;
    HttpResponse::build(status)
        .content_type("application/json")
        .body(body)
}
