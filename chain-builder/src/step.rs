//! One step of a chain as the builder keeps it: the printed `ChainStep`'s numbers inline, and
//! all its strings (the printed fields, the tool calls an LLM answer requested, the tool result
//! ids it carried, its PII findings with their fingerprints) in one `StepText`: a buffer and a
//! table of where each string ends. Copied out of the `SemanticEvent` while the event is at
//! hand, with caps on what an event may bring (fingerprints, tool calls).
//!
//! Why one buffer: a chain's steps are read again at every version (attribution, PII flows,
//! risk, encoding) and freed when it closes, long after they were built. As ~20 separate
//! strings per step, every version and every close walked ~20 cold allocations per step; the
//! builder's time went more to those misses than to its work.

use chainwatch_schemas::{ChainStep, ConnRole, PiiFinding, SemanticEvent, ToolCall};
use serde::{Deserialize, Serialize};

use crate::attribution::kind_class;
use crate::cost::PriceTable;
use crate::hashing::fx_str;
use crate::process_tree::ProcKey;

/// At most this many fingerprints are kept per step (the rest are counted).
pub const MAX_FINGERPRINTS_PER_STEP: usize = 1_024;
/// At most this many tool calls are kept per LLM answer.
pub const MAX_TOOL_CALLS_PER_STEP: usize = 64;
/// Summaries are cut to this many bytes.
const MAX_SUMMARY: usize = 240;
/// SQL statements are kept up to this many bytes.
const MAX_STATEMENT: usize = 4_096;

pub const KIND_LLM: &str = "llm_call";
pub const KIND_UPLOAD: &str = "upload";

/// The single-valued strings, in the order they open `StepText` (optional ones are empty and
/// marked absent in `StepRecord::present` when missing).
#[derive(Debug, Clone, Copy)]
enum Field {
    EventId,
    Kind,
    Protocol,
    Comm,
    Node,
    Category,
    Summary,
    Destination,
    Method,
    Model,
    ToolName,
    ToolCallId,
    Statement,
    ArchiveFormat,
    FullPrefixHash,
}

/// Strings before the lists.
const FIELDS: usize = Field::FullPrefixHash as usize + 1;

/// All of a step's strings: `text`, and in `table` where each one starts and ends (0, then the
/// end of each: the fields, then the lists: PII types, injection rules, secret types, tool call
/// ids, tool call names, tool result ids, then per PII finding its type, location and
/// fingerprints), then per finding its fingerprint count.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepText {
    text: String,
    table: Vec<u32>,
}

impl StepText {
    /// String `i` ("" if the table does not have it).
    #[inline]
    fn get(&self, i: usize) -> &str {
        match self.table.get(i..).and_then(|t| t.first_chunk::<2>()) {
            Some(&[start, end]) => self.text.get(start as usize..end as usize).unwrap_or(""),
            None => "",
        }
    }
}

/// Strings `first..first + len` of a step's text.
#[derive(Debug, Clone, Copy)]
pub struct StrList<'a> {
    text: &'a StepText,
    first: usize,
    len: usize,
}

impl<'a> StrList<'a> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> Option<&'a str> {
        (i < self.len).then(|| self.text.get(self.first + i))
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a str> + 'a {
        let (text, first) = (self.text, self.first);
        (0..self.len).map(move |i| text.get(first + i))
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }

    /// The strings joined with `sep`.
    pub fn join(&self, sep: &str) -> String {
        let mut out = String::new();
        for (i, s) in self.iter().enumerate() {
            if i > 0 {
                out.push_str(sep);
            }
            out.push_str(s);
        }
        out
    }
}

/// One PII finding of a step.
#[derive(Debug, Clone, Copy)]
pub struct Finding<'a> {
    pub pii_type: &'a str,
    pub location: &'a str,
    pub fingerprints: StrList<'a>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    pub ts_start_ns: i64,
    pub ts_end_ns: i64,
    pub tgid: i32,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub rows: Option<i64>,
    pub bytes_out: i64,
    pub bytes_in: i64,
    pub top_k: Option<i64>,
    pub proc: ProcKey,
    pub role: ConnRole,
    /// An inbound request on the agent's own processes that nobody observed sending: a user.
    pub user_request: bool,
    /// Joined from another service through a matched connection tuple.
    pub stitched: bool,
    /// Stitching depth: 0 = the agent's own processes, n = n services away.
    pub depth: u16,
    /// Fingerprints cut by `MAX_FINGERPRINTS_PER_STEP`.
    pub fingerprints_dropped: u64,
    /// An LLM call (`kind` is `KIND_LLM`: attribution asks this for every pair of steps).
    llm: bool,
    /// The tool class an action of this kind fits (`attribution::kind_class`).
    pub action_class: u8,
    /// `fx_str` of the destination (attribution's memo key: the host is read only on a miss).
    pub host_hash: Option<u64>,
    /// Which optional fields are present (bit `Field as usize`).
    present: u16,
    /// Index of the first string of each list in `text`: PII types, injection rules, secret
    /// types, tool calls (ids, then as many names), tool result ids, PII findings; then the
    /// end of the last.
    lists: [u32; 7],
    text: StepText,
}

