//! `PolicyEngine`: loads the policies (a directory of TOML files, or the built-in pack) and the
//! reference tables, reloads them when their files change, and evaluates micro-batches of
//! chains: the latest version of each chain is registered as DataFusion tables (with the
//! history window rate policies need), every policy's SQL runs over them, and findings become
//! violations, emitted once per (policy, chain, key) and re-emitted with version + 1 only when
//! their evidence changes. A broken policy is reported (file and error) and skipped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use chainwatch_config::PolicyConfig;
use chainwatch_schemas::{Chain, Violation};
use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};

use crate::baselines::{Baselines, baselines_schema};
use crate::emitted::{Decision, EmittedViolations, fingerprint, violation_id};
use crate::findings::{Finding, findings};
use crate::history::{ChainHistory, HistoryLimits};
use crate::policy::{BUILTIN_PACK, Policy, PolicyError, parse_policy};
use crate::reference::{ReferenceData, destinations_schema, profiles_schema};
use crate::tables::{ChainTables, TableError, chain_schema, pii_flows_schema, processes_schema, steps_schema, tool_calls_schema};
use crate::timezone::local_time_udfs;

/// What stops the engine as a whole (a single broken policy does not).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Table(#[from] TableError),
    #[error("registering the {table} table: {message}")]
    Register { table: String, message: String },
    #[error("reading the policy directory {path}: {message}")]
    PolicyDir { path: String, message: String },
}

/// Counters of the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub batches: u64,
    pub chains: u64,
    pub violations_new: u64,
    pub violations_updated: u64,
    pub findings_unchanged: u64,
    pub policy_runs_failed: u64,
    pub reloads: u64,
}

/// File names and modification times of what was loaded, to notice changes.
type Stamp = Vec<(PathBuf, Option<SystemTime>, u64)>;

/// The policy engine.
pub struct PolicyEngine {
    policies_dir: Option<PathBuf>,
    reference_dir: Option<PathBuf>,
    policies: Vec<Policy>,
    load_errors: Vec<PolicyError>,
    run_errors: BTreeMap<String, PolicyError>,
    reference: ReferenceData,
    reference_error: Option<PolicyError>,
    policy_stamp: Stamp,
    reference_stamp: Stamp,
    history: ChainHistory,
    baselines: Baselines,
    emitted: EmittedViolations,
    batch_ctx: SessionContext,
    window_ctx: SessionContext,
    stats: EngineStats,
}

const CHAIN_TABLES: [&str; 5] = ["chains", "steps", "tool_calls", "pii_flows", "processes"];

impl PolicyEngine {
    /// Load policies and reference tables as configured. Broken policies do not fail this:
    /// see `policy_errors`.
    pub async fn new(cfg: &PolicyConfig) -> Result<PolicyEngine, EngineError> {
        let mut engine = PolicyEngine {
            policies_dir: cfg.policies_dir.clone(),
            reference_dir: cfg.reference_dir.clone(),
            policies: Vec::new(),
            load_errors: Vec::new(),
            run_errors: BTreeMap::new(),
            reference: ReferenceData::default(),
            reference_error: None,
            policy_stamp: Vec::new(),
            reference_stamp: Vec::new(),
            history: ChainHistory::new(HistoryLimits::default()),
            baselines: Baselines::default(),
            emitted: EmittedViolations::default(),
            batch_ctx: new_context(),
            window_ctx: new_context(),
            stats: EngineStats::default(),
        };
        engine.reload_reference()?;
        engine.reload_policies().await?;
        Ok(engine)
    }

