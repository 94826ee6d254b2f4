//! The chain builder's checkpoint: a builder restored from a checkpoint taken at any point goes
//! on exactly as the uninterrupted one; a chain worker that crashes and restarts on the same
//! bus, group and checkpoint directory continues the open chain under its id (one chain, the
//! forked curl's upload still the agent's) and skips what the checkpoint already holds; a
//! checkpoint of another format version is refused and counted.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chainwatch_bus::{Bus, MemoryBus, OutRecord};
use chainwatch_chain_builder::checkpoint_file::CheckpointStore;
use chainwatch_chain_builder::{ChainBuilder, ChainWorker, ChainWorkerConfig, CheckpointError};
use chainwatch_config::{ChainConfig, ChainwatchConfig, MemoryBusConfig};
use chainwatch_schemas::{AvroRecord, Chain, ConnRole, ProcessEvent, SemanticEvent};
use common::*;

enum Input {
    Event(SemanticEvent),
    Process(ProcessEvent),
}

/// The seed scenario with the curl's upload read before its fork (it waits for its process),
/// then a second task of the same agent that calls an internal service on node-b, whose served
/// request and query are stitched into the agent's chain.
fn inputs() -> Vec<Input> {
    let procs = seed_processes();
    let events = seed_events(true);
    let mut v: Vec<Input> = Vec::new();
    v.extend(procs[..3].iter().cloned().map(Input::Process)); // python3, gzip
    v.extend(events.iter().cloned().map(Input::Event)); // ... the upload by curl, not yet forked
    v.extend(procs[3..].iter().cloned().map(Input::Process)); // curl's fork and exec
    let service = P { node: "node-b", tgid: 500, start: T0 - 3_600 * SEC, comm: "gunicorn" };
    let mut call = event("tool-http", AGENT, "http", 20_000, 20_400, "tools.internal", "internal");
    call.tuple = Some(tuple("10.0.0.1", 40_000, "10.0.0.2", 8_080));
    let mut served = event("svc-http", service, "http", 20_010, 20_390, "tools.internal", "internal");
    served.role = ConnRole::Server;
    served.tuple = Some(tuple("10.0.0.2", 8_080, "10.0.0.1", 40_000));
    let mut q = sql("svc-sql", service, 20_100, 20_200, "SELECT * FROM customers WHERE id = $1", 1);
    q.pii = vec![pii("response", &emails(1))];
    let next = llm("next", AGENT, 20_500, 21_000, &["x", "x+u", "x+u+a+t"], &[], &[]);
    v.extend([q, served, call, next].into_iter().map(Input::Event));
    v
}

/// Feed `inputs`, collecting the upserts after each one and the closings of a watermark advance
/// every third input.
fn feed(b: &mut ChainBuilder, inputs: &[Input], from: usize, out: &mut Vec<Vec<Chain>>) {
    for (i, input) in inputs.iter().enumerate().skip(from) {
        match input {
            Input::Event(e) => b.ingest_event(e.clone()),
            Input::Process(p) => b.push_process(p),
        }
        let mut chains = b.take_updates();
        if i % 3 == 2 {
            chains.extend(b.advance_watermark(i64::MIN));
        }
        out.push(chains);
    }
}

#[test]
fn a_restored_builder_goes_on_as_the_uninterrupted_one_from_any_point() {
    let cfg = ChainConfig { allowed_lateness_secs: 2, ..ChainConfig::default() };
    let all = inputs();
    let mut whole = ChainBuilder::new(&cfg);
    let mut expected = Vec::new();
    feed(&mut whole, &all, 0, &mut expected);
    let expected_final = whole.finish();
    assert!(whole.stats().waited_for_process >= 1, "the upload waited for curl's fork");
    assert_eq!(whole.stats().stitched_requests, 1, "the service's request was stitched");

    for split in 0..=all.len() {
        let mut first = ChainBuilder::new(&cfg);
        let mut out = Vec::new();
        feed(&mut first, &all[..split], 0, &mut out);
        let bytes = first.checkpoint().unwrap();
        drop(first);
        let mut restored = ChainBuilder::restore(&cfg, &bytes).unwrap();
        feed(&mut restored, &all, split, &mut out);
        assert_eq!(out, expected, "split at {split}: the same upserts and closings in the same order");
        assert_eq!(restored.finish(), expected_final, "split at {split}: the same final chains");
        assert_eq!(restored.ledger(), whole.ledger(), "split at {split}: the same cost ledger");
    }
    let ids: std::collections::BTreeSet<&str> =
        expected.iter().flatten().chain(&expected_final).map(|c| c.chain_id.as_str()).collect();
    // the seed task, and the second task's fresh conversation
    assert_eq!(ids.len(), 2, "{ids:?}");
}

