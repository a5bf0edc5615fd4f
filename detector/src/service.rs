//! The detector worker: consumes its model's queue (`detector` for the default model,
//! `detector.<model>` for any other), one batcher over every local device.
//! On CPU the batches run on the process's main thread (see [`crate::batcher`]); the broker
//! and the tasks run on a tokio runtime beside it.
//!
//! [`embed`] builds the worker on a given broker and backend for a caller that owns the
//! runtime and the main thread (`argus serve`); [`run`] is the standalone binary around it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argus_common::storage::Storage;
use argus_common::Limits;
use argus_pipeline::models::{keep_announcing, published_default, ModelAnnouncement};
use argus_pipeline::tasks::{detector_queue, resolve_default_model};
use argus_queue::backend::Backend;
use argus_queue::broker::Broker;
use argus_queue::metrics::WorkerMetrics;
use argus_queue::worker::{stop_on_signals, Worker, WorkerArgs, WorkerOptions};
use clap::Args;

use crate::batcher::LocalLoop;
use crate::config::{load_detector, model_info, ModelArgs};
use crate::tasks::{register, DetectorConfig};
use crate::{Batcher, Detector};

#[derive(Args)]
pub struct DetectorArgs {
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Decoder threads per chunk (0: FFmpeg decides).
    #[arg(long, env = "ARGUS_DECODE_THREADS", default_value_t = 1)]
    pub decode_threads: usize,
    /// The cluster's default model (as the processors have it): a detector of this model
    /// consumes queue `detector`, one of any other model `detector.<model>`. Unset: the first
    /// of ARGUS_SERVED_MODELS, else this detector's own model.
    #[arg(long, env = "ARGUS_DEFAULT_MODEL")]
    pub default_model: Option<String>,
    /// The models the cluster serves, comma-separated (only their first is read here: the
    /// default when ARGUS_DEFAULT_MODEL is unset).
    #[arg(long, env = "ARGUS_SERVED_MODELS", value_delimiter = ',')]
    pub served_models: Vec<String>,
}

/// A detector worker ready to run: `worker.run(&[queue], stop)` on the caller's runtime (its
/// model's queue: [`argus_pipeline::tasks::detector_queue`]), and `local`, the first device's batching loop, on a thread of the caller's (the
/// main thread on CPU: libtorch's OpenMP runs faster there).
pub struct Embedded {
    pub worker: Worker,
    pub local: LocalLoop,
    /// What this detector serves, for `argus_pipeline::models::keep_announcing` beside the
    /// worker.
    pub announcement: ModelAnnouncement,
}

/// Builds the detector worker for `detector` on `broker` and `backend`, its metrics (the
/// detector's own added) in `metrics`.
#[allow(clippy::too_many_arguments)]
pub fn embed(
    detector: Arc<Detector>,
    broker: Broker,
    backend: Backend,
    options: WorkerOptions,
    metrics: Arc<WorkerMetrics>,
    storage: Storage,
    decode_threads: usize,
    limits: Limits,
) -> Embedded {
    let config = DetectorConfig {
        storage,
        model: model_info(&detector),
        decode_threads,
        limits,
    };
    tracing::info!(devices = ?detector.device_names(), "detector ready");
    let announcement = ModelAnnouncement {
        name: config.model.name.clone(),
        adapter: config.model.adapter.clone(),
        input_size: config.model.input_size,
        labels: detector.spec().labels.clone(),
        devices: config.model.devices.clone(),
        landmarks: (detector.spec().faces.as_ref()).map_or_else(Vec::new, |f| f.landmarks.clone()),
        embedding_size: detector.spec().faces.as_ref().map(|f| f.embedding_size),
    };
    let (batcher, local) = Batcher::start_here(detector, Duration::from_millis(5));
    crate::metrics::register(metrics.registry());
    metrics.set_loaded();
    let worker = register(
        Worker::new(broker, backend, options).with_metrics(metrics),
        Arc::new(batcher),
        config,
    );
    Embedded {
        worker,
        local,
        announcement,
    }
}

pub fn run(args: DetectorArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    // Signals first: a SIGTERM while the model loads is a clean stop too.
    let stop = {
        let _context = runtime.enter();
        stop_on_signals()
    };
    // Health endpoints first: the liveness probe answers while the model loads.
    let metrics = runtime.block_on(args.worker.serve_metrics())?;
    let detector = Arc::new(load_detector(&args.model)?);
    let mut options = args.worker.options("detector");
    if args.worker.concurrency.is_none() {
        options.concurrency = detector.chunk_tasks();
    }
    let (broker, backend) = runtime.block_on(args.worker.connect(options.concurrency))?;
    let Embedded {
        worker,
        local,
        announcement,
    } = embed(
        detector,
        broker,
        backend.clone(),
        options,
        metrics,
        Storage::new(&args.worker.storage_dir),
        args.decode_threads,
        args.worker.limits,
    );
    let done = Arc::new(AtomicBool::new(false));
    let finished = done.clone();
    let configured = resolve_default_model(
        args.default_model.as_deref(),
        &args.served_models,
        Some(&announcement.name),
    );
    // The processors route: the default they published wins over this detector's settings.
    let default_model = match runtime.block_on(published_default(&backend)) {
        Ok(Some(published)) if published != configured => {
            tracing::warn!(
                published,
                configured,
                "the processors' default model differs from this detector's settings: following \
                 the processors (set ARGUS_DEFAULT_MODEL alike on every pod)"
            );
            published
        }
        Ok(Some(published)) => published,
        Ok(None) => configured,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the published default model");
            configured
        }
    };
    let queue = detector_queue(&announcement.name, &default_model);
    tracing::info!(model = announcement.name, queue, "consuming");
    runtime.spawn(keep_announcing(backend.clone(), announcement, stop.clone()));
    let service = runtime.spawn(async move {
        worker.run(&[queue.as_str()], stop).await;
        finished.store(true, Ordering::Release);
    });
    local.run_until(&done);
    runtime.block_on(service)?;
    runtime.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}
