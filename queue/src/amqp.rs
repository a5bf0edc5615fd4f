//! The RabbitMQ transport, on lapin: Celery protocol v2 messages on durable queues, publisher
//! confirms, late acks, and what the `celery` crate's AMQP broker cannot do:
//! - a delivery that cannot be decoded is forwarded to the dead-letter queue as it came (body,
//!   properties and headers), with the reason in an `x-argus-reason` header;
//! - a message not yet due (a retry's back-off, a Celery ETA) waits in the broker, in a delay
//!   queue per target queue and delay (`argus.delay.<queue>.<ms>`: a per-queue TTL, then
//!   dead-lettered back to the target), not in a worker holding it unacked.
//!
//! Work queues are declared durable with no arguments, exactly as Celery and kombu declare
//! them, so Python clients and Celery's tools share them.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use celery::protocol::{Message, TryDeserializeMessage};
use chrono::SecondsFormat;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::{mpsc, Mutex, RwLock};

use crate::broker::{Ack, BrokerError, DeliveryInfo, Incoming, RawDelivery};

/// Delays a waiting message can be parked for, in milliseconds: the longest that fits the
/// wait is used, and a message that comes back early is parked again.
const DELAYS_MS: [u64; 13] = [
    250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000,
    1_024_000,
];

/// How long opening a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

pub struct AmqpBroker {
    url: String,
    /// The certificates of `amqps://` connections.
    tls: crate::tls::Tls,
    queues: Vec<String>,
    prefetch: u16,
    conn: RwLock<Option<Arc<Link>>>,
    /// Held while a connection is being opened: one reconnect at a time (single-flight).
    reconnecting: Mutex<()>,
    declared: Mutex<HashSet<String>>,
}

/// A live connection and the channel messages are published on (in confirm mode).
struct Link {
    /// Shared by the links of one connection (a publish channel replaced on it).
    connection: Arc<Connection>,
    publish: Channel,
}

/// Connection properties on the tokio runtime (also for the control connection).
pub(crate) fn connection_properties() -> ConnectionProperties {
    ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio)
}

fn lapin_err(e: lapin::Error) -> BrokerError {
    BrokerError::Amqp(e.to_string())
}

impl AmqpBroker {
    /// Connects and declares `queues` (durable, as Celery declares them); any other queue is
    /// declared the same way when first published to or consumed from, as kombu does.
    pub async fn connect(
        url: &str,
        queues: &[&str],
        prefetch: u16,
        tls: crate::tls::Tls,
    ) -> Result<AmqpBroker, BrokerError> {
        let broker = AmqpBroker {
            url: with_heartbeat(url),
            tls,
            queues: queues.iter().map(|q| q.to_string()).collect(),
            prefetch: prefetch.max(1),
            conn: RwLock::new(None),
            reconnecting: Mutex::new(()),
            declared: Mutex::new(HashSet::new()),
        };
        broker.reconnect().await?;
        Ok(broker)
    }