    /// Policies that loaded and planned.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// Every policy (or reference file) that failed to load, plan or run, with its file.
    pub fn policy_errors(&self) -> Vec<PolicyError> {
        let mut out = self.load_errors.clone();
        out.extend(self.reference_error.clone());
        out.extend(self.run_errors.values().cloned());
        out
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// (history chains evicted, emitted violations forgotten).
    pub fn evictions(&self) -> (u64, u64) {
        (self.history.evicted_chains(), self.emitted.evicted())
    }

    /// Evaluate one micro-batch of updated chains; returns the new and updated violations.
    pub async fn evaluate(&mut self, chains: &[Chain]) -> Result<Vec<Violation>, EngineError> {
        self.reload_if_changed().await?;
        self.stats.batches += 1;
        // The latest version of each chain of the batch.
        let mut latest: HashMap<&str, &Chain> = HashMap::with_capacity(chains.len());
        for c in chains {
            match latest.get(c.chain_id.as_str()) {
                Some(old) if old.version > c.version => {}
                _ => {
                    latest.insert(&c.chain_id, c);
                }
            }
        }
        let mut owned: Vec<Chain> = latest.into_values().cloned().collect();
        owned.sort_by(|a, b| a.chain_id.cmp(&b.chain_id));
        self.stats.chains += owned.len() as u64;
        let by_id: HashMap<&str, &Chain> = owned.iter().map(|c| (c.chain_id.as_str(), c)).collect();

        let baselines = self.baselines.batch()?;
        let refs = self.reference_batches()?;
        let tables = ChainTables::from_chains(&owned)?;
        register_all(&self.batch_ctx, &tables, &refs, &baselines)?;
        let windowed = self.policies.iter().any(|p| p.window.is_some());
        if windowed {
            let ids = owned.iter().map(|c| c.chain_id.clone()).collect();
            let max_end = owned.iter().map(|c| c.end_ns).max().unwrap_or(0);
            self.history.insert(tables, ids, max_end)?;
            register_window(&self.window_ctx, &self.history, &refs, &baselines)?;
        }

        let mut out = Vec::new();
        for policy in &self.policies {
            let ctx = if policy.window.is_some() { &self.window_ctx } else { &self.batch_ctx };
            let found = match run_policy(ctx, policy).await {
                Ok(f) => {
                    self.run_errors.remove(&policy.source);
                    f
                }
                Err(message) => {
                    self.stats.policy_runs_failed += 1;
                    tracing::warn!(policy = %policy.file.id, source = %policy.source, %message, "policy run failed");
                    self.run_errors.insert(
                        policy.source.clone(),
                        PolicyError { source: policy.source.clone(), policy_id: Some(policy.file.id.clone()), message },
                    );
                    continue;
                }
            };
            for f in found {
                // Window policies see history; only chains of this batch get (new) findings.
                let Some(chain) = by_id.get(f.chain_id.as_str()) else { continue };
                let id = violation_id(&policy.file.id, &f.chain_id, &f.key);
                let v = build_violation(policy, &f, chain, id);
                let fp = violation_fingerprint(&v);
                match self.emitted.decide(&v.violation_id, fp, chain.end_ns) {
                    Decision::Unchanged => self.stats.findings_unchanged += 1,
                    Decision::Emit { version, first_seen_ns } => {
                        if version == 1 {
                            self.stats.violations_new += 1;
                        } else {
                            self.stats.violations_updated += 1;
                        }
                        out.push(Violation { version, first_seen_ns, ..v });
                    }
                }
            }
        }
        self.baselines.observe(&owned);
        Ok(out)
    }

    fn reference_batches(&self) -> Result<[RecordBatch; 2], EngineError> {
        Ok([self.reference.destinations_batch()?, self.reference.profiles_batch()?])
    }

    async fn reload_if_changed(&mut self) -> Result<(), EngineError> {
        if let Some(dir) = &self.reference_dir
            && reference_stamp(dir) != self.reference_stamp
        {
            self.reload_reference()?;
            self.stats.reloads += 1;
        }
        if let Some(dir) = &self.policies_dir
            && policy_stamp(dir) != self.policy_stamp
        {
            self.reload_policies().await?;
            self.stats.reloads += 1;
        }
        Ok(())
    }

    fn reload_reference(&mut self) -> Result<(), EngineError> {
        let loaded = match self.reference_dir.clone() {
            None => ReferenceData::builtin(),
            Some(dir) => {
                self.reference_stamp = reference_stamp(&dir);
                ReferenceData::load(&dir)
            }
        };
        match loaded {
            Ok(r) => {
                self.reference = r;
                self.reference_error = None;
            }
            Err(e) => {
                // Keep the last good tables; report the file.
                tracing::warn!(error = %e, "reference table not loaded");
                self.reference_error = Some(PolicyError { source: e.path, policy_id: None, message: e.message });
            }
        }
        Ok(())
    }

    async fn reload_policies(&mut self) -> Result<(), EngineError> {
        let files: Vec<(String, Result<String, String>)> = match &self.policies_dir {
            None => BUILTIN_PACK.iter().map(|(n, t)| (format!("builtin:{n}"), Ok(t.to_string()))).collect(),
            Some(dir) => {
                self.policy_stamp = policy_stamp(dir);
                let entries = std::fs::read_dir(dir)
                    .map_err(|e| EngineError::PolicyDir { path: dir.display().to_string(), message: e.to_string() })?;
                let mut paths: Vec<PathBuf> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
                    .collect();
                paths.sort();
                paths
                    .into_iter()
                    .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).map_err(|e| e.to_string())))
                    .collect()
            }
        };
        let validation = new_context();
        register_all(
            &validation,
            &ChainTables::empty(),
            &[RecordBatch::new_empty(destinations_schema()), RecordBatch::new_empty(profiles_schema())],
            &RecordBatch::new_empty(baselines_schema()),
        )?;
        let mut policies: Vec<Policy> = Vec::new();
        let mut errors = Vec::new();
        for (source, text) in files {
            let text = match text {
                Ok(t) => t,
                Err(message) => {
                    errors.push(PolicyError { source, policy_id: None, message: format!("cannot read: {message}") });
                    continue;
                }
            };
            let policy = match parse_policy(&source, &text) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            if let Some(other) = policies.iter().find(|p| p.file.id == policy.file.id) {
                errors.push(PolicyError {
                    source,
                    policy_id: Some(policy.file.id.clone()),
                    message: format!("duplicate policy id (also in {})", other.source),
                });
                continue;
            }
            if let Err(message) = plan_policy(&validation, &policy).await {
                errors.push(PolicyError { source, policy_id: Some(policy.file.id.clone()), message });
                continue;
            }
            policies.push(policy);
        }
        for e in &errors {
            tracing::warn!(error = %e, "policy not loaded");
        }
        let max_window = policies.iter().filter_map(|p| p.window).max().unwrap_or_default();
        self.history.set_window_ns(i64::try_from(max_window.as_nanos()).unwrap_or(i64::MAX));
        self.policies = policies;
        self.load_errors = errors;
        self.run_errors.clear();
        Ok(())
    }
}

