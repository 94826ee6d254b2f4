//! The Kafka bus against librdkafka's mock cluster (a correct group coordinator on loopback
//! ports): the conformance suite and the failover scenario. Producing, fetching, group
//! membership and commits go over the wire through `KafkaBus`; only topic creation goes through
//! the mock's API, because the mock has no CreateTopics handler.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chainwatch_bus::{Bus, BusError, Consumer, KafkaBus, Producer};
use chainwatch_config::KafkaConfig;
use chainwatch_testkit::MockKafka;
use common::conformance::{Stop, Suite, failover};

struct MockBackedBus {
    kafka: KafkaBus,
    mock: MockKafka,
}

#[async_trait]
impl Bus for MockBackedBus {
    async fn create_topic(&self, name: &str, partitions: i32) -> Result<(), BusError> {
        self.mock.create_topic(name, partitions).map_err(BusError::Other)?;
        for _ in 0..100 {
            if self.kafka.partition_count(name).await.is_ok_and(|n| n == partitions) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(BusError::Topic { topic: name.into(), reason: "not visible in metadata".into() })
    }
    async fn partition_count(&self, topic: &str) -> Result<i32, BusError> {
        self.kafka.partition_count(topic).await
    }
    fn producer(&self) -> Result<Arc<dyn Producer>, BusError> {
        self.kafka.producer()
    }
    async fn consumer(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>, BusError> {
        self.kafka.consumer(group, topics).await
    }
    fn kind(&self) -> &'static str {
        "kafka-mock"
    }
}

fn bus() -> Arc<MockBackedBus> {
    let mock = MockKafka::start(3);
    let cfg = KafkaConfig { brokers: mock.bootstrap(), session_timeout_ms: 6_000, ..KafkaConfig::default() };
    Arc::new(MockBackedBus { kafka: KafkaBus::new(cfg).expect("kafka bus"), mock })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_mock_cluster() {
    let _serial = common::SERIAL.lock().await;
    Suite::new(bus(), Duration::from_secs(10)).run_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_100k_on_mock_cluster_one_closed() {
    let _serial = common::SERIAL.lock().await;
    failover(bus(), "mock-close", 6, 3, 500, 200, Stop::Close, Duration::from_secs(180)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_on_mock_cluster_one_crashed() {
    let _serial = common::SERIAL.lock().await;
    failover(bus(), "mock-crash", 6, 3, 200, 100, Stop::Crash, Duration::from_secs(180)).await;
}
