//! Chain builder throughput on a realistic mix, and memory per open chain.
//!
//! The mix: 2,000 agents on 8 nodes, each running support tasks like the seed scenario (an LLM
//! planning call with two tool calls, a SQL query with 10 email fingerprints, a vector search,
//! an LLM synthesis call carrying the results, a Jira and a Slack call, and in one task of ten
//! a forked curl uploading to an unknown host), tasks interleaved across agents, process
//! events for the children, upserts taken every 1,000 events and the watermark advanced.
//! Three cases: ingest only; upserts as owned `Chain` records (the offline `chainwatch chain`);
//! upserts Avro-encoded for the bus as the worker publishes them (the acceptance figure). Events
//! reach the builder as the worker's decoder hands them over, a batch of `ARRIVAL` at a time,
//! just allocated; a fourth case feeds the same upserts from a run allocated up front
//! (`cold_input`), every event out of cache.
//!
//! Where the time goes with upserts (perf, events as decoded; callgrind, about 13.9k
//! instructions per event): about 43% ingesting (a quarter of it copying the event's strings
//! into the step's one buffer, `StepText`; the rest the process tree, routing, the chain's
//! indexes, the tuple index for stitching), about 43% publishing the 27,548 versions of the run
//! (the analysis (attribution, PII flows, risk) half of it, the Avro writing most of the rest),
//! about 9% closing and forgetting chains. A closing of a chain unchanged since its last upsert
//! (10,000 of the versions) reuses that upsert's encoding (`ChainState::last_encoding`), and a
//! grown chain's next version copies its unchanged steps' bytes from it. The builder is bound
//! by memory more than by instructions: keeping a step's strings in one buffer added
//! instructions (accessors) and took a fifth off the time (cache misses on ~20 allocations
//! per step, at every version and when the chain was freed).
//!
//! Time is the benchmarking thread's CPU time spent in the builder (the machine is shared; the
//! cloning of the next batch is not counted), so the throughput is events/s per core.
//!
//! Memory per open chain is measured two ways and printed, with one full task per agent open:
//! a counting global allocator (live heap bytes of the builder divided by open chains) and the
//! builder's own size accounting (`chain_bytes`). Then the checkpoint of that state: its size,
//! encode, file write and restore times.

#[path = "../tests/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout};

use mimalloc::MiMalloc;
use std::hash::{Hash, Hasher};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

use chainwatch_chain_builder::ChainBuilder;
use chainwatch_config::ChainConfig;
use chainwatch_schemas::{Chain, ProcessEvent, ProcessEventKind, SemanticEvent, Upload, VectorOperation};
use common::*;
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// CPU time of the benchmarking thread (from /proc/thread-self/schedstat, in ns): on a shared
/// machine, wall time measures the neighbours; this measures the events/s of one core.
struct ThreadCpuTime;

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, i: u64) -> u64 {
        thread_cpu_ns().saturating_sub(i)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, typical_ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical_ns < 1e6 { (1e-3, "µs cpu") } else { (1e-6, "ms cpu") };
        for v in values {
            *v *= factor;
        }
        unit
    }
    fn scale_throughputs(&self, _typical: f64, throughput: &Throughput, values: &mut [f64]) -> &'static str {
        let n = match *throughput {
            Throughput::Elements(e) | Throughput::ElementsAndBytes { elements: e, .. } => e as f64,
            Throughput::Bytes(b) | Throughput::BytesDecimal(b) => b as f64,
            Throughput::Bits(b) => b as f64,
        };
        for v in values {
            *v = n * 1e9 / *v / 1e3;
        }
        "K/s per core"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// mimalloc, as in the chainwatch binary (cli/src/main.rs), counting live heap bytes while
/// `COUNTING` is on (only for the memory measurement: an atomic add on every allocation would
/// tax the throughput runs).
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