/// Indexes into `StepRecord::lists`.
const PII_TYPES: usize = 0;
const INJECTION_RULES: usize = 1;
const SECRET_TYPES: usize = 2;
const TOOL_CALLS: usize = 3;
const TOOL_RESULTS: usize = 4;
const FINDINGS: usize = 5;

impl StepRecord {
    fn field(&self, f: Field) -> &str {
        self.text.get(f as usize)
    }

    fn optional(&self, f: Field) -> Option<&str> {
        (self.present & (1 << f as u16) != 0).then(|| self.text.get(f as usize))
    }

    pub fn event_id(&self) -> &str {
        self.field(Field::EventId)
    }
    pub fn kind(&self) -> &str {
        self.field(Field::Kind)
    }
    pub fn protocol(&self) -> &str {
        self.field(Field::Protocol)
    }
    pub fn comm(&self) -> &str {
        self.field(Field::Comm)
    }
    pub fn node(&self) -> &str {
        self.field(Field::Node)
    }
    pub fn category(&self) -> &str {
        self.field(Field::Category)
    }
    pub fn summary(&self) -> &str {
        self.field(Field::Summary)
    }
    pub fn destination(&self) -> Option<&str> {
        self.optional(Field::Destination)
    }
    pub fn method(&self) -> Option<&str> {
        self.optional(Field::Method)
    }
    pub fn model(&self) -> Option<&str> {
        self.optional(Field::Model)
    }
    /// The step's own tool name (a stitched step may carry one); the chain view prefers the
    /// call the step was attributed to.
    pub fn tool_name(&self) -> Option<&str> {
        self.optional(Field::ToolName)
    }
    pub fn tool_call_id(&self) -> Option<&str> {
        self.optional(Field::ToolCallId)
    }
    pub fn statement(&self) -> Option<&str> {
        self.optional(Field::Statement)
    }
    pub fn archive_format(&self) -> Option<&str> {
        self.optional(Field::ArchiveFormat)
    }
    /// Hash of this LLM call's whole message list: a later call that extends it carries it.
    pub fn full_prefix_hash(&self) -> Option<&str> {
        self.optional(Field::FullPrefixHash)
    }

