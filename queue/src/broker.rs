//! Brokers: `amqp://` (RabbitMQ, our transport on lapin: [`crate::amqp`]), `redis://` through
//! the `celery` crate's broker, both speaking Celery protocol v2; `memory://` in this process
//! for the embedded mode. Workers see one interface: send a message to a queue (now or after a
//! delay), consume a queue, ack what was handled, dead-letter what cannot be handled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use celery::broker::{BrokerBuilder, Delivery, RedisBrokerBuilder};
use celery::protocol::Message;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::amqp::AmqpBroker;
use crate::message::TaskMessage;
use crate::tls::Tls;

/// Where messages that cannot be decoded or have no task go, instead of being dropped.
pub const DEAD_LETTER_QUEUE: &str = "argus.dlq";

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("unsupported broker URL '{0}' (amqp://…, redis://… or memory://)")]
    Url(String),
    #[error("broker: {0}")]
    Celery(#[from] celery::error::BrokerError),
    #[error("broker: {0}")]
    Amqp(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("the broker connection is gone")]
    Closed,
}

/// One message taken from a queue; `ack` it once handled (acks late).
pub struct Incoming {
    /// The queue it was taken from (a retry or a parked message goes back there).
    pub queue: String,
    /// The decoded message, or why it could not be decoded.
    pub message: Result<Message, String>,
    /// When our producer published it (seconds since the epoch), where the transport says.
    pub sent_at: Option<f64>,
    /// Where it came from, as `celery inspect active` shows it.
    pub delivery: DeliveryInfo,
    /// The delivery as it came, for the dead-letter queue.
    pub(crate) raw: RawDelivery,
    pub(crate) ack: Ack,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryInfo {
    pub exchange: String,
    pub routing_key: String,
    pub redelivered: bool,
}

impl DeliveryInfo {
    fn queue(queue: &str) -> DeliveryInfo {
        DeliveryInfo {
            routing_key: queue.to_string(),
            ..DeliveryInfo::default()
        }
    }
}

// One per delivery in hand, moved once into the dead-letter path: boxing the AMQP body and
// properties would cost an allocation on every delivery to save bytes on a few.
#[allow(clippy::large_enum_variant)]
pub(crate) enum RawDelivery {
    Amqp {
        body: Vec<u8>,
        properties: lapin::BasicProperties,
        queue: String,
    },
    /// What the `celery` crate shows of a delivery it could not decode.
    Text(String),
    /// Nothing beyond the decoded message (memory://).
    Decoded,
}

pub(crate) enum Ack {
    Amqp(crate::amqp::InHand),
    Celery(Box<dyn Delivery>, Arc<dyn celery::broker::Broker>),
    Memory,
}

impl Incoming {
    pub async fn ack(self) -> Result<(), BrokerError> {
        match self.ack {
            Ack::Amqp(in_hand) => in_hand.ack().await,
            Ack::Celery(delivery, broker) => Ok(broker.ack(delivery.as_ref()).await?),
            Ack::Memory => Ok(()),
        }
    }
}

#[derive(Clone)]
pub enum Broker {
    Amqp(Arc<AmqpBroker>),
    /// `redis://`, through the `celery` crate.
    Celery(Arc<dyn celery::broker::Broker>),
    Memory(Arc<MemoryQueues>),
}

/// In-process queues: what a broker would hold, for the embedded mode.
#[derive(Default)]
pub struct MemoryQueues {
    queues: Mutex<HashMap<String, MemoryQueue>>,
}

#[derive(Clone)]
struct MemoryQueue {
    tx: mpsc::UnboundedSender<Message>,
    rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Message>>>,
    /// Messages sent and not yet taken by a consumer (the queue depth).
    waiting: Arc<std::sync::atomic::AtomicU64>,
}

impl MemoryQueues {
    fn queue(&self, name: &str) -> MemoryQueue {
        let mut queues = self.queues.lock().expect("not poisoned");
        queues
            .entry(name.to_string())
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                MemoryQueue {
                    tx,
                    rx: Arc::new(tokio::sync::Mutex::new(rx)),
                    waiting: Arc::default(),
                }
            })
            .clone()
    }
}

impl Broker {
    /// Connects and declares the dead-letter queue; work queues are declared when first used.
    /// `prefetch` bounds the messages a consumer holds unacked.
    pub async fn connect(url: &str, prefetch: u16) -> Result<Broker, BrokerError> {
        Self::connect_tls(url, prefetch, Tls::none()).await
    }

