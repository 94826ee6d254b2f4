//! Cross-member stitching through the bus: two chain workers in group cw-chains, the agent's
//! node (node-a) owned by one member and the service's node by the other (checked from their
//! assignments before anything is judged). The service's member offers the unclaimed served
//! request on cw.chains.stitch, the agent's member merges it and claims it back: cw.chains holds
//! one chain, the agent's, with the service's query, and nothing of the service. On the
//! in-memory bus and on Kafka (a real tansu broker).
//!
//! On Kafka the producer sends one record per batch (tansu serves no fetch from inside a batch:
//! see bus/tests/tansu.rs), and the members wait for a split assignment before any event is
//! published.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chainwatch_bus::partitioner::partition_for;
use chainwatch_bus::{Bus, KafkaBus, MemoryBus, OutRecord};
use chainwatch_chain_builder::{ChainBuilder, ChainWorker, ChainWorkerConfig};
use chainwatch_config::{ChainConfig, ChainwatchConfig, KafkaConfig, MemoryBusConfig};
use chainwatch_schemas::{AvroRecord, Chain};
use chainwatch_testkit::TansuBroker;
use common::*;

const PARTITIONS: i32 = 2;
const TOPICS: [&str; 5] = ["cw.semantic.events", "cw.proc.events", "cw.chains", "cw.deadletter", "cw.chains.stitch"];

fn worker_config(member: &str, poll_timeout: Duration) -> ChainWorkerConfig {
    ChainWorkerConfig {
        commit_every: 4,
        max_publish_delay: Duration::from_millis(50),
        poll_timeout,
        checkpoint_dir: None,
        member_id: member.into(),
        ..ChainWorkerConfig::from_config(&ChainwatchConfig::default())
    }
}

fn owns(w: &ChainWorker, node: &str) -> bool {
    let p = partition_for(node.as_bytes(), PARTITIONS);
    w.assignment().iter().any(|(t, q)| t == "cw.semantic.events" && *q == p)
}

/// A service node whose events land on the other partition than node-a's.
fn service_node() -> String {
    (b'b'..=b'z')
        .map(|c| format!("node-{}", c as char))
        .find(|n| partition_for(n.as_bytes(), PARTITIONS) != partition_for(b"node-a", PARTITIONS))
        .expect("a node on the other partition")
}

async fn publish_events(bus: &dyn Bus, service_node: &str) {
    let s = stitched_service(P { node: service_node, tgid: 500, start: T0 - 3_600 * SEC, comm: "gunicorn" });
    let producer = bus.producer().unwrap();
    for e in [s.plan, s.call, s.next, s.query, s.served] {
        producer.publish(OutRecord::new("cw.semantic.events", e.node.clone(), e.encode().unwrap())).await.unwrap();
    }
}

async fn join(bus: &dyn Bus, member: &str, poll_timeout: Duration) -> ChainWorker {
    let chain_cfg = ChainConfig { allowed_lateness_secs: 1, ..ChainConfig::default() };
    ChainWorker::join(bus, ChainBuilder::new(&chain_cfg), worker_config(member, poll_timeout)).await.unwrap()
}

/// (agent's member, service's member), checked to own node-a and the service's node apart.
fn sides<'a>(a: &'a mut ChainWorker, b: &'a mut ChainWorker, service_node: &str) -> (&'a mut ChainWorker, &'a mut ChainWorker) {
    let (agent_side, service_side) = match (owns(a, "node-a"), owns(b, "node-a")) {
        (true, false) => (a, b),
        (false, true) => (b, a),
        other => panic!("node-a owned by {other:?}: {:?} / {:?}", a.assignment(), b.assignment()),
    };
    assert!(owns(service_side, service_node) && !owns(agent_side, service_node));
    (agent_side, service_side)
}

/// Step both members until the service's member had its claim and its further hold is over
/// (allowed lateness 1 s: the fragment goes out ~2 s after the last record, the hold ends ~3 s),
/// then check both sides' counters.
async fn stitch_through(agent_side: &mut ChainWorker, service_side: &mut ChainWorker, within: Duration) {
    let deadline = Instant::now() + within;
    let mut done_at: Option<Instant> = None;
    while done_at.is_none_or(|t| t.elapsed() < Duration::from_secs(2)) {
        assert!(
            Instant::now() < deadline,
            "no claim within {within:?}: {:?} / {:?}",
            service_side.builder().stats(),
            agent_side.builder().stats()
        );
        agent_side.step().await.unwrap();
        service_side.step().await.unwrap();
        if done_at.is_none() && service_side.builder().stats().remote_claims_received == 1 {
            done_at = Some(Instant::now());
        }
    }
    let (sa, sb) = (agent_side.builder().stats(), service_side.builder().stats());
    assert_eq!((sb.remote_fragments_published, sb.remote_claims_received, sb.remote_exports_unclaimed), (1, 1, 0), "{sb:?}");
    assert_eq!((sa.remote_fragments_received, sa.remote_stitched_requests), (1, 1), "{sa:?}");
    assert!(service_side.stats().stitch_records_out == 1 && agent_side.stats().stitch_records_in == 1);
}

