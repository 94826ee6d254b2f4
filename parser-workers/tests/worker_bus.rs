//! The parser worker on the in-memory bus: events published and committed, undecodable records
//! dead-lettered with the reason, and after a crash no complete event under a new id.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use chainwatch_bus::{Bus, MemoryBus, OutRecord};
use chainwatch_config::{ChainwatchConfig, MemoryBusConfig};
use chainwatch_parser_workers::worker::{ParserWorker, WorkerConfig};
use chainwatch_probe::pcap::records::{PcapRecord, records_from_events};
use chainwatch_probe::pcap::{PcapConfig, read_pcap_file};
use chainwatch_schemas::{AvroRecord, SemanticEvent};

fn corpora() -> PathBuf {
    let dir = match std::env::var_os("CHAINWATCH_CORPORA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora"),
    };
    assert!(dir.join("pcaps").is_dir(), "corpora not found at {} (set CHAINWATCH_CORPORA)", dir.display());
    dir
}

/// The capture's records as the probe would publish them: Avro, keyed by conn_id.
fn raw_records(rel: &str) -> Vec<OutRecord> {
    let (events, _) = read_pcap_file(&corpora().join("pcaps").join(rel), &PcapConfig::default())
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
    records_from_events(&events, "pcap")
        .into_iter()
        .map(|r| match r {
            PcapRecord::Segment(s) => OutRecord::new("cw.raw.segments", s.conn_id.clone(), s.encode().unwrap_or_default()),
            PcapRecord::Connection(c) => OutRecord::new("cw.raw.segments", c.conn_id.clone(), c.encode().unwrap_or_default()),
        })
        .collect()
}

fn bus() -> MemoryBus {
    MemoryBus::new(MemoryBusConfig { partitions: 2, ..MemoryBusConfig::default() })
}

fn worker_config(commit_every: usize) -> WorkerConfig {
    WorkerConfig {
        commit_every,
        poll_timeout: Duration::from_millis(20),
        ..WorkerConfig::from_config(&ChainwatchConfig::default())
    }
}

/// Everything on `topic` (read by a fresh group).
async fn drain(bus: &MemoryBus, topic: &str, group: &str) -> Vec<chainwatch_bus::Record> {
    let mut c = bus.consumer(group, &[topic]).await.unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    while let Some(r) = c.poll(Duration::from_millis(50)).await.unwrap_or_else(|e| panic!("{e}")) {
        out.push(r);
    }
    out
}

