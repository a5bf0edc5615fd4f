//! The pipeline's workers in this process: the processor and the detector, on an in-process
//! broker and result backend (`memory://`), running the very task code the distributed
//! workers run (the plan, its validation, the chord, the merge and every state transition).
//! `argus serve` puts the API in front of them; `argus detect` sends them one video. The
//! detector's CPU batches run on the calling thread (libtorch's OpenMP is faster on the main
//! thread); the workers run on a tokio runtime beside it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argus_common::storage::Storage;
use argus_common::Limits;
use argus_detector::batcher::LocalLoop;
use argus_detector::service::{embed, Embedded};
use argus_detector::Detector;
use argus_pipeline::models::{keep_announcing, ModelAnnouncement};
use argus_pipeline::tasks::{DETECTOR_QUEUE, PROCESSOR_QUEUE};
use argus_processor::tasks::{register, ProcessorConfig, DEFAULT_RESULT_INLINE_MAX};
use argus_queue::backend::Backend;
use argus_queue::broker::Broker;
use argus_queue::metrics::WorkerMetrics;
use argus_queue::worker::{Worker, WorkerOptions};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::PipelineArgs;

/// The processor and detector workers of this process, built but not yet running.
pub struct Workers {
    pub broker: Broker,
    pub backend: Backend,
    processor: Worker,
    detector: Worker,
    local: LocalLoop,
    announcement: ModelAnnouncement,
}

impl Workers {
    /// Builds both workers on a fresh in-process broker and backend. `time_limit` bounds each
    /// task, as `ARGUS_TASK_TIME_LIMIT` does for the distributed workers.
    pub fn new(
        runtime: &Runtime,
        detector: Arc<Detector>,
        storage: Storage,
        pipeline: &PipelineArgs,
        limits: Limits,
        time_limit: Duration,
    ) -> anyhow::Result<Workers> {
        let (broker, backend) = runtime.block_on(async {
            let broker = Broker::connect("memory://", 1).await?;
            let backend = Backend::connect("memory://").await?;
            anyhow::Ok((broker, backend))
        })?;
        let options = |concurrency: usize| WorkerOptions {
            concurrency,
            time_limit,
            ..WorkerOptions::default()
        };
        let tasks = pipeline.tasks.unwrap_or(detector.chunk_tasks()).max(1);
        let Embedded {
            worker,
            local,
            announcement,
        } = embed(
            detector,
            broker.clone(),
            backend.clone(),
            options(tasks),
            WorkerMetrics::new(),
            storage.clone(),
            pipeline.decode_threads,
            limits,
        );
        // Two slots: a video's merge never waits behind another video's split.
        let processor = register(
            Worker::new(broker.clone(), backend.clone(), options(2)),
            ProcessorConfig {
                storage,
                chunk_size: pipeline.chunk_size.into(),
                limits,
                result_inline_max: DEFAULT_RESULT_INLINE_MAX,
                // One detector, on queue `detector`: its model is the default.
                default_model: announcement.name.clone(),
                served_models: vec![announcement.name.clone()],
            },
        );
        Ok(Workers {
            broker,
            backend,
            processor,
            detector: worker,
            local,
            announcement,
        })
    }

    /// Runs both workers until `stop` turns true and they have drained (the tasks in hand
    /// finish); the detector's batches run on the calling thread meanwhile.
    pub fn run(self, runtime: &Runtime, stop: watch::Receiver<bool>) {
        let Workers {
            processor,
            detector,
            local,
            announcement,
            backend,
            ..
        } = self;
        // `argus serve`'s API lists the model (and its labels) from this.
        runtime.spawn(keep_announcing(backend, announcement, stop.clone()));
        let processor = runtime.spawn({
            let stop = stop.clone();
            async move { processor.run(&[PROCESSOR_QUEUE], stop).await }
        });
        let done = Arc::new(AtomicBool::new(false));
        let detector_done = done.clone();
        let detector = runtime.spawn(async move {
            // The flag is raised however the worker ends, a panic included: the local loop
            // below would wait for it for ever.
            let _ = tokio::spawn(async move { detector.run(&[DETECTOR_QUEUE], stop).await }).await;
            detector_done.store(true, Ordering::Release);
        });
        local.run_until(&done);
        runtime.block_on(async {
            let _ = processor.await;
            let _ = detector.await;
        });
    }
}