    /// [`Broker::connect`], with these certificates for `amqps://`.
    pub async fn connect_tls(url: &str, prefetch: u16, tls: Tls) -> Result<Broker, BrokerError> {
        tls.warn_if_plain(url, "broker");
        let queues = [DEAD_LETTER_QUEUE];
        let builder: Box<dyn BrokerBuilder> = match url.split_once("://") {
            Some(("memory", _)) => return Ok(Broker::Memory(Arc::default())),
            Some(("amqp" | "amqps", _)) => {
                let amqp = AmqpBroker::connect(url, &queues, prefetch, tls).await?;
                return Ok(Broker::Amqp(Arc::new(amqp)));
            }
            Some(("redis", _)) => Box::new(RedisBrokerBuilder::new(url)),
            Some(("rediss", _)) => {
                return Err(BrokerError::Unsupported(
                    "rediss:// as the broker: the Redis transport has no TLS; use amqps:// \
                     (RabbitMQ) for an encrypted broker (rediss:// works for the result backend)"
                        .into(),
                ))
            }
            _ => return Err(BrokerError::Url(url.to_string())),
        };
        let mut builder = builder.prefetch_count(prefetch).heartbeat(Some(30));
        for queue in queues {
            builder = builder.declare_queue(queue);
        }
        let inner: Arc<dyn celery::broker::Broker> = Arc::from(builder.build(10).await?);
        Ok(Broker::Celery(inner))
    }

    /// Declares `queues` now (RabbitMQ; the other transports need no declaring): an
    /// application's entry point does, so that a queue exists before its first message.
    pub async fn declare(&self, queues: &[&str]) -> Result<(), BrokerError> {
        if let Broker::Amqp(amqp) = self {
            for queue in queues {
                amqp.declare(queue).await?;
            }
        }
        Ok(())
    }

    pub async fn send(&self, queue: &str, message: &TaskMessage) -> Result<(), BrokerError> {
        self.send_raw(queue, &message.to_celery()).await
    }

