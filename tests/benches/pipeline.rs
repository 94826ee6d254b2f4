//! Issue #8's benchmark of the distributed pipeline (`cargo bench -p chainwatch-e2e --bench
//! pipeline`): the same processes as tests/tests/distributed_scenario.rs (tansu broker, the
//! probe, two parsers, two chain builders, the policy engine), started once.
//!
//! 1. Latency: the exfiltration agent runs PIPELINE_RUNS times (default 20). For each run: from
//!    the upload's last byte (the chain's upload step ts_end_ns: the probe's wall-clock stamp of
//!    the syscall that carried it) to the arrival here of its SemanticEvent, of the first chain
//!    version with the upload step and of the violation. Prints p50, p99 (nearest rank) and max,
//!    and PASS/MISS against issue #8's target: p99 under 1 s.
//! 2. Throughput: the committed fixture tests/scenario/fixtures/seed-exfiltration.jsonl.gz is
//!    published to cw.raw.segments / cw.proc.events over and over for PIPELINE_SECONDS (default
//!    30), each copy as another node (so other connections and agents), keyed and Avro-encoded
//!    as the probe does. The topics' end offsets, sampled every 250 ms, give each stage's rate
//!    over the steady-state window (the first fifth of the run, at least 3 s, left out).
//!
//! Needs what the distributed test needs (root, tests/scenario/setup.sh, tansu, the chainwatch
//! binary of the same profile, i.e. `cargo build --release -p chainwatch`, or $CHAINWATCH_BIN).
//! Without them it prints why and exits 0, unless CHAINWATCH_REQUIRE_E2E=1.

use std::collections::VecDeque;
use std::fs;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chainwatch_bus::{Bus, KafkaBus, OutRecord, Pending};
use chainwatch_config::ChainwatchConfig;
use chainwatch_schemas::{AvroRecord, Chain, JsonRecord};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};

#[path = "../tests/support/mod.rs"]
mod support;

use support::distributed::{
    AGENT_COMM, EXFIL_TITLE, UploadArrivals, distributed_config, start_stages, upload_arrivals, upload_end_ns,
    wait_until_ready,
};
use support::observer::{Observer, latest_chains, violations};
use support::procs::{Proc, run_checked};
use support::scenario::{ScenarioServers, prerequisites, run_dir};

/// Issue #8's latency target: p99 from the upload to the violation.
const P99_TARGET: Duration = Duration::from_secs(1);
/// How long one run may take from the agent's exit to its violation before it counts as missed.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// Records published but not yet acknowledged, at most (as the probe's max_pending_events).
const MAX_PENDING: usize = 4096;
/// How often the topics' end offsets are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// After publishing stops: the pipeline counts as drained once no stage grew for this long.
const QUIET_FOR: Duration = Duration::from_secs(12);
/// ... or at most this long after publishing stopped.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);
/// The throughput fixture (JSON lines of ProcessEvent, ConnectionEvent, RawSegment).
const FIXTURE: &str = "scenario/fixtures/seed-exfiltration.jsonl.gz";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pipeline bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn env_number(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().with_context(|| format!("{name}={v:?} is not a whole number")),
        Err(_) => Ok(default),
    }
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

