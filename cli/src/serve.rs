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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use argus_api::{Api, ApiConfig};
use argus_common::storage::Storage;
use argus_detector::config::{load_detector, ModelArgs};
use argus_detector::service::{embed, Embedded};
use argus_pipeline::tasks::{DETECTOR_QUEUE, PROCESSOR_QUEUE};
use argus_processor::tasks::{register, ProcessorConfig};
use argus_queue::backend::Backend;
use argus_queue::broker::Broker;
use argus_queue::worker::{stop_on_signals, Worker, WorkerOptions};
use clap::Args;

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
    let tasks = args.pipeline.tasks.unwrap_or(detector.chunk_tasks());
    let storage = Storage::new(&args.api.storage_dir);
    let limits = args.api.limits;
    let (broker, backend) = runtime.block_on(async {
        let broker = Broker::connect("memory://", 1).await?;
        let backend = Backend::connect("memory://").await?;
        anyhow::Ok((broker, backend))
    })?;
    let options = |concurrency: usize| WorkerOptions {
        concurrency,
        time_limit: Duration::from_secs(args.task_time_limit.max(1)),
        ..WorkerOptions::default()
    };
    let Embedded {
        worker: detect,
        local,
    } = embed(
        detector,
        broker.clone(),
        backend.clone(),
        options(tasks.max(1)),
        argus_queue::metrics::WorkerMetrics::new(),
        storage.clone(),
        args.pipeline.decode_threads,
        limits,
    );
    let process = register(
        Worker::new(broker.clone(), backend.clone(), options(2)),
        ProcessorConfig {
            storage,
            chunk_size: args.pipeline.chunk_size.into(),
            limits,
            result_inline_max: argus_processor::tasks::DEFAULT_RESULT_INLINE_MAX,
        },
    );

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
    let processor = runtime.spawn({
        let stop = stop.clone();
        async move { process.run(&[PROCESSOR_QUEUE], stop).await }
    });
    let done = Arc::new(AtomicBool::new(false));
    let detector_done = done.clone();
    let mut http_stop = stop.clone();
    let detector = runtime.spawn(async move {
        detect.run(&[DETECTOR_QUEUE], stop).await;
        detector_done.store(true, Ordering::Release);
    });
    // The HTTP server stops with the workers: no new uploads once they stop taking work
    // (event streams end, requests in flight finish).
    runtime.spawn(async move {
        let _ = http_stop.changed().await;
        stopper.stop(true).await;
    });
    local.run_until(&done);
    runtime.block_on(async {
        let _ = processor.await;
        let _ = detector.await;
        let _ = http.await;
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    Ok(ExitCode::SUCCESS)
}
