//! Avro binary encoding of a `ChainView`, written by hand for the worker's hot path: the
//! `schemas/avro/chain.avsc` fields in order (zigzag varints, length-prefixed strings,
//! `["null", T]` unions as branch 0 or 1, arrays as one counted block then 0), behind the
//! single-object header of `Chain`. apache-avro's serde writer looks every field up by name
//! (a SipHash and a string compare per field) and grows its buffer as it goes; this writes
//! into one buffer sized up front, through a cursor (no length update and capacity check per
//! byte, as `Vec::push` does); a record larger than the estimate is written again into a
//! buffer twice the size. `tests/encoded_output.rs` checks the bytes equal
//! `Chain::encode` (apache-avro) on every version of the test scenarios, so a schema change
//! that this file does not follow fails there.

use chainwatch_schemas::codec::single_object_header;
use chainwatch_schemas::{AgentRef, Autonomy, Chain, ChainStatus};

use crate::chain_view::{ChainView, PiiFlowView, StepView, ToolExecutionView};

/// The single-object encoding of `chain`, as `Chain::encode` gives it.
pub fn encode_chain(chain: &ChainView<'_>) -> Vec<u8> {
    encode_chain_split(chain).bytes
}

/// An encoded version with where its `version` and `status` fields are, so the next version
/// of an unchanged chain (its closing) is these bytes with those two fields rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitEncoding {
    pub bytes: Vec<u8>,
    /// End of the header and `chain_id`: `version` starts here.
    pub version_at: usize,
    /// End of `status`: the rest of the record starts here.
    pub rest_at: usize,
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

    /// Heap bytes held.
    pub fn approx_bytes(&self) -> usize {
        self.bytes.capacity()
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
    encode_sized(chain, estimate(chain))
}

/// `encode_chain_split` into a buffer of `size` bytes, then of twice that until it fits.
fn encode_sized(chain: &ChainView<'_>, mut size: usize) -> SplitEncoding {
    size = size.max(1);
    loop {
        let mut w = AvroWriter::new(size);
        let (version_at, rest_at) = write_chain(&mut w, chain);
        match w.finish() {
            Some(bytes) => return SplitEncoding { bytes, version_at, rest_at },
            None => size = size.saturating_mul(2),
        }
    }
}

