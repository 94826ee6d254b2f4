//! The on-disk layout and the Parquet part writer: `data_dir/<table>/day=YYYY-MM-DD/part-<seq>.parquet`.
//! Each append writes new part files (never rewrites one); a part is written under a hidden
//! temporary name and renamed into place, so a reader never sees half a file.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::{Array, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;

use super::error::StorageError;

/// The Hive partition column every stored table is split by.
pub const DAY_COLUMN: &str = "day";
/// Extension of finished part files (temporary files end otherwise and are never listed).
pub const PART_EXTENSION: &str = ".parquet";

/// `data_dir/<table>`.
pub fn table_dir(data_dir: &Path, table: &str) -> PathBuf {
    data_dir.join(table)
}

/// `data_dir/<table>/day=<day>`.
pub fn partition_dir(data_dir: &Path, table: &str, day: &str) -> PathBuf {
    table_dir(data_dir, table).join(format!("{DAY_COLUMN}={day}"))
}

/// `part-<seq>.parquet`, zero-padded so that names sort in write order.
pub fn part_file_name(seq: u64) -> String {
    format!("part-{seq:012}{PART_EXTENSION}")
}

/// The sequence number in a part file name, if it is one.
pub fn part_seq(file_name: &str) -> Option<u64> {
    file_name.strip_prefix("part-")?.strip_suffix(PART_EXTENSION)?.parse().ok()
}

/// A day value is safe as a path component only in its YYYY-MM-DD shape.
pub fn is_valid_day(day: &str) -> bool {
    let b = day.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() })
}

/// The schema stored in the files: the table schema without the partition column.
pub fn file_schema(table_schema: &Schema) -> SchemaRef {
    let fields: Vec<_> = table_schema.fields().iter().filter(|f| f.name() != DAY_COLUMN).cloned().collect();
    Arc::new(Schema::new_with_metadata(fields, table_schema.metadata().clone()))
}

/// The days (partitions) present for `table`, sorted.
pub fn stored_days(data_dir: &Path, table: &str) -> Result<Vec<String>, StorageError> {
    let dir = table_dir(data_dir, table);
    let mut days = Vec::new();
    let entries = match fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(days),
        Err(e) => return Err(StorageError::io(&dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(&dir, e))?;
        let name = entry.file_name();
        if let Some(day) = name.to_str().and_then(|n| n.strip_prefix("day="))
            && is_valid_day(day)
        {
            days.push(day.to_string());
        }
    }
    days.sort();
    Ok(days)
}

/// The finished part files of one partition, in write order.
pub fn part_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    let mut parts = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(parts),
        Err(e) => return Err(StorageError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        if let Some(seq) = entry.file_name().to_str().and_then(part_seq) {
            parts.push((seq, entry.path()));
        }
    }
    parts.sort();
    Ok(parts)
}

/// Appends record batches as new part files, one per day present in the batch. Clones share
/// the part numbering, so a clone (the scheduled compaction) never reuses a part name.
#[derive(Debug, Clone)]
pub struct PartWriter {
    data_dir: PathBuf,
    next_seq: Arc<AtomicU64>,
    props: WriterProperties,
}