    /// Opens a fresh connection (after the broker restarted), declaring the queues again,
    /// unless the current one is connected. Single-flight: callers that find a reconnect under
    /// way wait for it and keep what it opened. (Each consumer used to reconnect on its own,
    /// closing the connection another had just opened, and the deliveries in hand on it.)
    pub async fn reconnect(&self) -> Result<(), BrokerError> {
        let _one_at_a_time = self.reconnecting.lock().await;
        let current = self.conn.read().await.clone();
        if let Some(link) = current.filter(|l| l.connection.status().connected()) {
            if link.publish.status().connected() {
                return Ok(()); // another caller reconnected meanwhile, or nothing was wrong
            }
            // A channel error (a refused declare, a message too large) closed the publish
            // channel while the connection lives on: a new channel, on the same connection,
            // so that the consumers' channels and the deliveries in hand on them stay.
            let publish = self.open_publish(&link.connection).await?;
            *self.conn.write().await = Some(Arc::new(Link {
                connection: Arc::clone(&link.connection),
                publish,
            }));
            return Ok(());
        }
        // Bounded: a broker that does not answer does not hold every caller behind this lock.
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, self.open_connection())
            .await
            .map_err(|_| BrokerError::Amqp(format!("no connection within {CONNECT_TIMEOUT:?}")))?
            .map_err(lapin_err)?;
        let publish = self.open_publish(&connection).await?;
        let old = self.conn.write().await.replace(Arc::new(Link {
            connection: Arc::new(connection),
            publish,
        }));
        if let Some(old) = old {
            let _ = old.connection.close(200, "reconnecting").await;
        }
        Ok(())
    }

    /// A new connection to the broker (`amqps://`: with the configured certificates), for
    /// this broker and for the worker's control connection.
    pub(crate) async fn open_connection(&self) -> Result<Connection, lapin::Error> {
        Connection::connect_with_config(&self.url, connection_properties(), self.tls.amqp()).await
    }

    /// A publish channel in confirm mode, with the broker's own queues declared on it.
    async fn open_publish(&self, connection: &Connection) -> Result<Channel, BrokerError> {
        let publish = connection.create_channel().await.map_err(lapin_err)?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(lapin_err)?;
        for queue in &self.queues {
            declare(&publish, queue, FieldTable::default()).await?;
        }
        self.declared.lock().await.clear();
        Ok(publish)
    }

    async fn link(&self) -> Result<Arc<Link>, BrokerError> {
        let current = self.conn.read().await.clone();
        match current {
            Some(link)
                if link.connection.status().connected() && link.publish.status().connected() =>
            {
                Ok(link)
            }
            _ => {
                self.reconnect().await?;
                self.conn.read().await.clone().ok_or(BrokerError::Closed)
            }
        }
    }

    /// Declares `queue` (durable, as Celery declares it) now, not at its first use: for
    /// what watches a queue before anyone uses it (an autoscaler's queue-length trigger).
    pub async fn declare(&self, queue: &str) -> Result<(), BrokerError> {
        let link = self.link().await?;
        declare(&link.publish, queue, FieldTable::default()).await?;
        self.declared.lock().await.insert(queue.to_string());
        Ok(())
    }

    /// Publishes to `queue` (default exchange) and waits for the broker's confirm.
    pub async fn publish(
        &self,
        queue: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<(), BrokerError> {
        let link = self.link().await?;
        // Parking queues carry arguments: `send_later` declares them.
        if !queue.starts_with("argus.delay.") && !self.declared.lock().await.contains(queue) {
            declare(&link.publish, queue, FieldTable::default()).await?;
            self.declared.lock().await.insert(queue.to_string());
        }
        let confirm = link
            .publish
            .basic_publish("", queue, BasicPublishOptions::default(), body, props)
            .await
            .map_err(lapin_err)?
            .await
            .map_err(lapin_err)?;
        if confirm.is_nack() {
            return Err(BrokerError::Amqp(format!(
                "the broker refused a message for {queue}"
            )));
        }
        Ok(())
    }

    pub async fn send(&self, queue: &str, message: &Message) -> Result<(), BrokerError> {
        self.publish(queue, &message.raw_body, message_properties(message))
            .await
    }

    /// Parks `message` for about `delay` (at most, rounded down to a delay step) before it
    /// reaches `queue`.
    pub async fn send_later(
        &self,
        queue: &str,
        message: &Message,
        delay: Duration,
    ) -> Result<(), BrokerError> {
        let ms = delay.as_millis() as u64;
        let step = DELAYS_MS
            .iter()
            .rev()
            .find(|&&d| d <= ms)
            .copied()
            .unwrap_or(DELAYS_MS[0]);
        let parking = format!("argus.delay.{queue}.{step}");
        if !self.declared.lock().await.contains(&parking) {
            let mut args = FieldTable::default();
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(step as i64));
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString("".into()),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(queue.into()),
            );
            let link = self.link().await?;
            declare(&link.publish, &parking, args).await?;
            self.declared.lock().await.insert(parking.clone());
        }
        self.send(&parking, message).await
    }

    /// Consumes `queue` on a channel of its own, at most `prefetch` messages unacked.
    pub async fn consume(&self, queue: &str) -> Result<mpsc::Receiver<Incoming>, BrokerError> {
        let link = self.link().await?;
        let channel = link.connection.create_channel().await.map_err(lapin_err)?;
        // Declared as Celery declares queues, so that `add_consumer` of a new queue works.
        declare(&channel, queue, FieldTable::default()).await?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(lapin_err)?;
        let tag = format!("argus-{}", uuid::Uuid::new_v4().simple());
        let mut consumer = channel
            .basic_consume(
                queue,
                &tag,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(lapin_err)?;
        let (tx, rx) = mpsc::channel(1);
        let queue = queue.to_string();
        tokio::spawn(async move {
            // Every delivery handed out holds a clone of `held`: the channel stays open until
            // all of them are acked or handed back (see `InHand`).
            let (held, mut all_released) = mpsc::channel::<()>(1);
            let stopped = loop {
                let delivery = tokio::select! {
                    d = consumer.next() => d,
                    // The worker stopped consuming (a drain, `cancel_consumer`).
                    _ = tx.closed() => break true,
                };
                let delivery = match delivery {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => {
                        tracing::warn!(queue, error = %e, "consumer stopped");
                        break false;
                    }
                    None => break false,
                };
                let message = delivery
                    .try_deserialize_message()
                    .map_err(|e| format!("not a Celery protocol v2 message: {e}"));
                let incoming = Incoming {
                    queue: queue.to_string(),
                    message,
                    sent_at: sent_at(&delivery.properties),
                    delivery: DeliveryInfo {
                        exchange: delivery.exchange.to_string(),
                        routing_key: delivery.routing_key.to_string(),
                        redelivered: delivery.redelivered,
                    },
                    raw: RawDelivery::Amqp {
                        body: delivery.data.clone(),
                        properties: delivery.properties.clone(),
                        queue: queue.clone(),
                    },
                    ack: Ack::Amqp(InHand {
                        acker: Some(delivery.acker),
                        _held: held.clone(),
                    }),
                };
                // Refused, it is dropped: handed back at once.
                if tx.send(incoming).await.is_err() {
                    break true;
                }
            };
            // The worker reconnects as soon as this receiver ends, whatever is still in hand.
            drop(tx);
            drop(held);
            if stopped {
                drain(&channel, &tag, &mut consumer, &mut all_released, &queue).await;
            }
            let _ = channel.close(200, "consumer done").await;
        });
        Ok(rx)
    }

    /// Messages ready in `queue` (a passive declare: it does not create the queue); a queue
    /// nobody declared yet holds none.
    pub async fn queue_depth(&self, queue: &str) -> Result<u64, BrokerError> {
        let link = self.link().await?;
        // A channel of its own: a passive declare of a missing queue closes its channel.
        let channel = link.connection.create_channel().await.map_err(lapin_err)?;
        let declared = channel
            .queue_declare(
                queue,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        let _ = channel.close(200, "done").await;
        match declared {
            Ok(queue) => Ok(queue.message_count() as u64),
            Err(lapin::Error::ProtocolError(e))
                if e.kind()
                    == &lapin::protocol::AMQPErrorKind::Soft(
                        lapin::protocol::AMQPSoftError::NOTFOUND,
                    ) =>
            {
                Ok(0)
            }
            Err(e) => Err(lapin_err(e)),
        }
    }

    /// The URL connected to (with its heartbeat), for `celery inspect stats`' broker info.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn safe_url(&self) -> String {
        // The last '@' ends the user info (a password may hold one).
        match self.url.rsplit_once('@') {
            Some((scheme_user, host)) => {
                let scheme = scheme_user.split("://").next().unwrap_or("amqp");
                format!("{scheme}://***@{host}")
            }
            None => self.url.clone(),
        }
    }
}

