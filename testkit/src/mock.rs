//! librdkafka's mock cluster: a Kafka cluster inside this process with a real group
//! coordinator, listening on loopback ports.
//!
//! The mock has no CreateTopics handler (librdkafka's rdkafka_mock_handlers.c), so topics are
//! created through its own API (`create_topic`); everything else goes over the wire.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

pub struct MockKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

// SAFETY: the mock cluster's functions post operations to the mock's own thread and are
// documented thread-safe by librdkafka (rd_kafka_mock_*); the handle is only destroyed on drop.
unsafe impl Send for MockKafka {}
unsafe impl Sync for MockKafka {}

impl MockKafka {
    /// A cluster of `brokers` brokers.
    pub fn start(brokers: i32) -> MockKafka {
        match MockCluster::new(brokers) {
            Ok(cluster) => MockKafka { cluster },
            Err(e) => panic!("cannot start librdkafka's mock cluster: {e}"),
        }
    }

    pub fn bootstrap(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Create a topic (the mock answers no CreateTopics requests).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), String> {
        self.cluster.create_topic(name, partitions, 1).map_err(|e| format!("mock create_topic {name}: {e}"))
    }

    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }
}
