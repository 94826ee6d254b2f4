//! One step of a chain as the builder keeps it: the printed `ChainStep` plus what routing,
//! attribution and PII propagation need (process, role, tool calls, result ids, prefix hash,
//! fingerprints). Built by moving strings out of the `SemanticEvent`, with caps on what an
//! event may bring (fingerprints, tool calls).

use chainwatch_schemas::{ChainStep, ConnRole, PiiFinding, SemanticEvent};
use serde::{Deserialize, Serialize};

use crate::cost::PriceTable;
use crate::process_tree::ProcKey;

/// At most this many fingerprints are kept per step (the rest are counted).
pub const MAX_FINGERPRINTS_PER_STEP: usize = 1_024;
/// At most this many tool calls are kept per LLM answer.
pub const MAX_TOOL_CALLS_PER_STEP: usize = 64;
/// Summaries are cut to this many bytes.
const MAX_SUMMARY: usize = 240;
/// SQL statements are kept up to this many bytes.
const MAX_STATEMENT: usize = 4_096;

/// `KIND_LLM` as a fixed-size array: `is_llm` compares it without a `memcmp` call.
const KIND_LLM_BYTES: [u8; 8] = *b"llm_call";
pub const KIND_LLM: &str = match std::str::from_utf8(&KIND_LLM_BYTES) {
    Ok(s) => s,
    Err(_) => panic!("KIND_LLM is ASCII"),
};
pub const KIND_UPLOAD: &str = "upload";

/// A tool call an LLM answer asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedTool {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: ChainStep,
    pub proc: ProcKey,
    pub role: ConnRole,
    pub tool_calls: Vec<RequestedTool>,
    pub tool_result_ids: Vec<String>,
    /// Hash of this LLM call's whole message list: a later call that extends it carries it.
    pub full_prefix_hash: Option<String>,
    pub pii: Vec<PiiFinding>,
    /// An inbound request on the agent's own processes that nobody observed sending: a user.
    pub user_request: bool,
    /// Joined from another service through a matched connection tuple.
    pub stitched: bool,
    /// Stitching depth: 0 = the agent's own processes, n = n services away.
    pub depth: u16,
    /// Fingerprints cut by `MAX_FINGERPRINTS_PER_STEP`.
    pub fingerprints_dropped: u64,
}

impl StepRecord {
    pub fn is_llm(&self) -> bool {
        // attribution asks this for every pair of steps
        self.step.kind.as_bytes() == KIND_LLM_BYTES
    }

    /// Whether a finding at `location` left the watched process (a request it sent, or the
    /// response of a request it served).
    pub fn sends(&self, location: &str) -> bool {
        let response = location.starts_with("response");
        match self.role {
            ConnRole::Server => response,
            ConnRole::Client | ConnRole::Unknown => !response,
        }
    }

    /// Heap and inline bytes held (for memory accounting).
    pub fn approx_bytes(&self) -> usize {
        let s = &self.step;
        let opt = |o: &Option<String>| o.as_ref().map_or(0, String::capacity);
        let strings = s.event_id.capacity()
            + s.kind.capacity()
            + s.protocol.capacity()
            + s.comm.capacity()
            + s.node.capacity()
            + s.category.capacity()
            + s.summary.capacity()
            + opt(&s.destination)
            + opt(&s.method)
            + opt(&s.model)
            + opt(&s.tool_name)
            + opt(&s.tool_call_id)
            + s.pii_types.iter().map(|x| x.capacity() + 24).sum::<usize>()
            + s.injection_rules.iter().map(|x| x.capacity() + 24).sum::<usize>()
            + s.secret_types.iter().map(|x| x.capacity() + 24).sum::<usize>();
        let extra = self.tool_calls.iter().map(|t| t.id.capacity() + t.name.capacity() + 48).sum::<usize>()
            + self.tool_result_ids.iter().map(|x| x.capacity() + 24).sum::<usize>()
            + opt(&self.full_prefix_hash)
            + self
                .pii
                .iter()
                .map(|p| {
                    size_of::<PiiFinding>()
                        + p.pii_type.capacity()
                        + p.location.capacity()
                        + p.fingerprints.iter().map(|f| f.capacity() + 24).sum::<usize>()
                })
                .sum::<usize>();
        size_of::<StepRecord>() + strings + extra
    }
}

/// The step of `ev`, which runs in process `proc`.
pub fn step_from_event(mut ev: SemanticEvent, proc: ProcKey, prices: &PriceTable) -> StepRecord {
    take_step(&mut ev, proc, prices)
}