/// Ends a consumer that the worker stopped, without giving back what it still runs: the
/// consumer is cancelled (no new deliveries), deliveries that arrive before the broker takes
/// the cancel go back to the queue at once, and the channel stays open until every delivery in
/// hand is acked or handed back. Closing it earlier would requeue tasks still running here,
/// for another worker to start a second time (each scale-down, rollout or drain).
async fn drain(
    channel: &Channel,
    tag: &str,
    consumer: &mut lapin::Consumer,
    all_released: &mut mpsc::Receiver<()>,
    queue: &str,
) {
    if let Err(e) = channel
        .basic_cancel(tag, BasicCancelOptions::default())
        .await
    {
        tracing::warn!(queue, error = %e, "cannot cancel the consumer");
        return; // the channel is gone, and with it whatever it held
    }
    let mut arriving = true;
    loop {
        tokio::select! {
            delivery = consumer.next(), if arriving => match delivery {
                Some(Ok(delivery)) => {
                    let _ = delivery.acker.nack(REQUEUE).await;
                }
                _ => arriving = false,
            },
            // No message is ever sent: `None` once the last delivery in hand is released.
            _ = all_released.recv() => break,
        }
    }
    tracing::info!(queue, "consumer drained");
}

const REQUEUE: BasicNackOptions = BasicNackOptions {
    multiple: false,
    requeue: true,
};

