//! Avro binary encoding of a `ChainView`, written by hand for the worker's hot path: the
//! `schemas/avro/chain.avsc` fields in order (zigzag varints, length-prefixed strings,
//! `["null", T]` unions as branch 0 or 1, arrays as one counted block then 0), behind the
//! single-object header of `Chain`. apache-avro's serde writer looks every field up by name
//! (a SipHash and a string compare per field) and grows its buffer as it goes; this writes
//! into one buffer sized up front, through a cursor (no length update and capacity check per
//! byte, as `Vec::push` does; measured: a `Vec` reserved up front and not zeroed made the
//! builder 4% slower); a record larger than the estimate is written again into a buffer twice
//! the size.
//!
//! A chain is published again and again as it grows, and its earlier steps mostly come out the
//! same: `SplitEncoding` remembers where each step's bytes are and which tool call each step
//! was attributed to, and the next version copies the bytes of the leading steps that neither
//! moved nor changed attribution since (`encode_chain_reusing`) instead of writing them again.
//! `tests/encoded_output.rs` checks the bytes equal `Chain::encode` (apache-avro) on every
//! version of the test scenarios, so a schema change that this file does not follow, or a
//! reuse that should not have happened, fails there.

use chainwatch_schemas::codec::single_object_header;
use chainwatch_schemas::{AgentRef, Autonomy, Chain, ChainStatus};

use crate::attribution::ExecutedFor;
use crate::chain_view::{ChainView, PiiFlowView, StepView, ToolExecutionView};

/// The single-object encoding of `chain`, as `Chain::encode` gives it.
pub fn encode_chain(chain: &ChainView<'_>) -> Vec<u8> {
    encode_chain_split(chain).bytes
}

/// An encoded version with where its `version` and `status` fields are, so the next version
/// of an unchanged chain (its closing) is these bytes with those two fields rewritten, and
/// where each step's bytes are, so the next version of a grown chain copies its unchanged
/// leading steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitEncoding {
    pub bytes: Vec<u8>,
    /// End of the header and `chain_id`: `version` starts here.
    pub version_at: usize,
    /// End of `status`: the rest of the record starts here.
    pub rest_at: usize,
    /// Where the first step's bytes start (after the steps array's item count).
    steps_at: usize,
    /// Per step: where its bytes end, and the tool call it was attributed to.
    steps: Vec<EncodedStep>,
}

/// One step's place in a `SplitEncoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EncodedStep {
    end: u32,
    executed: Option<ExecutedFor>,
}

impl SplitEncoding {
    /// The same record with another version and status.
    pub fn with_version(&self, version: i64, status: ChainStatus) -> Vec<u8> {
        let (head, rest) = (&self.bytes[..self.version_at], &self.bytes[self.rest_at..]);
        let mut out = Vec::with_capacity(head.len() + 2 * MAX_VARINT + rest.len());
        out.extend_from_slice(head);
        let mut v = [0u8; MAX_VARINT];
        out.extend_from_slice(varint(version, &mut v));
        out.extend_from_slice(varint(status_index(status), &mut v));
        out.extend_from_slice(rest);
        out
    }

    /// `with_version`, taking these bytes: when the new version and status encode to as many
    /// bytes as the old (a version's varint only grows at 64, 8,192, ...), they are rewritten
    /// in place and the buffer is the record, without a copy (a closing chain's last version
    /// is its last upsert's bytes: the copy was an allocation and two passes over cold bytes).
    pub fn into_version(mut self, version: i64, status: ChainStatus) -> Vec<u8> {
        let (mut v, mut s) = ([0u8; MAX_VARINT], [0u8; MAX_VARINT]);
        let (v, s) = (varint(version, &mut v), varint(status_index(status), &mut s));
        if self.rest_at.checked_sub(self.version_at) == Some(v.len() + s.len())
            && let Some(fields) = self.bytes.get_mut(self.version_at..self.rest_at)
        {
            let (version_field, status_field) = fields.split_at_mut(v.len());
            version_field.copy_from_slice(v);
            status_field.copy_from_slice(s);
            return self.bytes;
        }
        self.with_version(version, status)
    }

