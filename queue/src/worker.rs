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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argus_common::limits::Limits;
use chrono::Utc;
use futures::FutureExt;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::backend::{celery_exception, Backend, TaskStatus};
use crate::broker::{Broker, DeliveryInfo, Incoming};
use crate::events::{Events, Node};
use crate::metrics::WorkerMetrics;
use crate::tasks::TaskMessage;

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
    /// The Celery node name (events, remote control), already expanded.
    pub node_name: String,
    /// Task events on at start (`enable_events`/`disable_events` switch them).
    pub task_events: bool,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 2,
            time_limit: Duration::from_secs(900),
            max_retries: 3,
            retry_delay: Duration::from_secs(1),
            max_starts: 5,
            node_name: crate::events::node_name(DEFAULT_NODE_NAME, "worker"),
            task_events: true,
        }
    }
}

/// `%n` the role, `%p` the process id, `%h` the host name.
pub const DEFAULT_NODE_NAME: &str = "%n-%p@%h";

/// Revoked task ids are remembered this long, at most this many (as Celery does).
const REVOKED_KEEP: Duration = Duration::from_secs(3 * 3600);
const REVOKED_MAX: usize = 50_000;

/// A task running now, for `inspect active` and `revoke --terminate`.
struct Active {
    message: TaskMessage,
    started: f64,
    delivery: DeliveryInfo,
    stop: StopFlag,
}

#[derive(Default)]
struct Revoked {
    ids: HashMap<String, Instant>,
    order: VecDeque<String>,
}