    /// List `which` of the text (for the tool calls, their ids; the names follow them).
    #[inline]
    fn list(&self, which: usize) -> StrList<'_> {
        let (first, end) = match self.lists.get(which..).and_then(|l| l.first_chunk::<2>()) {
            Some(&[first, end]) => (first as usize, end as usize),
            None => (0, 0),
        };
        // within the strings the table has (a damaged checkpoint reads short, not huge)
        let strings = self.strings();
        let (first, end) = (first.min(strings), end.min(strings));
        let len = end.saturating_sub(first);
        StrList { text: &self.text, first, len: if which == TOOL_CALLS { len / 2 } else { len } }
    }

    pub fn pii_types(&self) -> StrList<'_> {
        self.list(PII_TYPES)
    }
    pub fn injection_rules(&self) -> StrList<'_> {
        self.list(INJECTION_RULES)
    }
    pub fn secret_types(&self) -> StrList<'_> {
        self.list(SECRET_TYPES)
    }

    /// Tool calls this LLM answer requested.
    pub fn tool_call_count(&self) -> usize {
        self.list(TOOL_CALLS).len
    }

    /// (id, name) of requested tool call `c`.
    pub fn tool_call(&self, c: usize) -> Option<(&str, &str)> {
        let ids = self.list(TOOL_CALLS);
        let id = ids.get(c)?;
        Some((id, self.text.get(ids.first + ids.len + c)))
    }

    /// (id, name) of every requested tool call, in order.
    pub fn tool_calls(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        let ids = self.list(TOOL_CALLS);
        (0..ids.len).map(move |c| (self.text.get(ids.first + c), self.text.get(ids.first + ids.len + c)))
    }

    /// Ids of the tool calls whose results this LLM request carries.
    pub fn tool_result_ids(&self) -> StrList<'_> {
        self.list(TOOL_RESULTS)
    }

    /// Strings in the text (the table: 0, an end per string, then a fingerprint count per
    /// PII finding).
    fn strings(&self) -> usize {
        (self.lists[FINDINGS + 1] as usize).min(self.text.table.len().saturating_sub(1))
    }

    /// The PII findings, in order.
    pub fn findings(&self) -> impl Iterator<Item = Finding<'_>> {
        let strings = self.strings();
        let counts = strings + 1;
        let n = self.text.table.len().saturating_sub(counts);
        let mut at = self.lists[FINDINGS] as usize;
        (0..n).map(move |f| {
            let available = strings.saturating_sub(at.saturating_add(2));
            let count = self.text.table.get(counts + f).map_or(0, |&c| c as usize).min(available);
            let finding = Finding {
                pii_type: self.text.get(at),
                location: self.text.get(at + 1),
                fingerprints: StrList { text: &self.text, first: at + 2, len: count },
            };
            at = at.saturating_add(2 + count);
            finding
        })
    }

    pub fn is_llm(&self) -> bool {
        self.llm
    }

    /// Bytes and count of the strings a printed step carries of its own (the fields and the
    /// PII types, injection rules and secret types, which come first in the text): for sizing
    /// its encoding without reading them.
    pub fn printed_text(&self) -> (usize, usize) {
        let strings = self.lists[TOOL_CALLS] as usize;
        let end = self.text.table.get(strings).map_or(0, |&e| e as usize);
        let prefix_hash = self.full_prefix_hash().map_or(0, str::len);
        (end.saturating_sub(prefix_hash), strings)
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

    /// The printed step at position `index`, attributed to the tool call `tool` (name, id) if
    /// any (else with its own tool fields).
    pub fn to_chain_step(&self, index: i32, tool: Option<(&str, &str)>) -> ChainStep {
        let own = |s: Option<&str>| s.map(str::to_string);
        let (tool_name, tool_call_id) = match tool {
            Some((name, id)) => (Some(name.to_string()), Some(id.to_string())),
            None => (own(self.tool_name()), own(self.tool_call_id())),
        };
        ChainStep {
            index,
            event_id: self.event_id().to_string(),
            ts_start_ns: self.ts_start_ns,
            ts_end_ns: self.ts_end_ns,
            kind: self.kind().to_string(),
            protocol: self.protocol().to_string(),
            tgid: self.tgid,
            comm: self.comm().to_string(),
            node: self.node().to_string(),
            destination: own(self.destination()),
            category: self.category().to_string(),
            method: own(self.method()),
            tool_name,
            tool_call_id,
            summary: self.summary().to_string(),
            model: own(self.model()),
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cost_usd: self.cost_usd,
            rows: self.rows,
            bytes_out: self.bytes_out,
            bytes_in: self.bytes_in,
            pii_types: self.pii_types().to_vec(),
            injection_rules: self.injection_rules().to_vec(),
            secret_types: self.secret_types().to_vec(),
            statement: own(self.statement()),
            top_k: self.top_k,
            archive_format: own(self.archive_format()),
        }
    }

    /// The PII findings as records (for the wire).
    pub fn pii_findings(&self) -> Vec<PiiFinding> {
        self.findings()
            .map(|f| PiiFinding {
                pii_type: f.pii_type.to_string(),
                count: i32::try_from(f.fingerprints.len()).unwrap_or(i32::MAX),
                fingerprints: f.fingerprints.to_vec(),
                location: f.location.to_string(),
            })
            .collect()
    }

    /// Heap and inline bytes held (for memory accounting).
    pub fn approx_bytes(&self) -> usize {
        size_of::<StepRecord>() + self.text.text.capacity() + self.text.table.capacity() * size_of::<u32>()
    }

    /// A step from its printed form and what routing needs besides (the wire's `StitchedStep`,
    /// tests). Capped like an event's: tool calls and result ids at `MAX_TOOL_CALLS_PER_STEP`,
    /// fingerprints at `MAX_FINGERPRINTS_PER_STEP` (the cut ones counted).
    pub fn from_parts(parts: StepParts<'_>) -> StepRecord {
        let StepParts { step: s, proc, role, tool_calls, tool_result_ids, full_prefix_hash, pii } = parts;
        let tools = &tool_calls[..tool_calls.len().min(MAX_TOOL_CALLS_PER_STEP)];
        let results: Vec<&str> = tool_result_ids.iter().take(MAX_TOOL_CALLS_PER_STEP).map(String::as_str).collect();
        let fields = Fields {
            event_id: &s.event_id,
            kind: &s.kind,
            protocol: &s.protocol,
            comm: &s.comm,
            node: &s.node,
            category: &s.category,
            summary: Summary::Text(&s.summary),
            destination: s.destination.as_deref(),
            method: s.method.as_deref(),
            model: s.model.as_deref(),
            tool_name: s.tool_name.as_deref(),
            tool_call_id: s.tool_call_id.as_deref(),
            statement: s.statement.as_deref(),
            archive_format: s.archive_format.as_deref(),
            full_prefix_hash,
        };
        let lists = Lists {
            pii_types: s.pii_types.iter().map(String::as_str).collect(),
            injection_rules: s.injection_rules.iter().map(String::as_str).collect(),
            secret_types: s.secret_types.iter().map(String::as_str).collect(),
            tools,
            results: &results,
            pii,
        };
        let numbers = Numbers {
            ts_start_ns: s.ts_start_ns,
            ts_end_ns: s.ts_end_ns,
            tgid: s.tgid,
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            cost_usd: s.cost_usd,
            rows: s.rows,
            bytes_out: s.bytes_out,
            bytes_in: s.bytes_in,
            top_k: s.top_k,
        };
        build(&fields, &lists, numbers, proc, role)
    }
}

