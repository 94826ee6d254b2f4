//! Errors of the chain store, each naming the file or table that was wrong.

use std::path::{Path, PathBuf};

use datafusion::arrow::error::ArrowError;
use datafusion::parquet::errors::ParquetError;

use crate::tables::TableError;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage: {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("storage: writing Parquet {path}: {source}")]
    Parquet { path: PathBuf, source: ParquetError },
    #[error("storage: table {table}: {source}")]
    Arrow { table: String, source: ArrowError },
    #[error("storage: table {table}: missing or mistyped column {column}")]
    MissingColumn { table: String, column: &'static str },
    #[error("storage: table {table} has no `day` column to partition by")]
    MissingDayColumn { table: String },
    #[error("storage: table {table}: day value {day:?} is not YYYY-MM-DD")]
    BadDay { table: String, day: String },
    #[error("storage: compacting {path}: {message}")]
    Compaction { path: PathBuf, message: String },
    #[error("storage: converting chains to tables: {0}")]
    Tables(#[from] TableError),
}

impl StorageError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        StorageError::Io { path: path.to_path_buf(), source }
    }
    pub fn parquet(path: &Path, source: ParquetError) -> Self {
        StorageError::Parquet { path: path.to_path_buf(), source }
    }
    pub fn arrow(table: &str, source: ArrowError) -> Self {
        StorageError::Arrow { table: table.to_string(), source }
    }
}
