//! The state of one chain while it is open (and for one allowed lateness after it closed): its
//! ordered steps, the indexes routing needs (conversation hashes, tool call ids still waiting
//! for their result, event ids for dedupe), and `view`, which derives the printed chain
//! (attribution, PII flows, totals, autonomy, risk) from the steps, borrowing them.


use chainwatch_schemas::{AgentRef, Autonomy, ChainStatus};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::attribution::{AttributionMemo, attribute};
use crate::chain_avro::SplitEncoding;
use crate::chain_view::{ChainView, StepView};
use crate::hashing::FastSet;
use crate::pii_flow::{FlowStats, pii_flows};
use crate::risk;
use crate::step::StepRecord;

/// A chain's place in the builder's slab; `generation` tells a reused slot from the old chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChainHandle {
    pub slot: u32,
    pub generation: u32,
}

/// FNV-1a: a cheap, stable 64-bit hash for the in-memory indexes (never printed).
pub fn fnv64(tag: u8, s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(tag);
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Tags of the conversation index.
pub const TAG_PREFIX: u8 = 1;
pub const TAG_TOOL: u8 = 2;
pub const TAG_EVENT: u8 = 3;

#[derive(Debug, Serialize, Deserialize)]
pub struct ChainState {
    pub chain_id: String,
    pub version: i64,
    pub status: ChainStatus,
    pub agent: AgentRef,
    /// Boxed: a step is large (~630 bytes) and moves between chains; the vector stays small.
    pub steps: Vec<Box<StepRecord>>,
    pub start_ns: i64,
    /// Latest step end: the idle gap counts from here.
    pub end_ns: i64,
    /// Full-prefix hashes of its LLM calls and the ids of the tool calls they requested.
    conversation: FastSet<u64>,
    /// Tool calls requested whose result no LLM request has carried yet.
    open_tools: FastSet<u64>,
    events: FastSet<u64>,
    pub has_llm: bool,
    /// Not published before the watermark passes this (a served request waiting to learn
    /// whether an observed client sent it, in which case its steps join the client's chain).
    pub held_until: Option<i64>,
    /// Held only because its agent root had not called an LLM yet when it opened (a service
    /// candidate): the root's first LLM call shows it is an agent and releases the hold.
    #[serde(default)]
    pub held_until_agent: bool,
    /// Changed since it was last published.
    pub dirty: bool,
    /// Published at least once.
    pub published: bool,
    pub flow_stats: FlowStats,
    /// The last published version's encoding (only in encoded output, only while open; not
    /// checkpointed). While nothing changed since (`encoding_current`), the closing version of
    /// an idle chain is these bytes with a new version and status, instead of a second
    /// analysis and encoding of the same steps; after a change, the next version copies from
    /// it the bytes of the steps that did not move (`unmoved_steps`).
    #[serde(skip)]
    pub last_encoding: Option<SplitEncoding>,
    /// Nothing changed since `last_encoding`.
    #[serde(skip)]
    pub encoding_current: bool,
    /// Leading steps neither inserted before nor removed since `last_encoding`.
    #[serde(skip)]
    pub unmoved_steps: usize,
}

impl ChainState {
    pub fn new(agent: AgentRef, first_event_id: &str, ts_ns: i64) -> Self {
        ChainState {
            chain_id: chain_id(&agent.agent_key, first_event_id),
            version: 0,
            status: ChainStatus::Open,
            agent,
            steps: Vec::new(),
            start_ns: ts_ns,
            end_ns: ts_ns,
            // sized for a typical chain (a few LLM calls with their tool calls, a dozen steps):
            // growing them from empty was several allocations and rehashes per chain
            conversation: FastSet::with_capacity_and_hasher(7, Default::default()),
            open_tools: FastSet::with_capacity_and_hasher(3, Default::default()),
            events: FastSet::with_capacity_and_hasher(14, Default::default()),
            has_llm: false,
            held_until: None,
            held_until_agent: false,
            dirty: true,
            published: false,
            flow_stats: FlowStats::default(),
            last_encoding: None,
            encoding_current: false,
            unmoved_steps: 0,
        }
    }

    /// Whether this chain already holds the event `event_id`.
    pub fn contains_event(&self, event_id: &str) -> bool {
        self.events.contains(&fnv64(TAG_EVENT, event_id))
    }

    /// Whether an LLM call with these conversation keys (prefix hashes, tool result ids)
    /// continues this chain's conversation.
    pub fn continues(&self, keys: &[u64]) -> bool {
        keys.iter().any(|k| self.conversation.contains(k))
    }

    pub fn has_open_tool_calls(&self) -> bool {
        !self.open_tools.is_empty()
    }

    /// Insert a step in time order and update the indexes.
    pub fn add(&mut self, step: Box<StepRecord>) {
        self.index(&step);
        let ts = step.ts_start_ns;
        let at = if self.steps.last().is_none_or(|s| s.ts_start_ns <= ts) {
            self.steps.len()
        } else {
            self.steps.partition_point(|s| s.ts_start_ns <= ts)
        };
        self.steps.insert(at, step);
        self.unmoved_steps = self.unmoved_steps.min(at);
        self.changed();
    }

    /// Remove the steps `take` selects (in order); the indexes are rebuilt.
    pub fn remove_where(&mut self, mut take: impl FnMut(&StepRecord) -> bool) -> Vec<Box<StepRecord>> {
        let mut taken = Vec::new();
        let mut kept = Vec::with_capacity(self.steps.len());
        for s in self.steps.drain(..) {
            if take(s.as_ref()) { taken.push(s) } else { kept.push(s) }
        }
        self.steps = kept;
        if !taken.is_empty() {
            self.rebuild();
            self.unmoved_steps = 0;
            self.changed();
        }
        taken
    }

    /// Its content changed: to be published again, and the last encoding is not this version.
    fn changed(&mut self) {
        self.dirty = true;
        self.encoding_current = false;
    }

    fn index(&mut self, step: &StepRecord) {
        self.events.insert(fnv64(TAG_EVENT, step.event_id()));
        self.start_ns = self.start_ns.min(step.ts_start_ns);
        self.end_ns = self.end_ns.max(step.ts_end_ns);
        if step.is_llm() {
            self.has_llm = true;
            if let Some(h) = step.full_prefix_hash() {
                self.conversation.insert(fnv64(TAG_PREFIX, h));
            }
            for r in step.tool_result_ids().iter() {
                self.open_tools.remove(&fnv64(TAG_TOOL, r));
            }
            for (id, _) in step.tool_calls() {
                let k = fnv64(TAG_TOOL, id);
                self.conversation.insert(k);
                self.open_tools.insert(k);
            }
        }
    }

    fn rebuild(&mut self) {
        self.conversation.clear();
        self.open_tools.clear();
        self.events.clear();
        self.has_llm = false;
        let steps = std::mem::take(&mut self.steps);
        if let (Some(first), Some(_)) = (steps.first(), steps.last()) {
            self.start_ns = first.ts_start_ns;
            self.end_ns = first.ts_end_ns;
        }
        for s in &steps {
            self.index(s);
        }
        self.steps = steps;
    }

    /// The printed chain, borrowing this state (the caller bumps `version` first): what the
    /// worker encodes without an owned copy.
    pub fn view(&mut self, memo: &mut AttributionMemo) -> ChainView<'_> {
        let (tool_calls, executed_for) = attribute(&self.steps, memo);
        let (pii_flows, flow_stats) = pii_flows(&self.steps);
        self.flow_stats = flow_stats;

        let mut tools: Vec<&str> = Vec::new();
        let mut repeats: Vec<(&str, i32)> = Vec::new();
        for t in &tool_calls {
            match repeats.iter_mut().find(|(n, _)| *n == t.tool_name) {
                Some((_, c)) => *c += 1,
                None => {
                    tools.push(t.tool_name);
                    repeats.push((t.tool_name, 1));
                }
            }
        }
        let max_tool_repeats = repeats.iter().map(|(_, c)| *c).max().unwrap_or(0);
        let mut executed = tool_calls.iter().filter(|t| !t.executed_steps.is_empty() || t.result_step.is_some()).peekable();
        let autonomy = if executed.peek().is_none() {
            Autonomy::Unknown
        } else if executed.all(|t| t.approved) {
            Autonomy::Supervised
        } else {
            Autonomy::Autonomous
        };
        let (risk_score, risk_reasons) = risk::score(&self.steps, &pii_flows, &tool_calls, autonomy, max_tool_repeats);

        let mut destinations: Vec<&str> = Vec::new();
        let mut pii_types: Vec<&str> = Vec::new();
        let (mut bytes_out, mut bytes_in, mut input_tokens, mut output_tokens, mut cost_usd) = (0i64, 0i64, 0i64, 0i64, 0f64);
        let mut steps = Vec::with_capacity(self.steps.len());
        for (i, step) in self.steps.iter().enumerate() {
            let step: &StepRecord = step;
            let executed = executed_for.get(i).copied().flatten();
            let tool = executed.and_then(|e| self.steps.get(e.requested_at)?.tool_call(e.call)).map(|(id, name)| (name, id));
            if let Some(d) = step.destination()
                && !step.user_request
                && !destinations.contains(&d)
            {
                destinations.push(d);
            }
            for t in step.pii_types().iter() {
                if !pii_types.contains(&t) {
                    pii_types.push(t);
                }
            }
            bytes_out = bytes_out.saturating_add(step.bytes_out);
            bytes_in = bytes_in.saturating_add(step.bytes_in);
            input_tokens = input_tokens.saturating_add(step.input_tokens);
            output_tokens = output_tokens.saturating_add(step.output_tokens);
            cost_usd += step.cost_usd;
            steps.push(StepView { step, index: i as i32, tool, executed: tool.and(executed) });
        }
        pii_types.sort();
        ChainView {
            chain_id: &self.chain_id,
            version: self.version,
            status: self.status,
            agent: &self.agent,
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            steps,
            tool_calls,
            pii_flows,
            tools,
            destinations,
            pii_types,
            bytes_out,
            bytes_in,
            input_tokens,
            output_tokens,
            cost_usd,
            max_tool_repeats,
            autonomy,
            risk_score,
            risk_reasons,
        }
    }

    /// Bytes this chain holds (inline + heap, estimated from capacities).
    pub fn approx_bytes(&self) -> usize {
        let set = |n: usize| n * 16 + 16;
        size_of::<ChainState>()
            + self.chain_id.capacity()
            + self.agent.agent_key.capacity()
            + self.agent.exe.capacity()
            + self.agent.comm.capacity()
            + self.agent.node.capacity()
            + self.steps.capacity() * size_of::<Box<StepRecord>>()
            + self.steps.iter().map(|s| s.approx_bytes()).sum::<usize>()
            + set(self.conversation.capacity())
            + set(self.open_tools.capacity())
            + set(self.events.capacity())
            + self.last_encoding.as_ref().map_or(0, SplitEncoding::approx_bytes)
    }
}

/// Stable id: SHA-256 of the agent key and the chain's first event id, 32 hex digits.
pub fn chain_id(agent_key: &str, first_event_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(agent_key.as_bytes());
    h.update([0]);
    h.update(first_event_id.as_bytes());
    let d = h.finalize();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for b in d.iter().take(16) {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    id
}
