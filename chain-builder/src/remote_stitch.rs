//! Cross-member stitching: the state and wire conversions for stitching a service's work into a
//! client's chain when the client's node and the service's node belong to different members of
//! the chain-builder group (the builder's `push_stitch` / `take_stitch_records` drive it; the
//! worker carries the records on the stitch topic).
//!
//! - `Exported`: on the service's member, a served request no local client claimed, published
//!   as a fragment; its service chain stays held one more lateness waiting for a claim.
//! - `RemoteFragment`: on another member, a fragment whose client exchange was not seen yet.
//!
//! Both live in `TupleIndex`es (cap + expiry by watermark, counted).

use chainwatch_schemas::{StitchedStep, StitchedToolCall};
use serde::{Deserialize, Serialize};

use crate::process_tree::{NodeId, ProcKey};
use crate::step::{StepParts, StepRecord};

/// Steps one fragment carries at most (the rest are cut and counted).
pub const MAX_FRAGMENT_STEPS: usize = 1_024;
/// Other members' fragments waiting for their client exchange, at most (every member keeps
/// every fragment it cannot place yet, for about two allowed latenesses; the oldest go first,
/// counted).
pub const MAX_WAITING_FRAGMENTS: usize = 65_536;

/// A fragment this member published, waiting for a claim.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exported {
    /// The service's agent root.
    pub agent: ProcKey,
    /// `fnv64` of the served exchange's event id (the fragment id).
    pub served_hash: u64,
    /// `fnv64` of the event ids of the steps the fragment carried.
    pub step_hashes: Vec<u64>,
}

/// A fragment from another member waiting for its client exchange.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteFragment {
    pub origin_member: String,
    pub fragment_id: String,
    pub steps: Vec<Box<StepRecord>>,
}

/// The wire form of a step.
pub fn to_wire(s: &StepRecord) -> StitchedStep {
    StitchedStep {
        step: s.to_chain_step(0, None),
        process_start_ns: s.proc.start_ns,
        role: s.role,
        depth: i32::from(s.depth),
        pii: s.pii_findings(),
        tool_calls: s.tool_calls().map(|(id, name)| StitchedToolCall { id: id.to_string(), name: name.to_string() }).collect(),
        tool_result_ids: s.tool_result_ids().to_vec(),
        full_prefix_hash: s.full_prefix_hash().map(str::to_string),
    }
}

/// A step from the wire (its process on `node`, interned by the receiving builder). What a
/// record may bring is capped like an event's (tool calls, result ids, fingerprints).
pub fn from_wire(w: StitchedStep, node: NodeId) -> StepRecord {
    let proc = ProcKey { node, tgid: w.step.tgid, start_ns: w.process_start_ns };
    let tool_calls: Vec<(&str, &str)> = w.tool_calls.iter().map(|t| (t.id.as_str(), t.name.as_str())).collect();
    let mut step = StepRecord::from_parts(StepParts {
        step: &w.step,
        proc,
        role: w.role,
        tool_calls: &tool_calls,
        tool_result_ids: &w.tool_result_ids,
        full_prefix_hash: w.full_prefix_hash.as_deref(),
        pii: &w.pii,
    });
    step.stitched = true;
    step.depth = u16::try_from(w.depth.max(0)).unwrap_or(u16::MAX);
    step
}
