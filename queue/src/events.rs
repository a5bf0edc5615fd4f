//! Celery events, in the shapes Flower and `celery events` read (`celery/events/`,
//! `celery/worker/`; see the wire notes in docs/operations.md): worker online/heartbeat/offline and the
//! task lifecycle. [`Events`] only queues an event; the control connection
//! ([`crate::control`]) publishes it on the `celeryev` topic exchange. Sending never blocks and
//! never fails a task: with the broker away, events wait in a bounded buffer and the oldest
//! are dropped (counted) when it is full.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use crate::message::TaskMessage;

/// Events waiting for the broker at most; beyond, new ones are dropped.
const BUFFER: usize = 4096;

/// Seconds between heartbeats; Flower marks a worker offline 2 × this after the last one.
pub const HEARTBEAT_FREQ_S: f64 = 2.0;

/// Who this worker is to Celery's tools, and the Lamport clock its messages carry.
pub struct Node {
    /// `role@host` style name: event `hostname`, pidbox queue `<name>.celery.pidbox`, replies.
    pub name: String,
    pub pid: u32,
    pub started: Instant,
    clock: AtomicU64,
}

impl Node {
    pub fn new(name: impl Into<String>) -> Node {
        Node {
            name: name.into(),
            pid: std::process::id(),
            started: Instant::now(),
            clock: AtomicU64::new(0),
        }
    }

    /// The clock for a message we send: +1.
    pub fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A message arrived carrying `clock`: ours moves past it.
    pub fn observe(&self, clock: u64) -> u64 {
        let mut current = self.clock.load(Ordering::Relaxed);
        loop {
            let next = current.max(clock) + 1;
            match self.clock.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(seen) => current = seen,
            }
        }
    }

    pub fn clock(&self) -> u64 {
        self.clock.load(Ordering::Relaxed)
    }
}

