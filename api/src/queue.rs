//! The API's side of the work queue: the broker it sends `process_video` to and the result
//! backend it reads video states from, connected from `ARGUS_BROKER_URL` /
//! `ARGUS_RESULT_BACKEND` or handed in by an embedding process (`argus serve`, whose workers
//! must share the very same `memory://` instances), plus their readiness checks.

use std::time::Duration;

use argus_pipeline::tasks::PROCESSOR_QUEUE;
use argus_queue::backend::Backend;
use argus_queue::broker::Broker;
use futures::future::BoxFuture;

use crate::config::{redact_url, ApiConfig};
use crate::health::ReadinessCheck;
use crate::StartupError;

/// Where the API sends work and reads video states. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    pub broker: Broker,
    pub backend: Backend,
    /// A Redis connection to a `redis://` broker, for readiness only (the `celery` crate's
    /// broker has no ping).
    broker_pinger: Option<Backend>,
    /// Connected from URLs (not handed in by an embedding process).
    from_urls: bool,
}

impl Queue {
    /// The given broker and backend (an embedding process's).
    pub fn new(broker: Broker, backend: Backend) -> Queue {
        Queue {
            broker,
            backend,
            broker_pinger: None,
            from_urls: false,
        }
    }

    /// Whether nothing outside this process can see what is queued: a `memory://` broker or
    /// backend that no embedding process handed in (so no worker shares it).
    pub fn is_isolated(&self) -> bool {
        self.from_urls
            && (matches!(self.broker, Broker::Memory(_))
                || matches!(self.backend, Backend::Memory(_)))
    }

    /// Connects to `ARGUS_BROKER_URL` and `ARGUS_RESULT_BACKEND`.
    pub async fn connect(config: &ApiConfig) -> Result<Queue, StartupError> {
        let broker_url = config.broker_url.expose().trim();
        let backend_url = config.result_backend.expose().trim();
        tracing::info!(
            broker = %redact_url(broker_url),
            result_backend = %redact_url(backend_url),
            "connecting to the queue"
        );
        let tls = config.tls.load()?;
        // The API only sends: a prefetch of 1 is never used.
        let broker = Broker::connect_tls(broker_url, 1, tls.clone()).await?;
        // The pipeline's queues exist from the start, whatever runs yet: KEDA's queue-length
        // trigger, Flower and `rabbitmqctl list_queues` see them before the first upload.
        broker.declare(&argus_pipeline::tasks::QUEUES).await?;
        let backend = Backend::connect_tls(backend_url, &tls).await?;
        let broker_pinger = if broker_url.starts_with("redis://") {
            Some(Backend::connect(broker_url).await?)
        } else {
            None
        };
        Ok(Queue {
            broker,
            backend,
            broker_pinger,
            from_urls: true,
        })
    }

    /// The readiness checks of both.
    pub fn checks(&self) -> (BrokerCheck, BackendCheck) {
        (
            BrokerCheck {
                broker: self.broker.clone(),
                pinger: self.broker_pinger.clone(),
            },
            BackendCheck(self.backend.clone()),
        )
    }
}

/// `/readyz`: the broker answers (RabbitMQ: the processor queue can be inspected; Redis: PING).
pub struct BrokerCheck {
    broker: Broker,
    pinger: Option<Backend>,
}

impl ReadinessCheck for BrokerCheck {
    fn name(&self) -> &str {
        "broker"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            match (&self.broker, &self.pinger) {
                (Broker::Memory(_), _) => Ok(()),
                (_, Some(redis)) => redis.ping().await.map_err(|e| e.to_string()),
                // A Redis broker handed in without its URL: nothing to ask it.
                (Broker::Celery(_), None) => Ok(()),
                (broker, None) => broker
                    .queue_depth(PROCESSOR_QUEUE)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            }
        })
    }
}

/// `/readyz`: the result backend answers.
pub struct BackendCheck(pub Backend);

impl ReadinessCheck for BackendCheck {
    fn name(&self) -> &str {
        "result_backend"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.0.ping().await.map_err(|e| e.to_string()) })
    }
}

/// Messages waiting in `queue`, or `None` when the broker cannot say (a Redis broker) or does
/// not answer within `timeout`.
pub async fn queue_depth(broker: &Broker, queue: &str, timeout: Duration) -> Option<u64> {
    match tokio::time::timeout(timeout, broker.queue_depth(queue)).await {
        Ok(Ok(depth)) => Some(depth),
        Ok(Err(e)) => {
            tracing::debug!(queue, error = %e, "no queue depth");
            None
        }
        Err(_) => {
            tracing::debug!(queue, "no queue depth: the broker did not answer in time");
            None
        }
    }
}
