//! The processor worker: consumes the `processor` queue (process_video, merge_chunks).

use argus_common::storage::Storage;
use argus_queue::tasks::PROCESSOR_QUEUE;
use argus_queue::worker::{stop_on_signals, Worker, WorkerArgs};
use clap::Args;

use crate::tasks::{register, ProcessorConfig};

#[derive(Args)]
pub struct ProcessorArgs {
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// Target frames per chunk: no chunk is longer (1..=10000; an upload's `chunk_size`
    /// overrides it).
    #[arg(long, env = "ARGUS_CHUNK_SIZE", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=argus_common::limits::MAX_CHUNK_FRAMES))]
    pub chunk_size: u64,
    /// Largest result stored whole as process_video's Celery result; past it, the summary and
    /// where the document is (the document itself is always in storage).
    #[arg(long, env = "ARGUS_RESULT_INLINE_MAX_BYTES",
          default_value_t = crate::tasks::DEFAULT_RESULT_INLINE_MAX,
          value_parser = clap::value_parser!(u64).range(1024..=16 << 20))]
    pub result_inline_max: u64,
}

pub fn run(args: ProcessorArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let stop = stop_on_signals(); // before connecting: a SIGTERM then is a clean stop too
        let metrics = args.worker.serve_metrics().await?;
        let options = args.worker.options("processor");
        let (broker, backend) = args.worker.connect(options.concurrency).await?;
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
            chunk_size: args.chunk_size,
            limits: args.worker.limits,
            result_inline_max: args.result_inline_max,
        };
        let worker = register(
            Worker::new(broker, backend, options).with_metrics(metrics),
            config,
        );
        worker.run(&[PROCESSOR_QUEUE], stop).await;
        anyhow::Ok(())
    })
}
