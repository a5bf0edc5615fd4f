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
//!
//! This module keeps the loop (consumers, slots, the drain); `dispositions` decides what
//! happens to each delivery, `commands` answers remote control, `args` holds the options every
//! worker binary takes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::backend::Backend;
use crate::broker::{Broker, DeliveryInfo, Incoming};
use crate::events::{Events, Node};
use crate::message::TaskMessage;
use crate::metrics::WorkerMetrics;

mod args;
mod commands;
mod dispositions;

pub use args::{stop_on_signals, WorkerArgs};

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

/// How long a stopping worker waits for its tasks in hand past their time limit (at most the
/// time limit again) before it exits without them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

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
                amqp.clone(),
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
        // A task past its time limit is stopped at its next check of the flag; one that
        // never checks, or a disposition stuck (a publish confirm held by a RabbitMQ alarm),
        // would hold the drain until SIGKILL. The worker's own deadline comes first (below
        // the chart's grace period: time limit + 60 s), and says what it leaves.
        let limit = this.options.time_limit;
        let deadline = limit + SHUTDOWN_GRACE.min(limit);
        if tokio::time::timeout(deadline, this.permits.acquire_many(slots))
            .await
            .is_err()
        {
            let in_hand = slots as usize - this.permits.available_permits().min(slots as usize);
            tracing::error!(
                in_hand,
                ?deadline,
                "shutdown deadline passed with tasks still in hand: exiting without them \
                 (RabbitMQ redelivers what was not acked; the Redis broker transport does not)"
            );
        }
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
}
