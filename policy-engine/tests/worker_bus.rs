//! The policy worker on the in-memory bus: Avro chains in, OCSF violations out keyed by chain
//! id, undecodable records dead-lettered, offsets committed after the publish was acknowledged.

mod common;

use std::time::Duration;

use chainwatch_bus::{Bus, MemoryBus, OutRecord, Record};
use chainwatch_config::{ChainwatchConfig, MemoryBusConfig};
use chainwatch_policy_engine::PolicyEngine;
use chainwatch_policy_engine::worker::{PolicyWorker, PolicyWorkerConfig};
use chainwatch_schemas::AvroRecord;
use common::*;

async fn drain(bus: &MemoryBus, topic: &str, group: &str) -> Vec<Record> {
    let mut c = bus.consumer(group, &[topic]).await.unwrap();
    let mut out = Vec::new();
    while let Some(r) = c.poll(Duration::from_millis(50)).await.unwrap() {
        out.push(r);
    }
    out
}

fn worker_config() -> PolicyWorkerConfig {
    PolicyWorkerConfig { batch_size: 10, batch_interval: Duration::from_millis(100), ..PolicyWorkerConfig::from_config(&ChainwatchConfig::default()) }
}

#[tokio::test]
async fn chains_in_ocsf_violations_out() {
    let bus = MemoryBus::new(MemoryBusConfig { partitions: 2, ..MemoryBusConfig::default() });
    let producer = bus.producer().unwrap();
    for c in [seed_chain(false), seed_chain(true)] {
        producer.publish(OutRecord::new("cw.chains", c.chain_id.clone(), c.encode().unwrap())).await.unwrap();
    }
    producer.publish(OutRecord::new("cw.chains", "junk", b"not avro".to_vec())).await.unwrap();

    let engine = PolicyEngine::new(&ChainwatchConfig::default().policy).await.unwrap();
    let mut w = PolicyWorker::join(&bus, engine, worker_config()).await.unwrap();
    let mut handled = 0;
    loop {
        let n = w.step().await.unwrap();
        if n == 0 {
            break;
        }
        handled += n;
    }
    assert_eq!(handled, 3);
    let s = w.stats();
    assert_eq!((s.chains, s.dead_letters, s.violations_published), (2, 1, 2), "{s:?}");
    w.close().await.unwrap();

    let out = drain(&bus, "cw.violations", "siem").await;
    assert_eq!(out.len(), 2);
    for r in &out {
        assert_eq!(r.key.as_deref(), Some(&b"seed-exfil"[..]));
        let j: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
        assert_eq!(j["class_uid"], 2004);
        assert_eq!(j["unmapped"]["chain_id"], "seed-exfil");
        assert_eq!(r.header("cw.violation_id"), Some(j["finding_info"]["uid"].as_str().unwrap().as_bytes()));
    }
    let titles: Vec<String> = out
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.value).unwrap()["finding_info"]["title"].as_str().unwrap().to_string())
        .collect();
    assert!(titles.contains(&"PII uploaded to an unauthorized external destination".to_string()), "{titles:?}");
    assert_eq!(drain(&bus, "cw.deadletter", "ops").await.len(), 1);

    // Committed: a new member of the group has nothing left.
    let engine = PolicyEngine::new(&ChainwatchConfig::default().policy).await.unwrap();
    let mut again = PolicyWorker::join(&bus, engine, worker_config()).await.unwrap();
    assert_eq!(again.step().await.unwrap(), 0);
}
