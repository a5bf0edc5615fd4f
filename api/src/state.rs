//! What every request handler shares: the database, the JWT keys, the metrics and the readiness
//! checks. Cloned into each HTTP worker (everything in it is behind `Arc` or a pool).

use std::sync::Arc;

use crate::auth::JwtKeys;
use crate::db::Db;
use crate::health::ReadinessCheck;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub jwt: Arc<JwtKeys>,
    pub metrics: Arc<Metrics>,
    pub checks: Arc<Vec<Arc<dyn ReadinessCheck>>>,
}
