//! The chain worker on Kafka (a real tansu broker): a member that crashes after some commits
//! and is replaced by a new member of the same group with the same checkpoint directory goes
//! on with the open chain, so cw.chains holds one chain id with all seven steps.
//!
//! The producer sends one record per batch (tansu serves no fetch from inside a batch: see
//! bus/tests/tansu.rs).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chainwatch_bus::{Bus, KafkaBus, OutRecord};
use chainwatch_chain_builder::{ChainBuilder, ChainWorker, ChainWorkerConfig};
use chainwatch_config::{ChainwatchConfig, KafkaConfig};
use chainwatch_schemas::{AvroRecord, Chain};
use chainwatch_testkit::TansuBroker;
use common::*;

fn bus(bootstrap: String) -> Arc<KafkaBus> {
    let mut cfg = KafkaConfig { brokers: bootstrap, session_timeout_ms: 6_000, ..KafkaConfig::default() };
    cfg.properties.insert("batch.num.messages".into(), "1".into());
    Arc::new(KafkaBus::new(cfg).expect("kafka bus"))
}

/// Step until the worker handled `records` records (the group join takes a few seconds).
async fn step_until(w: &mut ChainWorker, records: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.stats().records < records {
        assert!(Instant::now() < deadline, "only {} of {records} records within 60 s: {:?}", w.stats().records, w.stats());
        w.step().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_replaced_after_a_crash_continues_the_open_chain() {
    let broker = TansuBroker::start();
    let bus = bus(broker.bootstrap());
    for t in ["cw.semantic.events", "cw.proc.events", "cw.chains", "cw.deadletter"] {
        bus.create_topic(t, 1).await.unwrap();
    }
    let dir = std::env::temp_dir().join(format!("cw-checkpoint-kafka-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = ChainwatchConfig::default();
    let wc = ChainWorkerConfig {
        commit_every: 3,
        max_publish_delay: Duration::from_secs(3600),
        poll_timeout: Duration::from_millis(100),
        checkpoint_dir: Some(dir.clone()),
        checkpoint_interval: Duration::ZERO,
        ..ChainWorkerConfig::from_config(&cfg)
    };
    let producer = bus.producer().unwrap();
    let events = seed_events(true);
    for p in seed_processes() {
        producer.publish(OutRecord::new("cw.proc.events", p.bus_key(), p.encode().unwrap())).await.unwrap();
    }
    for e in &events[..4] {
        producer.publish(OutRecord::new("cw.semantic.events", e.node.clone(), e.encode().unwrap())).await.unwrap();
    }

    let mut w = ChainWorker::join(bus.as_ref(), ChainBuilder::new(&cfg.chain), wc.clone()).await.unwrap();
    step_until(&mut w, 8).await;
    assert_eq!((w.stats().commits, w.stats().checkpoints_written), (2, 2), "{:?}", w.stats());
    drop(w); // a crash: two records handled, not committed

    for e in &events[4..] {
        producer.publish(OutRecord::new("cw.semantic.events", e.node.clone(), e.encode().unwrap())).await.unwrap();
    }
    let mut w = ChainWorker::join(bus.as_ref(), ChainBuilder::new(&cfg.chain), wc).await.unwrap();
    step_until(&mut w, 6).await;
    let stats = w.stats();
    assert_eq!((stats.checkpoints_restored, stats.checkpoints_missing, stats.records), (1, 0, 6), "{stats:?}");
    w.close().await.unwrap();

    let mut c = bus.consumer("check", &["cw.chains"]).await.unwrap();
    let mut last: BTreeMap<String, Chain> = BTreeMap::new();
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while quiet_since.elapsed() < Duration::from_secs(3) && Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)).await.unwrap() {
            Some(r) => {
                quiet_since = Instant::now();
                let chain = Chain::decode(&r.value).unwrap();
                if last.get(&chain.chain_id).is_none_or(|l| l.version < chain.version) {
                    last.insert(chain.chain_id.clone(), chain);
                }
            }
            None => {}
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(last.len(), 1, "one chain id: {:#?}", last.values().map(|c| (&c.chain_id, c.steps.len())).collect::<Vec<_>>());
    let chain = last.values().next().unwrap();
    let ids: Vec<&str> = chain.steps.iter().map(|s| s.event_id.as_str()).collect();
    assert_eq!(ids, ["ev-plan", "ev-sql", "ev-vec", "ev-synth", "ev-jira", "ev-slack", "ev-upload"]);
    assert_eq!(chain.agent.tgid, AGENT.tgid, "the forked curl's upload is the agent's");
}
