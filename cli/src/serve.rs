//! `argus serve`: the all-in-one server. The REST API, the processor worker and the detector
//! worker in one process, sharing one in-process broker and result backend (`memory://`): the
//! same task code as the distributed workers, with no RabbitMQ or Redis to run. SQLite under
//! the storage dir, the default model, `ARGUS_BIND` (127.0.0.1:8080). `/metrics` and `/readyz`
//! follow `argus-api`'s rule: on `ARGUS_METRICS_BIND` when set, else on the API's port.
//!
//! The detector's CPU batches run on this process's main thread (libtorch's OpenMP is faster
//! there); the API and the workers run on a tokio runtime beside it. SIGTERM or Ctrl-C stops
//! taking work, lets the tasks in hand and the requests in flight finish, then exits.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use argus_api::{Api, ApiConfig};
use argus_common::storage::Storage;
use argus_detector::config::{load_detector, ModelArgs};
use argus_queue::worker::stop_on_signals;
use clap::Args;

use crate::embedded::Workers;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub api: ApiConfig,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub pipeline: crate::PipelineArgs,
    /// Seconds a task may run before it is stopped and retried.
    #[arg(long, env = "ARGUS_TASK_TIME_LIMIT", default_value_t = 900)]
    pub task_time_limit: u64,
}

pub fn run(mut args: ServeArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.api.storage_dir)
        .with_context(|| format!("creating {}", args.api.storage_dir.display()))?;
    if args.api.jwt_secret.is_none() {
        // One secret per storage dir, kept there (mode 0600), so tokens survive restarts.
        args.api.jwt_secret = Some(
            argus_api::auth::load_or_create_secret(&args.api.storage_dir)
                .context("creating the JWT secret in the storage dir")?,
        );
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let stop = {
        let _context = runtime.enter();
        stop_on_signals()
    };
    let detector = Arc::new(load_detector(&args.model)?);
    // One process, one detector: the API offers exactly its model (uploads naming it or
    // none), whatever ARGUS_SERVED_MODELS a shared .env may hold for a cluster.
    args.api.served_models = vec![detector.spec().name.clone()];
    args.api.default_model = None;
    let workers = Workers::new(
        &runtime,
        detector,
        Storage::new(&args.api.storage_dir),
        &args.pipeline,
        args.api.limits,
        Duration::from_secs(args.task_time_limit.max(1)),
    )?;
    let (broker, backend) = (workers.broker.clone(), workers.backend.clone());

    let api = runtime.block_on(async {
        let api = Api::init_with_queue(args.api.clone(), broker.clone(), backend.clone()).await?;
        anyhow::Ok(api.start()?)
    })?;
    let addr = api.addr();
    println!("argus serve: http://{addr}/  (Swagger UI: http://{addr}/swagger-ui/)");
    if let Some(metrics) = api.metrics_addr() {
        println!("argus serve: metrics and health on http://{metrics}/metrics, /readyz");
    }
    let stopper = api.stopper();
    let http = runtime.spawn(api.run());
    // The HTTP server stops with the workers: no new uploads once they stop taking work
    // (event streams end, requests in flight finish).
    let mut http_stop = stop.clone();
    runtime.spawn(async move {
        let _ = http_stop.changed().await;
        stopper.stop(true).await;
    });
    workers.run(&runtime, stop);
    let _ = runtime.block_on(http);
    runtime.shutdown_timeout(Duration::from_secs(5));
    Ok(ExitCode::SUCCESS)
}
