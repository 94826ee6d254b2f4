//! The distributed pipeline of issue #8: each stage's configuration and process, the warm-up
//! that waits until the probe and the workers carry a process of the agent's comm, and when
//! the exfiltration's upload reached each topic.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chainwatch_schemas::{AvroRecord, Chain, ProcessEvent, SemanticEvent};

use super::observer::{Observer, Seen, latest_chains, process_events, violations};
use super::procs::Proc;
use super::scenario::{Prereqs, ScenarioServers};

/// The policy the exfiltration must trip, and only it among the scenario's chains.
pub const EXFIL_TITLE: &str = "PII uploaded to an unauthorized external destination";
/// The comm the probe selects: the agent's wrapper (a copy of run-agent-only) under a name no
/// other process on this shared machine has. Its python and children are its descendants.
pub const AGENT_COMM: &str = "cwe2e-agent";

/// One line per step, for failure messages and the log.
pub fn describe(c: &Chain) -> String {
    let mut flows: BTreeMap<(i32, i32), BTreeSet<&str>> = BTreeMap::new();
    for f in &c.pii_flows {
        flows.entry((f.from_step, f.to_step)).or_default().insert(f.pii_type.as_str());
    }
    let flows: Vec<String> = flows.iter().map(|((a, b), t)| format!("[{a}]->[{b}] {t:?}")).collect();
    let mut s = format!(
        "chain {} v{} {:?} agent {} ({} steps, destinations {:?}, {} pii flows: {})\n",
        c.chain_id,
        c.version,
        c.status,
        c.agent.agent_key,
        c.steps.len(),
        c.destinations,
        c.pii_flows.len(),
        flows.join(", ")
    );
    for st in &c.steps {
        s.push_str(&format!(
            "  [{}] {} {} {} {:?} pii {:?} ({})\n",
            st.index, st.kind, st.protocol, st.comm, st.destination, st.pii_types, st.summary
        ));
    }
    s
}

/// chainwatch.toml for every stage: the broker with tansu's producer workaround (one record per
/// batch, see bus/tests/tansu.rs), the agent's comm, a short idle gap and a short policy batch.
/// The idle gap only decides when chains close (the violation fires on an open chain's upsert);
/// 2 s split the chain on a loaded machine (the pause before gzip and curl exceeded it), 8 s
/// does not.
pub fn distributed_config(dir: &Path, bootstrap: &str) -> PathBuf {
    let path = dir.join("chainwatch.toml");
    let text = format!(
        r#"# written by tests/tests/distributed_scenario.rs
[node]
id = "e2e-node"

[bus]
kind = "kafka"

[kafka]
brokers = "{bootstrap}"
partitions = 4
session_timeout_ms = 6000
message_timeout_ms = 300000

[kafka.properties]
"batch.num.messages" = "1"

[probe]
watch_comm = ["{AGENT_COMM}"]

[parser]
commit_every = 100

[chain]
idle_gap_secs = 8
allowed_lateness_secs = 2

[policy]
batch_interval_ms = 100

[storage]
data_dir = "{data}"
"#,
        data = dir.join("data").display()
    );
    fs::write(&path, text).unwrap();
    path
}

pub fn stage(p: &Prereqs, config: &Path, dir: &Path, name: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(&p.chainwatch);
    cmd.arg("--config").arg(config).args(["--log", "info"]).args(args).current_dir(dir);
    // The file says everything; the environment must not override it.
    for (k, _) in std::env::vars() {
        if k.starts_with("CHAINWATCH__") {
            cmd.env_remove(k);
        }
    }
    Proc::spawn(name, cmd, dir.join(format!("{name}.log")))
}

/// Wall-clock arrival times (ns since the epoch, as the observer stamped them) of the
/// exfiltration's upload at each topic; `None`: not seen (yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadArrivals {
    /// Its SemanticEvent on cw.semantic.events.
    pub event: Option<i64>,
    /// The first version of its chain with the upload step on cw.chains.
    pub chain: Option<i64>,
    /// The EXFIL_TITLE violation of the chain on cw.violations.
    pub violation: Option<i64>,
    /// The first process record (fork or exec) of the uploading process on cw.proc.events.
    pub process: Option<i64>,
}

/// When the upload of `chain` (the events of its "upload" steps) reached each topic.
pub fn upload_arrivals(seen: &[Seen], chain: &Chain) -> UploadArrivals {
    let upload_ids: BTreeSet<&str> =
        chain.steps.iter().filter(|s| s.kind == "upload").map(|s| s.event_id.as_str()).collect();
    let event = seen
        .iter()
        .filter(|s| s.topic == chainwatch_schemas::topics::SEMANTIC_EVENTS)
        .filter(|s| SemanticEvent::decode(&s.value).is_ok_and(|e| upload_ids.contains(e.event_id.as_str())))
        .map(|s| s.wall_ns)
        .min();
    let chain_at = seen
        .iter()
        .filter(|s| s.topic == chainwatch_schemas::topics::CHAINS)
        .filter(|s| {
            Chain::decode(&s.value)
                .is_ok_and(|c| c.chain_id == chain.chain_id && c.steps.iter().any(|st| st.kind == "upload"))
        })
        .map(|s| s.wall_ns)
        .min();
    let violation = violations(seen)
        .iter()
        .filter(|v| v.chain_id == chain.chain_id && v.title == EXFIL_TITLE)
        .map(|v| v.wall_ns)
        .min();
    let uploaders: BTreeSet<i32> = chain.steps.iter().filter(|s| s.kind == "upload").map(|s| s.tgid).collect();
    let process = seen
        .iter()
        .filter(|s| s.topic == chainwatch_schemas::topics::PROC_EVENTS)
        .filter(|s| ProcessEvent::decode(&s.value).is_ok_and(|p| uploaders.contains(&p.tgid)))
        .map(|s| s.wall_ns)
        .min();
    UploadArrivals { event, chain: chain_at, violation, process }
}