/// cw.chains until it has been quiet for `quiet`: one chain, the agent's, with the service's
/// query as its third step, and no chain of the service.
async fn check_chains(bus: &dyn Bus, service_node: &str, quiet: Duration) {
    let mut c = bus.consumer("check", &["cw.chains"]).await.unwrap();
    let mut latest: BTreeMap<String, Chain> = BTreeMap::new();
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while quiet_since.elapsed() < quiet && Instant::now() < deadline {
        if let Some(r) = c.poll(Duration::from_millis(50)).await.unwrap() {
            quiet_since = Instant::now();
            let chain = Chain::decode(&r.value).unwrap();
            assert_ne!(chain.agent.node, service_node, "a chain of the service was published: {chain:#?}");
            if latest.get(&chain.chain_id).is_none_or(|l| l.version < chain.version) {
                latest.insert(chain.chain_id.clone(), chain);
            }
        }
    }
    assert_eq!(latest.len(), 1, "{latest:#?}");
    let chain = latest.values().next().unwrap();
    let ids: Vec<&str> = chain.steps.iter().map(|s| s.event_id.as_str()).collect();
    assert_eq!(ids, ["plan", "tool-http", "svc-sql", "next"]);
    assert_eq!(chain.steps[2].node, service_node);
    assert_eq!(chain.tool_calls[0].executed_steps, [1, 2]);
}

#[tokio::test]
async fn the_service_on_another_member_joins_the_agent_chain_through_the_stitch_topic() {
    let bus = MemoryBus::new(MemoryBusConfig { partitions: PARTITIONS as u32, ..MemoryBusConfig::default() });
    for t in TOPICS {
        bus.create_topic(t, PARTITIONS).await.unwrap();
    }
    let service_node = service_node();
    publish_events(&bus, &service_node).await;
    let poll = Duration::from_millis(20);
    let (mut a, mut b) = (join(&bus, "member-a", poll).await, join(&bus, "member-b", poll).await);
    a.step().await.unwrap();
    b.step().await.unwrap();
    let (agent_side, service_side) = sides(&mut a, &mut b, &service_node);
    stitch_through(agent_side, service_side, Duration::from_secs(30)).await;
    a.close().await.unwrap();
    b.close().await.unwrap();
    check_chains(&bus, &service_node, Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_on_another_member_joins_the_agent_chain_through_kafka() {
    let broker = TansuBroker::start();
    let mut cfg = KafkaConfig { brokers: broker.bootstrap(), session_timeout_ms: 6_000, ..KafkaConfig::default() };
    cfg.properties.insert("batch.num.messages".into(), "1".into());
    let bus = Arc::new(KafkaBus::new(cfg).expect("kafka bus"));
    for t in TOPICS {
        bus.create_topic(t, PARTITIONS).await.unwrap();
    }
    let service_node = service_node();
    let poll = Duration::from_millis(50);
    let (mut a, mut b) = (join(bus.as_ref(), "member-a", poll).await, join(bus.as_ref(), "member-b", poll).await);
    // Both members in the group, each with half of the input, before any event is published.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        a.step().await.unwrap();
        b.step().await.unwrap();
        if a.assignment().len() == PARTITIONS as usize && b.assignment().len() == PARTITIONS as usize {
            break;
        }
        assert!(Instant::now() < deadline, "no split assignment within 60 s: {:?} / {:?}", a.assignment(), b.assignment());
    }
    let (agent_side, service_side) = sides(&mut a, &mut b, &service_node);
    publish_events(bus.as_ref(), &service_node).await;
    stitch_through(agent_side, service_side, Duration::from_secs(60)).await;
    a.close().await.unwrap();
    b.close().await.unwrap();
    check_chains(bus.as_ref(), &service_node, Duration::from_secs(3)).await;
}
