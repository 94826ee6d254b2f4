//! `StitchRecord`: what chain-builder members tell each other on the internal stitch topic so a
//! service's work joins the calling agent's chain when the two nodes belong to different
//! members (a served-exchange fragment, and the claim that took it).

use serde::{Deserialize, Serialize};

use crate::records::{ChainStep, ConnRole, PiiFinding};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StitchKind {
    /// A served request no local client claimed, with the service's steps while handling it.
    Fragment,
    /// The fragment joined a client's chain: its origin drops the service's held chain.
    Claim,
}

/// A tool call an LLM answer of the service asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StitchedToolCall {
    pub id: String,
    pub name: String,
}

/// One step of a fragment: the printed step plus what routing, attribution and PII
/// propagation need on the receiving member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StitchedStep {
    pub step: ChainStep,
    pub process_start_ns: i64,
    pub role: ConnRole,
    /// Stitching depth inside the service (0 = the service itself).
    pub depth: i32,
    pub pii: Vec<PiiFinding>,
    pub tool_calls: Vec<StitchedToolCall>,
    pub tool_result_ids: Vec<String>,
    pub full_prefix_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StitchRecord {
    pub kind: StitchKind,
    /// The member that sent this record.
    pub origin_member: String,
    /// The member that published the fragment (a claim is for it).
    pub fragment_member: String,
    /// The served exchange's event id.
    pub fragment_id: String,
    /// The normalized connection tuple's key (client and server views agree).
    pub tuple_key: i64,
    /// The service's agent key.
    pub service: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub steps: Vec<StitchedStep>,
    /// Steps left out of the fragment by its cap.
    pub steps_cut: i64,
}
