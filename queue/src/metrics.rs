//! A worker's Prometheus metrics and the operations endpoints of any Argus process, served on
//! `ARGUS_METRICS_BIND` apart from public traffic: `/metrics` (text format), `/healthz` (the
//! process answers) and `/readyz` (a worker: the model is loaded and the broker connected; the
//! API: its database, broker and result backend answer). What is served comes from an
//! [`Operations`]: [`WorkerMetrics`] for workers, the API's own for `argus-api` and `argus serve`.
//!
//! Each worker has a registry of its own (not the process-global one), so that several
//! workers in one process (tests, `argus serve`) do not collide; a role adds its own metrics
//! to it (the detector: frames, batches, forward latency per device, decode speed).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Task and queue-wait latency buckets, in seconds: from a quick merge to a long chunk.
const LATENCY_BUCKETS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

pub struct WorkerMetrics {
    registry: Registry,
    /// Tasks by name and outcome: succeeded, failed, retried, revoked, dead_lettered.
    pub tasks: IntCounterVec,
    pub task_seconds: HistogramVec,
    /// From the sender's publish to the task's start (messages our producers stamped).
    pub queue_wait_seconds: HistogramVec,
    pub active: IntGaugeVec,
    pub dead_lettered: IntCounter,
    pub broker_connected: IntGauge,
    pub events_dropped: IntGauge,
    pub concurrency: IntGauge,
    /// Set by the role once it can work (the detector: its model is loaded).
    loaded: AtomicBool,
}

impl WorkerMetrics {
    pub fn new() -> Arc<WorkerMetrics> {
        let registry = Registry::new();
        let tasks = IntCounterVec::new(
            Opts::new("argus_worker_tasks_total", "Tasks handled, by outcome"),
            &["task", "outcome"],
        )
        .expect("valid metric");
        let task_seconds = HistogramVec::new(
            HistogramOpts::new("argus_worker_task_seconds", "Task run time")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["task"],
        )
        .expect("valid metric");
        let queue_wait_seconds = HistogramVec::new(
            HistogramOpts::new(
                "argus_worker_queue_wait_seconds",
                "Time from a message's publish to its task's start",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["task"],
        )
        .expect("valid metric");
        let active = IntGaugeVec::new(
            Opts::new("argus_worker_tasks_active", "Tasks running now"),
            &["task"],
        )
        .expect("valid metric");
        let dead_lettered = IntCounter::new(
            "argus_worker_dead_lettered_total",
            "Messages sent to the dead-letter queue",
        )
        .expect("valid metric");
        let broker_connected = IntGauge::new(
            "argus_worker_broker_connected",
            "1 while every queue of the worker is being consumed",
        )
        .expect("valid metric");
        let events_dropped = IntGauge::new(
            "argus_worker_events_dropped",
            "Celery events dropped because the broker was away too long",
        )
        .expect("valid metric");
        let concurrency =
            IntGauge::new("argus_worker_concurrency", "Tasks the worker runs at once")
                .expect("valid metric");
        for c in [
            Box::new(tasks.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(task_seconds.clone()),
            Box::new(queue_wait_seconds.clone()),
            Box::new(active.clone()),
            Box::new(dead_lettered.clone()),
            Box::new(broker_connected.clone()),
            Box::new(events_dropped.clone()),
            Box::new(concurrency.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        Arc::new(WorkerMetrics {
            registry,
            tasks,
            task_seconds,
            queue_wait_seconds,
            active,
            dead_lettered,
            broker_connected,
            events_dropped,
            concurrency,
            loaded: AtomicBool::new(false),
        })
    }

    /// Tasks of every name that ended with `outcome` (`succeeded`, `failed`, `retried`, …).
    pub fn outcomes(&self, outcome: &str) -> u64 {
        use prometheus::core::Collector;
        self.tasks
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "outcome" && l.value() == outcome)
            })
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    /// Where a role registers metrics of its own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The role can work now (model loaded).
    pub fn set_loaded(&self) {
        self.loaded.store(true, Ordering::Release);
    }

    /// Why the worker is not ready, or `None` when it is.
    pub fn not_ready(&self) -> Option<&'static str> {
        if !self.loaded.load(Ordering::Acquire) {
            Some("loading")
        } else if self.broker_connected.get() != 1 {
            Some("broker not connected")
        } else {
            None
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding");
        String::from_utf8(out).expect("UTF-8 metrics")
    }
}

/// What the operations endpoints serve.
pub trait Operations: Send + Sync + 'static {
    /// `/metrics`: the Prometheus text exposition.
    fn metrics(&self) -> BoxFuture<'_, String>;
    /// `/readyz`: whether the process can work, and a JSON body that says why not.
    fn readiness(&self) -> BoxFuture<'_, (bool, String)>;
}

impl Operations for WorkerMetrics {
    fn metrics(&self) -> BoxFuture<'_, String> {
        Box::pin(async move { self.render() })
    }

    fn readiness(&self) -> BoxFuture<'_, (bool, String)> {
        Box::pin(async move {
            match self.not_ready() {
                None => (true, r#"{"status":"ready"}"#.to_string()),
                Some(why) => (
                    false,
                    serde_json::json!({"status": "not ready", "reason": why}).to_string(),
                ),
            }
        })
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `bind` until the process (or the runtime)
/// ends. Returns the address bound (a port 0 gets a free one). An empty `bind` serves nothing.
pub async fn serve(
    bind: &str,
    operations: Arc<dyn Operations>,
) -> std::io::Result<Option<SocketAddr>> {
    if bind.trim().is_empty() {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(bind).await?;
    serve_on(listener, operations).map(Some)
}

/// [`serve`] on a listener already bound (inside a tokio runtime).
pub fn serve_on(
    listener: tokio::net::TcpListener,
    operations: Arc<dyn Operations>,
) -> std::io::Result<SocketAddr> {
    let address = listener.local_addr()?;
    tracing::info!(%address, "metrics and health endpoints");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors or the like: do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            let operations = operations.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let operations = operations.clone();
                    async move { Ok::<_, Infallible>(respond(&request, &*operations).await) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok(address)
}

async fn respond<B>(request: &Request<B>, operations: &dyn Operations) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match request.uri().path() {
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            operations.metrics().await,
        ),
        "/healthz" => (
            StatusCode::OK,
            "application/json",
            r#"{"status":"ok"}"#.to_string(),
        ),
        "/readyz" => {
            let (ready, body) = operations.readiness().await;
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, "application/json", body)
        }
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}
