//! The detector's own Prometheus metrics: frames and batches per device (with the most frames a
//! batch takes, for the dashboard's batch fill), the model's forward latency per device, and
//! decoding speed. Process-wide (the devices are), added to a worker's
//! registry with [`register`].

use std::sync::LazyLock;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

pub struct DetectorMetrics {
    pub frames: IntCounterVec,
    pub batch_size: HistogramVec,
    /// The most frames one forward pass takes on a device (`ARGUS_BATCH_SIZE`): a batch's fill
    /// is its size over this.
    pub batch_capacity: IntGaugeVec,
    pub forward_seconds: HistogramVec,
    pub decoded_frames: IntCounter,
    /// Seconds spent decoding (and converting) frames, not waiting for the model: with
    /// `decoded_frames`, the decode speed (`rate(frames) / rate(seconds)`).
    pub decode_seconds: prometheus::Counter,
    pub chunk_decode_fps: Histogram,
}

pub static METRICS: LazyLock<DetectorMetrics> = LazyLock::new(|| DetectorMetrics {
    frames: IntCounterVec::new(
        Opts::new(
            "argus_detector_frames_total",
            "Frames run through the model",
        ),
        &["device"],
    )
    .expect("valid metric"),
    batch_size: HistogramVec::new(
        HistogramOpts::new("argus_detector_batch_size", "Frames per forward pass")
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        &["device"],
    )
    .expect("valid metric"),
    batch_capacity: IntGaugeVec::new(
        Opts::new(
            "argus_detector_batch_capacity",
            "Most frames one forward pass takes (ARGUS_BATCH_SIZE)",
        ),
        &["device"],
    )
    .expect("valid metric"),
    forward_seconds: HistogramVec::new(
        HistogramOpts::new(
            "argus_detector_forward_seconds",
            "Model time per batch (preprocess, forward, decode of the output)",
        )
        .buckets(vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ]),
        &["device"],
    )
    .expect("valid metric"),
    decoded_frames: IntCounter::new("argus_detector_decoded_frames_total", "Frames decoded")
        .expect("valid metric"),
    decode_seconds: prometheus::Counter::new(
        "argus_detector_decode_seconds_total",
        "Seconds spent decoding and converting frames",
    )
    .expect("valid metric"),
    chunk_decode_fps: Histogram::with_opts(
        HistogramOpts::new(
            "argus_detector_chunk_decode_fps",
            "Decode speed of each chunk, frames per second",
        )
        .buckets(vec![10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0]),
    )
    .expect("valid metric"),
});

/// Adds the detector's metrics to `registry` (a worker's).
pub fn register(registry: &Registry) {
    let m = &*METRICS;
    let collectors: [Box<dyn prometheus::core::Collector>; 7] = [
        Box::new(m.frames.clone()),
        Box::new(m.batch_size.clone()),
        Box::new(m.batch_capacity.clone()),
        Box::new(m.forward_seconds.clone()),
        Box::new(m.decoded_frames.clone()),
        Box::new(m.decode_seconds.clone()),
        Box::new(m.chunk_decode_fps.clone()),
    ];
    for c in collectors {
        if let Err(e) = registry.register(c) {
            tracing::warn!(error = %e, "detector metric not registered");
        }
    }
}
