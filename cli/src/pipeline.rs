//! The embedded pipeline (`chainwatch run`, `chainwatch demo`): every stage in one process on
//! the stages' own code: the connection FSMs and the semantics hook (layer 2), the chain
//! builder (layer 3), the policy engine (layer 4) and the Parquet chain store (layer 5).
//! Records go in as the probe produces them; chains and violations come out, the latest
//! version of each, and are stored in the data directory for `chainwatch sql`. With
//! [`EmbeddedPipeline::with_metrics`] each stage reports its metric set (parser, chain builder,
//! policy engine) while records go through.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use anyhow::Context;
use chainwatch_chain_builder::ChainBuilder;
use chainwatch_config::ChainwatchConfig;
use chainwatch_parser_workers::connection::{ConnectionTable, ParsedExchange};
use chainwatch_parser_workers::events::to_event_with;
use chainwatch_parser_workers::semantics::SemanticsHook;
use chainwatch_policy_engine::PolicyEngine;
use chainwatch_policy_engine::embedded_tasks::EmbeddedTasks;
use chainwatch_policy_engine::storage::ChainStore;
use chainwatch_schemas::{Chain, JsonRecord, SemanticEvent, Violation};
use chainwatch_telemetry::status_line::StatusSample;
use chainwatch_telemetry::{
    ChainMetrics, ChainSnapshot, LlmDetails, ParserMetrics, ParserSnapshot, PolicyMetrics, SharedSnapshot, Telemetry,
};

use crate::stage_feed::{FsmErrors, PUBLISH_EVERY, chain_snapshot, parser_snapshot};

/// Chain updates evaluated together (the policy engine's micro-batch).
const BATCH: usize = 256;
/// LLM call details kept for the trace export (beyond: counted, the spans lack them).
const MAX_LLM_DETAILS: usize = 100_000;
/// `policy_id` of the evaluation latency: the engine runs all policies on a batch in one call,
/// so the duration is the whole policy set's.
const ALL_POLICIES: &str = "all";

/// What went through the pipeline.
#[derive(Debug, Default, Clone, Copy)]
pub struct PipelineCounts {
    pub records: u64,
    pub segments: u64,
    pub process_events: u64,
    pub events: u64,
    pub chain_updates: u64,
    pub violations: u64,
    /// Events made from exchanges here (not passed in as SemanticEvent records).
    pub parsed_events: u64,
    pub payload_bytes: u64,
    /// LLM calls whose details did not fit `MAX_LLM_DETAILS`.
    pub llm_details_dropped: u64,
}

/// The stage metric sets of the pipeline and what feeds them.
struct PipelineMetrics {
    parser: SharedSnapshot<ParserSnapshot>,
    chain: SharedSnapshot<ChainSnapshot>,
    policy: PolicyMetrics,
    _sets: (ParserMetrics, ChainMetrics),
    /// Policy runs failed so far and the errors known at start (to name the failing policy).
    runs_failed: u64,
    known_errors: Vec<(String, String)>,
    published_at: Instant,
}

/// All stages in one process.
pub struct EmbeddedPipeline {
    table: ConnectionTable,
    hook: SemanticsHook,
    builder: ChainBuilder,
    engine: PolicyEngine,
    store: Option<ChainStore>,
    /// The violation webhook and scheduled compaction, off the pipeline's path.
    tasks: EmbeddedTasks,
    pending: Vec<Chain>,
    chains: BTreeMap<String, Chain>,
    violations: BTreeMap<String, Violation>,
    counts: PipelineCounts,
    fsm_errors: FsmErrors,
    llm: HashMap<String, LlmDetails>,
    metrics: Option<PipelineMetrics>,
}

