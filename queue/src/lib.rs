//! The Celery runtime Argus's roles run on, in the Celery protocol (v2, JSON) so that Python
//! Celery clients and Celery's tools work with our workers: broker adapters (RabbitMQ on our own
//! lapin transport, Redis, in-process memory), task messages, the worker loop (acks late,
//! retries in the broker, time limits, dead-letter queue, drains), the result backend and its
//! atomic primitives, Celery events and remote control (Flower, `celery inspect`), Prometheus
//! metrics and health endpoints. It knows no task of the video pipeline: those, their payloads,
//! the video's state and the chord are `argus-pipeline`'s.

pub mod amqp;
pub mod backend;
pub mod broker;
pub(crate) mod control;
pub mod events;
pub mod message;
pub mod metrics;
pub mod tls;
pub mod worker;