fn run() -> anyhow::Result<()> {
    // `cargo bench` passes --bench; nothing else is accepted.
    if let Some(a) = std::env::args().skip(1).find(|a| a != "--bench") {
        bail!("unexpected argument {a:?} (settings: PIPELINE_RUNS, PIPELINE_SECONDS)");
    }
    let runs = env_number("PIPELINE_RUNS", 20)?.max(1);
    let seconds = env_number("PIPELINE_SECONDS", 30)?.max(1);
    let Some(p) = prerequisites("pipeline bench") else { return Ok(()) };
    println!("chainwatch binary: {}", p.chainwatch.display());
    println!("load average at start: {}", load_average());

    let dir = run_dir("bench");
    println!("run dir {} (logs of every stage)", dir.display());
    let broker = chainwatch_testkit::TansuBroker::start();
    let config = distributed_config(&dir, &broker.bootstrap());
    run_checked("chainwatch topics", Command::new(&p.chainwatch).arg("--config").arg(&config).arg("topics"));
    let cfg = chainwatch_config::load_from_str(&fs::read_to_string(&config)?).context("the stages' config")?;

    let observer = Observer::start(broker.bootstrap());
    let mut stages = start_stages(&p, &config, &dir);
    let mut servers = ScenarioServers::start(&p, &dir.join("scenario"));
    let agent = servers.work.join(AGENT_COMM);
    fs::copy(servers.work.join("run-agent-only"), &agent)?;
    let warmup = wait_until_ready(&mut stages, &observer, &servers, &dir);
    println!("pipeline ready (warm-up curls: {warmup:?})");

    latency(runs, &servers, &agent, &observer, &mut stages)?;
    drop(observer);
    println!("load average after the latency runs: {}", load_average());

    throughput(&cfg, Duration::from_secs(seconds), &mut stages)?;
    println!("load average at the end: {}", load_average());

    for s in stages.iter_mut().rev() {
        s.stop(Duration::from_secs(60));
    }
    servers.stop();
    drop(servers);
    drop(broker);
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Latency
// ---------------------------------------------------------------------------------------------

/// One run's arrivals, in ms after the upload's last byte.
struct RunLatency {
    process_ms: Option<i64>,
    event_ms: Option<i64>,
    chain_ms: Option<i64>,
    violation_ms: i64,
}

fn latency(
    runs: u64,
    servers: &ScenarioServers,
    agent: &std::path::Path,
    observer: &Observer,
    stages: &mut [Proc],
) -> anyhow::Result<()> {
    println!(
        "\nLATENCY: {runs} runs of the exfiltration agent; t0 = the upload's last byte = max ts_end_ns of the chain's \
         upload steps (the probe's wall-clock stamp of the captured syscall), t1 = wall clock when the record reached \
         this process's consumer"
    );
    let mut measured = Vec::new();
    let mut missed = 0u64;
    for run in 1..=runs {
        for s in stages.iter_mut() {
            s.assert_running();
        }
        let exfil = servers.run_agent(agent, false);
        let tgid = i32::try_from(exfil.pid).unwrap_or(i32::MAX);
        // The violation of this run's chain, and that chain (with its upload step) on cw.chains.
        let mut found: Option<(Chain, UploadArrivals)> = None;
        observer.wait_for(RUN_TIMEOUT, |seen| {
            let chains = latest_chains(seen);
            let hit = violations(seen)
                .into_iter()
                .filter(|v| v.title == EXFIL_TITLE)
                .filter_map(|v| chains.get(&v.chain_id).filter(|c| c.agent.tgid == tgid).cloned())
                .find(|c| upload_end_ns(c).is_some());
            if let Some(c) = hit {
                let arrivals = upload_arrivals(seen, &c);
                found = Some((c, arrivals));
            }
            found.is_some()
        });
        let Some((chain, arrivals)) = found else {
            missed += 1;
            println!("run {run:>3}: agent pid {tgid}: no violation within {RUN_TIMEOUT:?} of its exit (MISSED)");
            continue;
        };
        let (Some(t0), Some(violation)) = (upload_end_ns(&chain), arrivals.violation) else {
            missed += 1;
            println!("run {run:>3}: agent pid {tgid}: chain {} without upload end or violation", chain.chain_id);
            continue;
        };
        let ms = |t: i64| (t - t0) / 1_000_000;
        let r = RunLatency {
            process_ms: arrivals.process.map(ms),
            event_ms: arrivals.event.map(ms),
            chain_ms: arrivals.chain.map(ms),
            violation_ms: ms(violation),
        };
        let show = |v: Option<i64>| v.map(|v| format!("{v} ms")).unwrap_or_else(|| "not seen".into());
        println!(
            "run {run:>3}: agent pid {tgid}: uploader's process record {}, semantic event +{}, chain +{}, violation +{} ms",
            show(r.process_ms),
            show(r.event_ms),
            show(r.chain_ms),
            r.violation_ms
        );
        if r.violation_ms > 1000 {
            explain_slow_run(&observer.snapshot(), &chain);
        }
        measured.push(r);
    }
    let violations_ms: Vec<i64> = measured.iter().map(|r| r.violation_ms).collect();
    let events_ms: Vec<i64> = measured.iter().filter_map(|r| r.event_ms).collect();
    let chains_ms: Vec<i64> = measured.iter().filter_map(|r| r.chain_ms).collect();
    println!("LATENCY per stage (ms after the upload's last byte, nearest-rank percentiles):");
    println!("  semantic event on cw.semantic.events:      {}", summary(&events_ms));
    println!("  chain version with the upload on cw.chains: {}", summary(&chains_ms));
    println!("  violation on cw.violations:                {}", summary(&violations_ms));
    let p99 = percentile(&violations_ms, 99.0);
    let target = i64::try_from(P99_TARGET.as_millis()).unwrap_or(i64::MAX);
    let verdict = match p99 {
        Some(p) if missed == 0 && p < target => "PASS",
        _ => "MISS",
    };
    println!(
        "LATENCY upload -> violation: p50 {} ms, p99 {} ms, max {} ms over {} runs ({missed} missed); target p99 < {} ms: {verdict}",
        show_opt(percentile(&violations_ms, 50.0)),
        show_opt(p99),
        show_opt(violations_ms.iter().max().copied()),
        measured.len(),
        target
    );
    Ok(())
}

/// A slow run: the uploader's process records and upload events as the observer saw them
/// (arrival order), so a late or mismatched process identity shows.
fn explain_slow_run(seen: &[support::observer::Seen], chain: &Chain) {
    use chainwatch_schemas::{ProcessEvent, SemanticEvent};
    let uploads: Vec<&chainwatch_schemas::ChainStep> = chain.steps.iter().filter(|s| s.kind == "upload").collect();
    for s in seen {
        if s.topic == chainwatch_schemas::topics::PROC_EVENTS {
            if let Ok(p) = ProcessEvent::decode(&s.value)
                && uploads.iter().any(|u| u.tgid == p.tgid || u.tgid == p.ppid)
            {
                println!(
                    "    at {} proc {:?} tgid {} start {} ppid {} parent_start {} comm {} ts {}",
                    s.wall_ns, p.kind, p.tgid, p.process_start_ns, p.ppid, p.parent_start_ns, p.comm, p.ts_ns
                );
            }
        } else if s.topic == chainwatch_schemas::topics::SEMANTIC_EVENTS
            && let Ok(e) = SemanticEvent::decode(&s.value)
            && uploads.iter().any(|u| u.tgid == e.tgid)
        {
            println!(
                "    at {} event {} kind {} tgid {} start {} comm {} ts {}..{}",
                s.wall_ns, e.event_id, e.kind, e.tgid, e.process_start_ns, e.comm, e.ts_start_ns, e.ts_end_ns
            );
        } else if s.topic == chainwatch_schemas::topics::CHAINS
            && let Ok(c) = Chain::decode(&s.value)
            && c.steps.iter().any(|st| uploads.iter().any(|u| u.event_id == st.event_id))
        {
            println!("    at {} chain {} v{} agent tgid {} steps {}", s.wall_ns, c.chain_id, c.version, c.agent.tgid, c.steps.len());
        }
    }
}

/// Nearest-rank percentile: the smallest value with at least `p` % of the values at or below it.
fn percentile(values: &[i64], p: f64) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v.get(rank.clamp(1, v.len()) - 1).copied()
}

