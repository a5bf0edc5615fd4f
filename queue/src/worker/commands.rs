//! The remote control commands a worker answers (`celery inspect`/`control`, Flower) and the
//! worker events it sends; [`crate::control`] carries them over AMQP.

use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::broker::Broker;

impl Worker {
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
