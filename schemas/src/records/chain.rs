//! `Chain`: one agent workflow with its steps, tool executions and PII flows.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChainStatus {
    Open,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Autonomy {
    /// Tool calls executed with no human in between.
    Autonomous,
    /// A human interaction approved the tool calls.
    Supervised,
    #[default]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chain {
    pub chain_id: String,
    /// Increases with every update of the chain.
    pub version: i64,
    pub status: ChainStatus,
    pub agent: AgentRef,
    pub start_ns: i64,
    pub end_ns: i64,
    pub steps: Vec<ChainStep>,
    pub tool_calls: Vec<ToolExecution>,
    pub pii_flows: Vec<PiiFlow>,
    pub tools: Vec<String>,
    pub destinations: Vec<String>,
    pub pii_types: Vec<String>,
    pub bytes_out: i64,
    pub bytes_in: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub max_tool_repeats: i32,
    pub autonomy: Autonomy,
    pub risk_score: f64,
    pub risk_reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct AgentRef {
    pub node: String,
    pub agent_key: String,
    pub tgid: i32,
    pub process_start_ns: i64,
    pub exe: String,
    pub comm: String,
    pub container_id: Option<String>,
    pub pod_uid: Option<String>,
    pub namespace: Option<String>,
    pub team: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ChainStep {
    pub index: i32,
    pub event_id: String,
    pub ts_start_ns: i64,
    pub ts_end_ns: i64,
    pub kind: String,
    pub protocol: String,
    pub tgid: i32,
    pub comm: String,
    pub node: String,
    pub destination: Option<String>,
    pub category: String,
    pub method: Option<String>,
    pub tool_name: Option<String>,
    pub tool_call_id: Option<String>,
    pub summary: String,
    pub model: Option<String>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub rows: Option<i64>,
    pub bytes_out: i64,
    pub bytes_in: i64,
    pub pii_types: Vec<String>,
    pub injection_rules: Vec<String>,
    pub secret_types: Vec<String>,
    /// SQL steps: the statement text (as the builder keeps it), for policies on the query shape.
    #[serde(default)]
    pub statement: Option<String>,
    /// Vector queries: the requested top_k.
    #[serde(default)]
    pub top_k: Option<i64>,
    /// Uploads: the archive or encoding of the body (gzip, zip, tar, base64), if any.
    #[serde(default)]
    pub archive_format: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolExecution {
    pub tool_call_id: String,
    pub tool_name: String,
    pub requested_at_step: i32,
    pub executed_steps: Vec<i32>,
    pub result_step: Option<i32>,
    pub approved: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiiFlow {
    pub fingerprint: String,
    pub pii_type: String,
    pub from_step: i32,
    pub to_step: i32,
    pub destination: Option<String>,
}
