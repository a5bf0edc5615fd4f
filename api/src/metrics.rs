//! Prometheus metrics at `/metrics`: requests by route pattern, method and status, and a latency
//! histogram; uploads and their bytes; open event streams; videos by status (from the
//! database) and the messages waiting in the `processor`, `detector` and dead-letter queues
//! (`argus_queue_messages`, what the autoscaler scales detectors on). The last two are read
//! when scraped, at most once per [`SAMPLE_INTERVAL`] however often it is scraped. Each server
//! has a registry of its own (not the process-global one), so that several servers in one
//! process (tests, `argus serve`) do not collide.
//!
//! With `ARGUS_METRICS_BIND` set, `/metrics`, `/healthz` and `/readyz` are served there
//! ([`OperationsEndpoints`], on the workers' endpoint server) and not on the public port.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use argus_pipeline::tasks::{DETECTOR_QUEUE, PROCESSOR_QUEUE};
use argus_queue::broker::DEAD_LETTER_QUEUE;
use argus_queue::metrics::Operations;
use futures::future::BoxFuture;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::error::ApiError;
use crate::state::AppState;
use crate::videos::records;

/// Longest a scrape waits for the broker's queue depths.
const QUEUE_DEPTH_TIMEOUT: Duration = Duration::from_secs(2);
/// Scrapes closer together than this share one reading of the database and the broker.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// How an upload ended, for `argus_api_uploads_total{result}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadOutcome {
    /// 202: stored and queued.
    Accepted,
    /// 4xx: refused (too large, not a video, bad options, cut off by the client, …).
    Rejected,
    /// 5xx: our side failed.
    Failed,
}

impl UploadOutcome {
    fn as_str(self) -> &'static str {
        match self {
            UploadOutcome::Accepted => "accepted",
            UploadOutcome::Rejected => "rejected",
            UploadOutcome::Failed => "failed",
        }
    }
}

/// The route label of requests that matched no route (keeps the label set bounded).
pub const UNMATCHED_ROUTE: &str = "unmatched";

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    uploads: IntCounterVec,
    upload_bytes: IntCounter,
    videos: IntGaugeVec,
    queue_messages: IntGaugeVec,
    event_streams: IntGauge,
    watched_videos: IntGauge,
    /// When the sampled gauges were last read; held across the reading, so that concurrent
    /// scrapes wait for one reading instead of each making their own.
    sampled: tokio::sync::Mutex<Option<Instant>>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "argus_api_http_requests_total",
                "HTTP requests answered, by route pattern, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "argus_api_http_request_duration_seconds",
                "Time from request to response head, by route pattern and method",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["route", "method"],
        )
        .expect("valid metric");
        let uploads = IntCounterVec::new(
            Opts::new(
                "argus_api_uploads_total",
                "Video uploads, by result: accepted (queued), rejected (4xx), failed (5xx)",
            ),
            &["result"],
        )
        .expect("valid metric");
        let upload_bytes = IntCounter::new(
            "argus_api_upload_bytes_total",
            "Bytes of uploaded video files received, whatever became of the upload",
        )
        .expect("valid metric");
        let videos = IntGaugeVec::new(
            Opts::new(
                "argus_videos",
                "Videos by status, as last recorded in the database",
            ),
            &["status"],
        )
        .expect("valid metric");
        let queue_messages = IntGaugeVec::new(
            Opts::new(
                "argus_queue_messages",
                "Messages ready in a queue, not yet delivered to a worker (absent when the \
                 broker cannot say)",
            ),
            &["queue"],
        )
        .expect("valid metric");
        let event_streams = IntGauge::new(
            "argus_api_event_streams",
            "Video event streams (SSE) open now",
        )
        .expect("valid metric");
        let watched_videos = IntGauge::new(
            "argus_api_watched_videos",
            "Videos that at least one open event stream watches",
        )
        .expect("valid metric");
        for metric in [
            Box::new(event_streams.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(watched_videos.clone()),
            Box::new(requests.clone()),
            Box::new(latency.clone()),
            Box::new(uploads.clone()),
            Box::new(upload_bytes.clone()),
            Box::new(videos.clone()),
            Box::new(queue_messages.clone()),
        ] {
            registry.register(metric).expect("registered once");
        }
        for outcome in [
            UploadOutcome::Accepted,
            UploadOutcome::Rejected,
            UploadOutcome::Failed,
        ] {
            uploads.with_label_values(&[outcome.as_str()]);
        }
        Metrics {
            registry,
            requests,
            latency,
            uploads,
            upload_bytes,
            videos,
            queue_messages,
            event_streams,
            watched_videos,
            sampled: tokio::sync::Mutex::new(None),
        }
    }

    /// Counts one upload that ended as `outcome`.
    pub fn observe_upload(&self, outcome: UploadOutcome) {
        self.uploads.with_label_values(&[outcome.as_str()]).inc();
    }

    /// Counts bytes of an uploaded file as they arrive.
    pub fn count_upload_bytes(&self, bytes: u64) {
        self.upload_bytes.inc_by(bytes);
    }

    /// Sets the videos-by-status gauge: every status, zero where none.
    pub fn set_videos(&self, counts: &[(String, i64)]) {
        for status in records::STATUSES {
            let n = counts
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n);
            self.videos.with_label_values(&[status]).set(n);
        }
    }

    /// Sets a queue's depth, or removes it when unknown (no stale value is exported).
    pub fn set_queue_depth(&self, queue: &str, depth: Option<u64>) {
        match depth {
            Some(n) => self
                .queue_messages
                .with_label_values(&[queue])
                .set(n.min(i64::MAX as u64) as i64),
            None => {
                let _ = self.queue_messages.remove_label_values(&[queue]);
            }
        }
    }

    /// Where other parts of the server register their metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Counts one answered request.
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[route, method])
            .observe(seconds);
    }

    /// The Prometheus text exposition of every registered metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// Prometheus scrape endpoint.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    description = "On the public port only while `ARGUS_METRICS_BIND` is empty; else on that address.",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain",
               body = String,
               example = "argus_api_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"))
)]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = exposition(&state).await.map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type(TextEncoder::new().format_type())
        .body(text))
}

