//! How work travels between Argus roles, in the Celery protocol (v2, JSON) so that Python
//! Celery clients and Celery's tools work with our workers: broker adapters (RabbitMQ on our own
//! lapin transport, Redis, in-process memory), the task messages, the worker loop (acks late,
//! retries in the broker, time limits, dead-letter queue), the result backend with the chord's
//! bookkeeping, Celery events and remote control (Flower, `celery inspect`), Prometheus
//! metrics and health endpoints, and the hooks that end a video's run when its tasks fail or it is cancelled.

pub mod amqp;
pub mod backend;
pub mod broker;
pub(crate) mod control;
pub mod events;
pub mod metrics;
pub mod tasks;
pub mod worker;
