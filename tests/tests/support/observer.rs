//! The observer: a KafkaBus consumer (its own group) of what the pipeline publishes, each
//! record stamped on arrival, and decoders of what it saw (violations, chains, process events).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chainwatch_bus::{Bus, KafkaBus};
use chainwatch_config::KafkaConfig;
use chainwatch_schemas::codec::record_name;
use chainwatch_schemas::{AvroRecord, Chain, ProcessEvent};

/// One record seen on the broker, and when it arrived here.
#[derive(Clone)]
pub struct Seen {
    pub at: Instant,
    /// Wall-clock arrival, ns since the epoch (records carry wall-clock times).
    pub wall_ns: i64,
    pub topic: String,
    pub value: Vec<u8>,
}

/// A consumer (its own group) of cw.violations, cw.chains, cw.proc.events and
/// cw.semantic.events, in a thread, that timestamps every record on arrival.
pub struct Observer {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub stop: Arc<AtomicBool>,
    pub thread: Option<std::thread::JoinHandle<()>>,
}

impl Observer {
    pub fn start(bootstrap: String) -> Observer {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            rt.block_on(async move {
                let bus = KafkaBus::new(KafkaConfig { brokers: bootstrap, ..KafkaConfig::default() }).unwrap();
                let topics = [
                    chainwatch_schemas::topics::VIOLATIONS,
                    chainwatch_schemas::topics::CHAINS,
                    chainwatch_schemas::topics::PROC_EVENTS,
                    chainwatch_schemas::topics::SEMANTIC_EVENTS,
                ];
                let mut c = bus.consumer("cw-e2e-observer", &topics).await.unwrap();
                while !stop2.load(Ordering::Relaxed) {
                    match c.poll(Duration::from_millis(50)).await {
                        Ok(Some(r)) => {
                            let (at, wall_ns) = (Instant::now(), wall_clock_ns());
                            seen2.lock().unwrap().push(Seen { at, wall_ns, topic: r.topic, value: r.value });
                        }
                        Ok(None) => {}
                        Err(e) => eprintln!("observer: {e}"),
                    }
                }
                let _ = c.close().await;
            });
        });
        Observer { seen, stop, thread: Some(thread) }
    }

    pub fn snapshot(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Wait (at most `limit`) until `done` holds on what was seen; returns whether it did.
    pub fn wait_for(&self, limit: Duration, mut done: impl FnMut(&[Seen]) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if done(&self.snapshot()) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A violation as it came off cw.violations (OCSF Detection Finding JSON).
#[derive(Debug, Clone)]
pub struct OcsfViolation {
    pub at: Instant,
    pub wall_ns: i64,
    pub uid: String,
    pub title: String,
    pub chain_id: String,
    /// The violation's version: re-emitted with version + 1 when its evidence changes (a late
    /// step renumbers the chain's steps, and `evidence_steps` index the chain's steps).
    pub version: i64,
    pub evidence_steps: Vec<i64>,
    pub json: serde_json::Value,
}

pub fn violations(seen: &[Seen]) -> Vec<OcsfViolation> {
    seen.iter()
        .filter(|s| s.topic == chainwatch_schemas::topics::VIOLATIONS)
        .map(|s| {
            let json: serde_json::Value = serde_json::from_slice(&s.value).unwrap_or_else(|e| {
                panic!("cw.violations record is not JSON ({e}): {}", String::from_utf8_lossy(&s.value))
            });
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
            OcsfViolation {
                at: s.at,
                wall_ns: s.wall_ns,
                uid: text(&json["finding_info"]["uid"]),
                title: text(&json["finding_info"]["title"]),
                chain_id: text(&json["unmapped"]["chain_id"]),
                version: json["unmapped"]["violation_version"].as_i64().unwrap_or(0),
                evidence_steps: json["unmapped"]["evidence_steps"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
                    .unwrap_or_default(),
                json,
            }
        })
        .collect()
}

/// The latest version of every chain on cw.chains.
pub fn latest_chains(seen: &[Seen]) -> BTreeMap<String, Chain> {
    let mut out: BTreeMap<String, Chain> = BTreeMap::new();
    for s in seen.iter().filter(|s| s.topic == chainwatch_schemas::topics::CHAINS) {
        let c = Chain::decode(&s.value).unwrap_or_else(|e| panic!("cw.chains record is not an Avro Chain: {e}"));
        if out.get(&c.chain_id).is_none_or(|old| old.version <= c.version) {
            out.insert(c.chain_id.clone(), c);
        }
    }
    out
}

pub fn wall_clock_ns() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

pub fn process_events(seen: &[Seen]) -> Vec<ProcessEvent> {
    seen.iter()
        .filter(|s| s.topic == chainwatch_schemas::topics::PROC_EVENTS)
        .filter(|s| record_name(&s.value).is_ok_and(|n| n == ProcessEvent::NAME))
        .filter_map(|s| ProcessEvent::decode(&s.value).ok())
        .collect()
}