//! Brokers: `amqp://` (RabbitMQ) and `redis://` through the `celery` crate's brokers, which
//! speak Celery protocol v2; `memory://` in this process for the embedded mode. Workers see
//! one interface: send a message to a queue, consume a queue, ack what was handled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use celery::broker::{AMQPBrokerBuilder, BrokerBuilder, Delivery, RedisBrokerBuilder};
use celery::protocol::Message;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::tasks::{TaskMessage, DEAD_LETTER_QUEUE, DETECTOR_QUEUE, PROCESSOR_QUEUE};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("unsupported broker URL '{0}' (amqp://…, redis://… or memory://)")]
    Url(String),
    #[error("broker: {0}")]
    Celery(#[from] celery::error::BrokerError),
    #[error("the broker connection is gone")]
    Closed,
}

/// One message taken from a queue; `ack` it once handled (acks late).
pub struct Incoming {
    /// The decoded message, or why it could not be decoded (with what is known of it).
    pub message: Result<Message, String>,
    ack: Ack,
}

enum Ack {
    Celery(Box<dyn Delivery>, Arc<dyn celery::broker::Broker>),
    Memory,
}

impl Incoming {
    pub async fn ack(self) -> Result<(), BrokerError> {
        match self.ack {
            Ack::Celery(delivery, broker) => Ok(broker.ack(delivery.as_ref()).await?),
            Ack::Memory => Ok(()),
        }
    }
}

#[derive(Clone)]
pub enum Broker {
    Celery(Arc<dyn celery::broker::Broker>),
    Memory(Arc<MemoryQueues>),
}

/// In-process queues: what a broker would hold, for the embedded mode.
#[derive(Default)]
pub struct MemoryQueues {
    queues: Mutex<
        HashMap<
            String,
            (
                mpsc::UnboundedSender<Message>,
                Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Message>>>,
            ),
        >,
    >,
}

impl MemoryQueues {
    fn queue(
        &self,
        name: &str,
    ) -> (
        mpsc::UnboundedSender<Message>,
        Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Message>>>,
    ) {
        let mut queues = self.queues.lock().expect("not poisoned");
        let (tx, rx) = queues.entry(name.to_string()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            (tx, Arc::new(tokio::sync::Mutex::new(rx)))
        });
        (tx.clone(), rx.clone())
    }
}

impl Broker {
    /// Connects and declares Argus's queues (`processor`, `detector`, the dead-letter queue).
    /// `prefetch` bounds the messages a consumer holds unacked.
    pub async fn connect(url: &str, prefetch: u16) -> Result<Broker, BrokerError> {
        let builder: Box<dyn BrokerBuilder> = match url.split_once("://") {
            Some(("memory", _)) => return Ok(Broker::Memory(Arc::default())),
            Some(("amqp" | "amqps", _)) => Box::new(AMQPBrokerBuilder::new(url)),
            Some(("redis" | "rediss", _)) => Box::new(RedisBrokerBuilder::new(url)),
            _ => return Err(BrokerError::Url(url.to_string())),
        };
        let mut builder = builder.prefetch_count(prefetch).heartbeat(Some(30));
        for queue in [PROCESSOR_QUEUE, DETECTOR_QUEUE, DEAD_LETTER_QUEUE] {
            builder = builder.declare_queue(queue);
        }
        let inner: Arc<dyn celery::broker::Broker> = Arc::from(builder.build(10).await?);
        Ok(Broker::Celery(inner))
    }

    pub async fn send(&self, queue: &str, message: &TaskMessage) -> Result<(), BrokerError> {
        self.send_raw(queue, &message.to_celery()).await
    }

    /// Sends a message as it is (e.g. an undecodable one to the dead-letter queue).
    pub async fn send_raw(&self, queue: &str, message: &Message) -> Result<(), BrokerError> {
        match self {
            Broker::Celery(inner) => Ok(inner.send(message, queue).await?),
            Broker::Memory(m) => m
                .queue(queue)
                .0
                .send(message.clone())
                .map_err(|_| BrokerError::Closed),
        }
    }

    /// Consumes `queue`: messages arrive on the returned channel until the connection drops
    /// (then the channel closes; call [`Broker::reconnect`] and consume again).
    pub async fn consume(&self, queue: &str) -> Result<mpsc::Receiver<Incoming>, BrokerError> {
        let (tx, rx) = mpsc::channel(1);
        match self {
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
                let (_, rx_shared) = m.queue(queue);
                tokio::spawn(async move {
                    loop {
                        let message = rx_shared.lock().await.recv().await;
                        let Some(message) = message else { break };
                        let incoming = Incoming {
                            message: Ok(message),
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

    /// Re-establishes a dropped connection (RabbitMQ restarted).
    pub async fn reconnect(&self) -> Result<(), BrokerError> {
        match self {
            Broker::Celery(inner) => Ok(inner.reconnect(10).await?),
            Broker::Memory(_) => Ok(()),
        }
    }

    /// The URL without its password, for logs.
    pub fn safe_url(&self) -> String {
        match self {
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
        let message = delivery
            .try_deserialize_message()
            .map_err(|e| format!("{e} (delivery: {})", truncate(&format!("{delivery:?}"))));
        let incoming = Incoming {
            message,
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