    /// The bytes to publish, and the encoding to keep for the next version (its buffer exactly
    /// its length: the published one has the estimate's capacity).
    pub fn publish_and_keep(self) -> (Vec<u8>, SplitEncoding) {
        let kept = SplitEncoding {
            bytes: self.bytes.as_slice().to_vec(),
            version_at: self.version_at,
            rest_at: self.rest_at,
            steps_at: self.steps_at,
            steps: self.steps,
        };
        (self.bytes, kept)
    }

    /// How many leading steps of `chain` are written as in this encoding: among the first
    /// `unmoved` (steps neither inserted before nor removed since it), those attributed to
    /// the same tool call. A step's bytes are its own fields, its index and the name and id of
    /// the call it executed; that call was requested by an earlier step, itself unmoved.
    fn reusable_steps(&self, chain: &ChainView<'_>, unmoved: usize) -> usize {
        self.steps
            .iter()
            .zip(&chain.steps)
            .take(unmoved)
            .take_while(|(old, new)| old.executed == new.executed)
            .count()
    }

    /// Heap bytes held.
    pub fn approx_bytes(&self) -> usize {
        self.bytes.capacity() + self.steps.capacity() * size_of::<EncodedStep>()
    }
}

fn status_index(status: ChainStatus) -> i64 {
    match status {
        ChainStatus::Open => 0,
        ChainStatus::Closed => 1,
    }
}

/// `encode_chain`, keeping the positions `SplitEncoding::with_version` needs.
pub fn encode_chain_split(chain: &ChainView<'_>) -> SplitEncoding {
    encode_chain_reusing(chain, None)
}

/// `encode_chain_split`, copying from `previous` (an encoding of an earlier version of the same
/// chain, and how many leading steps have not moved since) the bytes of the leading steps that
/// come out the same.
pub fn encode_chain_reusing(chain: &ChainView<'_>, previous: Option<(&SplitEncoding, usize)>) -> SplitEncoding {
    // (steps reused, their bytes in the previous encoding)
    let reuse = previous.and_then(|(p, unmoved)| {
        let n = p.reusable_steps(chain, unmoved);
        let end = p.steps.get(n.checked_sub(1)?)?.end as usize;
        Some(Reuse { steps: &p.steps[..n], bytes: p.bytes.get(p.steps_at..end)?, at: p.steps_at })
    });
    let size = reuse.as_ref().map_or(estimate(chain, 0), |r| estimate(chain, r.steps.len()) + r.bytes.len());
    encode_sized(chain, reuse.as_ref(), size)
}

/// Leading steps copied from a previous encoding: their places there, their bytes, and where
/// its steps started.
struct Reuse<'p> {
    steps: &'p [EncodedStep],
    bytes: &'p [u8],
    at: usize,
}

/// The record into a buffer of `size` bytes, then of twice that until it fits.
fn encode_sized(chain: &ChainView<'_>, reuse: Option<&Reuse<'_>>, mut size: usize) -> SplitEncoding {
    size = size.max(1);
    loop {
        let mut w = AvroWriter::new(size);
        let mut encoding = write_chain(&mut w, chain, reuse);
        match w.finish() {
            Some(bytes) => {
                encoding.bytes = bytes;
                return encoding;
            }
            None => size = size.saturating_mul(2),
        }
    }
}