fn events(records: &[chainwatch_bus::Record]) -> Vec<SemanticEvent> {
    records
        .iter()
        .map(|r| SemanticEvent::decode(&r.value).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

async fn run_until_idle(w: &mut ParserWorker) {
    while w.step().await.unwrap_or_else(|e| panic!("{e}")) {}
}

#[tokio::test]
async fn events_are_published_keyed_by_node_and_bad_records_dead_lettered() {
    let bus = bus();
    let producer = bus.producer().unwrap_or_else(|e| panic!("{e}"));
    let records = raw_records("deepflow/http/httpv1.pcap");
    let n = records.len();
    for r in records {
        producer.publish(r).await.unwrap_or_else(|e| panic!("{e}"));
    }
    producer
        .publish(OutRecord::new("cw.raw.segments", "x", b"not avro".to_vec()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut w = ParserWorker::join(&bus, &ChainwatchConfig::default().parser, worker_config(3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    run_until_idle(&mut w).await;
    let s = w.stats();
    assert_eq!((s.records, s.dead_letters, s.events_published), (n as u64 + 1, 1, 1));
    w.close().await.unwrap_or_else(|e| panic!("{e}"));

    let out = drain(&bus, "cw.semantic.events", "reader").await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].key.as_deref(), Some(&b"pcap"[..]));
    let ev = &events(&out)[0];
    assert_eq!((ev.method.as_deref(), ev.status, ev.partial), (Some("POST"), Some(200), false));
    assert_eq!(out[0].header("cw.event_id"), Some(ev.event_id.as_bytes()));

    let dead = drain(&bus, "cw.deadletter", "reader").await;
    assert_eq!(dead.len(), 1);
    let reason = String::from_utf8_lossy(dead[0].header("cw.reason").unwrap_or_default()).into_owned();
    assert!(reason.contains("undecodable"), "{reason}");

    // Everything was committed: the group has nothing left to deliver.
    let mut again = ParserWorker::join(&bus, &ChainwatchConfig::default().parser, worker_config(3))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!again.step().await.unwrap_or_else(|e| panic!("{e}")));
}

#[tokio::test]
async fn a_crash_replays_uncommitted_records_without_a_complete_event_under_a_new_id() {
    let bus = bus();
    let producer = bus.producer().unwrap_or_else(|e| panic!("{e}"));
    // Keep-alive connection with three exchanges.
    let records = raw_records("deepflow/http/sw8.pcap");
    let n = records.len() as u64;
    for r in records {
        producer.publish(r).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let parser = ChainwatchConfig::default().parser;

    // Worker A processes all but the last records (never idle, so it never commits), then
    // crashes.
    let mut a = ParserWorker::join(&bus, &parser, worker_config(1000)).await.unwrap_or_else(|e| panic!("{e}"));
    while a.stats().records + 2 < n {
        assert!(a.step().await.unwrap_or_else(|e| panic!("{e}")));
    }
    assert_eq!(a.stats().commits, 0);
    let published_by_a = a.stats().events_published;
    assert!(published_by_a >= 1, "A published something before the crash");
    drop(a); // no close: nothing committed

    // Worker B gets everything again and rebuilds it.
    let mut b = ParserWorker::join(&bus, &parser, worker_config(1000)).await.unwrap_or_else(|e| panic!("{e}"));
    run_until_idle(&mut b).await;
    b.close().await.unwrap_or_else(|e| panic!("{e}"));

    let all = events(&drain(&bus, "cw.semantic.events", "reader").await);
    let (first, second) = all.split_at(published_by_a as usize);
    let ids_a: BTreeSet<&str> = first.iter().map(|e| e.event_id.as_str()).collect();
    // Every complete event A published comes again from B with the same id (dedupable).
    for e in first.iter().filter(|e| !e.partial) {
        assert!(second.iter().any(|x| x == e), "not rebuilt identically: {e:?}");
    }
    // Nothing complete under an id A used for something else.
    for e in second.iter().filter(|e| ids_a.contains(e.event_id.as_str())) {
        assert!(first.contains(e), "same id, different event: {e:?}");
    }
}

#[tokio::test]
async fn resuming_mid_exchange_flags_it_partial() {
    let bus = bus();
    let producer = bus.producer().unwrap_or_else(|e| panic!("{e}"));
    for r in raw_records("deepflow/http/httpv1.pcap") {
        producer.publish(r).await.unwrap_or_else(|e| panic!("{e}"));
    }
    let parser = ChainwatchConfig::default().parser;
    // A commits after every record and stops right after the request went by.
    let mut a = ParserWorker::join(&bus, &parser, worker_config(1)).await.unwrap_or_else(|e| panic!("{e}"));
    loop {
        assert!(a.step().await.unwrap_or_else(|e| panic!("{e}")), "request never seen");
        let fsm_has_request = a.table().stats().connections_opened > 0 && a.stats().segments >= 1;
        if fsm_has_request {
            break;
        }
    }
    assert_eq!(a.stats().events_published, 0);
    drop(a);
    let mut b = ParserWorker::join(&bus, &parser, worker_config(1)).await.unwrap_or_else(|e| panic!("{e}"));
    run_until_idle(&mut b).await;
    b.close().await.unwrap_or_else(|e| panic!("{e}"));
    let out = events(&drain(&bus, "cw.semantic.events", "reader").await);
    assert!(!out.is_empty());
    assert!(out.iter().all(|e| e.partial), "{out:?}");
    assert_eq!(out[0].status, Some(200));
}
