//! One typed instrument set per stage. Counters that a stage already keeps in a stats struct
//! are read through a snapshot callback at each collection (observable instruments), so the
//! hot path stays a plain `+= 1`; only policy evaluation uses synchronous instruments.
//!
//! Two ways to feed a set:
//! - pull: `ParserMetrics::register(&meter, "worker-0", move || snapshot_of(&stats))` (the
//!   closure runs once per instrument per collection: make it a cheap copy);
//! - push: keep a [`SharedSnapshot`], `publish` into it from the stage loop, and register
//!   `shared.source()`. Use this when reading is costly (probe per-CPU maps) or the stats live
//!   behind `&mut self` (e.g. `ParserWorker::stats()`).
//!
//! `instance` (e.g. the worker id) becomes the `chainwatch.instance` attribute, so several
//! members of a stage in one process report separate series; pass "" for a single one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chainwatch_schemas::Severity;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Counter, Histogram, Meter, ObservableCounter, ObservableGauge};

/// Attribute naming one member of a stage.
pub const INSTANCE_KEY: &str = "chainwatch.instance";

/// A snapshot a stage publishes and the instruments read (push feeding).
#[derive(Debug, Default)]
pub struct SharedSnapshot<S>(Arc<Mutex<S>>);

impl<S> Clone for SharedSnapshot<S> {
    fn clone(&self) -> Self {
        SharedSnapshot(Arc::clone(&self.0))
    }
}

impl<S: Clone + Send + 'static> SharedSnapshot<S> {
    pub fn new(initial: S) -> Self {
        SharedSnapshot(Arc::new(Mutex::new(initial)))
    }

    /// Replace the snapshot (totals since start, not deltas).
    pub fn publish(&self, snapshot: S) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }

    pub fn latest(&self) -> S {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A source for `XxxMetrics::register`.
    pub fn source(&self) -> impl Fn() -> S + Send + Sync + 'static {
        let shared = self.clone();
        move || shared.latest()
    }
}

fn base_attrs(instance: &str) -> Vec<KeyValue> {
    if instance.is_empty() { Vec::new() } else { vec![KeyValue::new(INSTANCE_KEY, instance.to_string())] }
}

fn with(base: &[KeyValue], key: &'static str, value: impl Into<opentelemetry::Value>) -> Vec<KeyValue> {
    let mut v = base.to_vec();
    v.push(KeyValue::new(key, value));
    v
}

/// How an instrument reads a snapshot: `observe(snapshot, base attributes, report)`, where
/// `report(value, attributes)` records one series.
type Report<'r> = &'r dyn Fn(u64, &[KeyValue]);

/// Registers the observable instruments of one stage: each reads the stage's snapshot source
/// and reports with the stage's base attributes.
struct Instruments<'m, S> {
    meter: &'m Meter,
    source: Arc<dyn Fn() -> S + Send + Sync>,
    attrs: Vec<KeyValue>,
}

impl<'m, S: 'static> Instruments<'m, S> {
    fn new(meter: &'m Meter, instance: &str, source: impl Fn() -> S + Send + Sync + 'static) -> Self {
        Instruments { meter, source: Arc::new(source), attrs: base_attrs(instance) }
    }

    /// An observable u64 counter reporting one field of the snapshot.
    fn total(
        &self,
        name: &'static str,
        unit: &'static str,
        description: &'static str,
        field: impl Fn(&S) -> u64 + Send + Sync + 'static,
    ) -> ObservableCounter<u64> {
        self.counter(name, unit, description, move |s, a, report| report(field(s), a))
    }

    /// An observable u64 counter reporting any series of the snapshot.
    fn counter(
        &self,
        name: &'static str,
        unit: &'static str,
        description: &'static str,
        observe: impl Fn(&S, &[KeyValue], Report) + Send + Sync + 'static,
    ) -> ObservableCounter<u64> {
        self.meter
            .u64_observable_counter(name)
            .with_unit(unit)
            .with_description(description)
            .with_callback(self.callback(observe))
            .build()
    }

    /// An observable u64 gauge reporting any series of the snapshot.
    fn gauge(
        &self,
        name: &'static str,
        unit: &'static str,
        description: &'static str,
        observe: impl Fn(&S, &[KeyValue], Report) + Send + Sync + 'static,
    ) -> ObservableGauge<u64> {
        self.meter
            .u64_observable_gauge(name)
            .with_unit(unit)
            .with_description(description)
            .with_callback(self.callback(observe))
            .build()
    }

    /// The collection callback: one snapshot read, then `observe` on it.
    fn callback(
        &self,
        observe: impl Fn(&S, &[KeyValue], Report) + Send + Sync + 'static,
    ) -> impl Fn(&dyn AsyncInstrument<u64>) + Send + Sync + 'static {
        let source = Arc::clone(&self.source);
        let attrs = self.attrs.clone();
        move |obs| {
            let s = source();
            observe(&s, &attrs, &|v, a| obs.observe(v, a));
        }
    }
}

