//! The worker loop shared by every role: consume a queue, decode each Celery message, run its
//! task, ack it late. What it guarantees:
//! - nothing is dropped silently: a message that cannot be decoded, names no task we run, or
//!   carries bad arguments goes to the dead-letter queue (on RabbitMQ as it came, with the
//!   reason in a header), with an error log line and a count; a known task's failure hook runs
//!   so its video ends `failed` instead of waiting for a chunk that will never come;
//! - acks late: a message is acked after its task finished (or was parked for a retry), so a
//!   worker killed mid-task leaves it to the broker to redeliver; but a delivery started
//!   `max_starts` times without finishing (it kills its worker: a decoder crash, memory) is
//!   dead-lettered, counted in the result backend so the count survives the crashes;
//! - a task runs under a time limit: past it, the task's [`StopFlag`] is raised (the decode
//!   loops check it at every frame), the worker waits for the work to stop, frees its slot and
//!   retries; a panic in a task is a failure, not a dead worker;
//! - transient errors are retried with exponential backoff: the message is re-sent with
//!   `retries + 1` to wait in the broker (RabbitMQ delay queues), not in a worker slot;
//! - a message not yet due (a Celery ETA) is parked the same way;
//! - a stop request (SIGTERM) stops taking messages and lets the tasks in hand finish.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::Utc;
use futures::FutureExt;
use serde_json::Value;
use tokio::sync::{watch, Semaphore};

use crate::backend::{celery_exception, Backend, TaskStatus};
use crate::broker::{Broker, Incoming};
use crate::tasks::TaskMessage;
use argus_common::limits::Limits;

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

/// Raised to stop a task's work (time limit, cancelled video); the work checks it often and
/// returns early. Cheap to clone and to check from blocking code.
#[derive(Clone, Default, Debug)]
pub struct StopFlag(Arc<OnceLock<String>>);

impl StopFlag {
    /// Raises the flag; the first reason given stays.
    pub fn stop(&self, reason: impl Into<String>) {
        let _ = self.0.set(reason.into());
    }

    pub fn reason(&self) -> Option<String> {
        self.0.get().cloned()
    }
}

