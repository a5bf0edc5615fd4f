//! The worker loop shared by every role: consume a queue, decode each Celery message, run its
//! task, ack it late. What it guarantees:
//! - nothing is dropped silently: a message that cannot be decoded, names no task we run, or
//!   carries bad arguments goes to the dead-letter queue with an error log line and a count;
//! - acks late: a message is acked after its task finished (or was re-queued for a retry), so
//!   a worker killed mid-task leaves it to the broker to redeliver;
//! - a task runs under a time limit, and a panic in it is a failure, not a dead worker;
//! - transient errors are retried with exponential backoff (the message is re-sent with
//!   `retries + 1` and an ETA), up to a limit; permanent ones fail the task;
//! - a stop request (SIGTERM) stops taking messages and lets the tasks in hand finish.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::FutureExt;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::backend::{Backend, TaskStatus};
use crate::broker::{Broker, Incoming};
use crate::tasks::{TaskMessage, DEAD_LETTER_QUEUE};

/// How a task failed.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskError {
    /// Worth another try (broker or backend unreachable, a busy device).
    Transient(String),
    /// Will fail again (corrupt video, bad arguments): no retry.
    Permanent(String),
}

impl TaskError {
    pub fn permanent(e: impl std::fmt::Display) -> TaskError {
        TaskError::Permanent(e.to_string())
    }

    pub fn transient(e: impl std::fmt::Display) -> TaskError {
        TaskError::Transient(e.to_string())
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskError::Transient(m) | TaskError::Permanent(m) => f.write_str(m),
        }
    }
}

/// What a task gets: its message and the worker's broker and backend.
#[derive(Clone)]
pub struct TaskContext {
    pub message: TaskMessage,
    pub broker: Broker,
    pub backend: Backend,
}

/// A task's outcome: `Some(result)` to store now; `None` when the result is written later
/// (`process_video`'s is written by the chord's body, so a Celery client's `get()` on it
/// returns the whole video's result).
pub type TaskOutput = Result<Option<Value>, TaskError>;
pub type TaskFuture = Pin<Box<dyn Future<Output = TaskOutput> + Send>>;
type Handler = Arc<dyn Fn(TaskContext) -> TaskFuture + Send + Sync>;
/// Called when a task fails for good (after its retries), e.g. to mark its video failed.
type FailureHook =
    Arc<dyn Fn(TaskContext, String) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Counters for /metrics and tests.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
}

pub struct WorkerOptions {
    /// Tasks run at once (the broker's prefetch is set to match).
    pub concurrency: usize,
    pub time_limit: Duration,
    pub max_retries: u32,
    /// First retry delay; doubled per retry, capped at a minute.
    pub retry_delay: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 2,
            time_limit: Duration::from_secs(1800),
            max_retries: 3,
            retry_delay: Duration::from_secs(1),
        }
    }
}

pub struct Worker {
    broker: Broker,
    backend: Backend,
    handlers: HashMap<String, Handler>,
    on_failure: Option<FailureHook>,
    options: WorkerOptions,
    pub stats: Arc<WorkerStats>,
}

impl Worker {
    pub fn new(broker: Broker, backend: Backend, options: WorkerOptions) -> Worker {
        Worker {
            broker,
            backend,
            handlers: HashMap::new(),
            on_failure: None,
            options,
            stats: Arc::default(),
        }
    }

    /// Registers the task `name`.
    pub fn task<F, Fut>(mut self, name: &str, handler: F) -> Self
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = TaskOutput> + Send + 'static,
    {
        self.handlers.insert(
            name.to_string(),
            Arc::new(move |ctx| Box::pin(handler(ctx))),
        );
        self
    }

    pub fn on_failure<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(TaskContext, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_failure = Some(Arc::new(move |ctx, e| Box::pin(hook(ctx, e))));
        self
    }

    /// Consumes `queues` until `stop` turns true, then waits for the tasks in hand.
    pub async fn run(self, queues: &[&str], mut stop: watch::Receiver<bool>) {
        if *stop.borrow() {
            return; // stopped before it started
        }
        let this = Arc::new(self);
        let permits = Arc::new(Semaphore::new(this.options.concurrency));
        let (merged_tx, mut merged) = tokio::sync::mpsc::channel::<Incoming>(1);
        for queue in queues {
            let (this, tx, queue, stop) = (
                this.clone(),
                merged_tx.clone(),
                queue.to_string(),
                stop.clone(),
            );
            tokio::spawn(async move { this.consume_forever(&queue, tx, stop).await });
        }
        drop(merged_tx);
        loop {
            let permit = tokio::select! {
                _ = stop.changed() => break,
                p = permits.clone().acquire_owned() => p.expect("semaphore open"),
            };
            let incoming = tokio::select! {
                _ = stop.changed() => break,
                m = merged.recv() => match m { Some(m) => m, None => break },
            };
            let this = this.clone();
            tokio::spawn(async move {
                this.handle(incoming).await;
                drop(permit);
            });
        }
        // Let the tasks in hand finish; what was prefetched but not started goes back to the
        // broker when the connection closes.
        let _ = permits.acquire_many(this.options.concurrency as u32).await;
        tracing::info!("worker stopped");
    }

