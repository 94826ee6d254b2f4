//! Errors of the SQL session and endpoint: the DataFusion message is kept as is, because it is
//! what tells the user what is wrong with their query.

use std::path::PathBuf;

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;

use crate::reference::ReferenceError;
use crate::tables::TableError;

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// The query (or a view over the stored tables) failed: parse, plan or execution.
    #[error("{0}")]
    Query(#[from] DataFusionError),
    #[error("registering table {table} over {path}: {source}")]
    Register { table: String, path: PathBuf, source: DataFusionError },
    #[error("defining view {view}: {source}")]
    View { view: String, source: DataFusionError },
    #[error("writing the result: {0}")]
    Output(#[from] ArrowError),
    #[error("writing the result: {0}")]
    Io(#[from] std::io::Error),
    #[error("reference tables: {0}")]
    Reference(#[from] ReferenceError),
    #[error("reference tables: {0}")]
    ReferenceTable(#[from] TableError),
    #[error("unknown output format {0:?} (expected table, json or csv)")]
    UnknownFormat(String),
    #[error("the SQL endpoint needs sql.bearer_token in the configuration")]
    NoBearerToken,
    #[error("the SQL endpoint needs sql.http_listen (host:port) in the configuration or on the command line")]
    NoListenAddress,
    #[error("SQL endpoint on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
}
