//! The stored tables: their directory names, their schemas (from `crate::tables`, with `day`),
//! and how each is versioned. Chains and violations carry their own `version`; the per-chain
//! child tables (steps, tool_calls, pii_flows, processes) are stored with an extra
//! `chain_version` column so that the SQL views keep only the rows of a chain's latest version.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::tables;

use super::counts::chain_counts_schema;
use super::layout::{DAY_COLUMN, file_schema};

/// The column added to child tables on disk: the version of the chain the rows came from.
pub const CHAIN_VERSION_COLUMN: &str = "chain_version";

/// How the rows of a stored table are made unique at read time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versioning {
    /// One row per `key`, the one with the highest `version` column.
    Own { key: &'static [&'static str] },
    /// Rows of the chain's latest version only (joined on `chain_version`), one per `key`.
    ChainChild { key: &'static [&'static str] },
}

/// A table stored under the data directory.
#[derive(Debug, Clone, Copy)]
pub struct StoredTable {
    /// Directory under the data directory, and the name of the latest-version view.
    pub name: &'static str,
    /// The raw table with every stored version (`<name>_versions`).
    pub versions_name: &'static str,
    pub versioning: Versioning,
    schema: fn() -> SchemaRef,
}

impl StoredTable {
    /// The logical schema, `day` included (as `crate::tables` defines it).
    pub fn schema(&self) -> SchemaRef {
        (self.schema)()
    }

    /// The schema of the Parquet files: no `day` (it is the partition directory), and
    /// `chain_version` last for child tables.
    pub fn stored_file_schema(&self) -> SchemaRef {
        let base = file_schema(&self.schema());
        match self.versioning {
            Versioning::Own { .. } => base,
            Versioning::ChainChild { .. } => {
                let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
                fields.push(Field::new(CHAIN_VERSION_COLUMN, DataType::Int64, false));
                Arc::new(Schema::new(fields))
            }
        }
    }

    /// The schema the SQL session sees for `<name>_versions`: file columns, then `day`.
    pub fn versions_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self.stored_file_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(DAY_COLUMN, DataType::Utf8, false));
        Arc::new(Schema::new(fields))
    }
}

pub const CHAINS: StoredTable = StoredTable {
    name: "chains",
    versions_name: "chains_versions",
    versioning: Versioning::Own { key: &["chain_id"] },
    schema: tables::chain_schema,
};
pub const STEPS: StoredTable = StoredTable {
    name: "steps",
    versions_name: "steps_versions",
    versioning: Versioning::ChainChild { key: &["chain_id", "step_index"] },
    schema: tables::steps_schema,
};
pub const TOOL_CALLS: StoredTable = StoredTable {
    name: "tool_calls",
    versions_name: "tool_calls_versions",
    versioning: Versioning::ChainChild { key: &["chain_id", "tool_call_id"] },
    schema: tables::tool_calls_schema,
};
pub const PII_FLOWS: StoredTable = StoredTable {
    name: "pii_flows",
    versions_name: "pii_flows_versions",
    versioning: Versioning::ChainChild { key: &["chain_id", "fingerprint", "pii_type", "from_step", "to_step"] },
    schema: tables::pii_flows_schema,
};
pub const PROCESSES: StoredTable = StoredTable {
    name: "processes",
    versions_name: "processes_versions",
    versioning: Versioning::ChainChild { key: &["chain_id", "role", "tgid", "step_index"] },
    schema: tables::processes_schema,
};
pub const VIOLATIONS: StoredTable = StoredTable {
    name: "violations",
    versions_name: "violations_versions",
    versioning: Versioning::Own { key: &["violation_id"] },
    schema: tables::violations_schema,
};
/// One count row per chain version for every chain, sampled or not (exact aggregates).
pub const CHAIN_COUNTS: StoredTable = StoredTable {
    name: "chain_counts",
    versions_name: "chain_counts_versions",
    versioning: Versioning::Own { key: &["chain_id"] },
    schema: chain_counts_schema,
};

/// Every stored table.
pub const ALL: [StoredTable; 7] = [CHAINS, STEPS, TOOL_CALLS, PII_FLOWS, PROCESSES, VIOLATIONS, CHAIN_COUNTS];

/// The stored table of this name, if any.
pub fn by_name(name: &str) -> Option<StoredTable> {
    ALL.iter().copied().find(|t| t.name == name)
}
