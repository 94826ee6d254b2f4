//! The embedded pipeline (`chainwatch run`, `chainwatch demo`): every stage in one process on
//! the stages' own code: the connection FSMs and the semantics hook (layer 2), the chain
//! builder (layer 3), the policy engine (layer 4) and the Parquet chain store (layer 5).
//! Records go in as the probe produces them; chains and violations come out, the latest
//! version of each, and are stored in the data directory for `chainwatch sql`.

use std::collections::BTreeMap;

use anyhow::Context;
use chainwatch_chain_builder::ChainBuilder;
use chainwatch_config::ChainwatchConfig;
use chainwatch_parser_workers::connection::{ConnectionTable, ParsedExchange};
use chainwatch_parser_workers::events::to_event_with;
use chainwatch_parser_workers::semantics::SemanticsHook;
use chainwatch_policy_engine::PolicyEngine;
use chainwatch_policy_engine::storage::ChainStore;
use chainwatch_schemas::{Chain, JsonRecord, SemanticEvent, Violation};

/// Chain updates evaluated together (the policy engine's micro-batch).
const BATCH: usize = 256;

/// What went through the pipeline.
#[derive(Debug, Default, Clone, Copy)]
pub struct PipelineCounts {
    pub records: u64,
    pub segments: u64,
    pub process_events: u64,
    pub events: u64,
    pub chain_updates: u64,
    pub violations: u64,
}

/// All stages in one process.
pub struct EmbeddedPipeline {
    table: ConnectionTable,
    hook: SemanticsHook,
    builder: ChainBuilder,
    engine: PolicyEngine,
    store: Option<ChainStore>,
    pending: Vec<Chain>,
    chains: BTreeMap<String, Chain>,
    violations: BTreeMap<String, Violation>,
    counts: PipelineCounts,
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
        Ok(EmbeddedPipeline {
            table: ConnectionTable::new(&cfg.parser),
            hook: SemanticsHook::new(&cfg.parser),
            builder: ChainBuilder::new(&cfg.chain),
            engine,
            store,
            pending: Vec::new(),
            chains: BTreeMap::new(),
            violations: BTreeMap::new(),
            counts: PipelineCounts::default(),
        })
    }

    /// One record as the probe produced it.
    pub async fn push(&mut self, record: &JsonRecord) -> anyhow::Result<()> {
        self.counts.records += 1;
        match record {
            JsonRecord::RawSegment(s) => {
                self.counts.segments += 1;
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
        let mut chains: Vec<Chain> = self.chains.into_values().collect();
        chains.sort_by(|a, b| a.start_ns.cmp(&b.start_ns).then_with(|| a.chain_id.cmp(&b.chain_id)));
        let mut violations: Vec<Violation> = self.violations.into_values().collect();
        violations.sort_by(|a, b| a.ts_ns.cmp(&b.ts_ns).then_with(|| a.violation_id.cmp(&b.violation_id)));
        Ok(PipelineOutput { chains, violations, counts: self.counts })
    }

    fn exchanges(&mut self, exchanges: &[ParsedExchange]) {
        for ex in exchanges {
            let event = to_event_with(ex, &mut self.hook);
            self.event(event);
        }
    }

    fn event(&mut self, event: SemanticEvent) {
        self.counts.events += 1;
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
        let found = self.engine.evaluate(&batch).await.context("evaluating the policies")?;
        self.counts.violations += found.len() as u64;
        if let Some(store) = &mut self.store {
            store.append(&batch, &found).context("storing chains and violations")?;
        }
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

/// What the pipeline produced.
#[derive(Debug, Default)]
pub struct PipelineOutput {
    pub chains: Vec<Chain>,
    pub violations: Vec<Violation>,
    pub counts: PipelineCounts,
}