// ---------------------------------------------------------------- probe

/// The probe's totals since start (fill from `CaptureStats` + `LossCounters`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeSnapshot {
    pub segments: u64,
    pub bytes: u64,
    pub ring_full_events: u64,
    pub ring_full_bytes: u64,
    pub truncated_calls: u64,
    pub truncated_bytes: u64,
    pub unpaired_ssl_calls: u64,
    pub unpaired_ssl_bytes: u64,
    pub map_full: u64,
    /// Bytes known missing from streams (sequence gaps).
    pub gap_bytes: u64,
    /// Kernel reads of user memory that faulted (`LossCounters::read_faults`).
    pub read_faults: u64,
    /// Processes held at exec that the timeout continued before their exec record was handled
    /// (`LossCounters::holds_timed_out`): their early TLS plaintext may be missed.
    pub holds_timed_out: u64,
    /// Watched processes whose uprobes were put off by the uprobe detach backlog's cap
    /// (`LossCounters::uprobe_attaches_deferred`): what they sent meanwhile was not captured.
    pub uprobe_attaches_deferred: u64,
    /// Records the decoder refused (`LossCounters::undecodable`).
    pub undecodable: u64,
    /// /proc seed events dropped on a full channel (`LossCounters::seed_events_dropped`).
    pub seed_events_dropped: u64,
    /// Segments of connections never announced (`MapperStats::segments_without_connection`).
    pub segments_without_connection: u64,
    pub uprobe_attach_failures: u64,
    /// Table evictions (`MapperStats::connections_evicted` / `processes_evicted`).
    pub connections_evicted: u64,
    pub processes_evicted: u64,
}

/// Metrics of the probe: `chainwatch.probe.segments`, `.payload` (By),
/// `.losses{reason = ring_full | truncated | unpaired_ssl | map_full | read_fault | undecodable |
/// seed_dropped | no_connection | hold_timeout | uprobes_deferred}` (events), `.evictions{table}`,
/// `.uprobe_attach_failures` and
/// `.lost_payload{reason = ring_full | truncated | unpaired_ssl | gap}` (By). In Prometheus:
/// `chainwatch_probe_segments_total`, `chainwatch_probe_payload_bytes_total`, ...
pub struct ProbeMetrics {
    _instruments: Vec<ObservableCounter<u64>>,
}

impl ProbeMetrics {
    pub fn register(meter: &Meter, instance: &str, source: impl Fn() -> ProbeSnapshot + Send + Sync + 'static) -> Self {
        let m = Instruments::new(meter, instance, source);
        let instruments = vec![
            m.total("chainwatch.probe.segments", "{segment}", "Raw segments captured", |s| s.segments),
            m.total("chainwatch.probe.payload", "By", "Payload bytes captured", |s| s.bytes),
            m.counter("chainwatch.probe.losses", "{event}", "Captures lost, by reason", |s, a, o| {
                o(s.ring_full_events, &with(a, "reason", "ring_full"));
                o(s.truncated_calls, &with(a, "reason", "truncated"));
                o(s.unpaired_ssl_calls, &with(a, "reason", "unpaired_ssl"));
                o(s.map_full, &with(a, "reason", "map_full"));
                o(s.read_faults, &with(a, "reason", "read_fault"));
                o(s.undecodable, &with(a, "reason", "undecodable"));
                o(s.seed_events_dropped, &with(a, "reason", "seed_dropped"));
                o(s.segments_without_connection, &with(a, "reason", "no_connection"));
                o(s.holds_timed_out, &with(a, "reason", "hold_timeout"));
                o(s.uprobe_attaches_deferred, &with(a, "reason", "uprobes_deferred"));
            }),
            m.counter("chainwatch.probe.lost_payload", "By", "Payload bytes lost, by reason", |s, a, o| {
                o(s.ring_full_bytes, &with(a, "reason", "ring_full"));
                o(s.truncated_bytes, &with(a, "reason", "truncated"));
                o(s.unpaired_ssl_bytes, &with(a, "reason", "unpaired_ssl"));
                o(s.gap_bytes, &with(a, "reason", "gap"));
            }),
            m.counter("chainwatch.probe.evictions", "{entry}", "Tracking-table evictions, by table", |s, a, o| {
                o(s.connections_evicted, &with(a, "table", "connections"));
                o(s.processes_evicted, &with(a, "table", "processes"));
            }),
            m.total(
                "chainwatch.probe.uprobe_attach_failures",
                "{attach}",
                "SSL uprobe attachments that failed",
                |s| s.uprobe_attach_failures,
            ),
        ];
        ProbeMetrics { _instruments: instruments }
    }
}