/// What a task gets: its message, the worker's broker and backend, and its stop flag.
#[derive(Clone)]
pub struct TaskContext {
    pub message: TaskMessage,
    pub broker: Broker,
    pub backend: Backend,
    pub stop: StopFlag,
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
    /// Below RabbitMQ's consumer timeout (30 min by default), which would otherwise close the
    /// channel under a long task and redeliver it beside the running one.
    pub time_limit: Duration,
    pub max_retries: u32,
    /// First retry delay; doubled per retry, capped at a minute.
    pub retry_delay: Duration,
    /// Starts of one delivery that did not finish before it is dead-lettered.
    pub max_starts: u64,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 2,
            time_limit: Duration::from_secs(900),
            max_retries: 3,
            retry_delay: Duration::from_secs(1),
            max_starts: 5,
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
                let reason = reason.clone();
                return self.dead_letter(incoming, None, &reason).await;
            }
        };
        let message = match TaskMessage::from_celery(&raw) {
            Ok(m) if self.handlers.contains_key(&m.task) => m,
            Ok(m) => {
                let reason = format!("no task '{}' here", m.task);
                return self.dead_letter(incoming, None, &reason).await;
            }
            Err(e) => return self.dead_letter(incoming, None, &e.to_string()).await,
        };
        let ctx = TaskContext {
            message: message.clone(),
            broker: self.broker.clone(),
            backend: self.backend.clone(),
            stop: StopFlag::default(),
        };
        let (task, id) = (&message.task, &message.id);
        // Not due yet: wait in the broker, not in this slot.
        if let Some(eta) = message.eta {
            if let Ok(wait) = (eta - Utc::now()).to_std() {
                if wait >= Duration::from_millis(250) {
                    if let Err(e) = self
                        .broker
                        .send_later(crate::tasks::queue_of(task), &message, wait)
                        .await
                    {
                        tracing::error!(task, task_id = id, error = %e, "cannot park until due");
                        return; // unacked: redelivered
                    }
                    let _ = incoming.ack().await;
                    return;
                }
            }
        }
        // A delivery that keeps being started and never finishing kills its worker.
        match self.backend.count_start(id, message.retries).await {
            Ok(starts) if starts > self.options.max_starts => {
                let reason = format!(
                    "{task} was started {} times without finishing (its worker died each time)",
                    starts - 1
                );
                self.dead_letter(incoming, Some(ctx), &reason).await;
                let _ = self.backend.clear_starts(id, message.retries).await;
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(task, task_id = id, error = %e, "cannot count starts"),
        }
        let handler = self.handlers[&message.task].clone();
        let _ = self
            .backend
            .store_result(id, TaskStatus::Started, &Value::Null, None)
            .await;
        let outcome = self.run_limited(handler, ctx.clone()).await;
        match outcome {
            Ok(result) => {
                self.stats.succeeded.fetch_add(1, Ordering::Relaxed);
                tracing::info!(task, task_id = id, "succeeded");
                if let Some(result) = result {
                    let _ = self
                        .backend
                        .store_result(id, TaskStatus::Success, &result, None)
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
                let queue = crate::tasks::queue_of(task);
                if let Err(send) = self.broker.send_later(queue, &again, delay).await {
                    // Not acked: the broker redelivers the original instead.
                    tracing::error!(task, task_id = id, error = %send, "cannot re-queue for retry");
                    return;
                }
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                let retry = celery_exception("RuntimeError", "builtins", &e);
                let _ = self
                    .backend
                    .store_result(id, TaskStatus::Retry, &retry, None)
                    .await;
            }
            Err(e) => self.fail(&ctx, &e.to_string()).await,
        }
        let _ = self.backend.clear_starts(id, message.retries).await;
        if let Err(e) = incoming.ack().await {
            tracing::warn!(task, task_id = id, error = %e, "ack failed; the broker will redeliver");
        }
    }

    /// Runs a task under the time limit. Past the limit its stop flag is raised and the work
    /// is awaited until it has stopped: only then is its slot free (and a retry may start), so
    /// the concurrency limit holds and no orphan runs beside its retry.
    async fn run_limited(&self, handler: Handler, ctx: TaskContext) -> TaskOutput {
        let stop = ctx.stop.clone();
        let mut run = Box::pin(AssertUnwindSafe(handler(ctx)).catch_unwind());
        let limit = self.options.time_limit;
        let finished = tokio::select! {
            done = &mut run => Some(done),
            _ = tokio::time::sleep(limit) => None,
        };
        let done = match finished {
            Some(done) => done,
            None => {
                stop.stop(format!("time limit of {limit:?} exceeded"));
                let started = std::time::Instant::now();
                let _ = run.await; // returns at the work's next check of the flag
                tracing::warn!(waited = ?started.elapsed(), "task stopped at its time limit");
                return Err(TaskError::Transient(format!(
                    "time limit of {limit:?} exceeded"
                )));
            }
        };
        match done {
            Ok(result) => result,
            Err(panic) => Err(TaskError::Permanent(format!(
                "task panicked: {}",
                panic_message(&panic)
            ))),
        }
    }

    /// A task failed for good: FAILURE is stored and the failure hook runs.
    async fn fail(&self, ctx: &TaskContext, error: &str) {
        let (task, id) = (&ctx.message.task, &ctx.message.id);
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        tracing::error!(task, task_id = id, error, "failed");
        let failure = celery_exception("RuntimeError", "builtins", error);
        let _ = self
            .backend
            .store_result(id, TaskStatus::Failure, &failure, Some(error.to_string()))
            .await;
        if let Some(hook) = &self.on_failure {
            hook(ctx.clone(), error.to_string()).await;
        }
    }

    /// Sends the delivery to the dead-letter queue and acks it; for a task we run (`ctx`), it
    /// also fails, so that what waits on it is told.
    async fn dead_letter(&self, incoming: Incoming, ctx: Option<TaskContext>, reason: &str) {
        match &incoming.message {
            Ok(raw) => tracing::error!(
                task = raw.headers.task,
                task_id = raw.headers.id,
                reason,
                "message dead-lettered"
            ),
            Err(_) => tracing::error!(reason, "undecodable message dead-lettered"),
        }
        if let Err(e) = self.broker.dead_letter(&incoming, reason).await {
            // Not acked: better redelivered than lost.
            tracing::error!(error = %e, "cannot dead-letter; leaving the message unacked");
            return;
        }
        self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        if let Some(ctx) = ctx {
            self.fail(&ctx, reason).await;
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
    #[command(flatten)]
    pub limits: Limits,
}

impl WorkerArgs {
    pub fn options(&self) -> WorkerOptions {
        WorkerOptions {
            concurrency: self.concurrency.max(1),
            time_limit: Duration::from_secs(self.task_time_limit.max(1)),
            max_retries: self.max_retries,
            max_starts: self.max_starts.max(1),
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