/// Every metric of the server, the sampled ones read again when older than
/// [`SAMPLE_INTERVAL`].
pub async fn exposition(state: &AppState) -> Result<String, prometheus::Error> {
    let metrics = &state.metrics;
    {
        let mut sampled = metrics.sampled.lock().await;
        if sampled.is_none_or(|at| at.elapsed() >= SAMPLE_INTERVAL) {
            refresh(state).await;
            *sampled = Some(Instant::now());
        }
    }
    // In memory: read at every scrape.
    metrics
        .event_streams
        .set(state.hub.streams().min(i64::MAX as usize) as i64);
    metrics
        .watched_videos
        .set(state.hub.videos().min(i64::MAX as usize) as i64);
    metrics.render()
}

/// Reads the gauges that are sampled at scrape time. A failing source leaves its gauge as it
/// was (videos) or absent (queue depth) and is logged: a scrape never fails because of it.
async fn refresh(state: &AppState) {
    let broker = &state.queue.broker;
    let (counts, processor, detector, dead) = futures::join!(
        records::count_by_status(&state.db),
        crate::queue::queue_depth(broker, PROCESSOR_QUEUE, QUEUE_DEPTH_TIMEOUT),
        crate::queue::queue_depth(broker, DETECTOR_QUEUE, QUEUE_DEPTH_TIMEOUT),
        // What waits in the dead-letter queue for a person to look at (an alert's metric).
        crate::queue::queue_depth(broker, DEAD_LETTER_QUEUE, QUEUE_DEPTH_TIMEOUT),
    );
    match counts {
        Ok(counts) => state.metrics.set_videos(&counts),
        Err(e) => tracing::warn!(error = %e, "cannot count videos for /metrics"),
    }
    state.metrics.set_queue_depth(PROCESSOR_QUEUE, processor);
    state.metrics.set_queue_depth(DETECTOR_QUEUE, detector);
    state.metrics.set_queue_depth(DEAD_LETTER_QUEUE, dead);
    // Each other served model's own queue (`detector.<model>`), for its detectors' autoscaler:
    // read together, within the one timeout (the default model's is `detector`, read above).
    let served = &state.videos.served_models;
    if let Some((default, others)) = served.split_first() {
        let queues: Vec<String> = others
            .iter()
            .map(|m| argus_pipeline::tasks::detector_queue(m, default))
            .collect();
        let depths = futures::future::join_all(
            queues
                .iter()
                .map(|q| crate::queue::queue_depth(broker, q, QUEUE_DEPTH_TIMEOUT)),
        )
        .await;
        for (queue, depth) in queues.iter().zip(depths) {
            state.metrics.set_queue_depth(queue, depth);
        }
    }
}

/// The API's `/metrics` and `/readyz` for the endpoint server on `ARGUS_METRICS_BIND`.
pub struct OperationsEndpoints(pub AppState);

impl Operations for OperationsEndpoints {
    fn metrics(&self) -> BoxFuture<'_, String> {
        Box::pin(async move {
            exposition(&self.0).await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot render the metrics");
                String::new()
            })
        })
    }

    fn readiness(&self) -> BoxFuture<'_, (bool, String)> {
        Box::pin(async move {
            let (status, body) = self.0.readiness.answer().await;
            (status == StatusCode::OK, body)
        })
    }
}
