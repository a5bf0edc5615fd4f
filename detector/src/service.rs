//! The detector worker: consumes the `detector` queue, one batcher over every local device.
//! On CPU the batches run on the process's main thread (see [`crate::batcher`]); the broker
//! and the tasks run on a tokio runtime beside it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argus_common::storage::Storage;
use argus_common::tasks::DETECTOR_QUEUE;
use argus_common::worker::{stop_on_signals, Worker, WorkerArgs};
use clap::Args;

use crate::config::{load_detector, model_info, ModelArgs};
use crate::tasks::{register, DetectorConfig};
use crate::Batcher;

#[derive(Args)]
pub struct DetectorArgs {
    #[command(flatten)]
    pub worker: WorkerArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Decoder threads per chunk (0: FFmpeg decides).
    #[arg(long, env = "ARGUS_DECODE_THREADS", default_value_t = 1)]
    pub decode_threads: usize,
}

pub fn run(args: DetectorArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    // Signals first: a SIGTERM while the model loads is a clean stop too.
    let stop = {
        let _context = runtime.enter();
        stop_on_signals()
    };
    let detector = Arc::new(load_detector(&args.model)?);
    let config = DetectorConfig {
        storage: Storage::new(&args.worker.storage_dir),
        model: model_info(&detector),
        decode_threads: args.decode_threads,
        limits: args.worker.limits,
    };
    tracing::info!(devices = ?detector.device_names(), "detector ready");
    let (batcher, local) = Batcher::start_here(detector, Duration::from_millis(5));
    let batcher = Arc::new(batcher);
    let done = Arc::new(AtomicBool::new(false));
    let finished = done.clone();
    let worker_args = args.worker.clone();
    let service = runtime.spawn(async move {
        let outcome = async {
            let (broker, backend) = worker_args.connect().await?;
            let worker = register(
                Worker::new(broker, backend, worker_args.options()),
                batcher,
                config,
            );
            worker.run(&[DETECTOR_QUEUE], stop).await;
            anyhow::Ok(())
        }
        .await;
        finished.store(true, Ordering::Release);
        outcome
    });
    local.run_until(&done);
    let outcome = runtime.block_on(service)?;
    runtime.shutdown_timeout(Duration::from_secs(5));
    outcome
}