// ---------------------------------------------------------------- parser

/// A parser worker's totals since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParserSnapshot {
    pub segments_in: u64,
    pub bytes_in: u64,
    pub events_out: u64,
    pub dead_lettered: u64,
    /// FSM errors by protocol (http1, http2, grpc, postgres, ...).
    pub fsm_errors: BTreeMap<String, u64>,
    /// Bound hits by kind (connections_evicted, body_cap, header_cap, ...).
    pub cap_hits: BTreeMap<String, u64>,
}

/// Metrics of the parser workers: `chainwatch.parser.segments`, `.payload` (By), `.events`,
/// `.dead_lettered`, `.fsm_errors{protocol}`, `.cap_hits{kind}`.
pub struct ParserMetrics {
    _instruments: Vec<ObservableCounter<u64>>,
}

impl ParserMetrics {
    pub fn register(
        meter: &Meter,
        instance: &str,
        source: impl Fn() -> ParserSnapshot + Send + Sync + 'static,
    ) -> Self {
        let m = Instruments::new(meter, instance, source);
        let instruments = vec![
            m.total("chainwatch.parser.segments", "{segment}", "Raw segments consumed", |s| s.segments_in),
            m.total("chainwatch.parser.payload", "By", "Payload bytes consumed", |s| s.bytes_in),
            m.total("chainwatch.parser.events", "{event}", "Semantic events published", |s| s.events_out),
            m.total("chainwatch.parser.dead_lettered", "{record}", "Records sent to the dead-letter topic", |s| {
                s.dead_lettered
            }),
            m.counter("chainwatch.parser.fsm_errors", "{error}", "Protocol FSM errors, by protocol", |s, a, o| {
                for (protocol, n) in &s.fsm_errors {
                    o(*n, &with(a, "protocol", protocol.clone()));
                }
            }),
            m.counter("chainwatch.parser.cap_hits", "{hit}", "Bounds hit, by kind", |s, a, o| {
                for (kind, n) in &s.cap_hits {
                    o(*n, &with(a, "kind", kind.clone()));
                }
            }),
        ];
        ParserMetrics { _instruments: instruments }
    }
}

// ---------------------------------------------------------------- chain builder

/// The chain builder's totals since start (`open_chains` is the current count).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainSnapshot {
    pub events_in: u64,
    pub open_chains: u64,
    pub chains_closed: u64,
    pub evictions: u64,
    pub late_events: u64,
    /// The chain worker's checkpoints (0 in `run`, whose builder does not checkpoint): written,
    /// not written (errors), the last one's size and write time, the restore time at start,
    /// and starts without one (missing, or refused: another version, corrupt).
    pub checkpoints_written: u64,
    pub checkpoint_errors: u64,
    pub checkpoint_bytes: u64,
    pub checkpoint_write_ms: u64,
    pub checkpoint_restore_ms: u64,
    pub checkpoints_missing: u64,
    pub checkpoints_rejected: u64,
    /// Cross-member stitching (see the chain worker): fragments published and received,
    /// fragments joined into a local client's chain (claimed), claims of this member's
    /// fragments, fragments nobody claimed, and records dropped (late, expired, capped, a claim
    /// for no waiting fragment).
    pub stitch_fragments_published: u64,
    pub stitch_fragments_received: u64,
    pub stitch_claimed: u64,
    pub stitch_claims_received: u64,
    pub stitch_unclaimed: u64,
    pub stitch_dropped: u64,
    /// The builder's bounds hit, by kind (fingerprints past a step's cap, chains closed with
    /// their PII flows cut, chains split at max_steps, stitches refused at max_depth, tuple and
    /// window index evictions, closed chains forgotten early).
    pub cap_hits: Vec<(&'static str, u64)>,
}

/// Metrics of the chain builder: `chainwatch.chains.events`, `.open` (gauge), `.closed`,
/// `.evicted`, `.late_events`, and of the chain worker's state checkpoints:
/// `chainwatch.chains.checkpoints{outcome}` (written, error, missing, rejected),
/// `.checkpoint.size` (By, gauge), `.checkpoint.write_time` and `.checkpoint.restore_time`
/// (ms, gauges), and of cross-member stitching: `chainwatch.chains.stitch{outcome}`
/// (fragment_published, fragment_received, claimed, claim_received, unclaimed, dropped), and
/// `chainwatch.chains.cap_hits{kind}` (see `ChainSnapshot::cap_hits`).
pub struct ChainMetrics {
    _counters: Vec<ObservableCounter<u64>>,
    _open: ObservableGauge<u64>,
    _checkpoint_gauges: Vec<ObservableGauge<u64>>,
}

