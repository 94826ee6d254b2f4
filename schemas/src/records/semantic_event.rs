//! `SemanticEvent`: one exchange with its meaning, named after OpenTelemetry GenAI where possible.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{ConnRole, SocketTuple};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SemanticEvent {
    /// Deterministic: a replay of the same segments gives the same id.
    pub event_id: String,
    pub node: String,
    pub conn_id: String,
    pub tgid: i32,
    pub process_start_ns: i64,
    pub comm: String,
    pub ts_start_ns: i64,
    pub ts_end_ns: i64,
    /// Wire protocol: http1, http2, grpc, postgres, tls.
    pub protocol: String,
    /// Meaning: llm_call, embeddings, vector_query, sql, saas_call, upload, http, grpc, ...
    pub kind: String,
    pub partial: bool,
    pub role: ConnRole,
    pub tuple: Option<SocketTuple>,
    pub method: Option<String>,
    pub host: Option<String>,
    pub path: Option<String>,
    pub status: Option<i32>,
    pub request_bytes: i64,
    pub response_bytes: i64,
    /// llm, vectordb, database, saas, object-storage, internal, unknown-external.
    pub destination_category: String,
    /// OpenTelemetry GenAI attribute names where one exists.
    pub attributes: BTreeMap<String, String>,
    pub llm: Option<LlmCall>,
    pub sql: Option<SqlStatement>,
    pub vector: Option<VectorOperation>,
    pub upload: Option<Upload>,
    pub pii: Vec<PiiFinding>,
    pub secrets: Vec<SecretFinding>,
    pub injection: Vec<InjectionSignal>,
    pub content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LlmCall {
    pub provider: String,
    pub operation: String,
    pub request_model: Option<String>,
    pub response_model: Option<String>,
    pub stream: bool,
    pub temperature: Option<f64>,
    pub max_tokens: Option<i64>,
    pub top_p: Option<f64>,
    pub message_count: i32,
    pub roles: Vec<String>,
    pub system_prompt_hash: Option<String>,
    pub tool_definitions: Vec<String>,
    pub tool_calls: Vec<ToolCall>,
    pub tool_result_ids: Vec<String>,
    pub finish_reasons: Vec<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cached_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub time_to_first_token_ns: Option<i64>,
    pub response_id: Option<String>,
    pub conversation_prefix_hashes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// JSON, reassembled from stream fragments.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SqlStatement {
    pub statement: String,
    pub command_tag: Option<String>,
    pub rows: Option<i64>,
    pub database: Option<String>,
    pub user: Option<String>,
    pub application_name: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VectorOperation {
    pub system: String,
    pub operation: String,
    pub collection: Option<String>,
    pub namespace: Option<String>,
    pub top_k: Option<i64>,
    pub dimension: Option<i32>,
    pub filter_present: bool,
    pub results: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Upload {
    pub content_type: Option<String>,
    pub filename: Option<String>,
    pub bytes: i64,
    pub archive_format: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiiFinding {
    pub pii_type: String,
    pub count: i32,
    /// HMAC-SHA256 of the normalised values with the deployment key; never the values.
    pub fingerprints: Vec<String>,
    pub location: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretFinding {
    pub secret_type: String,
    pub count: i32,
    pub fingerprints: Vec<String>,
    pub location: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InjectionSignal {
    pub rule: String,
    pub score: f64,
    pub location: String,
}