#[test]
fn a_checkpoint_of_another_version_or_garbage_is_refused() {
    let cfg = ChainConfig::default();
    let mut b = ChainBuilder::new(&cfg);
    for p in seed_processes() {
        b.push_process(&p);
    }
    let mut bytes = b.checkpoint().unwrap();
    assert!(ChainBuilder::restore(&cfg, &bytes).is_ok());
    bytes[4] = bytes[4].wrapping_add(1);
    match ChainBuilder::restore(&cfg, &bytes) {
        Err(CheckpointError::Version { found, expected }) => assert_ne!(found, expected),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert!(matches!(ChainBuilder::restore(&cfg, b"CW"), Err(CheckpointError::NotACheckpoint)));
    let good = b.checkpoint().unwrap();
    let truncated = &good[..good.len() / 2];
    assert!(matches!(ChainBuilder::restore(&cfg, truncated), Err(CheckpointError::Decode(_))));
    // a failed restore leaves the builder as it was
    let open_before = b.open_chains();
    assert!(b.restore_state(truncated).is_err());
    assert_eq!(b.open_chains(), open_before);
}

// ---- the worker on the in-memory bus -----------------------------------------------------

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("cw-checkpoint-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bus() -> MemoryBus {
    MemoryBus::new(MemoryBusConfig { partitions: 2, ..MemoryBusConfig::default() })
}

fn worker_config(group: &str, dir: Option<&Path>) -> ChainWorkerConfig {
    ChainWorkerConfig {
        group: group.to_string(),
        commit_every: 3,
        // flushes by count only, and a checkpoint at every flush: the test knows what is covered
        max_publish_delay: Duration::from_secs(3600),
        poll_timeout: Duration::from_millis(20),
        checkpoint_dir: dir.map(Path::to_path_buf),
        checkpoint_interval: Duration::ZERO,
        ..ChainWorkerConfig::from_config(&ChainwatchConfig::default())
    }
}

async fn publish_processes(bus: &MemoryBus) {
    let producer = bus.producer().unwrap();
    for p in seed_processes() {
        producer.publish(OutRecord::new("cw.proc.events", p.bus_key(), p.encode().unwrap())).await.unwrap();
    }
}

async fn publish_events(bus: &MemoryBus, events: &[SemanticEvent]) {
    let producer = bus.producer().unwrap();
    for e in events {
        producer.publish(OutRecord::new("cw.semantic.events", e.node.clone(), e.encode().unwrap())).await.unwrap();
    }
}

/// Every version published to cw.chains, in order.
async fn published(bus: &MemoryBus, group: &str) -> Vec<Chain> {
    let mut c = bus.consumer(group, &["cw.chains"]).await.unwrap();
    let mut out = Vec::new();
    while let Some(r) = c.poll(Duration::from_millis(50)).await.unwrap() {
        out.push(Chain::decode(&r.value).unwrap());
    }
    out
}

fn latest(chains: &[Chain]) -> BTreeMap<String, Chain> {
    let mut last: BTreeMap<String, Chain> = BTreeMap::new();
    for c in chains {
        if last.get(&c.chain_id).is_none_or(|l| l.version < c.version) {
            last.insert(c.chain_id.clone(), c.clone());
        }
    }
    last
}

/// The process records and the first four events; a worker handles 8 of these 9 records
/// (flushes, checkpoints and commits after 3 and 6), crashes; the last three events come; a
/// new worker on the same group and directory handles the rest. Returns the chains published.
async fn crash_and_restart(dir: Option<&Path>, check: &str) -> (Vec<Chain>, chainwatch_chain_builder::ChainWorkerStats) {
    let bus = bus();
    let events = seed_events(true);
    publish_processes(&bus).await;
    publish_events(&bus, &events[..4]).await;
    let cfg = ChainwatchConfig::default();
    let mut w = ChainWorker::join(&bus, ChainBuilder::new(&cfg.chain), worker_config("cw-chains", dir)).await.unwrap();
    for _ in 0..8 {
        assert!(w.step().await.unwrap(), "records are waiting");
    }
    assert_eq!(w.stats().commits, 2);
    drop(w); // a crash: no close, no last checkpoint, two records handled but not committed
    publish_events(&bus, &events[4..]).await;
    let mut w = ChainWorker::join(&bus, ChainBuilder::new(&cfg.chain), worker_config("cw-chains", dir)).await.unwrap();
    while w.step().await.unwrap() {}
    let stats = w.stats();
    w.close().await.unwrap();
    (published(&bus, check).await, stats)
}

#[tokio::test]
async fn a_crashed_worker_restarts_from_its_checkpoint_without_a_second_chain() {
    let dir = TempDir::new("crash");
    let (chains, stats) = crash_and_restart(Some(&dir.0), "check").await;
    assert_eq!((stats.checkpoints_restored, stats.checkpoints_missing, stats.checkpoints_rejected), (1, 0, 0));
    assert_eq!(stats.records, 12 - 6, "the 3 records after the committed offset again, and the 3 new ones");
    assert_eq!(stats.replayed_skipped, 0, "the checkpoint covered exactly the committed records");
    assert!(stats.checkpoints_written >= 2 && stats.checkpoint_bytes > 0, "{stats:?}");
    let last = latest(&chains);
    assert_eq!(last.len(), 1, "one chain id: {:#?}", last.values().map(|c| (&c.chain_id, &c.steps)).collect::<Vec<_>>());
    let chain = last.values().next().unwrap();
    let ids: Vec<&str> = chain.steps.iter().map(|s| s.event_id.as_str()).collect();
    assert_eq!(ids, ["ev-plan", "ev-sql", "ev-vec", "ev-synth", "ev-jira", "ev-slack", "ev-upload"]);
    assert_eq!((chain.agent.tgid, chain.agent.comm.as_str()), (AGENT.tgid, "python3"));
    let upload = &chain.steps[6];
    assert_eq!((upload.tgid, upload.comm.as_str()), (CURL.tgid, "curl"), "the forked curl's upload is the agent's");
    assert!(!chain.pii_flows.is_empty(), "the emails from the SQL response flow to the upload");
    let mut versions: Vec<i64> = chains.iter().map(|c| c.version).collect();
    let n = versions.len();
    versions.dedup();
    assert!(versions.windows(2).all(|w| w[0] <= w[1]), "versions never go back: {versions:?}");
    assert!(n >= 2);
}

/// The same crash without a checkpoint directory (the behaviour before checkpoints): the
/// restarted worker starts empty, so the open chain continues as a second chain and the
/// upload of the agent's curl (whose fork was committed before the crash) is not the agent's.
#[tokio::test]
async fn without_a_checkpoint_the_same_crash_splits_the_chain() {
    let (chains, stats) = crash_and_restart(None, "check").await;
    assert_eq!(stats.checkpoints_restored, 0);
    let last = latest(&chains);
    assert!(last.len() >= 2, "{last:#?}");
}

/// A crash right after a checkpoint, before the commit: the next worker is given the whole
/// input again (a group that never committed) with that checkpoint, skips what it holds,
/// and adds no step twice.
#[tokio::test]
async fn records_replayed_after_the_checkpoint_are_skipped() {
    let dir = TempDir::new("replay");
    let bus = bus();
    let events = seed_events(true);
    publish_processes(&bus).await;
    publish_events(&bus, &events[..4]).await;
    let cfg = ChainwatchConfig::default();
    let mut w = ChainWorker::join(&bus, ChainBuilder::new(&cfg.chain), worker_config("first", Some(&dir.0))).await.unwrap();
    while w.step().await.unwrap() {}
    let assignment: Vec<(String, i32)> = {
        let mut a: Vec<(String, i32)> =
            ["cw.proc.events", "cw.semantic.events"].iter().flat_map(|t| [(t.to_string(), 0), (t.to_string(), 1)]).collect();
        a.sort();
        a
    };
    w.close().await.unwrap();
    // The checkpoint of group "first" (covering all 9 records) becomes group "second"'s, whose
    // committed offsets are still at the start: checkpoint written, commit lost.
    let store = CheckpointStore::new(&dir.0);
    let (mut meta, state) = store.read("first", &assignment).unwrap().expect("the first worker's checkpoint");
    assert_eq!(meta.offsets.iter().map(|(_, _, o)| o).sum::<i64>(), 9);
    meta.group = "second".into();
    store.write(&meta, &state).unwrap();
    publish_events(&bus, &events[4..]).await;

    let mut w = ChainWorker::join(&bus, ChainBuilder::new(&cfg.chain), worker_config("second", Some(&dir.0))).await.unwrap();
    while w.step().await.unwrap() {}
    let stats = w.stats();
    let b = w.builder().stats();
    assert_eq!(stats.checkpoints_restored, 1);
    assert_eq!((stats.records, stats.replayed_skipped), (12 - 9, 9), "{stats:?}");
    assert_eq!((b.semantic_events, b.process_events, b.duplicate_events), (3, 0, 0), "{b:?}");
    assert_eq!(stats.checkpoint_gaps, 0);
    w.close().await.unwrap();

    let last = latest(&published(&bus, "check").await);
    assert_eq!(last.len(), 1, "{last:#?}");
    let chain = last.values().next().unwrap();
    let mut ids: Vec<&str> = chain.steps.iter().map(|s| s.event_id.as_str()).collect();
    assert_eq!(ids.len(), 7, "{ids:?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7, "no step twice");
}

/// A checkpoint file of another format version: refused, counted, the worker starts empty; a
/// first start (no file) is counted as missing.
#[tokio::test]
async fn a_checkpoint_of_another_version_is_refused_and_counted() {
    let dir = TempDir::new("version");
    let bus = bus();
    publish_processes(&bus).await;
    let cfg = ChainwatchConfig::default();
    let mut w = ChainWorker::join(&bus, ChainBuilder::new(&cfg.chain), worker_config("cw-chains", Some(&dir.0))).await.unwrap();
    while w.step().await.unwrap() {}
    assert_eq!((w.stats().checkpoints_missing, w.stats().checkpoints_restored), (1, 0));
    w.close().await.unwrap();
    let files: Vec<PathBuf> = std::fs::read_dir(&dir.0).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let mut bytes = std::fs::read(&files[0]).unwrap();
    // the builder state's version, right after the file header and the meta
    let meta_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let at = 12 + meta_len + 4;
    assert_eq!(&bytes[at - 4..at], b"CWCB");
    bytes[at] = bytes[at].wrapping_add(1);
    std::fs::write(&files[0], &bytes).unwrap();

    publish_processes(&bus).await;
    let mut w = ChainWorker::join(&bus, ChainBuilder::new(&cfg.chain), worker_config("cw-chains", Some(&dir.0))).await.unwrap();
    while w.step().await.unwrap() {}
    let s = w.stats();
    assert_eq!((s.checkpoints_rejected, s.checkpoints_restored, s.checkpoints_missing), (1, 0, 0), "{s:?}");
    assert_eq!(w.builder().stats().process_events, 5, "started empty: only the new records");
    w.close().await.unwrap();
}

/// A checkpoint directory that cannot be written: nothing is committed, and after
/// MAX_CHECKPOINT_FAILURES in a row the worker stops with an error.
#[tokio::test]
async fn an_unwritable_checkpoint_directory_commits_nothing_and_stops_the_worker() {
    let dir = TempDir::new("unwritable");
    std::fs::create_dir_all(&dir.0).unwrap();
    let not_a_dir = dir.0.join("file");
    std::fs::write(&not_a_dir, b"").unwrap();
    let bus = bus();
    publish_processes(&bus).await;
    let cfg = ChainwatchConfig::default();
    let wc = ChainWorkerConfig { commit_every: 1, ..worker_config("cw-chains", Some(&not_a_dir.join("sub"))) };
    let mut w = ChainWorker::join(&bus, ChainBuilder::new(&cfg.chain), wc).await.unwrap();
    let mut result = Ok(true);
    for _ in 0..chainwatch_chain_builder::worker::MAX_CHECKPOINT_FAILURES {
        result = w.step().await;
    }
    assert!(matches!(result, Err(chainwatch_chain_builder::ChainWorkerError::Checkpoint(_))), "{result:?}");
    let s = w.stats();
    assert_eq!((s.checkpoint_errors, s.checkpoints_written, s.commits), (3, 0, 0), "{s:?}");
    drop(w);
    // nothing was committed: the next member reads every record again
    let mut w = ChainWorker::join(&bus, ChainBuilder::new(&cfg.chain), worker_config("cw-chains", None)).await.unwrap();
    while w.step().await.unwrap() {}
    assert_eq!(w.stats().records, 5);
}