impl Revoked {
    fn insert(&mut self, id: &str) {
        while self.order.len() >= REVOKED_MAX
            || self
                .order
                .front()
                .is_some_and(|old| self.ids[old].elapsed() > REVOKED_KEEP)
        {
            let old = self.order.pop_front().expect("not empty");
            self.ids.remove(&old);
        }
        if self.ids.insert(id.to_string(), Instant::now()).is_none() {
            self.order.push_back(id.to_string());
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.ids
            .get(id)
            .is_some_and(|at| at.elapsed() <= REVOKED_KEEP)
    }
}

/// Called when a task id is revoked (`celery control revoke`), e.g. to cancel its video.
type RevokeHook =
    Arc<dyn Fn(Backend, String) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

pub struct Worker {
    broker: Broker,
    backend: Backend,
    handlers: HashMap<String, Handler>,
    on_failure: Option<FailureHook>,
    on_revoke: Option<RevokeHook>,
    options: WorkerOptions,
    metrics: Arc<WorkerMetrics>,
    events: Events,
    events_rx: Mutex<Option<mpsc::Receiver<Value>>>,
    /// One permit per task slot; `pool_grow`/`pool_shrink` add and take them.
    permits: Arc<Semaphore>,
    concurrency: AtomicUsize,
    /// Raised by `celery control shutdown`: stop as on SIGTERM.
    shutdown: watch::Sender<bool>,
    /// Where the consumers put what they take; `None` once the worker stops taking messages.
    merged: Mutex<Option<mpsc::Sender<Incoming>>>,
    consumers: Mutex<BTreeMap<String, watch::Sender<bool>>>,
    consuming: AtomicUsize,
    active: Mutex<HashMap<String, Active>>,
    /// Tasks received, by name (`stats.total`).
    totals: Mutex<BTreeMap<String, u64>>,
    revoked: Mutex<Revoked>,
}

impl Worker {
    pub fn new(broker: Broker, backend: Backend, options: WorkerOptions) -> Worker {
        let node = Arc::new(Node::new(options.node_name.clone()));
        let (events, events_rx) = Events::new(node, options.task_events);
        let metrics = WorkerMetrics::new();
        metrics.concurrency.set(options.concurrency as i64);
        Worker {
            broker,
            backend,
            handlers: HashMap::new(),
            on_failure: None,
            on_revoke: None,
            permits: Arc::new(Semaphore::new(options.concurrency)),
            concurrency: AtomicUsize::new(options.concurrency),
            options,
            metrics,
            events,
            events_rx: Mutex::new(Some(events_rx)),
            shutdown: watch::channel(false).0,
            merged: Mutex::new(None),
            consumers: Mutex::default(),
            consuming: AtomicUsize::new(0),
            active: Mutex::default(),
            totals: Mutex::default(),
            revoked: Mutex::default(),
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

    /// Runs `hook(backend, task_id)` for every id revoked by remote control (on each node:
    /// make it idempotent).
    pub fn on_revoke<F, Fut>(mut self, hook: F) -> Self
    where
        F: Fn(Backend, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_revoke = Some(Arc::new(move |b, id| Box::pin(hook(b, id))));
        self
    }

    /// Uses `metrics` (served by the binary on `ARGUS_METRICS_BIND`) instead of a registry of
    /// the worker's own.
    pub fn with_metrics(mut self, metrics: Arc<WorkerMetrics>) -> Self {
        metrics
            .concurrency
            .set(self.concurrency.load(Ordering::Relaxed) as i64);
        self.metrics = metrics;
        self
    }

    pub fn metrics(&self) -> &Arc<WorkerMetrics> {
        &self.metrics
    }

    pub fn node(&self) -> &Arc<Node> {
        self.events.node()
    }

    /// Consumes `queues` until `stop` turns true (or remote control says `shutdown`), then
    /// waits for the tasks in hand. On RabbitMQ the worker also publishes Celery events and
    /// answers remote control ([`crate::control`]).
    pub async fn run(self, queues: &[&str], mut stop: watch::Receiver<bool>) {
        if *stop.borrow() {
            return; // stopped before it started
        }
        let this = Arc::new(self);
        let (done_tx, done_rx) = watch::channel(false);
        let events_rx = this.events_rx.lock().expect("not poisoned").take();
        let control = match (&this.broker, events_rx) {
            (Broker::Amqp(amqp), Some(events)) => Some(tokio::spawn(crate::control::run(
                this.clone(),
                amqp.url().to_string(),
                events,
                done_rx,
            ))),
            _ => None,
        };
        let (merged_tx, mut merged) = mpsc::channel::<Incoming>(1);
        *this.merged.lock().expect("not poisoned") = Some(merged_tx);
        for queue in queues {
            let _ = this.add_consumer(queue);
        }
        let mut shutdown = this.shutdown.subscribe();
        loop {
            let permit = tokio::select! {
                _ = stop.changed() => break,
                _ = shutdown.changed() => break,
                p = this.permits.clone().acquire_owned() => p.expect("semaphore open"),
            };
            let incoming = tokio::select! {
                _ = stop.changed() => break,
                _ = shutdown.changed() => break,
                m = merged.recv() => match m { Some(m) => m, None => break },
            };
            let this = this.clone();
            tokio::spawn(async move {
                this.handle(incoming).await;
                drop(permit);
            });
        }
        // Stop taking messages: what was prefetched but not started goes back to the broker at
        // once (a delivery dropped unacked is handed back), while each consumer keeps its
        // channel until the tasks it handed out are acked (`amqp::drain`): nothing in hand is
        // redelivered to another worker. Then let the tasks in hand finish.
        this.merged.lock().expect("not poisoned").take();
        for (_, cancel) in std::mem::take(&mut *this.consumers.lock().expect("not poisoned")) {
            let _ = cancel.send(true);
        }
        drop(merged);
        let slots = this.concurrency.load(Ordering::Relaxed) as u32;
        let _ = this.permits.acquire_many(slots).await;
        let _ = done_tx.send(true);
        if let Some(control) = control {
            let _ = tokio::time::timeout(Duration::from_secs(5), control).await;
        }
        tracing::info!("worker stopped");
    }

    /// Starts consuming `queue`; false when it already is.
    fn add_consumer(self: &Arc<Self>, queue: &str) -> Result<bool, &'static str> {
        let Some(tx) = self.merged.lock().expect("not poisoned").clone() else {
            return Err("the worker is stopping");
        };
        let mut consumers = self.consumers.lock().expect("not poisoned");
        if consumers.contains_key(queue) {
            return Ok(false);
        }
        let (cancel_tx, cancel) = watch::channel(false);
        consumers.insert(queue.to_string(), cancel_tx);
        let (this, queue) = (self.clone(), queue.to_string());
        tokio::spawn(async move { this.consume_forever(&queue, tx, cancel).await });
        Ok(true)
    }

    fn cancel_consumer(&self, queue: &str) -> bool {
        match self.consumers.lock().expect("not poisoned").remove(queue) {
            Some(cancel) => {
                let _ = cancel.send(true);
                true
            }
            None => false,
        }
    }

    fn set_consuming(&self, delta: isize) {
        let now = if delta > 0 {
            self.consuming.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.consuming.fetch_sub(1, Ordering::Relaxed) - 1
        };
        let wanted = self.consumers.lock().expect("not poisoned").len();
        self.metrics
            .broker_connected
            .set((wanted > 0 && now >= wanted) as i64);
    }

    /// Consumes one queue, reconnecting when the broker goes away, until cancelled.
    async fn consume_forever(
        &self,
        queue: &str,
        tx: mpsc::Sender<Incoming>,
        mut cancel: watch::Receiver<bool>,
    ) {
        let mut backoff = Duration::from_millis(500);
        while !*cancel.borrow() {
            match self.broker.consume(queue).await {
                Ok(mut rx) => {
                    backoff = Duration::from_millis(500);
                    tracing::info!(queue, broker = %self.broker.safe_url(), "consuming");
                    self.set_consuming(1);
                    loop {
                        let incoming = tokio::select! {
                            _ = cancel.changed() => None,
                            i = rx.recv() => i,
                        };
                        let Some(incoming) = incoming else { break };
                        if tx.send(incoming).await.is_err() {
                            break;
                        }
                    }
                    self.set_consuming(-1);
                    if *cancel.borrow() || tx.is_closed() {
                        tracing::info!(queue, "stopped consuming");
                        return;
                    }
                    tracing::warn!(queue, "consumer closed; reconnecting");
                }
                Err(e) => tracing::warn!(queue, error = %e, "cannot consume; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = cancel.changed() => return,
            }
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
                        return hand_back(incoming).await;
                    }
                    let _ = incoming.ack().await;
                    return;
                }
            }
        }
        *self
            .totals
            .lock()
            .expect("not poisoned")
            .entry(task.clone())
            .or_default() += 1;
        self.events.received(&message);
        if self.is_revoked(&message) {
            tracing::info!(task, task_id = id, "revoked: discarded");
            self.revoked_task(&ctx, false).await;
            let _ = incoming.ack().await;
            return;
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
        let started = crate::events::now();
        if let Some(sent) = incoming.sent_at {
            let due = message.eta.map(|t| t.timestamp_millis() as f64 / 1000.0);
            let since = due.map_or(sent, |due| due.max(sent));
            self.metrics
                .queue_wait_seconds
                .with_label_values(&[task])
                .observe((started - since).max(0.0));
        }
        self.active.lock().expect("not poisoned").insert(
            id.clone(),
            Active {
                message: message.clone(),
                started,
                delivery: incoming.delivery.clone(),
                stop: ctx.stop.clone(),
            },
        );
        let active = self.metrics.active.with_label_values(&[task]);
        active.inc();
        self.events.task("task-started", id, json!({}));
        let outcome = self.run_limited(handler, ctx.clone()).await;
        active.dec();
        self.active.lock().expect("not poisoned").remove(id);
        let runtime = crate::events::now() - started;
        self.metrics
            .task_seconds
            .with_label_values(&[task])
            .observe(runtime);
        if self.is_revoked(&message) {
            // Revoked with terminate while it ran: whatever it returned, it was stopped.
            tracing::info!(task, task_id = id, "revoked: terminated");
            self.revoked_task(&ctx, true).await;
        } else {
            match outcome {
                Ok(result) => {
                    self.count(task, "succeeded");
                    tracing::info!(task, task_id = id, "succeeded");
                    let shown = result.clone().unwrap_or(Value::Null);
                    self.events.task(
                        "task-succeeded",
                        id,
                        json!({"result": crate::events::py_repr(&shown), "runtime": runtime}),
                    );
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
                    again.eta =
                        Some(Utc::now() + chrono::Duration::from_std(delay).expect("small"));
                    tracing::warn!(task, task_id = id, error = %e, retry = again.retries, ?delay, "retrying");
                    let queue = crate::tasks::queue_of(task);
                    if let Err(send) = self.broker.send_later(queue, &again, delay).await {
                        // The original goes back to its queue instead; handing it back is
                        // not a crash, so it does not count as a start.
                        tracing::error!(task, task_id = id, error = %send, "cannot re-queue for retry");
                        let _ = self.backend.clear_starts(id, message.retries).await;
                        return hand_back(incoming).await;
                    }
                    self.count(task, "retried");
                    self.events.task(
                        "task-retried",
                        id,
                        json!({
                            "exception": crate::events::exception_repr("RuntimeError", &e),
                            "traceback": format!("RuntimeError: {e}"),
                        }),
                    );
                    let retry = celery_exception("RuntimeError", "builtins", &e);
                    let _ = self
                        .backend
                        .store_result(id, TaskStatus::Retry, &retry, None)
                        .await;
                }
                Err(e) => self.fail(&ctx, &e.to_string()).await,
            }
        }
        let _ = self.backend.clear_starts(id, message.retries).await;
        if let Err(e) = incoming.ack().await {
            tracing::warn!(task, task_id = id, error = %e, "ack failed; the broker will redeliver");
        }
    }