fn count(delta: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_add(delta, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size() as isize);
        unsafe { MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-(l.size() as isize));
        unsafe { MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        count(new as isize - l.size() as isize);
        unsafe { MiMalloc.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const AGENTS: usize = 2_000;
const NODES: usize = 8;

/// Inputs in arrival order (unboxed: the bench measures the builder, not the boxing; events are
/// handed over by reference, as the worker hands over the ones it decoded).
#[allow(clippy::large_enum_variant)]
enum Input {
    Event(SemanticEvent),
    Process(ProcessEvent),
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// One task of one agent, starting at `t_ms`.
fn task(agent: usize, task_no: usize, t_ms: i64, out: &mut Vec<(i64, Input)>) {
    let node: &'static str = ["n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"][agent % NODES];
    let p = P { node, tgid: 10_000 + agent as i32, start: T0 - 3_600 * SEC, comm: "python3" };
    let id = |s: &str| format!("{agent}-{task_no}-{s}");
    let conv = format!("c{agent}-{task_no}");
    let h = |n: usize| (0..n).map(|i| format!("{conv}-{i}")).collect::<Vec<_>>();
    let fps: Vec<String> = (0..10).map(|i| format!("fp-{agent}-{i}")).collect();
    let (db, docs, jira, slack) = (id("db"), id("docs"), id("jira"), id("slack"));
    let h2 = h(2);
    let h4 = h(4);
    let r = strs;
    let local = format!("10.{}.{}.{}", agent % NODES, (agent / 250) % 250, agent % 250);
    let mut port = 20_000 + (task_no as i32 * 10) % 40_000;
    // Every exchange carries its connection tuple, as the probe reports it (client side).
    let mut push = |mut e: SemanticEvent| {
        port += 1;
        e.tuple = Some(tuple(&local, port, "10.200.0.1", 443));
        out.push((e.ts_start_ns, Input::Event(e)))
    };
    push(llm(&id("plan"), p, t_ms, t_ms + 900, &r(&h2), &[(&db, "query_database"), (&docs, "search_docs")], &[]));
    let mut q = sql(&id("sql"), p, t_ms + 1_000, t_ms + 1_050, "SELECT id, name, email FROM customers WHERE plan = 'pro' LIMIT 10", 10);
    q.pii = vec![pii("response", &fps)];
    push(q);
    let mut v = event(&id("vec"), p, "vector_query", t_ms + 1_100, t_ms + 1_180, "qdrant.internal", "vectordb");
    v.vector = Some(VectorOperation { system: "qdrant".into(), operation: "query".into(), top_k: Some(5), results: Some(5), ..VectorOperation::default() });
    push(v);
    let mut s = llm(&id("synth"), p, t_ms + 1_200, t_ms + 3_000, &r(&h4), &[(&jira, "create_jira_ticket"), (&slack, "post_to_slack")], &[&db, &docs]);
    s.pii = vec![pii("request", &fps)];
    push(s);
    let mut j = event(&id("jira"), p, "saas_call", t_ms + 3_100, t_ms + 3_400, "acme.atlassian.net", "saas");
    j.pii = vec![pii("request", &fps[..3])];
    push(j);
    push(event(&id("slack"), p, "saas_call", t_ms + 3_500, t_ms + 3_700, "hooks.slack.com", "saas"));
    if (agent + task_no) % 10 == 9 {
        let child = P { node, tgid: 500_000 + (agent * 100 + task_no) as i32, start: T0 + (t_ms + 3_800) * MS, comm: "curl" };
        let fork = proc_event(node, ProcessEventKind::Fork, child.tgid, child.start, p.tgid, p.start, "/usr/bin/python3");
        out.push((child.start, Input::Process(fork)));
        let mut up = event(&id("upload"), child, "upload", t_ms + 3_900, t_ms + 4_500, "personal-pastebin.com", "unknown-external");
        up.upload = Some(Upload { bytes: 48_000, archive_format: Some("gzip".into()), ..Upload::default() });
        up.pii = vec![pii("request", &fps)];
        out.push((up.ts_start_ns, Input::Event(up)));
    }
}

/// `tasks` tasks per agent, one task every ~2 minutes per agent (idle gap 60 s closes them),
/// agents staggered; the whole stream in time order.
fn mix(tasks: usize) -> Vec<Input> {
    let mut out = Vec::new();
    for a in 0..AGENTS {
        out.push((
            T0 - 3_600 * SEC,
            Input::Process(proc_event(["n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"][a % NODES], ProcessEventKind::Seed, 10_000 + a as i32, T0 - 3_600 * SEC, 1, 0, "/usr/bin/python3")),
        ));
        for t in 0..tasks {
            let start = (t as i64) * 120_000 + (a as i64 * 53) % 60_000;
            task(a, t, start, &mut out);
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out.into_iter().map(|(_, i)| i).collect()
}

/// Events reach the builder as the worker decodes them: a few at a time, just allocated. The
/// bench clones them from the mix in batches of this many (untimed) and times only the
/// builder's work on each batch, so an event's strings are as warm as a just-decoded record's.
/// (`COLD_INPUT` clones the whole run up front instead: 64,000 events allocated ~100 MB
/// before the first is ingested, every event a cache miss, which no worker sees.)
const ARRIVAL: usize = 256;

/// How events reach the builder in a run.
#[derive(Clone, Copy, PartialEq)]
enum Arrival {
    /// In batches of `ARRIVAL`, just cloned (the acceptance figures).
    Decoded,
    /// All cloned before the run (the figure printed as `cold_input`).
    ColdInput,
}

/// The builder's work on a run, as the worker drives it.
#[derive(Clone, Copy, PartialEq)]
enum Work {
    /// Events joined, nothing published.
    IngestOnly,
    /// Every 1,000 events the changed chains are published and the watermark advanced (as
    /// `Chain` records, or Avro-encoded when the builder is in encoded mode).
    Upserts,
}

/// CPU time of this thread, in ns (clock_gettime: cheap enough to read per batch).
fn cpu_now() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to write.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One run of the mix through `b`: returns the versions published (records, or encoded ones
/// whose Avro bytes are what the worker sends) and the thread CPU ns the builder took.
fn feed(b: &mut ChainBuilder, inputs: &[Input], arrival: Arrival, work: Work) -> (usize, u64) {
    let mut published = 0;
    let mut spent = 0;
    let mut batch = match arrival {
        Arrival::Decoded => Vec::with_capacity(ARRIVAL),
        Arrival::ColdInput => clone_inputs(inputs),
    };
    let batch_len = if arrival == Arrival::Decoded { ARRIVAL } else { inputs.len().max(1) };
    for (n, from) in inputs.chunks(batch_len).enumerate() {
        if arrival == Arrival::Decoded {
            batch.extend(from.iter().map(clone_input));
        }
        let t = cpu_now();
        for (k, input) in batch.iter_mut().enumerate() {
            match input {
                Input::Event(e) => b.ingest_event_from(e),
                Input::Process(p) => b.push_process(p),
            }
            if work == Work::Upserts && (n * batch_len + k) % 1_000 == 999 {
                published += b.take_updates().len();
                published += b.advance_watermark(i64::MIN).len();
                published += black_box(b.take_encoded()).len();
            }
        }
        // what the builder left of the events is dropped by the worker too
        batch.clear();
        spent += cpu_now() - t;
    }
    let t = cpu_now();
    if work == Work::Upserts {
        published += b.finish().len();
        published += black_box(b.take_encoded()).len();
    } else {
        published += black_box(b.open_chains());
    }
    spent += cpu_now() - t;
    (published, spent)
}

fn clone_input(i: &Input) -> Input {
    match i {
        Input::Event(e) => Input::Event(e.clone()),
        Input::Process(p) => Input::Process(p.clone()),
    }
}

fn clone_inputs(v: &[Input]) -> Vec<Input> {
    v.iter().map(clone_input).collect()
}

/// With CW_BENCH_STATS set: what the mix publishes (chains, steps, flows, tool executions) and
/// a digest of every published chain, so an optimisation can show it changed no output.
fn print_mix_stats(inputs: &[Input]) {
    let mut b = ChainBuilder::new(&ChainConfig::default());
    let mut digest = std::collections::hash_map::DefaultHasher::new();
    let (mut chains, mut steps, mut flows, mut tools) = (0usize, 0usize, 0usize, 0usize);
    let mut count = |published: Vec<Chain>| {
        for c in published {
            format!("{c:?}").hash(&mut digest);
            chains += 1;
            steps += c.steps.len();
            flows += c.pii_flows.len();
            tools += c.tool_calls.len();
        }
    };
    for (i, input) in clone_inputs(inputs).iter_mut().enumerate() {
        match input {
            Input::Event(e) => b.ingest_event_from(e),
            Input::Process(p) => b.push_process(p),
        }
        if i % 1_000 == 999 {
            count(b.take_updates());
            count(b.advance_watermark(i64::MIN));
        }
    }
    count(b.finish());
    println!(
        "mix: {} inputs, {chains} chain versions published ({steps} steps, {flows} PII flows, {tools} tool executions), \
         output digest {:016x}; {:?}",
        inputs.len(),
        digest.finish(),
        b.stats()
    );
}

/// With CW_BENCH_RUNS=N: feed the mix N times (with upserts, or ingest only with
/// CW_BENCH_INGEST_ONLY set) and nothing else, for a profiler or an instruction counter. On a
/// shared machine CPU time is noisy; the instructions of N=1 minus N=0 (which clones the
/// inputs once and drops them) are not.
fn run_for_profiler(inputs: &[Input], runs: usize, ingest_only: bool) {
    if runs == 0 {
        drop(black_box(clone_inputs(inputs)));
        return;
    }
    let work = if ingest_only { Work::IngestOnly } else { Work::Upserts };
    for _ in 0..runs {
        let mut b = ChainBuilder::new(&ChainConfig::default());
        b.set_encoded_output(!ingest_only);
        black_box(feed(&mut b, inputs, Arrival::Decoded, work));
    }
}

fn throughput(c: &mut Criterion<ThreadCpuTime>) {
    let inputs = mix(5);
    let n = inputs.len();
    if let Some(runs) = std::env::var("CW_BENCH_RUNS").ok().and_then(|s| s.parse::<usize>().ok()) {
        run_for_profiler(&inputs, runs, std::env::var_os("CW_BENCH_INGEST_ONLY").is_some());
        return;
    }
    if std::env::var_os("CW_BENCH_STATS").is_some() {
        print_mix_stats(&inputs);
    }
    let cfg = ChainConfig::default();
    let mut g = c.benchmark_group("chain_builder");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    // One run per iteration on a fresh builder; only the builder's CPU time counts.
    let runs = |arrival: Arrival, work: Work, encoded: bool| {
        let cfg = &cfg;
        let inputs = &inputs;
        move |iters: u64| {
            (0..iters)
                .map(|_| {
                    let mut b = ChainBuilder::new(cfg);
                    b.set_encoded_output(encoded);
                    let (published, spent) = feed(&mut b, inputs, arrival, work);
                    black_box(published);
                    spent
                })
                .sum::<u64>()
        }
    };
    // Routing and joins alone: every event ingested, no chain materialized.
    g.bench_function(format!("mix_{n}_events_ingest_only"), |bench| bench.iter_custom(runs(Arrival::Decoded, Work::IngestOnly, false)));
    // As `chainwatch chain --events` runs: every changed chain materialized as an owned
    // `Chain` record every 1,000 events (not encoded).
    g.bench_function(format!("mix_{n}_events_with_upserts_as_records"), |bench| {
        bench.iter_custom(runs(Arrival::Decoded, Work::Upserts, false))
    });
    // As the worker runs: every changed chain Avro-encoded, ready for the bus, every 1,000
    // events (straight from the builder's state: `set_encoded_output`). The acceptance figure.
    g.bench_function(format!("mix_{n}_events_with_upserts"), |bench| bench.iter_custom(runs(Arrival::Decoded, Work::Upserts, true)));
    // The same with every event of the run allocated before the first is ingested (see
    // `ARRIVAL`): what the builder costs when its input is never in cache.
    g.bench_function(format!("mix_{n}_events_with_upserts_cold_input"), |bench| {
        bench.iter_custom(runs(Arrival::ColdInput, Work::Upserts, true))
    });
    g.finish();

    // Memory per open chain: one full task per agent, nothing closed yet. Events are cloned
    // one at a time into the builder, so the live-heap delta is what the builder keeps.
    let one = mix(1);
    COUNTING.store(true, Ordering::Relaxed);
    let mut b = ChainBuilder::new(&cfg);
    let before = LIVE.load(Ordering::Relaxed);
    for input in &one {
        match input {
            Input::Event(e) => b.ingest_event(e.clone()),
            Input::Process(p) => b.push_process(p),
        }
    }
    let after = LIVE.load(Ordering::Relaxed);
    // Then every chain published once in encoded output, as the worker does: an idle chain
    // keeps its last encoding until it changes or closes.
    b.set_encoded_output(true);
    drop(black_box(b.take_updates()));
    drop(black_box(b.take_encoded()));
    let published = LIVE.load(Ordering::Relaxed);
    COUNTING.store(false, Ordering::Relaxed);
    let open = b.open_chains().max(1);
    let steps_per_chain = b.stats().semantic_events as f64 / open as f64;
    println!(
        "memory: {open} open chains ({steps_per_chain:.1} steps each): {} bytes of live heap per open chain \
         (counting allocator: chains, agents, process tree, tuple index), {} once published (the last encoding kept \
         for the closing version); {} bytes per chain by size accounting (chains only)",
        (after - before) / open as isize,
        (published - before) / open as isize,
        b.chain_bytes() / open
    );
    checkpoint_of(&b, &cfg);
}

/// The checkpoint of `b` (the worker writes one every second): size, encode time, file write
/// time (with fsync) and restore time, the best of 5, printed.
fn checkpoint_of(b: &ChainBuilder, cfg: &ChainConfig) {
    use chainwatch_chain_builder::checkpoint_file::{CheckpointMeta, CheckpointStore};
    use std::time::{Duration, Instant};
    let dir = std::env::temp_dir().join(format!("cw-bench-checkpoint-{}", std::process::id()));
    let store = CheckpointStore::new(&dir);
    let meta = CheckpointMeta { group: "bench".into(), assignment: vec![("t".into(), 0)], offsets: vec![], written_unix_ms: 0 };
    let (mut encode, mut write, mut restore, mut size) = (Duration::MAX, Duration::MAX, Duration::MAX, 0);
    for _ in 0..5 {
        let t = Instant::now();
        let state = b.checkpoint().expect("checkpoint");
        encode = encode.min(t.elapsed());
        let t = Instant::now();
        size = store.write(&meta, &state).expect("checkpoint file");
        write = write.min(t.elapsed());
        let t = Instant::now();
        let restored = ChainBuilder::restore(cfg, &state).expect("restore");
        restore = restore.min(t.elapsed());
        assert_eq!(restored.open_chains(), b.open_chains());
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "checkpoint: {} open chains: {size} bytes ({} per chain), encode {encode:.1?}, file write + fsync {write:.1?}, \
         restore {restore:.1?} (best of 5, wall time)",
        b.open_chains(),
        size / b.open_chains().max(1) as u64
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = throughput
}
criterion_main!(benches);