impl ChainMetrics {
    pub fn register(meter: &Meter, instance: &str, source: impl Fn() -> ChainSnapshot + Send + Sync + 'static) -> Self {
        let m = Instruments::new(meter, instance, source);
        let mut counters = vec![
            m.total("chainwatch.chains.events", "{event}", "Semantic events consumed", |s| s.events_in),
            m.total("chainwatch.chains.closed", "{chain}", "Chains closed", |s| s.chains_closed),
            m.total("chainwatch.chains.evicted", "{chain}", "Chains evicted by the open-chain cap", |s| s.evictions),
            m.total(
                "chainwatch.chains.late_events",
                "{event}",
                "Events that arrived after their chain closed",
                |s| s.late_events,
            ),
        ];
        let open = m.gauge("chainwatch.chains.open", "{chain}", "Chains currently open", |s, a, o| o(s.open_chains, a));
        counters.push(m.counter("chainwatch.chains.cap_hits", "{hit}", "Bounds hit, by kind", |s, a, o| {
            for (kind, n) in &s.cap_hits {
                o(*n, &with(a, "kind", kind.to_string()));
            }
        }));
        counters.push(m.counter(
            "chainwatch.chains.checkpoints",
            "{checkpoint}",
            "Chain worker state checkpoints, by outcome (written, error; at start: missing, rejected)",
            |s, a, o| {
                for (outcome, n) in [
                    ("written", s.checkpoints_written),
                    ("error", s.checkpoint_errors),
                    ("missing", s.checkpoints_missing),
                    ("rejected", s.checkpoints_rejected),
                ] {
                    o(n, &with(a, "outcome", outcome.to_string()));
                }
            },
        ));
        counters.push(m.counter(
            "chainwatch.chains.stitch",
            "{record}",
            "Cross-member stitching fragments and claims, by outcome",
            |s, a, o| {
                for (outcome, n) in [
                    ("fragment_published", s.stitch_fragments_published),
                    ("fragment_received", s.stitch_fragments_received),
                    ("claimed", s.stitch_claimed),
                    ("claim_received", s.stitch_claims_received),
                    ("unclaimed", s.stitch_unclaimed),
                    ("dropped", s.stitch_dropped),
                ] {
                    o(n, &with(a, "outcome", outcome.to_string()));
                }
            },
        ));
        let checkpoint_gauges = vec![
            m.gauge("chainwatch.chains.checkpoint.size", "By", "Size of the last checkpoint", |s, a, o| o(s.checkpoint_bytes, a)),
            m.gauge("chainwatch.chains.checkpoint.write_time", "ms", "Encode and write time of the last checkpoint", |s, a, o| {
                o(s.checkpoint_write_ms, a)
            }),
            m.gauge("chainwatch.chains.checkpoint.restore_time", "ms", "Time the checkpoint restore at start took", |s, a, o| {
                o(s.checkpoint_restore_ms, a)
            }),
        ];
        ChainMetrics { _counters: counters, _open: open, _checkpoint_gauges: checkpoint_gauges }
    }
}

// ---------------------------------------------------------------- policy engine

/// Metrics of the policy engine (synchronous; cheap to clone):
/// `chainwatch.policy.evaluation.duration{policy_id}` (s), `chainwatch.policy.violations{policy_id,severity}`,
/// `chainwatch.policy.errors{policy_id}`.
#[derive(Clone)]
pub struct PolicyMetrics {
    evaluation: Histogram<f64>,
    violations: Counter<u64>,
    errors: Counter<u64>,
    base: Vec<KeyValue>,
}

