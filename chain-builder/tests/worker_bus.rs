//! The chain worker on the in-memory bus: consumes semantic and process events (Avro), publishes
//! chains keyed by chain id with increasing versions, dead-letters undecodable records, and
//! commits only what it published.

mod common;

use std::time::Duration;

use chainwatch_bus::{Bus, MemoryBus, OutRecord, Record};
use chainwatch_chain_builder::{ChainBuilder, ChainWorker, ChainWorkerConfig};
use chainwatch_config::{ChainwatchConfig, MemoryBusConfig};
use chainwatch_schemas::{AvroRecord, Chain, ChainStatus};
use common::*;

fn bus() -> MemoryBus {
    MemoryBus::new(MemoryBusConfig { partitions: 2, ..MemoryBusConfig::default() })
}

fn worker_config() -> ChainWorkerConfig {
    ChainWorkerConfig {
        commit_every: 3,
        // flushes by count only, so the restart test knows what was committed
        max_publish_delay: Duration::from_secs(3600),
        poll_timeout: Duration::from_millis(20),
        // no checkpoint: commits follow every flush (tests/checkpoint.rs has the checkpoints)
        checkpoint_dir: None,
        ..ChainWorkerConfig::from_config(&ChainwatchConfig::default())
    }
}

async fn drain(bus: &MemoryBus, topic: &str, group: &str) -> Vec<Record> {
    let mut c = bus.consumer(group, &[topic]).await.unwrap();
    let mut out = Vec::new();
    while let Some(r) = c.poll(Duration::from_millis(50)).await.unwrap() {
        out.push(r);
    }
    out
}

async fn publish_seed(bus: &MemoryBus) {
    let producer = bus.producer().unwrap();
    for p in seed_processes() {
        producer.publish(OutRecord::new("cw.proc.events", p.bus_key(), p.encode().unwrap())).await.unwrap();
    }
    for e in seed_events(true) {
        producer.publish(OutRecord::new("cw.semantic.events", e.node.clone(), e.encode().unwrap())).await.unwrap();
    }
    producer.publish(OutRecord::new("cw.semantic.events", "node-a", b"not avro".to_vec())).await.unwrap();
}

#[tokio::test]
async fn chains_are_published_keyed_by_id_and_bad_records_dead_lettered() {
    let bus = bus();
    publish_seed(&bus).await;
    let cfg = ChainwatchConfig::default();
    let mut w = ChainWorker::join(&bus, ChainBuilder::new(&cfg.chain), worker_config()).await.unwrap();
    while w.step().await.unwrap() {}
    // Idle polls advance the watermark by wall time only; the chain stays open here.
    let s = w.stats();
    assert_eq!((s.records, s.semantic_events, s.process_events, s.dead_letters), (13, 7, 5, 1));
    w.close().await.unwrap();

    let chains: Vec<(Record, Chain)> = drain(&bus, "cw.chains", "check")
        .await
        .into_iter()
        .map(|r| {
            let c = Chain::decode(&r.value).unwrap();
            (r, c)
        })
        .collect();
    assert!(!chains.is_empty());
    let id = chains[0].1.chain_id.clone();
    let mut last_version = 0;
    for (r, c) in &chains {
        assert_eq!(c.chain_id, id, "one chain");
        assert_eq!(r.key.as_deref(), Some(id.as_bytes()), "keyed by chain id");
        assert!(c.version > last_version, "versions increase");
        last_version = c.version;
    }
    let last = &chains[chains.len() - 1].1;
    assert_eq!(last.steps.len(), 7);
    assert_eq!(last.status, ChainStatus::Open);

    let dead = drain(&bus, "cw.deadletter", "check-dead").await;
    assert_eq!(dead.len(), 1);
    let reason = String::from_utf8_lossy(dead[0].header("cw.reason").unwrap_or_default()).to_string();
    assert!(reason.contains("undecodable"), "{reason}");
}

