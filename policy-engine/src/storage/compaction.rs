//! Compaction: merges the part files of one day partition into one part, keeping only the
//! latest version of each row key (chains, violations, counts: the highest `version`; child
//! tables: the highest `chain_version`). The SQL views still resolve versions, so a reader that
//! sees the new part next to the old ones (between the rename and the deletes) gets the same
//! answer; a crash there leaves duplicates that the next compaction merges.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::SessionContext;

use super::catalog::{self, CHAIN_VERSION_COLUMN, StoredTable, Versioning};
use super::error::StorageError;
use super::layout::{PART_EXTENSION, PartWriter, part_files, partition_dir, stored_days};

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    pub partitions_compacted: usize,
    pub parts_removed: usize,
    pub rows_before: usize,
    pub rows_after: usize,
    pub files_written: Vec<PathBuf>,
}

/// Compacts every partition of every table that has more than `min_parts` part files and whose
/// day `include` accepts.
pub(super) async fn compact_all(
    writer: &mut PartWriter,
    min_parts: usize,
    include: impl Fn(&str) -> bool,
) -> Result<CompactionReport, StorageError> {
    let mut report = CompactionReport::default();
    let data_dir = writer.data_dir().to_path_buf();
    for table in catalog::ALL {
        for day in stored_days(&data_dir, table.name)?.into_iter().filter(|d| include(d)) {
            let dir = partition_dir(&data_dir, table.name, &day);
            let parts = part_files(&dir)?;
            if parts.len() <= min_parts.max(1) {
                continue;
            }
            compact_partition(writer, &table, &day, &dir, &parts.into_iter().map(|(_, p)| p).collect::<Vec<_>>(), &mut report)
                .await?;
        }
    }
    Ok(report)
}

async fn compact_partition(
    writer: &mut PartWriter,
    table: &StoredTable,
    day: &str,
    dir: &Path,
    parts: &[PathBuf],
    report: &mut CompactionReport,
) -> Result<(), StorageError> {
    let df_err = |e: datafusion::error::DataFusionError| StorageError::Compaction { path: dir.to_path_buf(), message: e.to_string() };
    let ctx = SessionContext::new();
    let urls = parts
        .iter()
        .map(|p| ListingTableUrl::parse(std::path::absolute(p).unwrap_or_else(|_| p.clone()).display().to_string()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(df_err)?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(PART_EXTENSION);
    let config = ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(table.stored_file_schema());
    ctx.register_table("part", Arc::new(ListingTable::try_new(config).map_err(df_err)?)).map_err(df_err)?;
    let (key, order) = match table.versioning {
        Versioning::Own { key } => (key, "version".to_string()),
        Versioning::ChainChild { key } => (key, CHAIN_VERSION_COLUMN.to_string()),
    };
    let sql = format!(
        "SELECT * EXCLUDE (cw_rank) FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {} ORDER BY {order} DESC) AS cw_rank FROM part) WHERE cw_rank = 1",
        key.join(", ")
    );
    let before = ctx.table("part").await.map_err(df_err)?.count().await.map_err(df_err)?;
    let batches = ctx.sql(&sql).await.map_err(df_err)?.collect().await.map_err(df_err)?;
    let after: usize = batches.iter().map(|b| b.num_rows()).sum();
    let written = writer.write_partition(table.name, day, &batches)?;
    for p in parts {
        std::fs::remove_file(p).map_err(|e| StorageError::io(p, e))?;
    }
    report.partitions_compacted += 1;
    report.parts_removed += parts.len();
    report.rows_before += before;
    report.rows_after += after;
    report.files_written.extend(written);
    Ok(())
}