/// `ARGUS_NODE_NAME` expanded: `%n` the role, `%h` the host name, `%p` the process id (as
/// Celery's `-n`). The default `%n-%p@%h` stays unique when several workers of one role share
/// a host (tests, one box); in a pod `%h` alone is unique.
pub fn node_name(template: &str, role: &str) -> String {
    template
        .replace("%n", role)
        .replace("%h", &hostname())
        .replace("%p", &std::process::id().to_string())
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The event queue of one worker: cheap to clone.
#[derive(Clone)]
pub struct Events {
    node: Arc<Node>,
    /// Task events on (`enable_events`/`disable_events`); worker events are always sent.
    task_events: Arc<AtomicBool>,
    tx: mpsc::Sender<Value>,
    dropped: Arc<AtomicU64>,
}

impl Events {
    /// An event queue and its receiving end, which the publisher drains.
    pub fn new(node: Arc<Node>, task_events: bool) -> (Events, mpsc::Receiver<Value>) {
        let (tx, rx) = mpsc::channel(BUFFER);
        let events = Events {
            node,
            task_events: Arc::new(AtomicBool::new(task_events)),
            tx,
            dropped: Arc::default(),
        };
        (events, rx)
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    pub fn set_task_events(&self, on: bool) {
        self.task_events.store(on, Ordering::Relaxed);
    }

    pub fn task_events(&self) -> bool {
        self.task_events.load(Ordering::Relaxed)
    }

    /// Events dropped because the buffer was full (the broker was away too long).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A worker event (`worker-online`, `worker-heartbeat`, `worker-offline`).
    pub fn worker(&self, kind: &str, active: usize, processed: u64) {
        let mut event = self.envelope(kind);
        event.insert("freq".into(), json!(HEARTBEAT_FREQ_S));
        event.insert("active".into(), json!(active));
        event.insert("processed".into(), json!(processed));
        event.insert("loadavg".into(), json!(loadavg()));
        event.insert("sw_ident".into(), json!("argus"));
        event.insert("sw_ver".into(), json!(env!("CARGO_PKG_VERSION")));
        event.insert("sw_sys".into(), json!(std::env::consts::OS));
        self.push(Value::Object(event));
    }

    /// A task event (`task-started`, …) with its extra fields; nothing while task events are
    /// off.
    pub fn task(&self, kind: &str, id: &str, fields: Value) {
        if !self.task_events() {
            return;
        }
        let mut event = self.envelope(kind);
        event.insert("uuid".into(), json!(id));
        if let Value::Object(extra) = fields {
            event.extend(extra);
        }
        self.push(Value::Object(event));
    }

    /// `task-received`, with the fields Flower's task table shows.
    pub fn received(&self, message: &TaskMessage) {
        if !self.task_events() {
            return; // spare the reprs
        }
        self.task(
            "task-received",
            &message.id,
            json!({
                "name": message.task,
                "args": py_repr(&Value::Array(message.args.clone())),
                "kwargs": py_repr(&Value::Object(message.kwargs.clone())),
                "root_id": message.root_id.clone().unwrap_or_else(|| message.id.clone()),
                "parent_id": message.parent_id,
                "retries": message.retries,
                "eta": message.eta.map(|t| t.to_rfc3339()),
                "expires": Value::Null,
            }),
        );
    }

    fn envelope(&self, kind: &str) -> Map<String, Value> {
        let mut event = Map::new();
        event.insert("type".into(), json!(kind));
        event.insert("hostname".into(), json!(self.node.name));
        event.insert("timestamp".into(), json!(now()));
        event.insert("utcoffset".into(), json!(utcoffset()));
        event.insert("pid".into(), json!(self.node.pid));
        event.insert("clock".into(), json!(self.node.tick()));
        event
    }

    fn push(&self, event: Value) {
        // Closed: no publisher (a broker without events, e.g. memory://): nothing to count.
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(event) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Seconds since the epoch.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// What Python sends: `time.timezone // 3600`, hours *west* of UTC (receivers subtract it).
fn utcoffset() -> i64 {
    let east = chrono::Local::now().offset().local_minus_utc() as i64;
    (-east).div_euclid(3600)
}

fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut parts = text
        .split_whitespace()
        .map(|p| p.parse::<f64>().unwrap_or(0.0));
    [
        parts.next().unwrap_or(0.0),
        parts.next().unwrap_or(0.0),
        parts.next().unwrap_or(0.0),
    ]
}

/// The routing key of an event: its type with `-` as `.` (`task.succeeded`).
pub fn routing_key(event: &Value) -> String {
    event["type"]
        .as_str()
        .unwrap_or("unknown")
        .replace('-', ".")
}

/// A JSON value as Python's `repr` writes it: Flower reads `args`, `kwargs` and `result` as
/// strings and evaluates kwargs with `ast.literal_eval`.
pub fn py_repr(value: &Value) -> String {
    let mut out = String::new();
    write_repr(value, &mut out);
    out
}

fn write_repr(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_str_repr(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str_repr(k, out);
                out.push_str(": ");
                write_repr(v, out);
            }
            out.push('}');
        }
    }
}

fn write_str_repr(s: &str, out: &mut String) {
    // Python picks double quotes when the text holds a single quote and no double quote.
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

/// An exception as Python's `repr` writes it, e.g. `RuntimeError('no frame decoded')`.
pub fn exception_repr(exc_type: &str, message: &str) -> String {
    format!(
        "{exc_type}({})",
        py_repr(&Value::String(message.to_string()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_repr_of_json() {
        let v = json!({"video_id": "ab", "n": 3, "ok": true, "x": null, "l": [1.5, "it's"]});
        assert_eq!(
            py_repr(&v),
            r#"{'l': [1.5, "it's"], 'n': 3, 'ok': True, 'video_id': 'ab', 'x': None}"#
        );
        assert_eq!(py_repr(&json!("a'b\"c\n")), r#"'a\'b"c\n'"#);
        assert_eq!(exception_repr("ValueError", "x"), "ValueError('x')");
    }

    #[test]
    fn lamport_clock() {
        let node = Node::new("n@h");
        assert_eq!(node.tick(), 1);
        assert_eq!(node.observe(41), 42);
        assert_eq!(node.observe(3), 43);
        assert_eq!(node.tick(), 44);
    }

    #[test]
    fn node_names_expand() {
        let name = node_name("%n-%p@%h", "detector");
        assert!(name.starts_with(&format!("detector-{}@", std::process::id())));
        assert!(!name.ends_with('@'));
        assert_eq!(node_name("a@b", "x"), "a@b");
    }

    #[test]
    fn events_never_block() {
        let (events, mut rx) = Events::new(Arc::new(Node::new("n@h")), false);
        events.task("task-started", "id", json!({}));
        assert!(rx.try_recv().is_err(), "task events are off");
        events.set_task_events(true);
        for _ in 0..BUFFER + 10 {
            events.task("task-started", "id", json!({}));
        }
        assert_eq!(events.dropped(), 10);
        let first = rx.try_recv().unwrap();
        assert_eq!(first["type"], "task-started");
        assert_eq!(first["uuid"], "id");
        assert_eq!(routing_key(&first), "task.started");
        assert!(first["timestamp"].as_f64().unwrap() > 1.7e9);
    }
}