    /// Sends `message` so that it reaches `queue` after about `delay` (a retry's back-off),
    /// without a worker holding it meanwhile: RabbitMQ parks it in a delay queue; the
    /// in-process and Redis transports hold it in a timer of this process (a Redis broker is
    /// not crash-safe anyway: see docs/operations.md).
    pub async fn send_later(
        &self,
        queue: &str,
        message: &TaskMessage,
        delay: Duration,
    ) -> Result<(), BrokerError> {
        if delay < Duration::from_millis(250) {
            return self.send(queue, message).await;
        }
        match self {
            Broker::Amqp(amqp) => amqp.send_later(queue, &message.to_celery(), delay).await,
            _ => {
                let (this, queue, message) = (self.clone(), queue.to_string(), message.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if let Err(e) = this.send(&queue, &message).await {
                        tracing::error!(task_id = message.id, error = %e, "delayed send failed");
                    }
                });
                Ok(())
            }
        }
    }

    /// Sends what `incoming` carried to the dead-letter queue, as it came where the transport
    /// allows (RabbitMQ: body, properties and headers, plus `x-argus-reason`).
    pub async fn dead_letter(&self, incoming: &Incoming, reason: &str) -> Result<(), BrokerError> {
        match (&incoming.raw, self) {
            (
                RawDelivery::Amqp {
                    body,
                    properties,
                    queue,
                },
                Broker::Amqp(amqp),
            ) => {
                let props = crate::amqp::dead_letter_properties(properties, queue, reason);
                amqp.publish(DEAD_LETTER_QUEUE, body, props).await
            }
            _ => match &incoming.message {
                Ok(message) => self.send_raw(DEAD_LETTER_QUEUE, message).await,
                Err(_) => {
                    let text = match &incoming.raw {
                        RawDelivery::Text(t) => t.clone(),
                        _ => String::new(),
                    };
                    let mut message = TaskMessage {
                        id: uuid::Uuid::new_v4().to_string(),
                        task: "argus.undecodable".into(),
                        kwargs: Default::default(),
                        args: vec![text.into(), reason.into()],
                        retries: 0,
                        eta: None,
                        group: None,
                        root_id: None,
                        parent_id: None,
                    }
                    .to_celery();
                    message.properties.content_type = "application/json".into();
                    self.send_raw(DEAD_LETTER_QUEUE, &message).await
                }
            },
        }
    }

    /// Sends a message as it is.
    pub async fn send_raw(&self, queue: &str, message: &Message) -> Result<(), BrokerError> {
        match self {
            Broker::Amqp(amqp) => amqp.send(queue, message).await,
            Broker::Celery(inner) => Ok(inner.send(message, queue).await?),
            Broker::Memory(m) => {
                let q = m.queue(queue);
                q.tx.send(message.clone())
                    .map_err(|_| BrokerError::Closed)?;
                q.waiting.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Consumes `queue`: messages arrive on the returned channel until the connection drops
    /// (then the channel closes; call [`Broker::reconnect`] and consume again).
    pub async fn consume(&self, queue: &str) -> Result<mpsc::Receiver<Incoming>, BrokerError> {
        let (tx, rx) = mpsc::channel(1);
        match self {
            Broker::Amqp(amqp) => return amqp.consume(queue).await,
            Broker::Celery(inner) => {
                // The celery crate's delivery stream is not Send: open and poll it on a thread
                // of its own (the connection itself keeps running where it was made).
                let (opened_tx, opened) = tokio::sync::oneshot::channel();
                let (inner, queue) = (inner.clone(), queue.to_string());
                std::thread::Builder::new()
                    .name(format!("consume-{queue}"))
                    .spawn(move || {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .expect("a consumer runtime");
                        runtime.block_on(pump(inner, queue, tx, opened_tx));
                    })
                    .expect("spawn consumer thread");
                opened.await.map_err(|_| BrokerError::Closed)??;
            }
            Broker::Memory(m) => {
                let q = m.queue(queue);
                let queue = queue.to_string();
                tokio::spawn(async move {
                    loop {
                        let message = q.rx.lock().await.recv().await;
                        let Some(message) = message else { break };
                        q.waiting.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                        let incoming = Incoming {
                            queue: queue.to_string(),
                            message: Ok(message),
                            sent_at: None,
                            delivery: DeliveryInfo::queue(&queue),
                            raw: RawDelivery::Decoded,
                            ack: Ack::Memory,
                        };
                        if tx.send(incoming).await.is_err() {
                            break;
                        }
                    }
                });
            }
        }
        Ok(rx)
    }

    /// Messages ready in `queue` (not yet delivered to a consumer): what an autoscaler scales
    /// the queue's consumers on.
    pub async fn queue_depth(&self, queue: &str) -> Result<u64, BrokerError> {
        match self {
            Broker::Amqp(amqp) => amqp.queue_depth(queue).await,
            Broker::Celery(inner) => Err(BrokerError::Unsupported(format!(
                "queue depth is not reported on a Redis broker ({})",
                inner.safe_url()
            ))),
            Broker::Memory(m) => Ok(m
                .queue(queue)
                .waiting
                .load(std::sync::atomic::Ordering::Relaxed)),
        }
    }

    /// Re-establishes a dropped connection (RabbitMQ restarted).
    pub async fn reconnect(&self) -> Result<(), BrokerError> {
        match self {
            Broker::Amqp(amqp) => amqp.reconnect().await,
            Broker::Celery(inner) => Ok(inner.reconnect(10).await?),
            Broker::Memory(_) => Ok(()),
        }
    }

    /// The URL without its password, for logs.
    pub fn safe_url(&self) -> String {
        match self {
            Broker::Amqp(amqp) => amqp.safe_url(),
            Broker::Celery(inner) => inner.safe_url(),
            Broker::Memory(_) => "memory://".into(),
        }
    }
}

/// Moves deliveries of `queue` into `tx` until the stream or the receiver ends.
async fn pump(
    inner: Arc<dyn celery::broker::Broker>,
    queue: String,
    tx: mpsc::Sender<Incoming>,
    opened: tokio::sync::oneshot::Sender<Result<(), BrokerError>>,
) {
    let consumed = inner
        .consume(
            &queue,
            Box::new(|e| tracing::warn!(error = %e, "broker error")),
        )
        .await;
    let mut stream = match consumed {
        Ok((_tag, stream)) => {
            let _ = opened.send(Ok(()));
            stream
        }
        Err(e) => {
            let _ = opened.send(Err(e.into()));
            return;
        }
    };
    loop {
        // The celery crate's Redis consumer, once at its prefetch limit, returns Pending
        // without arranging to be woken when a task is acked: poll it again now and then.
        let item = match tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
            Err(_) if tx.is_closed() => break,
            Err(_) => continue,
            Ok(None) => break,
            Ok(Some(item)) => item,
        };
        let delivery = match item {
            Ok(delivery) => delivery,
            Err(e) => {
                tracing::warn!(error = %e, "delivery error");
                continue;
            }
        };
        let (message, raw) = match delivery.try_deserialize_message() {
            Ok(m) => (Ok(m), RawDelivery::Decoded),
            Err(e) => {
                let text = format!("{delivery:?}");
                (
                    Err(format!("{e} (delivery: {})", truncate(&text))),
                    RawDelivery::Text(text),
                )
            }
        };
        let incoming = Incoming {
            queue: queue.to_string(),
            message,
            sent_at: None,
            delivery: DeliveryInfo::queue(&queue),
            raw,
            ack: Ack::Celery(delivery, inner.clone()),
        };
        if tx.send(incoming).await.is_err() {
            break; // the worker stopped consuming; unacked messages return to the broker
        }
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(300).collect()
}
