//! Layers 4 and 5: chain tables (Arrow), SQL policies on DataFusion, violations for SIEMs.
//!
//! - `tables`: the Arrow schemas of chains, steps, tool_calls, pii_flows, processes, violations.
//! - `reference`, `baselines`: the reference tables (config files) and engine-kept baselines.
//! - `policy`: policy files and the built-in pack; `engine`: incremental evaluation;
//!   `findings` / `emitted`: result rows to violations, deduplicated and versioned.
//! - `ocsf`: the OCSF Detection Finding JSON; `worker`: the cw-policy consumer-group member;
//!   `webhook`: the optional sink that POSTs the same JSON; `embedded_tasks`: the webhook and
//!   scheduled compaction as the embedded pipeline runs them.

pub mod baselines;
pub mod embedded_tasks;
pub mod emitted;
pub mod engine;
pub mod findings;
pub mod history;
pub mod ocsf;
pub mod policy;
pub mod reference;
pub mod sql;
pub mod storage;
pub mod tables;
pub mod timezone;
pub mod webhook;
pub mod worker;

pub use engine::{EngineError, EngineStats, PolicyEngine};
pub use ocsf::to_ocsf_json;
pub use policy::{Policy, PolicyError};
pub use tables::{ChainTables, TableError};