fn show_opt(v: Option<i64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn summary(values: &[i64]) -> String {
    format!(
        "p50 {} ms, p99 {} ms, max {} ms (n={})",
        show_opt(percentile(values, 50.0)),
        show_opt(percentile(values, 99.0)),
        show_opt(values.iter().max().copied()),
        values.len()
    )
}

// ---------------------------------------------------------------------------------------------
// Throughput
// ---------------------------------------------------------------------------------------------

/// What a record is on each watched topic, in pipeline order (topics: `stage_topics`).
const STAGES: [&str; 4] = [
    "raw records in (segments + connection events)",
    "semantic events out of the parsers",
    "chain upserts out of the chain builders",
    "violations out of the policy engine",
];

/// The topics of STAGES.
fn stage_topics(cfg: &ChainwatchConfig) -> [String; STAGES.len()] {
    [
        cfg.topics.raw_segments.clone(),
        cfg.topics.semantic_events.clone(),
        cfg.topics.chains.clone(),
        cfg.topics.violations.clone(),
    ]
}

/// End offsets (summed over partitions) of every STAGES topic at one moment.
#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    counts: [i64; STAGES.len()],
}

/// Reads the topics' end offsets (ListOffsets, latest) through librdkafka.
struct OffsetReader {
    consumer: BaseConsumer,
    /// (index in STAGES, topic, partition)
    partitions: Vec<(usize, String, i32)>,
}