impl EmbeddedPipeline {
    /// The stages as configured; `store` writes Parquet to `storage.data_dir`.
    pub async fn new(cfg: &ChainwatchConfig, store: bool) -> anyhow::Result<Self> {
        let engine = PolicyEngine::new(&cfg.policy).await.context("loading the policies")?;
        for e in engine.policy_errors() {
            eprintln!("chainwatch: policy not loaded: {e}");
        }
        let store = if store {
            Some(
                ChainStore::open(&cfg.storage, cfg.policy.routine_sample_rate)
                    .with_context(|| format!("opening the data directory {}", cfg.storage.data_dir.display()))?,
            )
        } else {
            None
        };
        let tasks = EmbeddedTasks::start(cfg, store.as_ref()).context("starting the webhook and compaction tasks")?;
        Ok(EmbeddedPipeline {
            table: ConnectionTable::new(&cfg.parser),
            hook: SemanticsHook::new(&cfg.parser),
            builder: ChainBuilder::new(&cfg.chain),
            engine,
            store,
            tasks,
            pending: Vec::new(),
            chains: BTreeMap::new(),
            violations: BTreeMap::new(),
            counts: PipelineCounts::default(),
            fsm_errors: FsmErrors::default(),
            llm: HashMap::new(),
            metrics: None,
        })
    }

    /// Register the parser, chain-builder and policy metric sets on `telemetry`; snapshots are
    /// published every second while records go through, and at the end.
    pub fn with_metrics(mut self, telemetry: &Telemetry) -> Self {
        let parser = SharedSnapshot::new(ParserSnapshot::default());
        let chain = SharedSnapshot::new(ChainSnapshot::default());
        let sets = (
            ParserMetrics::register(&telemetry.meter("chainwatch.parser"), "", parser.source()),
            ChainMetrics::register(&telemetry.meter("chainwatch.chains"), "", chain.source()),
        );
        let known_errors = self.engine.policy_errors().into_iter().map(|e| (e.source, e.message)).collect();
        self.metrics = Some(PipelineMetrics {
            parser,
            chain,
            policy: PolicyMetrics::register(&telemetry.meter("chainwatch.policy"), ""),
            _sets: sets,
            runs_failed: self.engine.stats().policy_runs_failed,
            known_errors,
            published_at: Instant::now(),
        });
        self.publish_metrics();
        self
    }

    /// Totals so far for a status line (losses are the probe's, not known here).
    pub fn status_sample(&self) -> StatusSample {
        StatusSample {
            events_total: self.counts.events,
            lost_total: 0,
            open_chains: self.builder.open_chains() as u64,
            violations_total: self.counts.violations,
        }
    }

    /// Publish the stages' snapshots into their metric sets (when registered).
    fn publish_metrics(&mut self) {
        let Some(m) = &mut self.metrics else { return };
        m.parser.publish(parser_snapshot(
            self.counts.segments,
            self.counts.payload_bytes,
            self.counts.parsed_events,
            0,
            &self.table.stats(),
            &self.fsm_errors,
        ));
        m.chain.publish(chain_snapshot(&self.builder.stats(), self.builder.open_chains()));
        m.published_at = Instant::now();
    }

    /// One record as the probe produced it.
    pub async fn push(&mut self, record: &JsonRecord) -> anyhow::Result<()> {
        self.counts.records += 1;
        match record {
            JsonRecord::RawSegment(s) => {
                self.counts.segments += 1;
                self.counts.payload_bytes += s.payload.len() as u64;
                let out = self.table.on_segment(s);
                self.exchanges(&out);
            }
            JsonRecord::ConnectionEvent(c) => {
                let out = self.table.on_connection_event(c);
                self.exchanges(&out);
            }
            JsonRecord::ProcessEvent(p) => {
                self.counts.process_events += 1;
                self.builder.push_process(p);
            }
            JsonRecord::SemanticEvent(e) => self.event(e.clone()),
            JsonRecord::Chain(_) | JsonRecord::Violation(_) => {}
        }
        if self.pending.len() >= BATCH {
            self.evaluate().await?;
        }
        if self.metrics.as_ref().is_some_and(|m| m.published_at.elapsed() >= PUBLISH_EVERY) {
            self.publish_metrics();
        }
        Ok(())
    }

    /// End of input: flush the FSMs, close every chain, evaluate and store what is left.
    /// Returns the latest version of every chain and violation.
    pub async fn finish(mut self) -> anyhow::Result<PipelineOutput> {
        let out = self.table.finish();
        self.exchanges(&out);
        let closed = self.builder.finish();
        self.counts.chain_updates += closed.len() as u64;
        self.pending.extend(closed);
        self.evaluate().await?;
        self.publish_metrics();
        self.tasks.finish().await;
        let mut chains: Vec<Chain> = self.chains.into_values().collect();
        chains.sort_by(|a, b| a.start_ns.cmp(&b.start_ns).then_with(|| a.chain_id.cmp(&b.chain_id)));
        let mut violations: Vec<Violation> = self.violations.into_values().collect();
        violations.sort_by(|a, b| a.ts_ns.cmp(&b.ts_ns).then_with(|| a.violation_id.cmp(&b.violation_id)));
        Ok(PipelineOutput { chains, violations, counts: self.counts, llm: self.llm })
    }