    fn count(&self, task: &str, outcome: &str) {
        self.metrics.tasks.with_label_values(&[task, outcome]).inc();
    }

    fn is_revoked(&self, message: &TaskMessage) -> bool {
        self.revoked
            .lock()
            .expect("not poisoned")
            .contains(&message.id)
    }

    /// A revoked task: REVOKED is stored, `task-revoked` sent, the revoke hook runs (a
    /// revoked `process_video` cancels its video), then the failure hook (a revoked chunk
    /// ends its video: it would never complete).
    async fn revoked_task(&self, ctx: &TaskContext, terminated: bool) {
        let (task, id) = (&ctx.message.task, &ctx.message.id);
        self.count(task, "revoked");
        self.events.task(
            "task-revoked",
            id,
            json!({
                "terminated": terminated,
                "signum": if terminated { json!("SIGTERM") } else { Value::Null },
                "expired": false,
            }),
        );
        let reason = format!("{task} {id} was revoked");
        let revoked = celery_exception("TaskRevokedError", "celery.exceptions", &reason);
        let _ = self
            .backend
            .store_result(id, TaskStatus::Revoked, &revoked, None)
            .await;
        if let Some(hook) = &self.on_revoke {
            hook(self.backend.clone(), id.clone()).await;
        }
        if let Some(hook) = &self.on_failure {
            hook(ctx.clone(), reason).await;
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
        self.count(task, "failed");
        tracing::error!(task, task_id = id, error, "failed");
        self.events.task(
            "task-failed",
            id,
            json!({
                "exception": crate::events::exception_repr("RuntimeError", error),
                "traceback": format!("RuntimeError: {error}"),
            }),
        );
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
            // Better redelivered than lost.
            tracing::error!(error = %e, "cannot dead-letter; handing the message back");
            return hand_back(incoming).await;
        }
        self.metrics.dead_lettered.inc();
        if let Ok(raw) = &incoming.message {
            self.count(&raw.headers.task, "dead_lettered");
            self.events
                .task("task-rejected", &raw.headers.id, json!({"requeue": false}));
        }
        if let Some(ctx) = ctx {
            self.fail(&ctx, reason).await;
        }
        let _ = incoming.ack().await;
    }

