//! `SqlSession`: DataFusion over the data directory. Every stored table is registered as
//! `<table>_versions` (a listing table over its day-partitioned Parquet, `day` as the partition
//! column; an empty table of the same schema when nothing was stored yet), and `<table>` is the
//! view that resolves upserts (latest version). `agent_daily_counts` sums the exact per-chain
//! counts per day and agent.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SQLOptions, SessionContext};

use super::error::SqlError;
use crate::reference::ReferenceData;
use super::views;
use crate::storage::catalog::{self, StoredTable};
use crate::storage::{DAY_COLUMN, PART_EXTENSION, table_dir};

/// Name of the allowlist reference table.
pub const ALLOWED_DESTINATIONS: &str = "allowed_destinations";
/// Name of the agent profiles reference table.
pub const AGENT_PROFILES: &str = "agent_profiles";

/// A query's answer: its schema (also when there are no rows) and its batches.
#[derive(Debug, Clone)]
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// Rows were cut at the limit the caller gave.
    pub truncated: bool,
}

impl QueryResult {
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// The batches, or one empty batch of the schema when there are none (so headers print).
    pub fn batches_or_empty(&self) -> Vec<RecordBatch> {
        if self.batches.is_empty() { vec![RecordBatch::new_empty(self.schema.clone())] } else { self.batches.clone() }
    }
}

/// DataFusion with the stored chain tables, violations and counts registered.
#[derive(Clone)]
pub struct SqlSession {
    ctx: SessionContext,
    data_dir: PathBuf,
}

impl std::fmt::Debug for SqlSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlSession").field("data_dir", &self.data_dir).finish_non_exhaustive()
    }
}

impl SqlSession {
    /// Registers every stored table under `data_dir` (missing ones empty) and the views.
    pub async fn open(data_dir: &Path) -> Result<Self, SqlError> {
        let ctx = SessionContext::new();
        for table in catalog::ALL {
            register_versions(&ctx, data_dir, &table)?;
        }
        register_reference_tables(&ctx, &ReferenceData::default())?;
        for (name, sql) in views::view_definitions() {
            let df = ctx.sql(&sql).await.map_err(|e| SqlError::View { view: name.clone(), source: e })?;
            ctx.register_table(name.as_str(), df.into_view()).map_err(|e| SqlError::View { view: name, source: e })?;
        }
        Ok(SqlSession { ctx, data_dir: data_dir.to_path_buf() })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The DataFusion context (to register more tables, e.g. the reference tables).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Replaces the reference tables (`allowed_destinations`, `agent_profiles`; empty until then).
    pub fn register_reference(&self, reference: &ReferenceData) -> Result<(), SqlError> {
        register_reference_tables(&self.ctx, reference)
    }

    /// Registers (or replaces) an in-memory table, e.g. `allowed_destinations`.
    pub fn register_batch(&self, name: &str, batch: RecordBatch) -> Result<(), SqlError> {
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        self.ctx.deregister_table(name)?;
        self.ctx.register_table(name, Arc::new(table))?;
        Ok(())
    }

    /// Runs one read-only SQL statement and collects every row.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>, SqlError> {
        Ok(self.query_limited(sql, usize::MAX).await?.batches)
    }

    /// Runs one read-only SQL statement (no DDL, DML or SET), keeping at most `max_rows` rows.
    pub async fn query_limited(&self, sql: &str, max_rows: usize) -> Result<QueryResult, SqlError> {
        let read_only = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
        let mut df = self.ctx.sql_with_options(sql, read_only).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        if max_rows < usize::MAX {
            df = df.limit(0, Some(max_rows + 1))?;
        }
        let mut batches = Vec::new();
        let mut rows = 0usize;
        let mut truncated = false;
        for batch in df.collect().await? {
            if rows + batch.num_rows() > max_rows {
                let keep = max_rows - rows;
                if keep > 0 {
                    batches.push(batch.slice(0, keep));
                }
                truncated = true;
                break;
            }
            rows += batch.num_rows();
            if batch.num_rows() > 0 {
                batches.push(batch);
            }
        }
        Ok(QueryResult { schema, batches, truncated })
    }
}

/// The reference tables as (name, batch) pairs.
pub fn reference_tables(reference: &ReferenceData) -> Result<Vec<(String, RecordBatch)>, SqlError> {
    Ok(vec![
        (ALLOWED_DESTINATIONS.to_string(), reference.destinations_batch()?),
        (AGENT_PROFILES.to_string(), reference.profiles_batch()?),
    ])
}

fn register_reference_tables(ctx: &SessionContext, reference: &ReferenceData) -> Result<(), SqlError> {
    for (name, batch) in reference_tables(reference)? {
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        ctx.deregister_table(name.as_str())?;
        ctx.register_table(name.as_str(), Arc::new(table))?;
    }
    Ok(())
}

/// `<table>_versions`: a listing table over `data_dir/<table>/day=*/part-*.parquet`, or an empty
/// table of the same schema when the directory does not exist yet.
fn register_versions(ctx: &SessionContext, data_dir: &Path, table: &StoredTable) -> Result<(), SqlError> {
    let dir = table_dir(data_dir, table.name);
    let register_err = |source| SqlError::Register { table: table.versions_name.to_string(), path: dir.clone(), source };
    if !dir.is_dir() {
        let empty = MemTable::try_new(table.versions_schema(), vec![vec![]]).map_err(register_err)?;
        ctx.register_table(table.versions_name, Arc::new(empty)).map_err(register_err)?;
        return Ok(());
    }
    let absolute = std::path::absolute(&dir).map_err(|e| SqlError::Io(e))?;
    let url = format!("{}/", absolute.display());
    let url = ListingTableUrl::parse(&url).map_err(register_err)?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(PART_EXTENSION)
        .with_table_partition_cols(vec![(DAY_COLUMN.to_string(), DataType::Utf8)]);
    let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(table.stored_file_schema());
    let listing = ListingTable::try_new(config).map_err(register_err)?;
    ctx.register_table(table.versions_name, Arc::new(listing)).map_err(register_err)?;
    Ok(())
}