/// The record into `w`; returns its positions (`bytes` left empty).
fn write_chain(w: &mut AvroWriter, chain: &ChainView<'_>, reuse: Option<&Reuse<'_>>) -> SplitEncoding {
    w.put(&single_object_header::<Chain>());
    w.string(chain.chain_id);
    let version_at = w.pos;
    w.long(chain.version);
    w.long(status_index(chain.status));
    let rest_at = w.pos;
    w.agent(chain.agent);
    w.long(chain.start_ns);
    w.long(chain.end_ns);
    let mut steps = Vec::with_capacity(chain.steps.len());
    if !chain.steps.is_empty() {
        w.long(chain.steps.len() as i64);
    }
    let steps_at = w.pos;
    let mut from = 0;
    if let Some(r) = reuse {
        w.put(r.bytes);
        // the same bytes, moved by where the steps start now
        steps.extend(r.steps.iter().map(|s| EncodedStep { end: (s.end as usize - r.at + steps_at) as u32, executed: s.executed }));
        from = r.steps.len();
    }
    for s in chain.steps.iter().skip(from) {
        w.step(s);
        steps.push(EncodedStep { end: w.pos as u32, executed: s.executed });
    }
    w.long(0);
    w.array(chain.tool_calls.iter(), AvroWriter::tool_execution);
    w.array(chain.pii_flows.iter(), AvroWriter::pii_flow);
    w.array(chain.tools.iter(), |w, s| w.string(s));
    w.array(chain.destinations.iter(), |w, s| w.string(s));
    w.array(chain.pii_types.iter(), |w, s| w.string(s));
    w.long(chain.bytes_out);
    w.long(chain.bytes_in);
    w.long(chain.input_tokens);
    w.long(chain.output_tokens);
    w.double(chain.cost_usd);
    w.long(i64::from(chain.max_tool_repeats));
    w.long(match chain.autonomy {
        Autonomy::Autonomous => 0,
        Autonomy::Supervised => 1,
        Autonomy::Unknown => 2,
    });
    w.double(chain.risk_score);
    w.array(chain.risk_reasons.iter(), |w, s| w.string(s));
    SplitEncoding { bytes: Vec::new(), version_at, rest_at, steps_at, steps }
}

/// The longest varint: a 64-bit value in 7-bit groups.
const MAX_VARINT: usize = 10;

/// `v` zigzag-encoded as a base-128 varint (Avro's `long` and `int`), in `buf`.
fn varint(v: i64, buf: &mut [u8; MAX_VARINT]) -> &[u8] {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 0;
    while z >= 0x80 && n < MAX_VARINT - 1 {
        buf[n] = (z as u8) | 0x80;
        z >>= 7;
        n += 1;
    }
    buf[n] = z as u8;
    &buf[..=n]
}

/// Bytes the encoding will about take, so the buffer is allocated once, without the first
/// `skipped` steps (copied from a previous encoding: the caller knows their length).
fn estimate(c: &ChainView<'_>, skipped: usize) -> usize {
    let step = |s: &StepView<'_>| {
        // its own strings (each with a length of at most 3 bytes), the numbers and union
        // branches, and the attributed call's name and id
        let (bytes, strings) = s.step.printed_text();
        96 + bytes + 3 * strings + s.tool.map_or(0, |(n, i)| n.len() + i.len() + 6)
    };
    let flow = |f: &PiiFlowView<'_>| 24 + f.fingerprint.len() + f.pii_type.len() + f.destination.map_or(0, str::len);
    let tool = |t: &ToolExecutionView<'_>| 24 + t.tool_call_id.len() + t.tool_name.len() + 5 * t.executed_steps.len();
    let strings = |v: &[&str]| v.iter().map(|s| s.len() + 2).sum::<usize>();
    160 + c.chain_id.len()
        + c.agent.agent_key.len()
        + c.agent.exe.len()
        + c.agent.node.len()
        + c.steps.iter().skip(skipped).map(step).sum::<usize>()
        + c.pii_flows.iter().map(flow).sum::<usize>()
        + c.tool_calls.iter().map(tool).sum::<usize>()
        + strings(&c.tools)
        + strings(&c.destinations)
        + strings(&c.pii_types)
        + c.risk_reasons.iter().map(|s| s.len() + 2).sum::<usize>()
}

/// A cursor over a zeroed buffer of the estimated size. A write that does not fit marks the
/// writer overflowed (and writes nothing): `finish` then gives `None`, and the caller writes
/// again into a larger buffer.
struct AvroWriter {
    buf: Vec<u8>,
    pos: usize,
    overflow: bool,
}

impl AvroWriter {
    fn new(size: usize) -> Self {
        AvroWriter { buf: vec![0; size], pos: 0, overflow: false }
    }

