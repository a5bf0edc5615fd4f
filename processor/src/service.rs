//! The processor worker: consumes the `processor` queue (process_video, merge_chunks).

use argus_common::storage::Storage;
use argus_pipeline::tasks::{resolve_default_model, resolve_served_models, PROCESSOR_QUEUE};
use argus_queue::worker::{stop_on_signals, Worker, WorkerArgs};
use clap::Args;

use crate::tasks::{register, ProcessorConfig};
use crate::ChunkRule;

#[derive(Args)]
pub struct ProcessorArgs {
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// Frames per chunk for every run whose upload names none (1..=10000; no chunk is longer).
    /// Unset: the rule of ARGUS_CHUNK_SECONDS.
    #[arg(long, env = "ARGUS_CHUNK_SIZE",
          value_parser = clap::value_parser!(u64).range(1..=argus_common::limits::MAX_CHUNK_FRAMES))]
    pub chunk_size: Option<u64>,
    /// Without ARGUS_CHUNK_SIZE: a chunk holds as many frames as the detectors get through in
    /// this many seconds (their measured speed; 64 frames until one chunk was measured).
    #[arg(long, env = "ARGUS_CHUNK_SECONDS", default_value_t = 4.0,
          value_parser = seconds_in_range)]
    pub chunk_seconds: f64,
    /// Largest result stored whole as process_video's Celery result; past it, the summary and
    /// where the document is (the document itself is always in storage).
    #[arg(long, env = "ARGUS_RESULT_INLINE_MAX_BYTES",
          default_value_t = crate::tasks::DEFAULT_RESULT_INLINE_MAX,
          value_parser = clap::value_parser!(u64).range(1024..=16 << 20))]
    pub result_inline_max: u64,
    /// The model of videos that name none: its detectors consume queue `detector`, every other
    /// model's `detector.<model>`. The same on every processor and detector of a cluster.
    /// Unset: the first of ARGUS_SERVED_MODELS, else ARGUS_MODEL, else coco-centernet.
    #[arg(long, env = "ARGUS_DEFAULT_MODEL")]
    pub default_model: Option<String>,
    /// The models the cluster's detectors serve, comma-separated (as the API has them): a
    /// video naming another fails at once. Unset: the default model only.
    #[arg(long, env = "ARGUS_SERVED_MODELS", value_delimiter = ',')]
    pub served_models: Vec<String>,
    /// The detectors' model, in a one-model cluster whose processes share their settings: the
    /// default model when the two above are unset.
    #[arg(long = "model", env = "ARGUS_MODEL")]
    pub model: Option<String>,
}

pub fn run(args: ProcessorArgs) -> anyhow::Result<()> {
    let default_model = resolve_default_model(
        args.default_model.as_deref(),
        &args.served_models,
        args.model.as_deref(),
    );
    let served_models =
        resolve_served_models(&args.served_models, &default_model).map_err(anyhow::Error::msg)?;
    tracing::info!(default_model, served = ?served_models, "models");
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let stop = stop_on_signals(); // before connecting: a SIGTERM then is a clean stop too
        let metrics = args.worker.serve_metrics().await?;
        let options = args.worker.options("processor");
        let (broker, backend) = args.worker.connect(options.concurrency).await?;
        tokio::spawn(argus_pipeline::models::keep_publishing_default(
            backend.clone(),
            default_model.clone(),
            stop.clone(),
        ));
        metrics.set_loaded();
        let storage = Storage::new(&args.worker.storage_dir);
        // What runs that never merged left in storage (their videos' next run or DELETE removes
        // most of it; this takes the rest).
        match storage.sweep_chunks(std::time::Duration::from_secs(7 * 86_400)) {
            Ok(0) => {}
            Ok(n) => tracing::info!(runs = n, "swept chunk results older than a week"),
            Err(e) => tracing::warn!(error = %e, "cannot sweep old chunk results"),
        }
        let config = ProcessorConfig {
            storage,
            chunk_size: match args.chunk_size {
                Some(n) => ChunkRule::Fixed(n),
                None => ChunkRule::Seconds(args.chunk_seconds),
            },
            limits: args.worker.limits,
            result_inline_max: args.result_inline_max,
            default_model: default_model.clone(),
            served_models,
        };
        let worker = register(
            Worker::new(broker, backend, options).with_metrics(metrics),
            config,
        );
        worker.run(&[PROCESSOR_QUEUE], stop).await;
        anyhow::Ok(())
    })?;
    // Past the drain's deadline a merge may still run on a blocking thread: dropping the
    // runtime would wait for it for ever, and the deadline would buy nothing.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    Ok(())
}

fn seconds_in_range(text: &str) -> Result<f64, String> {
    let seconds: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if (0.1..=3600.0).contains(&seconds) {
        Ok(seconds)
    } else {
        Err(format!("{seconds} is not within 0.1..=3600 seconds"))
    }
}
