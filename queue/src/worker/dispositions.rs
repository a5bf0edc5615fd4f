//! What happens to each delivery: decoded, run under its time limit, then acked, retried
//! (re-sent to wait in the broker), failed, dead-lettered or handed back to its queue.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use chrono::Utc;
use futures::FutureExt;
use serde_json::{json, Value};

use super::*;
use crate::backend::{celery_exception, TaskStatus};
use crate::broker::Incoming;

impl Worker {
    pub(super) async fn handle(&self, incoming: Incoming) {
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
                        .send_later(&incoming.queue, &message, wait)
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
                    let queue = &incoming.queue;
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
}
/// Gives a delivery whose disposition could not be published back to its queue (dropping an
/// unacked delivery requeues it), after a pause: a broker that refuses publishes is not spun on.
async fn hand_back(incoming: Incoming) {
    tokio::time::sleep(HAND_BACK_PAUSE).await;
    drop(incoming);
}

const HAND_BACK_PAUSE: Duration = Duration::from_secs(1);

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}