impl OffsetReader {
    fn connect(cfg: &ChainwatchConfig) -> anyhow::Result<OffsetReader> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &cfg.kafka.brokers)
            .set("group.id", "cw-bench-offsets")
            .create()
            .context("an offset reader for the broker")?;
        let metadata = consumer.fetch_metadata(None, Duration::from_secs(10)).context("the broker's metadata")?;
        let mut partitions = Vec::new();
        for (i, topic) in stage_topics(cfg).into_iter().enumerate() {
            let t = metadata.topics().iter().find(|t| t.name() == topic).with_context(|| format!("no topic {topic}"))?;
            partitions.extend(t.partitions().iter().map(|p| (i, topic.clone(), p.id())));
        }
        Ok(OffsetReader { consumer, partitions })
    }

    fn sample(&self) -> anyhow::Result<Sample> {
        let mut counts = [0i64; STAGES.len()];
        for (i, topic, partition) in &self.partitions {
            let (_, high) = self
                .consumer
                .fetch_watermarks(topic, *partition, Duration::from_secs(5))
                .with_context(|| format!("end offset of {topic}/{partition}"))?;
            counts[*i] += high;
        }
        Ok(Sample { at: Instant::now(), counts })
    }
}

/// The fixture's records, and the earliest time stamp among them.
fn load_fixture() -> anyhow::Result<(Vec<JsonRecord>, i64)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    let out = Command::new("gzip").arg("-dc").arg(&path).output().context("gzip -dc")?;
    if !out.status.success() {
        bail!("gzip -dc {} failed: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8(out.stdout).context("the fixture is not UTF-8")?;
    let mut records = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        records.push(JsonRecord::from_line(line).with_context(|| format!("{} line {}", path.display(), n + 1))?);
    }
    let first = records
        .iter()
        .filter_map(|r| match r {
            JsonRecord::RawSegment(s) => Some(s.ts_ns),
            JsonRecord::ConnectionEvent(c) => Some(c.ts_ns),
            JsonRecord::ProcessEvent(e) => Some(e.ts_ns),
            _ => None,
        })
        .min()
        .context("the fixture has no records")?;
    Ok((records, first))
}

/// Copy `copy` of a fixture record: on node `bench-<copy>` (its connection ids follow), its
/// times moved by `shift_ns`; with its topic, bus key (as probe/src/records.rs bus_key: the
/// connection id for segments and connection events, the node for process events) and Avro.
fn copy_of(record: &JsonRecord, copy: u64, shift_ns: i64, cfg: &ChainwatchConfig) -> anyhow::Result<OutRecord> {
    let node = format!("bench-{copy}");
    let rename = |conn_id: &str| match conn_id.split_once('/') {
        Some((_, rest)) => format!("{node}/{rest}"),
        None => format!("{node}/{conn_id}"),
    };
    Ok(match record {
        JsonRecord::RawSegment(s) => {
            let mut s = s.clone();
            s.node = node.clone();
            s.conn_id = rename(&s.conn_id);
            s.ts_ns = s.ts_ns.saturating_add(shift_ns);
            OutRecord::new(&cfg.topics.raw_segments, s.conn_id.clone(), s.encode()?)
        }
        JsonRecord::ConnectionEvent(c) => {
            let mut c = c.clone();
            c.node = node.clone();
            c.conn_id = rename(&c.conn_id);
            c.ts_ns = c.ts_ns.saturating_add(shift_ns);
            OutRecord::new(&cfg.topics.raw_segments, c.conn_id.clone(), c.encode()?)
        }
        JsonRecord::ProcessEvent(e) => {
            let mut e = e.clone();
            e.node = node.clone();
            e.ts_ns = e.ts_ns.saturating_add(shift_ns);
            OutRecord::new(&cfg.topics.proc_events, e.bus_key(), e.encode()?)
        }
        other => bail!("unexpected record in the fixture: {other:?}"),
    })
}

fn wall_clock_ns() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Publish fixture copies for `duration` with at most MAX_PENDING unacknowledged; returns the
/// number of copies and of records published.
async fn publish_copies(cfg: &ChainwatchConfig, duration: Duration) -> anyhow::Result<(u64, u64)> {
    let (records, first_ts) = load_fixture()?;
    let bus = KafkaBus::new(cfg.kafka.clone()).context("the bench's producer")?;
    let producer = bus.producer()?;
    let mut pending: VecDeque<Pending> = VecDeque::with_capacity(MAX_PENDING);
    let until = Instant::now() + duration;
    let (mut copies, mut published) = (0u64, 0u64);
    while Instant::now() < until {
        // Each copy happens now: its first record at the current wall clock.
        let shift = wall_clock_ns().saturating_sub(first_ts);
        for r in &records {
            pending.push_back(producer.send(copy_of(r, copies, shift, cfg)?).await?);
            published += 1;
            while pending.len() > MAX_PENDING {
                if let Some(p) = pending.pop_front() {
                    p.await.context("publishing to the broker")?;
                }
            }
        }
        copies += 1;
    }
    for p in pending.drain(..) {
        p.await.context("publishing to the broker")?;
    }
    producer.flush(Duration::from_secs(30)).await?;
    Ok((copies, published))
}