    /// Sends a worker event now (`worker-online`, `worker-heartbeat`, `worker-offline`).
    pub(crate) fn emit_worker_event(&self, kind: &str) {
        let active = self.active.lock().expect("not poisoned").len();
        let processed = self.totals.lock().expect("not poisoned").values().sum();
        self.metrics
            .events_dropped
            .set(self.events.dropped() as i64);
        self.events.worker(kind, active, processed);
    }

    /// Answers a remote control request (`celery inspect`/`control`, Flower); `None` for those
    /// that get no reply.
    pub(crate) fn control(self: &Arc<Self>, method: &str, args: &Value) -> Option<Value> {
        let ok = |text: String| Some(json!({ "ok": text }));
        match method {
            "ping" => ok("pong".into()),
            "stats" => Some(self.stats_reply()),
            "active_queues" => Some(self.queues_reply()),
            "registered" => {
                let mut names: Vec<&String> = self.handlers.keys().collect();
                names.sort();
                Some(json!(names))
            }
            "active" => {
                let safe = args["safe"].as_bool().unwrap_or(false);
                let active = self.active.lock().expect("not poisoned");
                let mut items: Vec<&Active> = active.values().collect();
                items.sort_by(|a, b| a.started.total_cmp(&b.started));
                Some(Value::Array(
                    items.into_iter().map(|a| self.task_info(a, safe)).collect(),
                ))
            }
            // A message is taken only when a slot is free, and one not yet due waits in the
            // broker: nothing is ever reserved or scheduled inside the worker.
            "reserved" | "scheduled" => Some(json!([])),
            "revoked" => {
                let revoked = self.revoked.lock().expect("not poisoned");
                Some(json!(revoked
                    .order
                    .iter()
                    .filter(|id| revoked.contains(id))
                    .collect::<Vec<_>>()))
            }
            "query_task" => {
                let ids = string_list(&args["ids"]);
                let active = self.active.lock().expect("not poisoned");
                let found: serde_json::Map<String, Value> = ids
                    .iter()
                    .filter_map(|id| {
                        active
                            .get(id)
                            .map(|a| (id.clone(), json!(["active", self.task_info(a, true)])))
                    })
                    .collect();
                Some(Value::Object(found))
            }
            "conf" => Some(self.conf_reply()),
            "enable_events" => {
                self.events.set_task_events(true);
                ok("task events enabled".into())
            }
            "disable_events" => {
                self.events.set_task_events(false);
                ok("task events disabled".into())
            }
            "heartbeat" => {
                self.emit_worker_event("worker-heartbeat");
                None
            }
            "revoke" => {
                let ids = string_list(&args["task_id"]);
                let terminate = match &args["terminate"] {
                    Value::Bool(b) => *b,
                    Value::Number(n) => n.as_f64().unwrap_or(0.0) != 0.0,
                    _ => false,
                };
                Some(self.revoke(&ids, terminate))
            }
            "shutdown" => {
                tracing::info!("shutdown requested by remote control");
                let _ = self.shutdown.send(true);
                ok(format!("worker {} shutting down", self.node().name))
            }
            "add_consumer" => match args["queue"].as_str().map(|q| (q, self.add_consumer(q))) {
                Some((queue, Ok(true))) => ok(format!("add consumer {queue}")),
                Some((queue, Ok(false))) => ok(format!("already consuming from '{queue}'")),
                Some((_, Err(why))) => Some(json!({ "error": why })),
                None => Some(json!({"error": "add_consumer needs a queue"})),
            },
            "cancel_consumer" => match args["queue"].as_str() {
                Some(queue) if self.cancel_consumer(queue) => {
                    ok(format!("no longer consuming from {queue}"))
                }
                Some(queue) => Some(json!({"error": format!("not consuming from '{queue}'")})),
                None => Some(json!({"error": "cancel_consumer needs a queue"})),
            },
            "pool_grow" => {
                let n = args["n"].as_u64().unwrap_or(1).max(1) as usize;
                self.permits.add_permits(n);
                let now = self.concurrency.fetch_add(n, Ordering::Relaxed) + n;
                self.metrics.concurrency.set(now as i64);
                ok("pool will grow".into())
            }
            "pool_shrink" => {
                let n = args["n"].as_u64().unwrap_or(1).max(1) as usize;
                let current = self.concurrency.load(Ordering::Relaxed);
                let n = n.min(current.saturating_sub(1));
                if n == 0 {
                    return Some(json!({"error": "the pool cannot shrink below one slot"}));
                }
                self.concurrency.fetch_sub(n, Ordering::Relaxed);
                self.metrics.concurrency.set((current - n) as i64);
                // Slots in use are taken as their tasks end.
                let permits = self.permits.clone();
                tokio::spawn(async move {
                    if let Ok(p) = permits.acquire_many_owned(n as u32).await {
                        p.forget();
                    }
                });
                ok("pool will shrink".into())
            }
            other => Some(json!({
                "error": format!("'{other}' is not supported by Argus workers")
            })),
        }
    }

