//! The options every worker binary takes, and the signals that stop it.

use std::sync::Arc;
use std::time::Duration;

use argus_common::limits::Limits;
use tokio::sync::watch;

use super::{WorkerOptions, DEFAULT_NODE_NAME};
use crate::backend::Backend;
use crate::broker::Broker;
use crate::metrics::WorkerMetrics;

/// Options every worker binary takes (flags and environment variables).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    /// amqp://… (RabbitMQ) or redis://…; memory:// only inside one process.
    #[arg(
        long,
        env = "ARGUS_BROKER_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub broker_url: String,
    /// redis://…
    #[arg(
        long,
        env = "ARGUS_RESULT_BACKEND",
        default_value = "redis://127.0.0.1:6379/0"
    )]
    pub result_backend: String,
    /// Root of the mounted video storage.
    #[arg(long, env = "ARGUS_STORAGE_DIR", default_value = "./data")]
    pub storage_dir: std::path::PathBuf,
    /// Tasks run at once; also the broker prefetch [default: 2; a detector: 2 per model
    /// replica, so that every replica has frames to run].
    #[arg(long, env = "ARGUS_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Seconds a task may run before it is stopped and retried. Keep it below RabbitMQ's
    /// consumer_timeout (1800 s by default).
    #[arg(long, env = "ARGUS_TASK_TIME_LIMIT", default_value_t = 900)]
    pub task_time_limit: u64,
    /// Retries of a task that failed transiently.
    #[arg(long, env = "ARGUS_MAX_RETRIES", default_value_t = 3)]
    pub max_retries: u32,
    /// Starts of one delivery that never finished (its worker died) before it is
    /// dead-lettered. Every crash a delivery is caught in counts, its own or a neighbour's:
    /// keep it above the crashes other causes bring (preempted nodes, OOM kills).
    #[arg(long, env = "ARGUS_MAX_STARTS", default_value_t = 5)]
    pub max_starts: u64,
    /// The Celery node name shown in Flower and `celery inspect`: `%n` the role, `%h` the host
    /// name, `%p` the process id. Must be unique among running workers.
    #[arg(long, env = "ARGUS_NODE_NAME", default_value = DEFAULT_NODE_NAME)]
    pub node_name: String,
    /// Send task events (Flower's task list) from the start; remote control switches them.
    #[arg(long, env = "ARGUS_TASK_EVENTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub task_events: bool,
    /// Address for `/metrics`, `/healthz` and `/readyz` (e.g. `0.0.0.0:9100`); empty: none.
    #[arg(long, env = "ARGUS_METRICS_BIND", default_value = "")]
    pub metrics_bind: String,
    #[command(flatten)]
    pub limits: Limits,
    #[command(flatten)]
    pub tls: crate::tls::TlsArgs,
}

impl WorkerArgs {
    /// The worker options for a worker of `role` (`processor`, `detector`).
    pub fn options(&self, role: &str) -> WorkerOptions {
        WorkerOptions {
            concurrency: self.concurrency.unwrap_or(2).max(1),
            time_limit: Duration::from_secs(self.task_time_limit.max(1)),
            max_retries: self.max_retries,
            max_starts: self.max_starts.max(1),
            node_name: crate::events::node_name(&self.node_name, role),
            task_events: self.task_events,
            ..WorkerOptions::default()
        }
    }

    /// Serves the worker's metrics and health endpoints on `--metrics-bind` (nothing when
    /// empty). Call it before loading the model, so that the liveness probe answers meanwhile.
    pub async fn serve_metrics(&self) -> anyhow::Result<Arc<WorkerMetrics>> {
        let metrics = WorkerMetrics::new();
        crate::metrics::serve(&self.metrics_bind, metrics.clone())
            .await
            .map_err(|e| anyhow::anyhow!("cannot serve metrics on '{}': {e}", self.metrics_bind))?;
        Ok(metrics)
    }

    /// Connects to the broker (its prefetch = the worker's `concurrency`) and the result
    /// backend.
    pub async fn connect(&self, concurrency: usize) -> anyhow::Result<(Broker, Backend)> {
        if self.broker_url.starts_with("memory://") {
            anyhow::bail!(
                "a worker process needs a shared broker (amqp://… or redis://…), not memory://"
            );
        }
        let tls = self.tls.load()?;
        let broker = Broker::connect_tls(
            &self.broker_url,
            concurrency.clamp(1, u16::MAX as usize) as u16,
            tls.clone(),
        )
        .await?;
        let backend = Backend::connect_tls(&self.result_backend, &tls).await?;
        Ok((broker, backend))
    }
}

/// Turns true on SIGTERM or SIGINT: stop taking tasks, finish those in hand. The handlers are
/// installed before this returns (call it inside a tokio runtime).
pub fn stop_on_signals() -> watch::Receiver<bool> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = watch::channel(false);
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stop requested: finishing the tasks in hand");
        let _ = tx.send(true);
    });
    rx
}