fn throughput(cfg: &ChainwatchConfig, duration: Duration, stages: &mut [Proc]) -> anyhow::Result<()> {
    println!(
        "\nTHROUGHPUT: publishing copies of {FIXTURE} (each as another node) for {duration:?}, end offsets sampled every {SAMPLE_EVERY:?}"
    );
    let reader = OffsetReader::connect(cfg)?;
    let samples = Arc::new(std::sync::Mutex::new(vec![reader.sample()?]));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (samples, stop) = (samples.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(SAMPLE_EVERY);
                match reader.sample() {
                    Ok(s) => samples.lock().unwrap_or_else(|e| e.into_inner()).push(s),
                    Err(e) => eprintln!("offset sample: {e:#}"),
                }
            }
        })
    };
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let published = rt.block_on(publish_copies(cfg, duration));
    let publish_end = Instant::now();
    let published = published?;
    println!(
        "published {} fixture copies, {} records, in {:.1} s",
        published.0,
        published.1,
        publish_end.duration_since(started).as_secs_f64()
    );

    // Drain: until no stage grew for QUIET_FOR (chains close after the idle gap), or the limit.
    loop {
        std::thread::sleep(Duration::from_millis(500));
        for s in stages.iter_mut() {
            s.assert_running();
        }
        let all = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(last) = all.last().copied() else { continue };
        let last_change = all.iter().rev().find(|s| s.counts != last.counts).map(|s| s.at).unwrap_or(started);
        if last.at.duration_since(last_change) >= QUIET_FOR || publish_end.elapsed() >= DRAIN_LIMIT {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let all = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    report_throughput(&stage_topics(cfg), &all, started, publish_end, published.0);
    Ok(())
}

fn report_throughput(topics: &[String], all: &[Sample], started: Instant, publish_end: Instant, copies: u64) {
    let (Some(first), Some(last)) = (all.first(), all.last()) else { return };
    let publishing = publish_end.duration_since(started);
    let warmup = (publishing / 5).max(Duration::from_secs(3)).min(publishing / 2);
    let from_at = started + warmup;
    // The samples that bracket the steady-state window [started + warm-up, end of publishing].
    let from = all.iter().find(|s| s.at >= from_at).copied().unwrap_or(*first);
    let to = all.iter().rev().find(|s| s.at <= publish_end).copied().unwrap_or(*last);
    let window = to.at.saturating_duration_since(from.at).as_secs_f64();
    println!(
        "THROUGHPUT per stage, steady-state window {:.1} s (from {:.1} s after the start to the end of publishing):",
        window,
        from.at.duration_since(started).as_secs_f64()
    );
    for (i, (topic, what)) in topics.iter().zip(STAGES).enumerate() {
        let grown = to.counts[i] - from.counts[i];
        let total = last.counts[i] - first.counts[i];
        // When the stage's last record arrived (drain included).
        let done = all.iter().find(|s| s.counts[i] == last.counts[i]).map(|s| s.at).unwrap_or(last.at);
        let overall = done.duration_since(started).as_secs_f64();
        // How far behind the stage was when publishing stopped (0: it kept up with the input).
        let behind = last.counts[i] - to.counts[i];
        println!(
            "  {topic:<19} {:>9.0} /s  ({what}; {total} in all, the last {:.1} s after the start: {:.0} /s overall, {:.1} per fixture copy, {behind} still to come when publishing stopped)",
            if window > 0.0 { grown as f64 / window } else { 0.0 },
            overall,
            if overall > 0.0 { total as f64 / overall } else { 0.0 },
            if copies > 0 { total as f64 / copies as f64 } else { 0.0 }
        );
    }
    let semantic =
        if window > 0.0 { (to.counts[1] - from.counts[1]) as f64 / window } else { 0.0 };
    // The parsers were the limit only if they still had a backlog to work off when the input
    // stopped (their last output well after the end of publishing); else the publisher was.
    let semantic_done = all.iter().find(|s| s.counts[1] == last.counts[1]).map(|s| s.at).unwrap_or(last.at);
    let drain = semantic_done.saturating_duration_since(publish_end);
    let limit = if drain > Duration::from_secs(2) {
        format!("the parsers were saturated, {:.1} s of backlog when publishing stopped", drain.as_secs_f64())
    } else {
        "the parsers kept up with the input, so this is a lower bound set by the publisher and broker".to_string()
    };
    println!("THROUGHPUT: {semantic:.0} semantic events/s (parsers' output, steady state; {limit})");
}
