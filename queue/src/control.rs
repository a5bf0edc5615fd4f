//! The control connection of a worker on RabbitMQ: what makes it visible and steerable to
//! Celery's tools, apart from the task traffic so that it never waits behind detection.
//! - It publishes the worker's events (online, a heartbeat every 2 s, offline; task events)
//!   on the `celeryev` topic exchange, as Flower and `celery events` read them.
//! - It answers remote control (`celery inspect`, `celery control`, Flower's buttons) on the
//!   `celery.pidbox` fanout exchange, through the exclusive queue `<node>.celery.pidbox`,
//!   replying on `reply.celery.pidbox` with the request's ticket (kombu's `pidbox.Mailbox`).
//!
//! It reconnects with back-off when the broker goes away, like the consumers; events queued
//! meanwhile are published once it is back.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use crate::events::{self, HEARTBEAT_FREQ_S};
use crate::worker::Worker;

const EVENT_EXCHANGE: &str = "celeryev";
const PIDBOX_EXCHANGE: &str = "celery.pidbox";
const REPLY_EXCHANGE: &str = "reply.celery.pidbox";

/// Runs the control connection until `done` turns true (the worker has finished the tasks in
/// hand); then sends `worker-offline` and closes.
pub(crate) async fn run(
    worker: Arc<Worker>,
    amqp: Arc<crate::amqp::AmqpBroker>,
    mut events: mpsc::Receiver<Value>,
    mut done: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match open(&amqp, &worker.node().name).await {
            Ok((connection, channel, mut requests)) => {
                backoff = Duration::from_millis(500);
                tracing::info!(node = worker.node().name, "events and remote control on");
                worker.emit_worker_event("worker-online");
                let mut heartbeat =
                    tokio::time::interval(Duration::from_secs_f64(HEARTBEAT_FREQ_S));
                let closed = loop {
                    tokio::select! {
                        _ = done.changed() => break true,
                        event = events.recv() => {
                            let Some(event) = event else { break true };
                            if let Err(e) = publish_event(&channel, &event).await {
                                tracing::warn!(error = %e, "cannot publish an event; reconnecting");
                                break false;
                            }
                        }
                        request = requests.next() => match request {
                            Some(Ok(delivery)) => {
                                handle(&worker, &channel, &delivery.data, delivery.properties.headers().as_ref()).await;
                            }
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "remote control stopped; reconnecting");
                                break false;
                            }
                            None => break false,
                        },
                        _ = heartbeat.tick() => worker.emit_worker_event("worker-heartbeat"),
                    }
                };
                if closed {
                    // Publish what is still queued, then say goodbye.
                    worker.emit_worker_event("worker-offline");
                    while let Ok(event) = events.try_recv() {
                        let _ = publish_event(&channel, &event).await;
                    }
                    let _ = connection.close(200, "worker stopped").await;
                    return;
                }
                let _ = connection.close(200, "reconnecting").await;
            }
            Err(e) => tracing::warn!(error = %e, "no control connection; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = done.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Opens the connection, declares the exchanges as Celery and kombu declare them, and starts
/// consuming the node's pidbox queue.
async fn open(
    amqp: &crate::amqp::AmqpBroker,
    node: &str,
) -> Result<(Connection, Channel, lapin::Consumer), lapin::Error> {
    let connection = amqp.open_connection().await?;
    let channel = connection.create_channel().await?;
    let exchange = |durable| ExchangeDeclareOptions {
        durable,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            EVENT_EXCHANGE,
            ExchangeKind::Topic,
            exchange(true),
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            PIDBOX_EXCHANGE,
            ExchangeKind::Fanout,
            exchange(false),
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            REPLY_EXCHANGE,
            ExchangeKind::Direct,
            exchange(false),
            FieldTable::default(),
        )
        .await?;
    let queue = format!("{node}.celery.pidbox");
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), AMQPValue::LongInt(10_000));
    args.insert("x-message-ttl".into(), AMQPValue::LongInt(300_000));
    channel
        .queue_declare(
            &queue,
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await?;
    channel
        .queue_bind(
            &queue,
            PIDBOX_EXCHANGE,
            "",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let requests = channel
        .basic_consume(
            &queue,
            &format!("{node}-pidbox"),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok((connection, channel, requests))
}

fn json_properties(headers: FieldTable, delivery_mode: u8) -> BasicProperties {
    BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_content_encoding(ShortString::from("utf-8"))
        .with_headers(headers)
        .with_delivery_mode(delivery_mode)
}

async fn publish_event(channel: &Channel, event: &Value) -> Result<(), lapin::Error> {
    let mut headers = FieldTable::default();
    let hostname = event["hostname"].as_str().unwrap_or_default().to_string();
    headers.insert("hostname".into(), AMQPValue::LongString(hostname.into()));
    let body = serde_json::to_vec(event).expect("events serialize");
    channel
        .basic_publish(
            EVENT_EXCHANGE,
            &events::routing_key(event),
            BasicPublishOptions::default(),
            &body,
            json_properties(headers, 1),
        )
        .await?;
    Ok(())
}

/// Handles one pidbox request: ignored unless meant for this node; answered when it asks for
/// a reply (a cast does not).
async fn handle(
    worker: &Arc<Worker>,
    channel: &Channel,
    body: &[u8],
    headers: Option<&FieldTable>,
) {
    let node = worker.node();
    if let Some(clock) = header(headers, "clock").and_then(as_f64) {
        node.observe(clock as u64);
    }
    if let Some(expires) = header(headers, "expires").and_then(as_f64) {
        if expires > 0.0 && expires < events::now() {
            return; // the caller stopped listening
        }
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        tracing::warn!("undecodable remote control request ignored");
        return;
    };
    if !addressed_to(&request, &node.name) {
        return;
    }
    let method = request["method"].as_str().unwrap_or_default();
    let arguments = match &request["arguments"] {
        Value::Object(_) => request["arguments"].clone(),
        _ => json!({}),
    };
    tracing::debug!(method, "remote control");
    let reply = worker.control(method, &arguments);
    let (Some(reply), Some(reply_to)) = (reply, request.get("reply_to")) else {
        return;
    };
    let exchange = reply_to["exchange"].as_str().unwrap_or(REPLY_EXCHANGE);
    let routing_key = reply_to["routing_key"].as_str().unwrap_or_default();
    let mut headers = FieldTable::default();
    if let Some(ticket) = request["ticket"].as_str() {
        headers.insert("ticket".into(), AMQPValue::LongString(ticket.into()));
    }
    headers.insert("clock".into(), AMQPValue::LongLongInt(node.tick() as i64));
    let body = serde_json::to_vec(&json!({ node.name.clone(): reply })).expect("replies serialize");
    if let Err(e) = channel
        .basic_publish(
            exchange,
            routing_key,
            BasicPublishOptions::default(),
            &body,
            json_properties(headers, 1),
        )
        .await
    {
        tracing::warn!(method, error = %e, "cannot reply to remote control");
    }
}

/// kombu's rule: a request without destination is for every node; one with a destination only
/// for those named; else a `pattern` matched with `matcher` (`glob` or `pcre`).
fn addressed_to(request: &Value, node: &str) -> bool {
    match &request["destination"] {
        Value::Array(names) if !names.is_empty() => names.iter().any(|n| n == node),
        Value::String(name) if !name.is_empty() => name == node,
        _ => match (request["pattern"].as_str(), request["matcher"].as_str()) {
            (Some(pattern), Some("pcre")) => regex::Regex::new(pattern)
                .map(|re| re.is_match(node))
                .unwrap_or(false),
            (Some(pattern), _) => glob_match(pattern, node),
            _ => true,
        },
    }
}

/// Shell-style `*` and `?` (fnmatch, as kombu's `glob` matcher).
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn header<'a>(headers: Option<&'a FieldTable>, name: &str) -> Option<&'a AMQPValue> {
    headers?.inner().get(name)
}