#[tokio::test]
async fn a_restarted_member_resumes_from_the_committed_offset() {
    let bus = bus();
    publish_seed(&bus).await;
    let cfg = ChainwatchConfig::default();
    let mut w = ChainWorker::join(&bus, ChainBuilder::new(&cfg.chain), worker_config()).await.unwrap();
    // Handle 7 records (two flushes of 3 = 6 published and committed), then crash.
    for _ in 0..7 {
        assert!(w.step().await.unwrap());
    }
    let published_before_crash = drain(&bus, "cw.chains", "check-1").await.len();
    assert!(published_before_crash >= 1, "the first flushes published");
    drop(w);
    let mut w = ChainWorker::join(&bus, ChainBuilder::new(&cfg.chain), worker_config()).await.unwrap();
    while w.step().await.unwrap() {}
    assert_eq!(w.stats().records, 13 - 6, "resumed from the committed offset");
    w.close().await.unwrap();
}

/// The seed agent again on `node` (its processes and events renamed).
async fn publish_seed_on(bus: &MemoryBus, node: &str) {
    let producer = bus.producer().unwrap();
    for mut p in seed_processes() {
        p.node = node.to_string();
        producer.publish(OutRecord::new("cw.proc.events", p.bus_key(), p.encode().unwrap())).await.unwrap();
    }
    for mut e in seed_events(true) {
        e.conn_id = e.conn_id.replacen(&e.node, node, 1);
        e.event_id = format!("{node}-{}", e.event_id);
        e.node = node.to_string();
        producer.publish(OutRecord::new("cw.semantic.events", e.node.clone(), e.encode().unwrap())).await.unwrap();
    }
}

#[tokio::test]
async fn two_members_split_the_nodes_and_each_builds_whole_chains() {
    let bus = bus();
    // two nodes whose records land on different partitions, so each member gets one
    let other = (b'b'..=b'z')
        .map(|c| format!("node-{}", c as char))
        .find(|n| chainwatch_bus::partitioner::partition_for(n.as_bytes(), 2) != chainwatch_bus::partitioner::partition_for(b"node-a", 2))
        .expect("a node on the other partition");
    publish_seed_on(&bus, "node-a").await;
    publish_seed_on(&bus, &other).await;
    let cfg = ChainwatchConfig::default();
    let mut a = ChainWorker::join(&bus, ChainBuilder::new(&cfg.chain), worker_config()).await.unwrap();
    let mut b = ChainWorker::join(&bus, ChainBuilder::new(&cfg.chain), worker_config()).await.unwrap();
    loop {
        let busy_a = a.step().await.unwrap();
        let busy_b = b.step().await.unwrap();
        if !busy_a && !busy_b {
            break;
        }
    }
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.process_events + sb.process_events, sa.semantic_events + sb.semantic_events), (10, 14));
    assert!(sa.records > 0 && sb.records > 0, "both members work: {} / {}", sa.records, sb.records);
    a.close().await.unwrap();
    b.close().await.unwrap();

    let mut latest: std::collections::BTreeMap<String, Chain> = std::collections::BTreeMap::new();
    for r in drain(&bus, "cw.chains", "check").await {
        let c = Chain::decode(&r.value).unwrap();
        if latest.get(&c.chain_id).is_none_or(|l| l.version < c.version) {
            latest.insert(c.chain_id.clone(), c);
        }
    }
    let mut nodes: Vec<&str> = latest.values().map(|c| c.agent.node.as_str()).collect();
    nodes.sort();
    assert_eq!(nodes, vec!["node-a", other.as_str()], "one chain per node: {latest:#?}");
    for c in latest.values() {
        // the gzip and curl children's steps join their parent's chain only when the member
        // that owns the node's semantic events also saw its process events
        assert_eq!(c.steps.len(), 7, "{}: {:#?}", c.agent.node, c.steps);
        assert!(!c.pii_flows.is_empty(), "{}: the PII flow to the upload", c.agent.node);
    }
}

#[tokio::test]
async fn a_busy_stream_still_publishes_upserts_after_the_publish_delay() {
    let bus = bus();
    publish_seed(&bus).await;
    let cfg = ChainwatchConfig::default();
    // a count that is never reached and no empty poll: only the delay can publish
    let wc = ChainWorkerConfig { commit_every: 1_000_000, max_publish_delay: Duration::ZERO, ..worker_config() };
    let mut w = ChainWorker::join(&bus, ChainBuilder::new(&cfg.chain), wc).await.unwrap();
    for _ in 0..12 {
        assert!(w.step().await.unwrap(), "records are waiting");
    }
    assert!(w.stats().chains_published >= 1, "upserts went out while records kept coming: {:?}", w.stats());
    assert!(w.stats().commits >= 1);
    w.close().await.unwrap();
}