/// The upload's capture time: the latest end (ts_end_ns, the probe's wall-clock stamp of the
/// syscall that carried the response's last byte) of the chain's "upload" steps.
pub fn upload_end_ns(chain: &Chain) -> Option<i64> {
    chain.steps.iter().filter(|s| s.kind == "upload").map(|s| s.ts_end_ns).max()
}

/// When the upload reached each topic, in ms after `upload_end_ns`, with every version of the
/// chain and the arrival of each of its events (for the log).
pub fn stage_arrivals(seen: &[Seen], chain: &Chain, upload_end_ns: i64) -> String {
    let ms = |ns: i64| (i128::from(ns) - i128::from(upload_end_ns)) / 1_000_000;
    let UploadArrivals { event, chain: chain_at, violation, .. } = upload_arrivals(seen, chain);
    let show = |t: Option<i64>| t.map(|t| ms(t).to_string()).unwrap_or_else(|| "not seen".into());
    let versions: Vec<String> = seen
        .iter()
        .filter(|s| s.topic == chainwatch_schemas::topics::CHAINS)
        .filter_map(|s| Chain::decode(&s.value).ok().filter(|c| c.chain_id == chain.chain_id).map(|c| (s.wall_ns, c)))
        .map(|(t, c)| format!("v{} {:?} {} steps at {}", c.version, c.status, c.steps.len(), ms(t)))
        .collect();
    let step_ids: BTreeSet<&str> = chain.steps.iter().map(|s| s.event_id.as_str()).collect();
    let events: Vec<String> = seen
        .iter()
        .filter(|s| s.topic == chainwatch_schemas::topics::SEMANTIC_EVENTS)
        .filter_map(|s| SemanticEvent::decode(&s.value).ok().map(|e| (s.wall_ns, e)))
        .filter(|(_, e)| step_ids.contains(e.event_id.as_str()))
        .map(|(t, e)| format!("{} ended {} arrived {}", e.kind, ms(e.ts_end_ns), ms(t)))
        .collect();
    format!(
        "semantic event {}, chain {}, violation {} (versions of the chain: {}; its events: {})",
        show(event),
        show(chain_at),
        show(violation),
        versions.join("; "),
        events.join("; ")
    )
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

pub fn chains_text(seen: &[Seen]) -> String {
    latest_chains(seen).values().map(describe).collect::<Vec<_>>().join("")
}
/// The six stages, each its own process (and process group): two parsers, two chain builders,
/// the policy engine and the probe (last: it feeds the rest).
pub fn start_stages(p: &Prereqs, config: &Path, dir: &Path) -> Vec<Proc> {
    vec![
        stage(p, config, dir, "parse-1", &["parse"]),
        stage(p, config, dir, "parse-2", &["parse"]),
        stage(p, config, dir, "chain-1", &["chain"]),
        stage(p, config, dir, "chain-2", &["chain"]),
        stage(p, config, dir, "policy", &["policy"]),
        stage(p, config, dir, "probe", &["probe"]),
    ]
}

/// Readiness: a curl under the agent's comm until its exec reaches cw.proc.events (the probe
/// is attached) and a chain of it reaches cw.chains (parsers and chain builder are in). Panics
/// after 90 s, or when a stage died; returns the warm-up curls' pids.
pub fn wait_until_ready(
    stages: &mut [Proc],
    observer: &Observer,
    servers: &ScenarioServers,
    dir: &Path,
) -> BTreeSet<i32> {
    let warmup_dir = dir.join("warmup");
    fs::create_dir_all(&warmup_dir).unwrap();
    let warmup = warmup_dir.join(AGENT_COMM);
    fs::copy("/usr/bin/curl", &warmup).unwrap();
    let llm = servers.ports.get("CW_PORT_LLM");
    let ready_by = Instant::now() + Duration::from_secs(90);
    let mut warmup_pids = BTreeSet::new();
    loop {
        for s in stages.iter_mut() {
            s.assert_running();
        }
        let st = Command::new(&warmup)
            .args(["-sS", "-o", "/dev/null", "--cacert"])
            .arg(servers.work.join("ca.pem"))
            .args([
                "--resolve",
                &format!("llm.internal.test:{llm}:127.0.0.1"),
                &format!("https://llm.internal.test:{llm}/v1/models"),
            ])
            .spawn()
            .and_then(|mut c| {
                warmup_pids.insert(c.id() as i32);
                c.wait()
            })
            .unwrap();
        assert!(st.success() || st.code() == Some(22), "the warm-up curl failed: {st}");
        let ok = observer.wait_for(Duration::from_secs(3), |seen| {
            process_events(seen).iter().any(|e| warmup_pids.contains(&e.tgid))
                && latest_chains(seen).values().any(|c| warmup_pids.contains(&c.agent.tgid))
        });
        if ok {
            break;
        }
        assert!(
            Instant::now() < ready_by,
            "the pipeline did not carry the warm-up curl within 90 s; stage logs in {}",
            dir.display()
        );
    }
    warmup_pids
}