    /// Consumes one queue, reconnecting when the broker goes away.
    async fn consume_forever(
        &self,
        queue: &str,
        tx: tokio::sync::mpsc::Sender<Incoming>,
        stop: watch::Receiver<bool>,
    ) {
        let mut backoff = Duration::from_millis(500);
        while !*stop.borrow() {
            match self.broker.consume(queue).await {
                Ok(mut rx) => {
                    backoff = Duration::from_millis(500);
                    tracing::info!(queue, broker = %self.broker.safe_url(), "consuming");
                    while let Some(incoming) = rx.recv().await {
                        if tx.send(incoming).await.is_err() {
                            return;
                        }
                    }
                    tracing::warn!(queue, "consumer closed; reconnecting");
                }
                Err(e) => tracing::warn!(queue, error = %e, "cannot consume; retrying"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
            if let Err(e) = self.broker.reconnect().await {
                tracing::warn!(error = %e, "reconnect failed");
            }
        }
    }

    async fn handle(&self, incoming: Incoming) {
        let raw = match &incoming.message {
            Ok(raw) => raw.clone(),
            Err(reason) => {
                // Nothing to re-send but what we could read: log it whole.
                tracing::error!(reason, "undecodable message dead-lettered");
                self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                let _ = incoming.ack().await;
                return;
            }
        };
        let message = match TaskMessage::from_celery(&raw) {
            Ok(m) if self.handlers.contains_key(&m.task) => m,
            Ok(m) => {
                return self
                    .dead_letter(incoming, &raw, &format!("no task '{}' here", m.task))
                    .await
            }
            Err(e) => return self.dead_letter(incoming, &raw, &e.to_string()).await,
        };
        if let Some(eta) = message.eta {
            if let Ok(wait) = (eta - Utc::now()).to_std() {
                tokio::time::sleep(wait).await;
            }
        }
        let ctx = TaskContext {
            message: message.clone(),
            broker: self.broker.clone(),
            backend: self.backend.clone(),
        };
        let handler = self.handlers[&message.task].clone();
        let _ = self
            .backend
            .store_result(&message.id, TaskStatus::Started, Value::Null, None)
            .await;
        let run = AssertUnwindSafe(handler(ctx.clone())).catch_unwind();
        let outcome = match tokio::time::timeout(self.options.time_limit, run).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(TaskError::Permanent(format!(
                "task panicked: {}",
                panic_message(&panic)
            ))),
            Err(_) => Err(TaskError::Transient(format!(
                "time limit of {:?} exceeded",
                self.options.time_limit
            ))),
        };
        let (task, id) = (&message.task, &message.id);
        match outcome {
            Ok(result) => {
                self.stats.succeeded.fetch_add(1, Ordering::Relaxed);
                tracing::info!(task, task_id = id, "succeeded");
                if let Some(result) = result {
                    let _ = self
                        .backend
                        .store_result(id, TaskStatus::Success, result, None)
                        .await;
                }
            }
            Err(TaskError::Transient(e)) if message.retries < self.options.max_retries => {
                let delay = self.options.retry_delay * 2u32.pow(message.retries.min(6));
                let delay = delay.min(Duration::from_secs(60));
                let mut again = message.clone();
                again.retries += 1;
                again.eta = Some(Utc::now() + chrono::Duration::from_std(delay).expect("small"));
                tracing::warn!(task, task_id = id, error = %e, retry = again.retries, ?delay, "retrying");
                if let Err(send) = self.broker.send(crate::tasks::queue_of(task), &again).await {
                    // Not acked: the broker redelivers the original instead.
                    tracing::error!(task, task_id = id, error = %send, "cannot re-queue for retry");
                    return;
                }
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                let _ = self.backend.store_result(id, TaskStatus::Retry, json!({"exc_type": "RuntimeError", "exc_message": [e], "exc_module": "builtins"}), None).await;
            }
            Err(e) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(task, task_id = id, error = %e, "failed");
                let failure = json!({"exc_type": "RuntimeError", "exc_message": [e.to_string()], "exc_module": "builtins"});
                let _ = self
                    .backend
                    .store_result(id, TaskStatus::Failure, failure, Some(e.to_string()))
                    .await;
                if let Some(hook) = &self.on_failure {
                    hook(ctx, e.to_string()).await;
                }
            }
        }
        if let Err(e) = incoming.ack().await {
            tracing::warn!(task, task_id = id, error = %e, "ack failed; the broker will redeliver");
        }
    }

    async fn dead_letter(&self, incoming: Incoming, raw: &celery::protocol::Message, reason: &str) {
        tracing::error!(
            task = raw.headers.task,
            task_id = raw.headers.id,
            reason,
            "message dead-lettered"
        );
        self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.broker.send_raw(DEAD_LETTER_QUEUE, raw).await {
            // Not acked: better redelivered than lost.
            tracing::error!(error = %e, "cannot dead-letter; leaving the message unacked");
            return;
        }
        let _ = incoming.ack().await;
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

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
    /// Tasks run at once; also the broker prefetch.
    #[arg(long, env = "ARGUS_CONCURRENCY", default_value_t = 2)]
    pub concurrency: usize,
    /// Seconds a task may run before it counts as failed (and is retried).
    #[arg(long, env = "ARGUS_TASK_TIME_LIMIT", default_value_t = 1800)]
    pub task_time_limit: u64,
    /// Retries of a task that failed transiently.
    #[arg(long, env = "ARGUS_MAX_RETRIES", default_value_t = 3)]
    pub max_retries: u32,
}

impl WorkerArgs {
    pub fn options(&self) -> WorkerOptions {
        WorkerOptions {
            concurrency: self.concurrency.max(1),
            time_limit: Duration::from_secs(self.task_time_limit.max(1)),
            max_retries: self.max_retries,
            ..WorkerOptions::default()
        }
    }

    /// Connects to the broker and the result backend.
    pub async fn connect(&self) -> anyhow::Result<(Broker, Backend)> {
        if self.broker_url.starts_with("memory://") {
            anyhow::bail!(
                "a worker process needs a shared broker (amqp://… or redis://…), not memory://"
            );
        }
        let broker = Broker::connect(&self.broker_url, self.concurrency.max(1) as u16).await?;
        let backend = Backend::connect(&self.result_backend).await?;
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