/// A delivery handed to the worker. Acked once handled; dropped unacked (never started, or a
/// disposition whose publish failed) it goes back to its queue at once rather than holding a
/// prefetch slot until the channel closes. While it lives, its consumer's channel stays open.
pub(crate) struct InHand {
    acker: Option<lapin::acker::Acker>,
    _held: mpsc::Sender<()>,
}

impl InHand {
    pub(crate) async fn ack(mut self) -> Result<(), BrokerError> {
        let acker = self.acker.take().expect("an InHand is acked once");
        acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(lapin_err)
    }
}

impl Drop for InHand {
    fn drop(&mut self) {
        let Some(acker) = self.acker.take() else {
            return;
        };
        // The channel stays open until the nack is sent.
        let held = self._held.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = acker.nack(REQUEUE).await;
                drop(held);
            });
        }
    }
}

async fn declare(channel: &Channel, queue: &str, args: FieldTable) -> Result<(), BrokerError> {
    channel
        .queue_declare(
            queue,
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await
        .map_err(lapin_err)?;
    Ok(())
}

/// A heartbeat keeps idle connections through NATs and tells a dead peer in time.
fn with_heartbeat(url: &str) -> String {
    if url.contains("heartbeat=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&heartbeat=30")
    } else {
        format!("{url}?heartbeat=30")
    }
}

/// The AMQP properties and headers of a Celery protocol v2 message (as kombu sends them).
pub fn message_properties(message: &Message) -> BasicProperties {
    let h = &message.headers;
    let mut headers = FieldTable::default();
    let mut put = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            headers.insert(name.into(), AMQPValue::LongString(v.into()));
        }
    };
    put("id", Some(h.id.clone()));
    put("task", Some(h.task.clone()));
    put("lang", h.lang.clone());
    put("root_id", h.root_id.clone());
    put("parent_id", h.parent_id.clone());
    put("group", h.group.clone());
    put("meth", h.meth.clone());
    put("shadow", h.shadow.clone());
    put("argsrepr", h.argsrepr.clone());
    put("kwargsrepr", h.kwargsrepr.clone());
    put("origin", h.origin.clone());
    put(
        "eta",
        h.eta
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, false)),
    );
    put(
        "expires",
        h.expires
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, false)),
    );
    // When it was published, for the queue-wait metric (kombu ignores unknown headers).
    headers.insert(SENT_HEADER.into(), AMQPValue::Double(crate::events::now()));
    if let Some(retries) = h.retries {
        headers.insert("retries".into(), AMQPValue::LongUInt(retries));
    }
    let limit = |t: Option<u32>| t.map(AMQPValue::LongUInt).unwrap_or(AMQPValue::Void);
    let mut timelimit = FieldArray::default();
    timelimit.push(limit(h.timelimit.0));
    timelimit.push(limit(h.timelimit.1));
    headers.insert("timelimit".into(), AMQPValue::FieldArray(timelimit));
    let p = &message.properties;
    let mut props = BasicProperties::default()
        .with_correlation_id(ShortString::from(p.correlation_id.clone()))
        .with_content_type(ShortString::from(p.content_type.clone()))
        .with_content_encoding(ShortString::from(p.content_encoding.clone()))
        .with_headers(headers)
        .with_priority(0)
        .with_delivery_mode(2);
    if let Some(reply_to) = &p.reply_to {
        props = props.with_reply_to(ShortString::from(reply_to.clone()));
    }
    props
}

/// The header our producers stamp messages with: seconds since the epoch at publish.
const SENT_HEADER: &str = "x-argus-sent";

fn sent_at(properties: &BasicProperties) -> Option<f64> {
    match properties.headers().as_ref()?.inner().get(SENT_HEADER)? {
        AMQPValue::Double(t) => Some(*t),
        _ => None,
    }
}

/// `properties` with the dead-letter reason and origin added to its headers.
pub fn dead_letter_properties(
    properties: &BasicProperties,
    queue: &str,
    reason: &str,
) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(
        "x-argus-reason".into(),
        AMQPValue::LongString(LongString::from(
            reason.chars().take(2000).collect::<String>(),
        )),
    );
    headers.insert(
        "x-argus-queue".into(),
        AMQPValue::LongString(LongString::from(queue.to_string())),
    );
    properties
        .clone()
        .with_headers(headers)
        .with_delivery_mode(2)
}
