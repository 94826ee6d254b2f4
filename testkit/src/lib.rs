//! Test harness shared by the crates' tests: brokers to run the bus against.
//!
//! - `TansuBroker`: a real Kafka-protocol broker process (tansu, in-memory storage) on a free
//!   loopback port. `.ci/run` installs it; tests find it through `TANSU_BIN`, the CI cache
//!   path or `PATH`. If it cannot start, the test fails with the reason (never skips).
//! - `MockKafka`: librdkafka's own mock cluster (a correct group coordinator), served on
//!   loopback ports that other processes can connect to.
//! - `OtlpReceiver`: an OTLP/HTTP receiver (what a collector's otlphttp receiver accepts) that
//!   keeps and decodes the traces and metrics posted to it; `otlp_attributes` reads their
//!   attribute values.

mod http_server;
mod mock;
pub mod otlp_attributes;
mod otlp_receiver;
mod tansu;

pub use http_server::HttpServer;
pub use mock::MockKafka;
pub use otlp_receiver::OtlpReceiver;
/// The OTLP protobuf messages, to read what the receiver got.
pub use opentelemetry_proto;
pub use tansu::{TansuBroker, tansu_binary};

/// A free TCP port on 127.0.0.1 (bound and released; good enough for a test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}
