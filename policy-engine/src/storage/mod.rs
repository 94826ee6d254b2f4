//! Chain storage for ad hoc SQL: the chain tables and violations as Parquet, Hive-partitioned by
//! day under the data directory (`<table>/day=YYYY-MM-DD/part-<seq>.parquet`), appended
//! micro-batch by micro-batch as new files (no rewrite). Chain upserts are resolved at read time
//! by the SQL session's latest-version views. Chains are sampled for storage (`sampling`) while
//! the per-chain count rows (`counts`) keep the aggregates exact.

pub mod catalog;
mod compaction;
mod counts;
mod error;
mod layout;
mod sampling;
mod schedule;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chainwatch_config::StorageConfig;
use chainwatch_schemas::{Chain, Violation};
use datafusion::arrow::array::{Array, Int64Array, RecordBatch, StringArray};

pub use catalog::{CHAIN_VERSION_COLUMN, StoredTable, Versioning};
pub use compaction::CompactionReport;
pub use counts::{LLM_CALL_KIND, chain_counts_batch, chain_counts_schema};
pub use error::StorageError;
pub use schedule::{CompactionTotals, ScheduledCompaction, StoreCompactor};
pub use layout::{DAY_COLUMN, PART_EXTENSION, part_files, partition_dir, stored_days, table_dir};
pub use sampling::{
    EXTERNAL_CATEGORIES, KeepReason, MAX_KEPT_CHAINS, MAX_PATTERNS_PER_AGENT, MAX_TRACKED_AGENTS, SamplingCounters,
    StorageSampler, calls_tools, reaches_external, touches_pii,
};

use crate::tables::{ChainTables, violations_batch};
use layout::PartWriter;

/// What one append did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendReport {
    /// Chains handed in (every one is counted in `chain_counts`).
    pub chains_seen: usize,
    /// Chains stored in full.
    pub chains_stored: usize,
    pub violations_stored: usize,
    pub files_written: Vec<PathBuf>,
}

/// Writes chain micro-batches and their violations into the data directory.
#[derive(Debug)]
pub struct ChainStore {
    writer: PartWriter,
    sampler: StorageSampler,
}

impl ChainStore {
    /// Opens (creating) `storage.data_dir`; routine chains are kept at `routine_sample_rate`
    /// (PolicyConfig.routine_sample_rate).
    pub fn open(storage: &StorageConfig, routine_sample_rate: f64) -> Result<Self, StorageError> {
        Self::open_dir(&storage.data_dir, routine_sample_rate)
    }

    pub fn open_dir(data_dir: &Path, routine_sample_rate: f64) -> Result<Self, StorageError> {
        let names: Vec<&str> = catalog::ALL.iter().map(|t| t.name).collect();
        Ok(ChainStore { writer: PartWriter::open(data_dir, &names)?, sampler: StorageSampler::new(routine_sample_rate) })
    }

    pub fn data_dir(&self) -> &Path {
        self.writer.data_dir()
    }

    pub fn sampling_counters(&self) -> &SamplingCounters {
        self.sampler.counters()
    }

    /// Stores one micro-batch: a count row for every chain, the full tables for the chains the
    /// sampler keeps, and every violation. When a chain appears more than once in the batch,
    /// only its highest version is considered.
    pub fn append(&mut self, chains: &[Chain], violations: &[Violation]) -> Result<AppendReport, StorageError> {
        let chains = latest_versions(chains);
        let mut report = AppendReport { chains_seen: chains.len(), ..AppendReport::default() };
        let violated: HashSet<&str> = violations.iter().map(|v| v.chain_id.as_str()).collect();
        let kept: Vec<Chain> = chains
            .iter()
            .filter(|c| self.sampler.decide(c, violated.contains(c.chain_id.as_str())).is_some())
            .map(|c| (*c).clone())
            .collect();
        report.chains_stored = kept.len();

        let counts = chain_counts_batch(&chains).map_err(|e| StorageError::arrow(catalog::CHAIN_COUNTS.name, e))?;
        report.files_written.extend(self.writer.append(catalog::CHAIN_COUNTS.name, &counts)?);

        if !kept.is_empty() {
            let versions: HashMap<&str, i64> = kept.iter().map(|c| (c.chain_id.as_str(), c.version)).collect();
            let tables = ChainTables::from_chains(&kept)?;
            report.files_written.extend(self.writer.append(catalog::CHAINS.name, &tables.chains)?);
            for (table, batch) in [
                (catalog::STEPS, &tables.steps),
                (catalog::TOOL_CALLS, &tables.tool_calls),
                (catalog::PII_FLOWS, &tables.pii_flows),
                (catalog::PROCESSES, &tables.processes),
            ] {
                let batch = with_chain_version(table.name, batch, &versions)?;
                report.files_written.extend(self.writer.append(table.name, &batch)?);
            }
        }
        if !violations.is_empty() {
            let batch = violations_batch(violations)?;
            report.files_written.extend(self.writer.append(catalog::VIOLATIONS.name, &batch)?);
            report.violations_stored = violations.len();
        }
        Ok(report)
    }
}

impl ChainStore {
    /// Merges every day partition that holds more than `min_parts` part files into one part,
    /// dropping superseded versions (the views keep resolving versions, so answers do not
    /// change). Run it now and then, e.g. hourly; it reads and rewrites whole partitions.
    pub async fn compact(&mut self, min_parts: usize) -> Result<CompactionReport, StorageError> {
        compaction::compact_all(&mut self.writer, min_parts, |_| true).await
    }

    /// A handle that compacts this store's closed days from another task while appends go on
    /// (it shares the part numbering and deletes only the parts it merged).
    pub fn compactor(&self) -> StoreCompactor {
        StoreCompactor::new(self.writer.clone())
    }
}

/// The highest version of each chain id, in first-seen order.
fn latest_versions(chains: &[Chain]) -> Vec<&Chain> {
    let mut best: HashMap<&str, usize> = HashMap::with_capacity(chains.len());
    let mut order = Vec::with_capacity(chains.len());
    for (i, c) in chains.iter().enumerate() {
        match best.get(c.chain_id.as_str()) {
            Some(&j) if chains[j].version >= c.version => {}
            Some(_) => {
                best.insert(&c.chain_id, i);
            }
            None => {
                best.insert(&c.chain_id, i);
                order.push(c.chain_id.as_str());
            }
        }
    }
    order.iter().filter_map(|id| best.get(id).map(|&i| &chains[i])).collect()
}

/// Appends `chain_version` (looked up by the row's chain_id) to a child table's batch.
fn with_chain_version(table: &str, batch: &RecordBatch, versions: &HashMap<&str, i64>) -> Result<RecordBatch, StorageError> {
    let ids = batch
        .column_by_name("chain_id")
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| StorageError::MissingColumn { table: table.to_string(), column: "chain_id" })?;
    let version: Int64Array =
        (0..ids.len()).map(|i| if ids.is_null(i) { None } else { versions.get(ids.value(i)).copied() }).collect();
    if version.null_count() > 0 {
        return Err(StorageError::MissingColumn { table: table.to_string(), column: "chain_id (unknown chain)" });
    }
    let schema = batch.schema();
    let mut fields: Vec<_> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(datafusion::arrow::datatypes::Field::new(
        CHAIN_VERSION_COLUMN,
        datafusion::arrow::datatypes::DataType::Int64,
        false,
    ));
    let mut columns = batch.columns().to_vec();
    columns.push(Arc::new(version));
    RecordBatch::try_new(Arc::new(datafusion::arrow::datatypes::Schema::new(fields)), columns)
        .map_err(|e| StorageError::arrow(table, e))
}
