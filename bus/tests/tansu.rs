//! The Kafka bus against a real Kafka-protocol broker process (tansu, started here).

mod common;

use std::sync::Arc;
use std::time::Duration;

use chainwatch_bus::KafkaBus;
use chainwatch_config::KafkaConfig;
use chainwatch_testkit::TansuBroker;
use common::conformance::{Stop, Suite, failover};

fn bus(bootstrap: String) -> Arc<KafkaBus> {
    let cfg = KafkaConfig { brokers: bootstrap, session_timeout_ms: 6_000, ..KafkaConfig::default() };
    Arc::new(KafkaBus::new(cfg).expect("kafka bus"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_tansu() {
    let broker = TansuBroker::start();
    Suite::new(bus(broker.bootstrap()), Duration::from_secs(15)).run_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_100k_on_tansu_three_members_one_closed() {
    let broker = TansuBroker::start();
    failover(bus(broker.bootstrap()), "tansu-close", 6, 3, 500, 200, Stop::Close, Duration::from_secs(240)).await;
}