/// What `StepRecord::from_parts` builds a step from.
pub struct StepParts<'a> {
    pub step: &'a ChainStep,
    pub proc: ProcKey,
    pub role: ConnRole,
    /// (id, name) of the tool calls it requested.
    pub tool_calls: &'a [(&'a str, &'a str)],
    pub tool_result_ids: &'a [String],
    pub full_prefix_hash: Option<&'a str>,
    pub pii: &'a [PiiFinding],
}

/// The single-valued strings of a step being built.
struct Fields<'a> {
    event_id: &'a str,
    kind: &'a str,
    protocol: &'a str,
    comm: &'a str,
    node: &'a str,
    category: &'a str,
    summary: Summary<'a>,
    destination: Option<&'a str>,
    method: Option<&'a str>,
    model: Option<&'a str>,
    tool_name: Option<&'a str>,
    tool_call_id: Option<&'a str>,
    statement: Option<&'a str>,
    archive_format: Option<&'a str>,
    full_prefix_hash: Option<&'a str>,
}

/// The lists of a step being built.
struct Lists<'a> {
    pii_types: Vec<&'a str>,
    injection_rules: Vec<&'a str>,
    secret_types: Vec<&'a str>,
    tools: &'a [(&'a str, &'a str)],
    results: &'a [&'a str],
    pii: &'a [PiiFinding],
}

/// The numbers of a step being built.
struct Numbers {
    ts_start_ns: i64,
    ts_end_ns: i64,
    tgid: i32,
    input_tokens: i64,
    output_tokens: i64,
    cost_usd: f64,
    rows: Option<i64>,
    bytes_out: i64,
    bytes_in: i64,
    top_k: Option<i64>,
}

/// A step's text being written: strings appended in table order.
struct TextWriter {
    text: StepText,
    present: u16,
}

impl TextWriter {
    fn push(&mut self, s: &str) {
        self.text.text.push_str(s);
        self.text.table.push(u32::try_from(self.text.text.len()).unwrap_or(u32::MAX));
    }