fn new_context() -> SessionContext {
    let config = SessionConfig::new().with_target_partitions(1).with_information_schema(false);
    let ctx = SessionContext::new_with_config(config);
    for udf in local_time_udfs() {
        ctx.register_udf(udf);
    }
    ctx
}

/// Policies may only query.
fn read_only() -> SQLOptions {
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

fn register(ctx: &SessionContext, name: &str, batch: RecordBatch) -> Result<(), EngineError> {
    let err = |e: datafusion::error::DataFusionError| EngineError::Register { table: name.to_string(), message: e.to_string() };
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(err)?;
    ctx.deregister_table(name).map_err(err)?;
    ctx.register_table(name, Arc::new(table)).map_err(err)?;
    Ok(())
}

fn register_all(ctx: &SessionContext, t: &ChainTables, refs: &[RecordBatch; 2], baselines: &RecordBatch) -> Result<(), EngineError> {
    let chain_batches = [&t.chains, &t.steps, &t.tool_calls, &t.pii_flows, &t.processes];
    for (name, b) in CHAIN_TABLES.iter().zip(chain_batches) {
        register(ctx, name, b.clone())?;
    }
    register(ctx, "allowed_destinations", refs[0].clone())?;
    register(ctx, "agent_profiles", refs[1].clone())?;
    register(ctx, "baselines", baselines.clone())?;
    Ok(())
}

/// The window context: the kept history batches (this micro-batch included) per table.
fn register_window(ctx: &SessionContext, h: &ChainHistory, refs: &[RecordBatch; 2], baselines: &RecordBatch) -> Result<(), EngineError> {
    let schemas = [chain_schema(), steps_schema(), tool_calls_schema(), pii_flows_schema(), processes_schema()];
    for ((name, batches), schema) in CHAIN_TABLES.iter().zip(h.table_batches()).zip(schemas) {
        let err = |e: datafusion::error::DataFusionError| EngineError::Register { table: name.to_string(), message: e.to_string() };
        let table = MemTable::try_new(schema, vec![batches]).map_err(err)?;
        ctx.deregister_table(*name).map_err(err)?;
        ctx.register_table(*name, Arc::new(table)).map_err(err)?;
    }
    register(ctx, "allowed_destinations", refs[0].clone())?;
    register(ctx, "agent_profiles", refs[1].clone())?;
    register(ctx, "baselines", baselines.clone())?;
    Ok(())
}

/// Plan a policy's SQL against the (empty) tables: the errors a broken policy shows at load.
async fn plan_policy(ctx: &SessionContext, policy: &Policy) -> Result<(), String> {
    let df = ctx.sql_with_options(&policy.file.sql, read_only()).await.map_err(|e| format!("SQL error: {e}"))?;
    let schema = df.schema();
    let has = |name: &str| schema.fields().iter().any(|f| f.name() == name);
    if !has(crate::findings::CHAIN_ID) {
        return Err("the query must return a chain_id column".into());
    }
    if let Some(k) = policy.file.key.iter().find(|k| !has(k)) {
        return Err(format!("key column {k:?} is not returned by the query"));
    }
    Ok(())
}

async fn run_policy(ctx: &SessionContext, policy: &Policy) -> Result<Vec<Finding>, String> {
    let df = ctx.sql_with_options(&policy.file.sql, read_only()).await.map_err(|e| format!("SQL error: {e}"))?;
    let batches = df.collect().await.map_err(|e| format!("execution error: {e}"))?;
    findings(&batches, &policy.file.key).map_err(|e| e.to_string())
}

fn build_violation(policy: &Policy, f: &Finding, chain: &Chain, violation_id: String) -> Violation {
    let pii_types: Vec<String> = match &f.pii_types {
        Some(p) => p.iter().cloned().collect(),
        None => {
            let set: BTreeSet<&String> = chain.pii_types.iter().collect();
            set.into_iter().cloned().collect()
        }
    };
    Violation {
        violation_id,
        version: 1,
        policy_id: policy.file.id.clone(),
        policy_title: policy.file.title.clone(),
        severity: policy.file.severity,
        description: policy.file.description.trim().to_string(),
        chain_id: chain.chain_id.clone(),
        node: chain.agent.node.clone(),
        agent_key: chain.agent.agent_key.clone(),
        first_seen_ns: chain.end_ns,
        ts_ns: chain.end_ns,
        evidence_steps: f.steps.iter().copied().collect(),
        evidence: f.evidence.clone(),
        pii_types,
        risk_score: f.risk_score.unwrap_or(chain.risk_score),
        tags: policy.file.tags.clone(),
    }
}

/// What makes a violation "the same": its steps, evidence and PII types (not times).
fn violation_fingerprint(v: &Violation) -> [u8; 32] {
    let steps: Vec<String> = v.evidence_steps.iter().map(|s| s.to_string()).collect();
    let mut fields: Vec<&str> = vec!["steps"];
    fields.extend(steps.iter().map(String::as_str));
    fields.push("evidence");
    for (k, val) in &v.evidence {
        fields.push(k);
        fields.push(val);
    }
    fields.push("pii");
    fields.extend(v.pii_types.iter().map(String::as_str));
    fingerprint(fields)
}

fn stamp_of(paths: impl IntoIterator<Item = PathBuf>) -> Stamp {
    let mut out: Stamp = paths
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            let len = meta.map_or(0, |m| m.len());
            (p, modified, len)
        })
        .collect();
    out.sort();
    out
}

fn policy_stamp(dir: &Path) -> Stamp {
    let paths = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    stamp_of(paths)
}

fn reference_stamp(dir: &Path) -> Stamp {
    let names = ["allowed_destinations", "agent_profiles"];
    stamp_of(
        names
            .iter()
            .flat_map(|n| ["toml", "csv"].map(|ext| dir.join(format!("{n}.{ext}"))))
            .filter(|p| p.exists()),
    )
}