/// `step_from_event`, taking the strings out of `ev` in place (an event is ~1.3 KB: the
/// builder passes it down by reference instead of moving it through every call).
pub fn take_step(ev: &mut SemanticEvent, proc: ProcKey, prices: &PriceTable) -> StepRecord {
    let mut tool_calls = Vec::new();
    let mut tool_result_ids = Vec::new();
    let mut full_prefix_hash = None;
    let mut model = None;
    let (mut input_tokens, mut output_tokens) = (0, 0);
    if let Some(llm) = ev.llm.as_mut() {
        tool_calls = std::mem::take(&mut llm.tool_calls)
            .into_iter()
            .take(MAX_TOOL_CALLS_PER_STEP)
            .map(|t| RequestedTool { id: t.id, name: t.name })
            .collect();
        tool_result_ids = std::mem::take(&mut llm.tool_result_ids);
        tool_result_ids.truncate(MAX_TOOL_CALLS_PER_STEP);
        full_prefix_hash = llm.conversation_prefix_hashes.pop();
        model = llm.response_model.take().or_else(|| llm.request_model.take());
        input_tokens = llm.input_tokens.unwrap_or(0).max(0);
        output_tokens = llm.output_tokens.unwrap_or(0).max(0);
    }
    let cost_usd = model.as_deref().map_or(0.0, |m| prices.cost(m, input_tokens, output_tokens));
    let summary = summarize(ev, model.as_deref(), &tool_calls);
    let rows = ev.sql.as_ref().and_then(|s| s.rows);
    let statement = ev.sql.as_mut().map(|s| cut(std::mem::take(&mut s.statement), MAX_STATEMENT));
    let top_k = ev.vector.as_ref().and_then(|v| v.top_k);
    let archive_format = ev.upload.as_mut().and_then(|u| u.archive_format.take());
    let (bytes_out, bytes_in) = match ev.role {
        ConnRole::Server => (ev.response_bytes, ev.request_bytes),
        _ => (ev.request_bytes, ev.response_bytes),
    };
    let mut fingerprints_dropped = 0u64;
    let mut budget = MAX_FINGERPRINTS_PER_STEP;
    let mut pii = std::mem::take(&mut ev.pii);
    for p in &mut pii {
        let keep = p.fingerprints.len().min(budget);
        fingerprints_dropped += (p.fingerprints.len() - keep) as u64;
        p.fingerprints.truncate(keep);
        budget -= keep;
    }
    let mut pii_types: Vec<String> = pii.iter().map(|p| p.pii_type.clone()).collect();
    pii_types.sort();
    pii_types.dedup();
    let mut injection_rules: Vec<String> = ev.injection.iter().map(|i| i.rule.clone()).collect();
    injection_rules.sort();
    injection_rules.dedup();
    let mut secret_types: Vec<String> = ev.secrets.iter().map(|s| s.secret_type.clone()).collect();
    secret_types.sort();
    secret_types.dedup();
    let role = ev.role;
    StepRecord {
        step: ChainStep {
            index: 0,
            event_id: std::mem::take(&mut ev.event_id),
            ts_start_ns: ev.ts_start_ns,
            ts_end_ns: ev.ts_end_ns.max(ev.ts_start_ns),
            kind: std::mem::take(&mut ev.kind),
            protocol: std::mem::take(&mut ev.protocol),
            tgid: ev.tgid,
            comm: std::mem::take(&mut ev.comm),
            node: std::mem::take(&mut ev.node),
            destination: ev.host.take(),
            category: std::mem::take(&mut ev.destination_category),
            method: ev.method.take(),
            tool_name: None,
            tool_call_id: None,
            summary,
            model,
            input_tokens,
            output_tokens,
            cost_usd,
            rows,
            bytes_out: bytes_out.max(0),
            bytes_in: bytes_in.max(0),
            pii_types,
            injection_rules,
            secret_types,
            statement,
            top_k,
            archive_format,
        },
        proc,
        role,
        tool_calls,
        tool_result_ids,
        full_prefix_hash,
        pii,
        user_request: false,
        stitched: false,
        depth: 0,
        fingerprints_dropped,
    }
}

/// One readable line: what the step did. Built with `push_str` (one per event: the format
/// machinery costed as much as the rest of the step).
fn summarize(ev: &SemanticEvent, model: Option<&str>, tools: &[RequestedTool]) -> String {
    let mut s = String::with_capacity(ev.sql.as_ref().map_or(64, |q| q.statement.len().min(MAX_SUMMARY) + 16));
    if let Some(sql) = &ev.sql {
        s.push_str(sql.statement.trim());
        if let Some(r) = sql.rows {
            s.push_str(" (");
            push_int(&mut s, r);
            s.push_str(" rows)");
        }
    } else if let Some(llm) = &ev.llm {
        s.push_str(&llm.operation);
        s.push(' ');
        s.push_str(model.unwrap_or("?"));
        for (i, t) in tools.iter().enumerate() {
            s.push_str(if i == 0 { " -> " } else { ", " });
            s.push_str(&t.name);
        }
    } else if let Some(v) = &ev.vector {
        s.push_str(&v.system);
        s.push(' ');
        s.push_str(&v.operation);
        s.push(' ');
        s.push_str(v.collection.as_deref().unwrap_or(""));
        if let Some(r) = v.results {
            s.push_str(" (");
            push_int(&mut s, r);
            s.push_str(" results)");
        }
    } else if let Some(u) = &ev.upload {
        s.push_str("upload ");
        s.push_str(u.filename.as_deref().unwrap_or("?"));
        s.push_str(" (");
        push_int(&mut s, u.bytes);
        s.push_str(" bytes) to ");
        s.push_str(ev.host.as_deref().unwrap_or("?"));
    } else {
        s.push_str(ev.method.as_deref().unwrap_or(&ev.kind));
        s.push(' ');
        s.push_str(ev.host.as_deref().unwrap_or(""));
        s.push_str(ev.path.as_deref().unwrap_or(""));
        if let Some(status) = ev.status {
            s.push(' ');
            push_int(&mut s, i64::from(status));
        }
    }
    cut(s, MAX_SUMMARY)
}

/// Append `n` in decimal.
fn push_int(s: &mut String, n: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        s.push('-');
    }
    for d in &digits[at..] {
        s.push(char::from(*d));
    }
}

/// `s` cut to at most `max` bytes (on a character boundary, marked with an ellipsis).
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut at = max;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
        s.push('…');
        // A cut statement would otherwise keep the whole original's buffer.
        s.shrink_to_fit();
    }
    s
}