    fn field(&mut self, f: Field, s: Option<&str>) {
        if let Some(s) = s {
            self.present |= 1 << f as u16;
            self.push(s);
        } else {
            self.push("");
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A step's summary: given, or written from its event straight into the step's text.
enum Summary<'a> {
    Text(&'a str),
    Of { ev: &'a SemanticEvent, model: Option<&'a str>, calls: &'a [ToolCall] },
}

impl Summary<'_> {
    /// About its length (for sizing the text).
    fn len_hint(&self) -> usize {
        match self {
            Summary::Text(s) => s.len(),
            Summary::Of { ev, .. } => ev.sql.as_ref().map_or(64, |q| q.statement.len().min(MAX_SUMMARY) + 16),
        }
    }
}

/// The step of these parts; fingerprints capped (in total) at `MAX_FINGERPRINTS_PER_STEP`.
fn build(f: &Fields<'_>, l: &Lists<'_>, n: Numbers, proc: ProcKey, role: ConnRole) -> StepRecord {
    let singles = [f.event_id, f.kind, f.protocol, f.comm, f.node, f.category];
    let optionals = [f.destination, f.method, f.model, f.tool_name, f.tool_call_id, f.statement, f.archive_format, f.full_prefix_hash];
    let mut budget = MAX_FINGERPRINTS_PER_STEP;
    let kept: Vec<usize> = l
        .pii
        .iter()
        .map(|p| {
            let keep = p.fingerprints.len().min(budget);
            budget -= keep;
            keep
        })
        .collect();
    let fingerprints_dropped = l.pii.iter().zip(&kept).map(|(p, k)| (p.fingerprints.len() - k) as u64).sum();
    let len = singles.iter().map(|s| s.len()).sum::<usize>()
        + f.summary.len_hint()
        + optionals.iter().flatten().map(|s| s.len()).sum::<usize>()
        + [&l.pii_types, &l.injection_rules, &l.secret_types].iter().flat_map(|v| v.iter()).map(|s| s.len()).sum::<usize>()
        + l.tools.iter().map(|(i, n)| i.len() + n.len()).sum::<usize>()
        + l.results.iter().map(|r| r.len()).sum::<usize>()
        + l.pii.iter().zip(&kept).map(|(p, &k)| p.pii_type.len() + p.location.len() + p.fingerprints[..k].iter().map(String::len).sum::<usize>()).sum::<usize>();
    let strings = FIELDS
        + l.pii_types.len()
        + l.injection_rules.len()
        + l.secret_types.len()
        + 2 * l.tools.len()
        + l.results.len()
        + l.pii.iter().zip(&kept).map(|(_, &k)| 2 + k).sum::<usize>();
    let mut w = TextWriter {
        text: StepText { text: String::with_capacity(len), table: Vec::with_capacity(1 + strings + l.pii.len()) },
        present: 0,
    };
    w.text.table.push(0);
    let mut lists = [0u32; 7];
    for s in singles {
        w.push(s);
    }
    match f.summary {
        Summary::Text(s) => w.push(s),
        Summary::Of { ev, model, calls } => {
            let start = w.text.text.len();
            summarize(&mut w.text.text, ev, model, calls);
            cut_tail(&mut w.text.text, start, MAX_SUMMARY);
            w.push("");
        }
    }
    for (f, s) in [
        Field::Destination,
        Field::Method,
        Field::Model,
        Field::ToolName,
        Field::ToolCallId,
        Field::Statement,
        Field::ArchiveFormat,
        Field::FullPrefixHash,
    ]
    .into_iter()
    .zip(optionals)
    {
        w.field(f, s);
    }
    let mut list_starts = lists.iter_mut();
    let mut start_list = |w: &TextWriter| {
        if let Some(at) = list_starts.next() {
            *at = count(w.text.table.len() - 1);
        }
    };
    start_list(&w);
    for s in &l.pii_types {
        w.push(s);
    }
    start_list(&w);
    for s in &l.injection_rules {
        w.push(s);
    }
    start_list(&w);
    for s in &l.secret_types {
        w.push(s);
    }
    start_list(&w);
    for (id, _) in l.tools {
        w.push(id);
    }
    for (_, name) in l.tools {
        w.push(name);
    }
    start_list(&w);
    for r in l.results {
        w.push(r);
    }
    start_list(&w);
    for (p, &k) in l.pii.iter().zip(&kept) {
        w.push(&p.pii_type);
        w.push(&p.location);
        for fp in &p.fingerprints[..k] {
            w.push(fp);
        }
    }
    start_list(&w);
    w.text.table.extend(kept.iter().map(|&k| count(k)));
    StepRecord {
        ts_start_ns: n.ts_start_ns,
        ts_end_ns: n.ts_end_ns,
        tgid: n.tgid,
        input_tokens: n.input_tokens,
        output_tokens: n.output_tokens,
        cost_usd: n.cost_usd,
        rows: n.rows,
        bytes_out: n.bytes_out,
        bytes_in: n.bytes_in,
        top_k: n.top_k,
        proc,
        role,
        user_request: false,
        stitched: false,
        depth: 0,
        fingerprints_dropped,
        llm: f.kind == KIND_LLM,
        action_class: kind_class(f.kind),
        host_hash: f.destination.map(fx_str),
        present: w.present,
        lists,
        text: w.text,
    }
}

/// The step of `ev`, which runs in process `proc` (its strings copied into the step's text
/// while they are at hand).
pub fn take_step(ev: &SemanticEvent, proc: ProcKey, prices: &PriceTable) -> StepRecord {
    let llm = ev.llm.as_ref();
    let calls: &[ToolCall] = llm.map_or(&[], |l| &l.tool_calls[..l.tool_calls.len().min(MAX_TOOL_CALLS_PER_STEP)]);
    let tools: Vec<(&str, &str)> = calls.iter().map(|t| (t.id.as_str(), t.name.as_str())).collect();
    let results: Vec<&str> = llm.map_or(Vec::new(), |l| l.tool_result_ids.iter().take(MAX_TOOL_CALLS_PER_STEP).map(String::as_str).collect());
    let model = llm.and_then(|l| l.response_model.as_deref().or(l.request_model.as_deref()));
    let (input_tokens, output_tokens) = llm.map_or((0, 0), |l| (l.input_tokens.unwrap_or(0).max(0), l.output_tokens.unwrap_or(0).max(0)));
    let cost_usd = model.map_or(0.0, |m| prices.cost(m, input_tokens, output_tokens));
    let statement = ev.sql.as_ref().map(|s| cut_str(&s.statement, MAX_STATEMENT));
    let (bytes_out, bytes_in) = match ev.role {
        ConnRole::Server => (ev.response_bytes, ev.request_bytes),
        _ => (ev.request_bytes, ev.response_bytes),
    };
    let fields = Fields {
        event_id: &ev.event_id,
        kind: &ev.kind,
        protocol: &ev.protocol,
        comm: &ev.comm,
        node: &ev.node,
        category: &ev.destination_category,
        summary: Summary::Of { ev, model, calls },
        destination: ev.host.as_deref(),
        method: ev.method.as_deref(),
        model,
        tool_name: None,
        tool_call_id: None,
        statement: statement.as_deref(),
        archive_format: ev.upload.as_ref().and_then(|u| u.archive_format.as_deref()),
        full_prefix_hash: llm.and_then(|l| l.conversation_prefix_hashes.last()).map(String::as_str),
    };
    let lists = Lists {
        pii_types: sorted(ev.pii.iter().map(|p| p.pii_type.as_str()).collect()),
        injection_rules: sorted(ev.injection.iter().map(|i| i.rule.as_str()).collect()),
        secret_types: sorted(ev.secrets.iter().map(|s| s.secret_type.as_str()).collect()),
        tools: &tools,
        results: &results,
        pii: &ev.pii,
    };
    let numbers = Numbers {
        ts_start_ns: ev.ts_start_ns,
        ts_end_ns: ev.ts_end_ns.max(ev.ts_start_ns),
        tgid: ev.tgid,
        input_tokens,
        output_tokens,
        cost_usd,
        rows: ev.sql.as_ref().and_then(|s| s.rows),
        bytes_out: bytes_out.max(0),
        bytes_in: bytes_in.max(0),
        top_k: ev.vector.as_ref().and_then(|v| v.top_k),
    };
    build(&fields, &lists, numbers, proc, ev.role)
}

/// `v` sorted, without repeats.
fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort_unstable();
    v.dedup();
    v
}

/// One readable line: what the step did, appended to `s`. Built with `push_str` (one per event:
/// the format machinery costed as much as the rest of the step).
fn summarize(s: &mut String, ev: &SemanticEvent, model: Option<&str>, tools: &[ToolCall]) {
    if let Some(sql) = &ev.sql {
        s.push_str(sql.statement.trim());
        if let Some(r) = sql.rows {
            s.push_str(" (");
            push_int(s, r);
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
            push_int(s, r);
            s.push_str(" results)");
        }
    } else if let Some(u) = &ev.upload {
        s.push_str("upload ");
        s.push_str(u.filename.as_deref().unwrap_or("?"));
        s.push_str(" (");
        push_int(s, u.bytes);
        s.push_str(" bytes) to ");
        s.push_str(ev.host.as_deref().unwrap_or("?"));
    } else {
        s.push_str(ev.method.as_deref().unwrap_or(&ev.kind));
        s.push(' ');
        s.push_str(ev.host.as_deref().unwrap_or(""));
        s.push_str(ev.path.as_deref().unwrap_or(""));
        if let Some(status) = ev.status {
            s.push(' ');
            push_int(s, i64::from(status));
        }
    }
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

/// Where to cut `s` to at most `max` bytes (on a character boundary), if it is longer.
fn cut_at(s: &str, max: usize) -> Option<usize> {
    if s.len() <= max {
        return None;
    }
    let mut at = max;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    Some(at)
}

/// What `s` holds from `start` on, cut to at most `max` bytes (on a character boundary, marked
/// with an ellipsis).
fn cut_tail(s: &mut String, start: usize, max: usize) {
    if let Some(at) = s.get(start..).and_then(|tail| cut_at(tail, max)) {
        s.truncate(start + at);
        s.push('…');
    }
}

/// `cut`, borrowing when nothing is cut.
fn cut_str(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match cut_at(s, max) {
        None => std::borrow::Cow::Borrowed(s),
        Some(at) => std::borrow::Cow::Owned(format!("{}…", &s[..at])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chainwatch_schemas::{InjectionSignal, LlmCall, SecretFinding, SqlStatement};

    fn proc() -> ProcKey {
        ProcKey { node: 0, tgid: 7, start_ns: 1 }
    }

    fn llm_event() -> SemanticEvent {
        SemanticEvent {
            event_id: "e1".into(),
            node: "n1".into(),
            comm: "python3".into(),
            ts_start_ns: 10,
            ts_end_ns: 5,
            protocol: "http1".into(),
            kind: KIND_LLM.into(),
            role: ConnRole::Client,
            method: Some("POST".into()),
            host: Some("api.openai.com".into()),
            destination_category: "llm".into(),
            request_bytes: 100,
            response_bytes: -3,
            llm: Some(LlmCall {
                operation: "chat".into(),
                request_model: Some("gpt-4o".into()),
                tool_calls: (0..70).map(|i| ToolCall { id: format!("call_{i}"), name: format!("tool_{i}"), arguments: "{}".into() }).collect(),
                tool_result_ids: vec!["call_a".into(), "call_b".into()],
                conversation_prefix_hashes: vec!["h1".into(), "h2".into()],
                input_tokens: Some(1_000),
                output_tokens: Some(-5),
                ..LlmCall::default()
            }),
            pii: vec![
                PiiFinding { pii_type: "email".into(), count: 1_000, fingerprints: (0..1_000).map(|i| format!("fp{i}")).collect(), location: "request.body".into() },
                PiiFinding { pii_type: "phone".into(), count: 30, fingerprints: (0..30).map(|i| format!("ph{i}")).collect(), location: "response.body".into() },
                PiiFinding { pii_type: "email".into(), count: 2, fingerprints: vec!["x".into(), "y".into()], location: "request.body".into() },
            ],
            injection: vec![
                InjectionSignal { rule: "ignore_previous".into(), score: 0.9, location: "request.body".into() },
                InjectionSignal { rule: "ignore_previous".into(), score: 0.8, location: "request.body".into() },
            ],
            secrets: vec![SecretFinding { secret_type: "aws_key".into(), count: 1, fingerprints: vec![], location: "request.body".into() }],
            ..SemanticEvent::default()
        }
    }

    /// Every field and list comes back as the event gave it, capped as documented.
    #[test]
    fn a_step_keeps_what_its_event_said() {
        let s = take_step(&llm_event(), proc(), &PriceTable::default());
        assert_eq!((s.event_id(), s.kind(), s.protocol(), s.comm(), s.node(), s.category()), ("e1", KIND_LLM, "http1", "python3", "n1", "llm"));
        assert_eq!((s.destination(), s.method(), s.model()), (Some("api.openai.com"), Some("POST"), Some("gpt-4o")));
        assert_eq!((s.tool_name(), s.tool_call_id(), s.statement(), s.archive_format()), (None, None, None, None));
        assert_eq!(s.full_prefix_hash(), Some("h2"));
        assert!(s.is_llm());
        assert_eq!((s.ts_start_ns, s.ts_end_ns, s.bytes_out, s.bytes_in), (10, 10, 100, 0));
        assert_eq!((s.input_tokens, s.output_tokens), (1_000, 0));
        assert_eq!(s.tool_call_count(), MAX_TOOL_CALLS_PER_STEP);
        assert_eq!(s.tool_call(3), Some(("call_3", "tool_3")));
        assert_eq!(s.tool_call(MAX_TOOL_CALLS_PER_STEP), None);
        assert_eq!(s.tool_calls().last(), Some(("call_63", "tool_63")));
        assert_eq!(s.tool_result_ids().to_vec(), ["call_a", "call_b"]);
        assert_eq!(s.pii_types().to_vec(), ["email", "phone"]);
        assert_eq!(s.injection_rules().to_vec(), ["ignore_previous"]);
        assert_eq!(s.secret_types().to_vec(), ["aws_key"]);
        let findings: Vec<(&str, &str, usize)> = s.findings().map(|f| (f.pii_type, f.location, f.fingerprints.len())).collect();
        // 1,024 fingerprints at most: the first finding's 1,000, 24 of the second, none of the third
        assert_eq!(findings, [("email", "request.body", 1_000), ("phone", "response.body", 24), ("email", "request.body", 0)]);
        assert_eq!(s.fingerprints_dropped, 6 + 2);
        assert_eq!(s.findings().nth(1).and_then(|f| f.fingerprints.get(23)), Some("ph23"));
        assert!(s.summary().starts_with("chat gpt-4o -> tool_0, tool_1"), "{}", s.summary());
        assert!(s.summary().len() <= MAX_SUMMARY + '…'.len_utf8() && s.summary().ends_with('…'));
    }

    /// The printed step and the wire parts give back the same step.
    #[test]
    fn a_step_through_its_printed_form_and_the_wire_parts_is_the_same() {
        let s = take_step(&llm_event(), proc(), &PriceTable::default());
        let printed = s.to_chain_step(4, None);
        assert_eq!(printed.index, 4);
        let tools: Vec<(&str, &str)> = s.tool_calls().collect();
        let again = StepRecord::from_parts(StepParts {
            step: &printed,
            proc: proc(),
            role: s.role,
            tool_calls: &tools,
            tool_result_ids: &s.tool_result_ids().to_vec(),
            full_prefix_hash: s.full_prefix_hash(),
            pii: &s.pii_findings(),
        });
        assert_eq!(again.to_chain_step(4, None), printed);
        assert_eq!(again.text, s.text);
        assert_eq!(again.fingerprints_dropped, 0);
        let attributed = s.to_chain_step(0, Some(("query_database", "call_9")));
        assert_eq!((attributed.tool_name.as_deref(), attributed.tool_call_id.as_deref()), (Some("query_database"), Some("call_9")));
    }

    /// Summaries and statements are cut on a character boundary, with an ellipsis.
    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let statement = format!("SELECT '{}'", "é".repeat(5_000));
        let ev = SemanticEvent {
            kind: "sql".into(),
            sql: Some(SqlStatement { statement: statement.clone(), rows: Some(3), ..SqlStatement::default() }),
            ..SemanticEvent::default()
        };
        let s = take_step(&ev, proc(), &PriceTable::default());
        let (summary, kept) = (s.summary(), s.statement().unwrap_or(""));
        assert!(summary.ends_with('…') && summary.len() <= MAX_SUMMARY + 3, "{} bytes", summary.len());
        assert!(kept.ends_with('…') && kept.len() <= MAX_STATEMENT + 3 && statement.starts_with(kept.trim_end_matches('…')));
    }

    /// A step restored from a damaged checkpoint reads as empty strings and lists, never a
    /// panic.
    #[test]
    fn a_damaged_table_reads_empty_not_a_panic() {
        let good = take_step(&llm_event(), proc(), &PriceTable::default());
        let damaged_tables: [Vec<u32>; 5] = [vec![], vec![0], vec![5, 2, u32::MAX], vec![u32::MAX; 40], (0..5_000).rev().collect()];
        for table in damaged_tables {
            let mut s = good.clone();
            s.text.table = table;
            s.lists = [3, 1, u32::MAX, 0, 9, u32::MAX, 2];
            let _ = (s.event_id(), s.kind(), s.destination(), s.summary(), s.full_prefix_hash());
            let _ = (s.pii_types().to_vec(), s.tool_calls().count(), s.tool_call(1), s.tool_result_ids().to_vec());
            for f in s.findings().take(10) {
                let _ = (f.pii_type, f.location, f.fingerprints.to_vec());
            }
            let _ = (s.to_chain_step(0, None), s.pii_findings().len(), s.printed_text());
        }
    }
}