    /// Flags `ids` as revoked: a message with one of them is discarded when it comes, a running
    /// one is stopped when `terminate`; the revoke hook runs for each.
    fn revoke(self: &Arc<Self>, ids: &[String], terminate: bool) -> Value {
        {
            let mut revoked = self.revoked.lock().expect("not poisoned");
            for id in ids {
                revoked.insert(id);
            }
        }
        if terminate {
            let active = self.active.lock().expect("not poisoned");
            for id in ids {
                if let Some(a) = active.get(id) {
                    a.stop.stop("revoked");
                }
            }
        }
        if let Some(hook) = self.on_revoke.clone() {
            let (backend, ids) = (self.backend.clone(), ids.to_vec());
            tokio::spawn(async move {
                for id in ids {
                    hook(backend.clone(), id).await;
                }
            });
        }
        json!({"ok": format!("tasks {} flagged as revoked", ids.join(", "))})
    }

    fn task_info(&self, a: &Active, safe: bool) -> Value {
        let m = &a.message;
        let (args, kwargs) = if safe {
            (
                json!(crate::events::py_repr(&Value::Array(m.args.clone()))),
                json!(crate::events::py_repr(&Value::Object(m.kwargs.clone()))),
            )
        } else {
            (json!(m.args), json!(m.kwargs))
        };
        json!({
            "id": m.id,
            "name": m.task,
            "args": args,
            "kwargs": kwargs,
            "type": m.task,
            "hostname": self.node().name,
            "time_start": a.started,
            "acknowledged": false,
            "delivery_info": {
                "exchange": a.delivery.exchange,
                "routing_key": a.delivery.routing_key,
                "priority": 0,
                "redelivered": a.delivery.redelivered,
            },
            "worker_pid": self.node().pid,
        })
    }

