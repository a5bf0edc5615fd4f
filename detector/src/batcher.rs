//! The dynamic batcher: frames from every chunk a worker holds flow through one queue; one
//! thread per device takes up to `max_batch` of them (waiting at most `max_wait` for a batch to
//! fill) and runs them together. A worker with several chunks in hand so keeps each device
//! busy with full batches, and no chunk waits for another to finish.
//!
//! The queue is bounded: when the devices fall behind, decoders block instead of piling up
//! frames (memory stays bounded by queue + in-flight windows).
//!
//! [`Batcher::start_here`] leaves the first device's loop to the caller: on CPU, libtorch's
//! OpenMP team runs about 25% faster driven from the process's main thread than from a
//! spawned one (measured here, 2 threads; equal at 1 thread), so `argus detect` runs that loop
//! on its main thread and the pipeline on others.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::{Detection, Detector, DetectorError, Frame};

/// The answer for one frame: its tag and detections, or why the batch failed.
pub struct Reply {
    pub tag: u64,
    pub answer: Result<Vec<Detection>, String>,
    /// This frame's share of the batch's device time (the batch's time over its frames).
    pub device_s: f64,
}

struct Request {
    frame: Frame,
    tag: u64,
    reply: Sender<Reply>,
}

pub struct Batcher {
    detector: Arc<Detector>,
    queue: Option<Sender<Request>>,
    workers: Vec<JoinHandle<()>>,
}

impl Batcher {
    /// Starts one batching thread per device of `detector`.
    pub fn start(detector: Arc<Detector>, max_wait: Duration) -> Batcher {
        Self::start_from(detector, max_wait, 0).0
    }

    /// Like [`Batcher::start`], but the first device's loop is returned for the caller to run
    /// on its own thread ([`LocalLoop::run`] returns once the batcher is dropped).
    pub fn start_here(detector: Arc<Detector>, max_wait: Duration) -> (Batcher, LocalLoop) {
        let (batcher, requests) = Self::start_from(detector.clone(), max_wait, 1);
        let local = LocalLoop {
            detector,
            requests,
            max_wait,
        };
        (batcher, local)
    }

    fn start_from(
        detector: Arc<Detector>,
        max_wait: Duration,
        first_spawned: usize,
    ) -> (Batcher, Receiver<Request>) {
        let devices = detector.device_names().len();
        let (queue, requests) = crossbeam_channel::bounded(detector.max_batch() * devices * 2);
        let workers = (first_spawned..devices)
            .map(|replica| {
                let detector = detector.clone();
                let requests = requests.clone();
                std::thread::Builder::new()
                    .name(format!("batcher-{replica}"))
                    .spawn(move || run(&detector, replica, &requests, max_wait))
                    .expect("spawn batcher thread")
            })
            .collect();
        let batcher = Batcher {
            detector,
            queue: Some(queue),
            workers,
        };
        (batcher, requests)
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Queues a frame; the answer arrives on `reply`, tagged with `tag`. Blocks while the
    /// queue is full.
    pub fn submit(
        &self,
        frame: Frame,
        tag: u64,
        reply: &Sender<Reply>,
    ) -> Result<(), DetectorError> {
        let request = Request {
            frame,
            tag,
            reply: reply.clone(),
        };
        self.queue
            .as_ref()
            .expect("queue lives until drop")
            .send(request)
            .map_err(|_| DetectorError::Batch("the batcher has stopped".into()))
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.queue.take(); // disconnects: each thread finishes its batch and exits
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// The first device's batching loop, to run on a thread of the caller's choosing.
pub struct LocalLoop {
    detector: Arc<Detector>,
    requests: Receiver<Request>,
    max_wait: Duration,
}

impl LocalLoop {
    /// Serves batches until the [`Batcher`] is dropped.
    pub fn run(self) {
        run(&self.detector, 0, &self.requests, self.max_wait);
    }

    /// Serves batches until `done` turns true (checked between batches and every 100 ms).
    pub fn run_until(self, done: &std::sync::atomic::AtomicBool) {
        use std::sync::atomic::Ordering;
        let metrics = ReplicaMetrics::new(&self.detector, 0);
        while !done.load(Ordering::Acquire) {
            match self.requests.recv_timeout(Duration::from_millis(100)) {
                Ok(first) => serve_batch(
                    &self.detector,
                    0,
                    &self.requests,
                    self.max_wait,
                    first,
                    &metrics,
                ),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

fn run(detector: &Detector, replica: usize, requests: &Receiver<Request>, max_wait: Duration) {
    let metrics = ReplicaMetrics::new(detector, replica);
    while let Ok(first) = requests.recv() {
        serve_batch(detector, replica, requests, max_wait, first, &metrics);
    }
}

/// One replica's metric handles, looked up once per batching loop rather than per batch.
struct ReplicaMetrics {
    forward_seconds: prometheus::Histogram,
    batch_size: prometheus::Histogram,
    frames: prometheus::IntCounter,
}

impl ReplicaMetrics {
    fn new(detector: &Detector, replica: usize) -> ReplicaMetrics {
        let device = &detector.device_names()[replica];
        let m = &crate::metrics::METRICS;
        m.batch_capacity
            .with_label_values(&[device])
            .set(detector.max_batch() as i64);
        ReplicaMetrics {
            forward_seconds: m.forward_seconds.with_label_values(&[device]),
            batch_size: m.batch_size.with_label_values(&[device]),
            frames: m.frames.with_label_values(&[device]),
        }
    }
}

/// Forms one batch starting with `first` (up to `max_batch`, waiting at most `max_wait` for
/// more) and answers every request in it.
fn serve_batch(
    detector: &Detector,
    replica: usize,
    requests: &Receiver<Request>,
    max_wait: Duration,
    first: Request,
    metrics: &ReplicaMetrics,
) {
    let max_batch = detector.max_batch();
    let mut batch: Vec<Request> = Vec::with_capacity(max_batch);
    batch.push(first);
    let deadline = Instant::now() + max_wait;
    while batch.len() < max_batch {
        match requests.recv_deadline(deadline) {
            Ok(request) => batch.push(request),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
        }
    }
    let frames: Vec<&Frame> = batch.iter().map(|r| &r.frame).collect();
    let started = Instant::now();
    let detected = detector.detect_on(replica, &frames);
    let seconds = started.elapsed().as_secs_f64();
    metrics.forward_seconds.observe(seconds);
    let device_s = seconds / frames.len() as f64;
    metrics.batch_size.observe(frames.len() as f64);
    if detected.is_ok() {
        metrics.frames.inc_by(frames.len() as u64);
    }
    match detected {
        Ok(results) => {
            for (request, detections) in batch.drain(..).zip(results) {
                // A chunk that gave up (cancelled, failed) no longer listens: fine.
                let _ = request.reply.send(Reply {
                    tag: request.tag,
                    answer: Ok(detections),
                    device_s,
                });
            }
        }
        Err(e) => {
            tracing::error!(error = %e, frames = batch.len(), "batch failed");
            let message = e.to_string();
            for request in batch.drain(..) {
                let _ = request.reply.send(Reply {
                    tag: request.tag,
                    answer: Err(message.clone()),
                    device_s,
                });
            }
        }
    }
}
