//! `Violation`: a policy's finding on a chain (published to SIEMs as OCSF JSON).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// Deterministic from policy id, chain id and evidence.
    pub violation_id: String,
    pub version: i64,
    pub policy_id: String,
    pub policy_title: String,
    pub severity: Severity,
    pub description: String,
    pub chain_id: String,
    pub node: String,
    pub agent_key: String,
    pub first_seen_ns: i64,
    pub ts_ns: i64,
    pub evidence_steps: Vec<i32>,
    pub evidence: BTreeMap<String, String>,
    /// Types only, never values.
    pub pii_types: Vec<String>,
    pub risk_score: f64,
    pub tags: Vec<String>,
}