    /// The bytes written, or `None` when they did not fit.
    fn finish(mut self) -> Option<Vec<u8>> {
        if self.overflow {
            return None;
        }
        self.buf.truncate(self.pos);
        Some(self.buf)
    }

    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        let end = self.pos + bytes.len();
        match self.buf.get_mut(self.pos..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.pos = end;
            }
            None => self.overflow = true,
        }
    }

    #[inline(always)]
    fn byte(&mut self, b: u8) {
        match self.buf.get_mut(self.pos) {
            Some(dst) => {
                *dst = b;
                self.pos += 1;
            }
            None => self.overflow = true,
        }
    }

    /// `long` and `int`: zigzag, then base-128 varint.
    #[inline(always)]
    fn long(&mut self, v: i64) {
        if (0..64).contains(&v) {
            // lengths, counts, indexes, union branches: one byte
            self.byte((v as u8) << 1);
            return;
        }
        let mut tmp = [0u8; MAX_VARINT];
        let bytes = varint(v, &mut tmp);
        self.put(bytes);
    }

    #[inline(always)]
    fn int(&mut self, v: i32) {
        self.long(i64::from(v));
    }

    #[inline(always)]
    fn double(&mut self, v: f64) {
        self.put(&v.to_le_bytes());
    }

    #[inline(always)]
    fn boolean(&mut self, v: bool) {
        self.byte(u8::from(v));
    }

    #[inline(always)]
    fn string(&mut self, s: &str) {
        self.long(s.len() as i64);
        self.put(s.as_bytes());
    }

    /// `["null", "string"]`.
    #[inline(always)]
    fn opt_string(&mut self, s: Option<&str>) {
        match s {
            None => self.byte(0),
            Some(s) => {
                self.byte(2);
                self.string(s);
            }
        }
    }

    /// `["null", "long"]` (and `["null", "int"]`: the same bytes).
    #[inline(always)]
    fn opt_long(&mut self, v: Option<i64>) {
        match v {
            None => self.byte(0),
            Some(v) => {
                self.byte(2);
                self.long(v);
            }
        }
    }

    /// One block with the item count, then the terminating 0 (an empty array is just 0).
    fn array<I: ExactSizeIterator>(&mut self, items: I, mut item: impl FnMut(&mut Self, I::Item)) {
        if items.len() > 0 {
            self.long(items.len() as i64);
            for i in items {
                item(self, i);
            }
        }
        self.long(0);
    }

    fn agent(&mut self, a: &AgentRef) {
        self.string(&a.node);
        self.string(&a.agent_key);
        self.int(a.tgid);
        self.long(a.process_start_ns);
        self.string(&a.exe);
        self.string(&a.comm);
        self.opt_string(a.container_id.as_deref());
        self.opt_string(a.pod_uid.as_deref());
        self.opt_string(a.namespace.as_deref());
        self.opt_string(a.team.as_deref());
    }

    fn step(&mut self, v: &StepView<'_>) {
        let s = v.step;
        let (tool_name, tool_call_id) = v.tool_fields();
        self.int(v.index);
        self.string(s.event_id());
        self.long(s.ts_start_ns);
        self.long(s.ts_end_ns);
        self.string(s.kind());
        self.string(s.protocol());
        self.int(s.tgid);
        self.string(s.comm());
        self.string(s.node());
        self.opt_string(s.destination());
        self.string(s.category());
        self.opt_string(s.method());
        self.opt_string(tool_name);
        self.opt_string(tool_call_id);
        self.string(s.summary());
        self.opt_string(s.model());
        self.long(s.input_tokens);
        self.long(s.output_tokens);
        self.double(s.cost_usd);
        self.opt_long(s.rows);
        self.long(s.bytes_out);
        self.long(s.bytes_in);
        self.array(s.pii_types().iter(), AvroWriter::string);
        self.array(s.injection_rules().iter(), AvroWriter::string);
        self.array(s.secret_types().iter(), AvroWriter::string);
        self.opt_string(s.statement());
        self.opt_long(s.top_k);
        self.opt_string(s.archive_format());
    }

    fn tool_execution(&mut self, t: &ToolExecutionView<'_>) {
        self.string(t.tool_call_id);
        self.string(t.tool_name);
        self.int(t.requested_at_step);
        self.array(t.executed_steps.iter(), |w, s| w.int(*s));
        self.opt_long(t.result_step.map(i64::from));
        self.boolean(t.approved);
    }

    fn pii_flow(&mut self, f: &PiiFlowView<'_>) {
        self.string(f.fingerprint);
        self.string(f.pii_type);
        self.int(f.from_step);
        self.int(f.to_step);
        self.opt_string(f.destination);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process_tree::ProcKey;
    use crate::step::{StepParts, StepRecord};
    use chainwatch_schemas::{ChainStep, ConnRole};

    /// The kept steps of these printed ones.
    fn records(steps: &[ChainStep]) -> Vec<StepRecord> {
        let proc = ProcKey { node: 0, tgid: 1, start_ns: 0 };
        steps
            .iter()
            .map(|step| {
                let parts = StepParts { step, proc, role: ConnRole::Client, tool_calls: &[], tool_result_ids: &[], full_prefix_hash: None, pii: &[] };
                StepRecord::from_parts(parts)
            })
            .collect()
    }

    #[test]
    fn zigzag_varints_match_the_avro_spec() {
        let enc = |v: i64| {
            let mut w = AvroWriter::new(MAX_VARINT);
            w.long(v);
            w.finish().expect("fits")
        };
        // examples from the Avro specification
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(-1), [0x01]);
        assert_eq!(enc(1), [0x02]);
        assert_eq!(enc(-2), [0x03]);
        assert_eq!(enc(2), [0x04]);
        assert_eq!(enc(63), [0x7e]);
        assert_eq!(enc(-64), [0x7f]);
        assert_eq!(enc(64), [0x80, 0x01]);
        assert_eq!(enc(i64::MIN).len(), 10);
        assert_eq!(enc(i64::MAX).len(), 10);
        assert_eq!(enc(i64::MAX), [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    }

    fn agent() -> AgentRef {
        AgentRef { node: "n1".into(), agent_key: "k".into(), team: Some("t".into()), ..AgentRef::default() }
    }

    fn step(id: &str, summary: &str) -> ChainStep {
        ChainStep {
            event_id: id.into(),
            ts_start_ns: i64::MAX,
            ts_end_ns: i64::MIN,
            summary: summary.into(),
            cost_usd: f64::NAN,
            rows: Some(-1),
            pii_types: vec!["email".into(); 300],
            statement: Some(summary.into()),
            ..ChainStep::default()
        }
    }

    /// A view of `steps`, step i attributed as `tools[i]` says (requesting step, call index;
    /// the call is named after them).
    fn view<'a>(agent: &'a AgentRef, steps: &'a [StepRecord], tools: &'a [Option<(usize, usize)>], names: &'a [String]) -> ChainView<'a> {
        let long: &'static str = "y";
        ChainView {
            chain_id: "c1",
            version: 7,
            status: ChainStatus::Closed,
            agent,
            start_ns: -5,
            end_ns: 1 << 62,
            steps: steps
                .iter()
                .zip(tools)
                .enumerate()
                .map(|(i, (step, tool))| StepView {
                    step,
                    index: i as i32,
                    tool: tool.map(|(r, c)| (names[r * 4 + c].as_str(), names[r * 4 + c].as_str())),
                    executed: tool.map(|(requested_at, call)| ExecutedFor { requested_at, call }),
                })
                .collect(),
            tool_calls: vec![ToolExecutionView {
                tool_call_id: "id",
                tool_name: "t",
                requested_at_step: 0,
                executed_steps: (0..300).collect(),
                result_step: None,
                approved: true,
            }],
            pii_flows: vec![PiiFlowView { fingerprint: long, pii_type: "email", from_step: 0, to_step: 2, destination: None }; 2],
            tools: vec!["t"],
            destinations: vec![],
            pii_types: vec!["email"],
            bytes_out: i64::MAX,
            bytes_in: 0,
            input_tokens: 1,
            output_tokens: -1,
            cost_usd: 1e300,
            max_tool_repeats: i32::MAX,
            autonomy: Autonomy::Supervised,
            risk_score: 0.5,
            risk_reasons: vec!["r".repeat(3_000)],
        }
    }

    fn names() -> Vec<String> {
        (0..64).map(|i| format!("tool_{i}")).collect()
    }

    /// A chain larger than the first buffer is written again into larger ones, and comes out
    /// the same as apache-avro's encoding of the record; so do its other versions and statuses.
    #[test]
    fn a_chain_larger_than_its_first_buffer_is_encoded_whole() {
        use chainwatch_schemas::AvroRecord;
        let (agent, names) = (agent(), names());
        let steps = vec![step("e1", &"x".repeat(3_000)); 3];
        let tools = [None, Some((0, 1)), Some((0, 1))];
        let steps = records(&steps);
        let view = view(&agent, &steps, &tools, &names);
        let want = view.to_chain().encode().expect("apache-avro encodes it");
        for size in [0, 1, 100, estimate(&view, 0), want.len(), 1 << 20] {
            let got = encode_sized(&view, None, size);
            assert!(got.bytes == want, "first buffer {size}: {} bytes, want {}", got.bytes.len(), want.len());
        }
        let got = encode_chain_split(&view);
        assert!(got.bytes == want, "{} bytes, want {}", got.bytes.len(), want.len());
        let closed_again = got.with_version(8, ChainStatus::Open);
        let mut record = view.to_chain();
        (record.version, record.status) = (8, ChainStatus::Open);
        assert!(closed_again == record.encode().expect("encode"), "with_version");
        // in place (same varint lengths) and copied (a version of another length)
        for version in [8, 63, 64, 1 << 40, -1] {
            let moved = got.clone().into_version(version, ChainStatus::Closed);
            (record.version, record.status) = (version, ChainStatus::Closed);
            assert!(moved == record.encode().expect("encode"), "into_version {version}");
        }
    }

    /// The next version copies the steps that neither moved nor changed attribution, and comes
    /// out as a fresh encoding would, whatever the previous one and however many steps are
    /// said not to have moved.
    #[test]
    fn a_later_version_reusing_steps_encodes_as_a_fresh_one() {
        let (agent, names) = (agent(), names());
        let old_steps: Vec<ChainStep> = (0..4).map(|i| step(&format!("e{i}"), &"s".repeat(i * 40))).collect();
        let old_tools = [None, Some((0, 0)), Some((0, 1)), None];
        let old_records = records(&old_steps);
        let old = encode_chain_split(&view(&agent, &old_records, &old_tools, &names));
        // appended steps; a step inserted at 2; step 1 attributed to another call
        let mut appended = old_steps.clone();
        appended.extend((4..7).map(|i| step(&format!("e{i}"), "new")));
        let mut inserted = old_steps.clone();
        inserted.insert(2, step("e9", "inserted"));
        let cases: Vec<(Vec<ChainStep>, Vec<Option<(usize, usize)>>, usize)> = vec![
            (appended.clone(), vec![None, Some((0, 0)), Some((0, 1)), None, Some((3, 2)), None, None], 4),
            (appended.clone(), vec![None, Some((0, 2)), Some((0, 1)), None, None, None, None], 4),
            (inserted.clone(), vec![None, Some((0, 0)), None, Some((0, 1)), None], 2),
            (old_steps[..2].to_vec(), vec![None, Some((0, 0))], 2),
        ];
        for (k, (steps, tools, unmoved)) in cases.iter().enumerate() {
            let steps = records(steps);
            let new = view(&agent, &steps, tools, &names);
            let fresh = encode_chain_split(&new);
            for u in 0..=*unmoved {
                let reused = encode_chain_reusing(&new, Some((&old, u)));
                assert!(reused == fresh, "case {k}, {u} unmoved steps: {} bytes, fresh {}", reused.bytes.len(), fresh.bytes.len());
            }
        }
        // how many are reused: up to the first change of attribution
        let appended = records(&appended);
        let new = view(&agent, &appended, &cases[1].1, &names);
        assert_eq!(old.reusable_steps(&new, 4), 1);
        let new = view(&agent, &appended, &cases[0].1, &names);
        assert_eq!(old.reusable_steps(&new, 4), 4);
        assert_eq!(old.reusable_steps(&new, 3), 3);
    }

    #[test]
    fn a_write_past_the_buffer_is_an_overflow_not_a_panic() {
        let mut w = AvroWriter::new(4);
        w.string("longer than four bytes");
        w.long(i64::MAX);
        assert_eq!(w.finish(), None);
    }
}