    fn stats_reply(&self) -> Value {
        let concurrency = self.concurrency.load(Ordering::Relaxed);
        json!({
            "total": *self.totals.lock().expect("not poisoned"),
            "pid": self.node().pid,
            "clock": self.node().clock().to_string(),
            "uptime": self.node().started.elapsed().as_secs(),
            "prefetch_count": concurrency,
            "pool": {
                "implementation": "argus:tokio",
                "max-concurrency": concurrency,
                "processes": [self.node().pid],
                "max-tasks-per-child": "N/A",
                "timeouts": [0, self.options.time_limit.as_secs()],
            },
            "broker": broker_info(&self.broker),
            "rusage": rusage(),
        })
    }

    fn queues_reply(&self) -> Value {
        let consumers = self.consumers.lock().expect("not poisoned");
        Value::Array(
            consumers
                .keys()
                .map(|q| {
                    json!({
                        "name": q,
                        "exchange": {"name": q, "type": "direct", "arguments": null,
                                     "durable": true, "passive": false, "auto_delete": false,
                                     "delivery_mode": null, "no_declare": false},
                        "routing_key": q,
                        "queue_arguments": null,
                        "binding_arguments": null,
                        "consumer_arguments": null,
                        "durable": true,
                        "exclusive": false,
                        "auto_delete": false,
                        "no_ack": false,
                        "alias": null,
                        "bindings": [],
                        "no_declare": null,
                        "expires": null,
                        "message_ttl": null,
                        "max_length": null,
                        "max_length_bytes": null,
                        "max_priority": null,
                    })
                })
                .collect(),
        )
    }

    fn conf_reply(&self) -> Value {
        json!({
            "broker_url": self.broker.safe_url(),
            "worker_concurrency": self.concurrency.load(Ordering::Relaxed),
            "worker_prefetch_multiplier": 1,
            "task_acks_late": true,
            "task_time_limit": self.options.time_limit.as_secs(),
            "task_max_retries": self.options.max_retries,
            "worker_send_task_events": self.events.task_events(),
            "task_serializer": "json",
            "result_serializer": "json",
            "accept_content": ["json"],
            "include": self.handlers.keys().collect::<Vec<_>>(),
        })
    }
}

/// Gives a delivery whose disposition could not be published back to its queue (dropping an
/// unacked delivery requeues it), after a pause: a broker that refuses publishes is not spun on.
async fn hand_back(incoming: Incoming) {
    tokio::time::sleep(HAND_BACK_PAUSE).await;
    drop(incoming);
}

const HAND_BACK_PAUSE: Duration = Duration::from_secs(1);

fn string_list(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// The broker as `celery inspect stats` shows it (an object: Flower's worker page needs one).
fn broker_info(broker: &Broker) -> Value {
    let Broker::Amqp(amqp) = broker else {
        return json!({"transport": broker.safe_url().split("://").next().unwrap_or(""),
                      "alternates": []});
    };
    let uri: Result<lapin::uri::AMQPUri, _> = amqp.url().parse();
    match uri {
        Ok(uri) => json!({
            "hostname": uri.authority.host,
            "port": uri.authority.port,
            "transport": "amqp",
            "virtual_host": uri.vhost,
            "userid": uri.authority.userinfo.username,
            "ssl": matches!(uri.scheme, lapin::uri::AMQPScheme::AMQPS),
            "heartbeat": uri.query.heartbeat.map(|h| h as f64),
            "insist": false,
            "login_method": "PLAIN",
            "uri_prefix": null,
            "alternates": [],
        }),
        Err(_) => json!({"transport": "amqp", "alternates": []}),
    }
}

/// `getrusage(RUSAGE_SELF)` as Celery's stats show it.
fn rusage() -> Value {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return json!("N/A");
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    json!({
        "utime": secs(usage.ru_utime),
        "stime": secs(usage.ru_stime),
        "maxrss": usage.ru_maxrss,
        "minflt": usage.ru_minflt,
        "majflt": usage.ru_majflt,
        "nvcsw": usage.ru_nvcsw,
        "nivcsw": usage.ru_nivcsw,
    })
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
        let broker = Broker::connect(
            &self.broker_url,
            concurrency.clamp(1, u16::MAX as usize) as u16,
        )
        .await?;
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
