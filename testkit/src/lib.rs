//! Real servers for Argus's integration tests and benchmarks: Redis, RabbitMQ and PostgreSQL,
//! each started on free loopback ports with its data in a temporary directory. A dev-dependency
//! only: nothing here ships in the binaries.

pub mod postgres;
mod servers;

pub use postgres::PgServer;
pub use servers::{RabbitServer, RedisServer};
