//! Real servers for Argus's integration tests and benchmarks: Redis, RabbitMQ and PostgreSQL,
//! each started on free loopback ports with its data in a temporary directory. A dev-dependency
//! only: nothing here ships in the binaries.

pub mod postgres;
mod servers;
pub mod tls;

pub use postgres::PgServer;
pub use servers::{RabbitServer, RedisServer};
pub use tls::TestCerts;

/// A loopback port free right now (for a server a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