impl PartWriter {
    /// Continues the part numbering found under `data_dir` (created when missing).
    pub fn open(data_dir: &Path, tables: &[&str]) -> Result<Self, StorageError> {
        fs::create_dir_all(data_dir).map_err(|e| StorageError::io(data_dir, e))?;
        let mut max_seq = 0;
        for table in tables {
            for day in stored_days(data_dir, table)? {
                for (seq, _) in part_files(&partition_dir(data_dir, table, &day))? {
                    max_seq = max_seq.max(seq);
                }
            }
        }
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        Ok(PartWriter { data_dir: data_dir.to_path_buf(), next_seq: Arc::new(AtomicU64::new(max_seq + 1)), props })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Writes `batch` (which has a `day` column) under `table`, one new part per day; returns the
    /// files written. An empty batch writes nothing.
    pub fn append(&mut self, table: &str, batch: &RecordBatch) -> Result<Vec<PathBuf>, StorageError> {
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let schema = batch.schema();
        let day_index = schema
            .index_of(DAY_COLUMN)
            .map_err(|_| StorageError::MissingDayColumn { table: table.to_string() })?;
        let day_values = cast(batch.column(day_index), &DataType::Utf8).map_err(|e| StorageError::arrow(table, e))?;
        let days = day_values
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| StorageError::MissingDayColumn { table: table.to_string() })?;
        let mut distinct = BTreeSet::new();
        for i in 0..days.len() {
            if days.is_null(i) {
                return Err(StorageError::BadDay { table: table.to_string(), day: "NULL".into() });
            }
            let d = days.value(i);
            if !is_valid_day(d) {
                return Err(StorageError::BadDay { table: table.to_string(), day: d.to_string() });
            }
            distinct.insert(d);
        }
        let keep: Vec<usize> = (0..schema.fields().len()).filter(|i| *i != day_index).collect();
        let single_day = distinct.len() == 1;
        let mut written = Vec::with_capacity(distinct.len());
        for day in distinct {
            let rows = if single_day {
                batch.clone()
            } else {
                let mask: BooleanArray = days.iter().map(|d| Some(d == Some(day))).collect();
                filter_record_batch(batch, &mask).map_err(|e| StorageError::arrow(table, e))?
            };
            let rows = rows.project(&keep).map_err(|e| StorageError::arrow(table, e))?;
            written.push(self.write_part(table, day, rows.schema(), &[rows])?);
        }
        Ok(written)
    }

    /// Writes `batches` (without the `day` column) as one new part of `table`'s partition `day`;
    /// nothing when they hold no rows.
    pub fn write_partition(&mut self, table: &str, day: &str, batches: &[RecordBatch]) -> Result<Vec<PathBuf>, StorageError> {
        if !is_valid_day(day) {
            return Err(StorageError::BadDay { table: table.to_string(), day: day.to_string() });
        }
        match batches.iter().find(|b| b.num_rows() > 0) {
            Some(first) => Ok(vec![self.write_part(table, day, first.schema(), batches)?]),
            None => Ok(Vec::new()),
        }
    }

    fn write_part(&mut self, table: &str, day: &str, schema: SchemaRef, batches: &[RecordBatch]) -> Result<PathBuf, StorageError> {
        let dir = partition_dir(&self.data_dir, table, day);
        fs::create_dir_all(&dir).map_err(|e| StorageError::io(&dir, e))?;
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let final_path = dir.join(part_file_name(seq));
        let tmp_path = dir.join(format!(".part-{seq:012}.tmp"));
        let file = fs::File::create(&tmp_path).map_err(|e| StorageError::io(&tmp_path, e))?;
        let mut writer =
            ArrowWriter::try_new(file, schema, Some(self.props.clone())).map_err(|e| StorageError::parquet(&tmp_path, e))?;
        for rows in batches {
            writer.write(rows).map_err(|e| StorageError::parquet(&tmp_path, e))?;
        }
        writer.close().map_err(|e| StorageError::parquet(&tmp_path, e))?;
        fs::rename(&tmp_path, &final_path).map_err(|e| StorageError::io(&final_path, e))?;
        Ok(final_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_values_are_checked_before_they_become_paths() {
        assert!(is_valid_day("2026-11-26"));
        assert!(!is_valid_day("../../etc"));
        assert!(!is_valid_day("2026-11-2"));
        assert!(!is_valid_day("2026/11/26"));
    }

    #[test]
    fn part_names_round_trip_and_sort() {
        assert_eq!(part_seq(&part_file_name(42)), Some(42));
        assert!(part_file_name(9) < part_file_name(10));
        assert_eq!(part_seq(".part-000000000001.tmp"), None);
    }
}