    fn exchanges(&mut self, exchanges: &[ParsedExchange]) {
        for ex in exchanges {
            self.fsm_errors.note(ex);
            let event = to_event_with(ex, &mut self.hook);
            self.counts.parsed_events += 1;
            self.event(event);
        }
    }

    fn event(&mut self, event: SemanticEvent) {
        self.counts.events += 1;
        if let Some(call) = &event.llm {
            if self.llm.len() < MAX_LLM_DETAILS || self.llm.contains_key(&event.event_id) {
                let details = LlmDetails {
                    provider: Some(call.provider.clone()).filter(|p| !p.is_empty()),
                    request_model: call.request_model.clone(),
                    response_model: call.response_model.clone(),
                    finish_reasons: call.finish_reasons.clone(),
                };
                self.llm.insert(event.event_id.clone(), details);
            } else {
                self.counts.llm_details_dropped += 1;
            }
        }
        let updates = self.builder.push_event(event);
        self.counts.chain_updates += updates.len() as u64;
        self.pending.extend(updates);
    }

    /// The pending chain updates (latest version per chain) through the policy engine and
    /// into the store.
    async fn evaluate(&mut self) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut latest: BTreeMap<String, Chain> = BTreeMap::new();
        for c in self.pending.drain(..) {
            match latest.get(&c.chain_id) {
                Some(old) if old.version > c.version => {}
                _ => {
                    latest.insert(c.chain_id.clone(), c);
                }
            }
        }
        let batch: Vec<Chain> = latest.into_values().collect();
        let started = Instant::now();
        let found = self.engine.evaluate(&batch).await.context("evaluating the policies")?;
        self.counts.violations += found.len() as u64;
        self.record_policy_metrics(started, &found);
        if let Some(store) = &mut self.store {
            store.append(&batch, &found).context("storing chains and violations")?;
        }
        self.tasks.on_violations(&found);
        for v in found {
            match self.violations.get(&v.violation_id) {
                Some(old) if old.version > v.version => {}
                _ => {
                    self.violations.insert(v.violation_id.clone(), v);
                }
            }
        }
        for c in batch {
            match self.chains.get(&c.chain_id) {
                Some(old) if old.version > c.version => {}
                _ => {
                    self.chains.insert(c.chain_id.clone(), c);
                }
            }
        }
        Ok(())
    }
}

impl EmbeddedPipeline {
    /// Evaluation latency, new violations by policy and severity, and failed policy runs
    /// (named by the engine's run errors not known at start; "unknown" beyond).
    fn record_policy_metrics(&mut self, started: Instant, found: &[Violation]) {
        let Some(m) = &mut self.metrics else { return };
        m.policy.record_evaluation(ALL_POLICIES, started.elapsed());
        for v in found.iter().filter(|v| v.version == 1) {
            m.policy.record_violation(&v.policy_id, v.severity);
        }
        let failed = self.engine.stats().policy_runs_failed;
        let new_failures = failed.saturating_sub(m.runs_failed);
        m.runs_failed = failed;
        if new_failures == 0 {
            return;
        }
        let errors = self.engine.policy_errors();
        let mut named = errors
            .iter()
            .filter(|e| !m.known_errors.iter().any(|(src, msg)| *src == e.source && *msg == e.message))
            .map(|e| e.policy_id.as_deref().unwrap_or("unknown"));
        for _ in 0..new_failures {
            m.policy.record_error(named.next().unwrap_or("unknown"));
        }
    }
}

/// What the pipeline produced.
#[derive(Debug, Default)]
pub struct PipelineOutput {
    pub chains: Vec<Chain>,
    pub violations: Vec<Violation>,
    pub counts: PipelineCounts,
    /// LLM call details by step event id, for the chain traces.
    pub llm: HashMap<String, LlmDetails>,
}