/// The record into `w`; returns where `version` starts and where the rest after `status`
/// starts.
fn write_chain(w: &mut AvroWriter, chain: &ChainView<'_>) -> (usize, usize) {
    w.put(&single_object_header::<Chain>());
    w.string(chain.chain_id);
    let version_at = w.pos;
    w.long(chain.version);
    w.long(status_index(chain.status));
    let rest_at = w.pos;
    w.agent(chain.agent);
    w.long(chain.start_ns);
    w.long(chain.end_ns);
    w.array(&chain.steps, AvroWriter::step);
    w.array(&chain.tool_calls, AvroWriter::tool_execution);
    w.array(&chain.pii_flows, AvroWriter::pii_flow);
    w.array(&chain.tools, |w, s| w.string(s));
    w.array(&chain.destinations, |w, s| w.string(s));
    w.array(&chain.pii_types, |w, s| w.string(s));
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
    w.array(&chain.risk_reasons, |w, s| w.string(s));
    (version_at, rest_at)
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

/// Bytes the encoding will about take, so the buffer is allocated once.
fn estimate(c: &ChainView<'_>) -> usize {
    let step = |s: &StepView<'_>| {
        let st = s.step;
        96 + st.event_id.len()
            + st.kind.len()
            + st.protocol.len()
            + st.comm.len()
            + st.node.len()
            + st.category.len()
            + st.summary.len()
            + st.destination.as_ref().map_or(0, String::len)
            + st.method.as_ref().map_or(0, String::len)
            + st.model.as_ref().map_or(0, String::len)
            + st.statement.as_ref().map_or(0, String::len)
            + s.tool.map_or(0, |(n, i)| n.len() + i.len())
            + st.pii_types.iter().chain(&st.injection_rules).chain(&st.secret_types).map(|t| t.len() + 2).sum::<usize>()
    };
    let flow = |f: &PiiFlowView<'_>| 24 + f.fingerprint.len() + f.pii_type.len() + f.destination.map_or(0, str::len);
    let tool = |t: &ToolExecutionView<'_>| 24 + t.tool_call_id.len() + t.tool_name.len() + 5 * t.executed_steps.len();
    let strings = |v: &[&str]| v.iter().map(|s| s.len() + 2).sum::<usize>();
    160 + c.chain_id.len()
        + c.agent.agent_key.len()
        + c.agent.exe.len()
        + c.agent.node.len()
        + c.steps.iter().map(step).sum::<usize>()
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
    fn array<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        if !items.is_empty() {
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
        self.string(&s.event_id);
        self.long(s.ts_start_ns);
        self.long(s.ts_end_ns);
        self.string(&s.kind);
        self.string(&s.protocol);
        self.int(s.tgid);
        self.string(&s.comm);
        self.string(&s.node);
        self.opt_string(s.destination.as_deref());
        self.string(&s.category);
        self.opt_string(s.method.as_deref());
        self.opt_string(tool_name);
        self.opt_string(tool_call_id);
        self.string(&s.summary);
        self.opt_string(s.model.as_deref());
        self.long(s.input_tokens);
        self.long(s.output_tokens);
        self.double(s.cost_usd);
        self.opt_long(s.rows);
        self.long(s.bytes_out);
        self.long(s.bytes_in);
        self.array(&s.pii_types, |w, t| w.string(t));
        self.array(&s.injection_rules, |w, t| w.string(t));
        self.array(&s.secret_types, |w, t| w.string(t));
        self.opt_string(s.statement.as_deref());
        self.opt_long(s.top_k);
        self.opt_string(s.archive_format.as_deref());
    }

    fn tool_execution(&mut self, t: &ToolExecutionView<'_>) {
        self.string(t.tool_call_id);
        self.string(t.tool_name);
        self.int(t.requested_at_step);
        self.array(&t.executed_steps, |w, s| w.int(*s));
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

    /// A chain larger than the first buffer is written again into larger ones, and comes out
    /// the same as apache-avro's encoding of the record.
    #[test]
    fn a_chain_larger_than_its_estimate_is_encoded_whole() {
        use crate::chain_view::{PiiFlowView, StepView, ToolExecutionView};
        use chainwatch_schemas::{AgentRef, AvroRecord, ChainStep};
        let long = "x".repeat(3_000);
        let agent = AgentRef { node: "n1".into(), agent_key: "k".into(), team: Some("t".into()), ..AgentRef::default() };
        let step = ChainStep {
            event_id: "e1".into(),
            ts_start_ns: i64::MAX,
            ts_end_ns: i64::MIN,
            summary: long.clone(),
            cost_usd: f64::NAN,
            rows: Some(-1),
            pii_types: vec!["email".into(); 300],
            statement: Some(long.clone()),
            ..ChainStep::default()
        };
        let view = ChainView {
            chain_id: "c1",
            version: 7,
            status: ChainStatus::Closed,
            agent: &agent,
            start_ns: -5,
            end_ns: 1 << 62,
            steps: vec![StepView { step: &step, index: 0, tool: Some(("t", "id")) }; 3],
            tool_calls: vec![ToolExecutionView { tool_call_id: "id", tool_name: "t", requested_at_step: 0, executed_steps: (0..300).collect(), result_step: None, approved: true }],
            pii_flows: vec![PiiFlowView { fingerprint: &long, pii_type: "email", from_step: 0, to_step: 2, destination: None }; 2],
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
            risk_reasons: vec![long.clone()],
        };
        let want = view.to_chain().encode().expect("apache-avro encodes it");
        for size in [0, 1, 100, estimate(&view), want.len(), 1 << 20] {
            let got = encode_sized(&view, size);
            assert!(got.bytes == want, "first buffer {size}: {} bytes, want {}", got.bytes.len(), want.len());
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
    }

    #[test]
    fn a_write_past_the_buffer_is_an_overflow_not_a_panic() {
        let mut w = AvroWriter::new(4);
        w.string("longer than four bytes");
        w.long(i64::MAX);
        assert_eq!(w.finish(), None);
    }
}