/// Buckets for policy evaluation latency, seconds (100 µs .. 10 s).
pub const POLICY_LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl PolicyMetrics {
    pub fn register(meter: &Meter, instance: &str) -> Self {
        PolicyMetrics {
            evaluation: meter
                .f64_histogram("chainwatch.policy.evaluation.duration")
                .with_unit("s")
                .with_description("Time to evaluate one policy on one batch of chains")
                .with_boundaries(POLICY_LATENCY_BUCKETS.to_vec())
                .build(),
            violations: meter
                .u64_counter("chainwatch.policy.violations")
                .with_unit("{violation}")
                .with_description("Violations raised, by policy and severity")
                .build(),
            errors: meter
                .u64_counter("chainwatch.policy.errors")
                .with_unit("{error}")
                .with_description("Policy evaluations that failed, by policy")
                .build(),
            base: base_attrs(instance),
        }
    }

    pub fn record_evaluation(&self, policy_id: &str, elapsed: Duration) {
        self.evaluation.record(elapsed.as_secs_f64(), &with(&self.base, "policy_id", policy_id.to_string()));
    }

    pub fn record_violation(&self, policy_id: &str, severity: Severity) {
        let mut attrs = with(&self.base, "policy_id", policy_id.to_string());
        attrs.push(KeyValue::new("severity", severity_name(severity)));
        self.violations.add(1, &attrs);
    }

    pub fn record_error(&self, policy_id: &str) {
        self.errors.add(1, &with(&self.base, "policy_id", policy_id.to_string()));
    }
}

/// A policy worker's totals since start (what the consumer-group member handled).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicySnapshot {
    pub chains_in: u64,
    pub batches: u64,
    pub violations_published: u64,
    pub dead_lettered: u64,
}

/// Throughput of a policy worker (observable, fed from its stats): `chainwatch.policy.chains`,
/// `.batches`, `.violations_published`, `.dead_lettered`. Latency and violations by policy are
/// [`PolicyMetrics`].
pub struct PolicyWorkerMetrics {
    _instruments: Vec<ObservableCounter<u64>>,
}

impl PolicyWorkerMetrics {
    pub fn register(
        meter: &Meter,
        instance: &str,
        source: impl Fn() -> PolicySnapshot + Send + Sync + 'static,
    ) -> Self {
        let m = Instruments::new(meter, instance, source);
        let instruments = vec![
            m.total("chainwatch.policy.chains", "{chain}", "Chain versions consumed", |s| s.chains_in),
            m.total("chainwatch.policy.batches", "{batch}", "Micro-batches evaluated", |s| s.batches),
            m.total("chainwatch.policy.violations_published", "{violation}", "Violations published", |s| {
                s.violations_published
            }),
            m.total("chainwatch.policy.dead_lettered", "{record}", "Records sent to the dead-letter topic", |s| {
                s.dead_lettered
            }),
        ];
        PolicyWorkerMetrics { _instruments: instruments }
    }
}

/// Lower-case severity names as used in attributes.
pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

// ---------------------------------------------------------------- bus

/// One consumer group's lag on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// High watermark minus committed offset.
    pub lag: u64,
}

/// Metrics of the bus consumers: `chainwatch.bus.consumer_lag{group,topic,partition}` (gauge).
pub struct BusMetrics {
    _lag: ObservableGauge<u64>,
}

impl BusMetrics {
    pub fn register(
        meter: &Meter,
        instance: &str,
        source: impl Fn() -> Vec<PartitionLag> + Send + Sync + 'static,
    ) -> Self {
        let m = Instruments::new(meter, instance, source);
        let lag = m.gauge(
            "chainwatch.bus.consumer_lag",
            "{record}",
            "Records not yet consumed, per partition",
            |s, a, o| {
                for p in s {
                    let mut attrs = a.to_vec();
                    attrs.push(KeyValue::new("group", p.group.clone()));
                    attrs.push(KeyValue::new("topic", p.topic.clone()));
                    attrs.push(KeyValue::new("partition", i64::from(p.partition)));
                    o(p.lag, &attrs);
                }
            },
        );
        BusMetrics { _lag: lag }
    }
}

// ---------------------------------------------------------------- chain trace export

/// Metrics of the chain trace exporter: `chainwatch.traces.chains{outcome = submitted | dropped}`,
/// `chainwatch.traces.spans_exported`, `chainwatch.traces.export_failures`.
pub struct TraceExportMetrics {
    _instruments: Vec<ObservableCounter<u64>>,
}

impl TraceExportMetrics {
    pub fn register(
        meter: &Meter,
        instance: &str,
        source: impl Fn() -> crate::trace_exporter::ChainTraceStats + Send + Sync + 'static,
    ) -> Self {
        let m = Instruments::new(meter, instance, source);
        let instruments = vec![
            m.counter("chainwatch.traces.chains", "{chain}", "Chains handed to the trace exporter", |s, a, o| {
                o(s.chains_submitted, &with(a, "outcome", "submitted"));
                o(s.chains_dropped, &with(a, "outcome", "dropped"));
            }),
            m.total("chainwatch.traces.spans_exported", "{span}", "Spans the collector accepted", |s| s.spans_exported),
            m.total("chainwatch.traces.export_failures", "{request}", "OTLP trace requests that failed", |s| {
                s.export_failures
            }),
        ];
        TraceExportMetrics { _instruments: instruments }
    }
}