fn as_f64(value: &AMQPValue) -> Option<f64> {
    Some(match value {
        AMQPValue::ShortShortInt(v) => *v as f64,
        AMQPValue::ShortShortUInt(v) => *v as f64,
        AMQPValue::ShortInt(v) => *v as f64,
        AMQPValue::ShortUInt(v) => *v as f64,
        AMQPValue::LongInt(v) => *v as f64,
        AMQPValue::LongUInt(v) => *v as f64,
        AMQPValue::LongLongInt(v) => *v as f64,
        AMQPValue::Float(v) => *v as f64,
        AMQPValue::Double(v) => *v,
        AMQPValue::Timestamp(v) => *v as f64,
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).parse().ok()?,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations() {
        let me = "detector@h";
        assert!(addressed_to(&json!({"destination": null}), me));
        assert!(addressed_to(&json!({"destination": []}), me));
        assert!(addressed_to(&json!({"destination": ["a@h", me]}), me));
        assert!(!addressed_to(&json!({"destination": ["a@h"]}), me));
        assert!(addressed_to(
            &json!({"destination": null, "pattern": "detector@*", "matcher": "glob"}),
            me
        ));
        assert!(!addressed_to(
            &json!({"destination": null, "pattern": "processor@*", "matcher": "glob"}),
            me
        ));
        assert!(addressed_to(
            &json!({"destination": null, "pattern": "^det.*h$", "matcher": "pcre"}),
            me
        ));
        assert!(glob_match("*@h?st", "x@host"));
        assert!(!glob_match("*@h?st", "x@hoost"));
    }
}
