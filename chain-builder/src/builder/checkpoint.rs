//! A checkpoint of a `ChainBuilder`'s state, so a restarted chain worker goes on with the same
//! process tree, agents and open chains instead of starting empty (which would split a
//! still-open chain in two and lose the agent of a long-running agent's children).
//!
//! Format: `CWCB`, the format version (u32, little endian), then the state in CBOR, gzip
//! compressed. CBOR rather than JSON: the state has maps keyed by structs (process keys), floats
//! that must come back bit for bit, and possibly NaN. A checkpoint of another version is
//! refused (`CheckpointError::Version`); bump `CHECKPOINT_VERSION` whenever a stored type
//! changes shape.
//!
//! What is stored: everything the builder learned from its input (node names, the process tree,
//! agents, chains and their slab, deadlines, held and dirty chains, unpublished output, the
//! watermark, the stitching indexes, the cost ledger, the events waiting for their process, and
//! the cross-member stitching state: served requests still to offer, this member's fragments
//! waiting for a claim, other members' fragments waiting for their client, records to publish).
//! What is not: the configuration (idle gap, lateness, caps, prices, team label, member name and
//! whether cross-member stitching is on come from the
//! builder the state is restored into) and the counters (`BuilderStats` count this process's
//! work). The process-tree and tuple-index caps and the watermark's lateness are part of their
//! stored structures and keep the values they were checkpointed with.
//!
//! Both directions destructure `ChainBuilder` exhaustively: a new field in the builder does not
//! compile here until it is either stored or named as configuration.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{BufReader, BufWriter, Read};

use chainwatch_config::ChainConfig;
use chainwatch_schemas::{Chain, SemanticEvent, StitchRecord};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use super::{AgentState, BuilderStats, ChainBuilder, Slot};
use crate::chain_state::ChainHandle;
use crate::chain_view::EncodedChain;
use crate::cost::CostLedger;
use crate::hashing::FastMap;
use crate::process_tree::{NodeNames, ProcKey, ProcessTree};
use crate::remote_stitch::{Exported, RemoteFragment};
use crate::stitching::{ClientSide, ServerSide, TupleIndex, TupleKey};
use crate::watermark::Watermark;

/// The state format this build writes and reads.
pub const CHECKPOINT_VERSION: u32 = 3;
const MAGIC: &[u8; 4] = b"CWCB";
/// Decompressed state accepted at most: a corrupt or hostile file stops here.
const MAX_STATE_BYTES: u64 = 8 << 30;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a chain-builder checkpoint (no CWCB header)")]
    NotACheckpoint,
    #[error("checkpoint format version {found}, this build reads version {expected}")]
    Version { found: u32, expected: u32 },
    #[error("encoding the checkpoint: {0}")]
    Encode(String),
    #[error("decoding the checkpoint: {0}")]
    Decode(String),
}

type Deadlines = BinaryHeap<Reverse<(i64, u32, u32, u8)>>;

/// The stored state, borrowed for writing.
#[derive(Serialize)]
struct StateRef<'a> {
    nodes: &'a NodeNames,
    tree: &'a ProcessTree,
    agents: &'a FastMap<ProcKey, AgentState>,
    slab: &'a [Slot],
    free: &'a [u32],
    open_chains: usize,
    closed_chains: usize,
    deadlines: &'a Deadlines,
    closed_order: &'a VecDeque<ChainHandle>,
    held: &'a [ChainHandle],
    dirty: &'a [ChainHandle],
    out: &'a [Chain],
    watermark: &'a Watermark,
    clients: &'a TupleIndex<ClientSide>,
    servers: &'a TupleIndex<ServerSide>,
    ledger: &'a CostLedger,
    last_sweep_ns: i64,
    waiting: &'a FastMap<ProcKey, Vec<SemanticEvent>>,
    waiting_events: usize,
    waiting_due_ns: i64,
    nodes_with_processes: &'a [bool],
    served_pending: &'a VecDeque<(i64, TupleKey)>,
    exported: &'a TupleIndex<Exported>,
    remote_fragments: &'a TupleIndex<RemoteFragment>,
    stitch_out: &'a [StitchRecord],
    out_encoded: &'a [EncodedChain],
}

/// The stored state, owned for reading (same fields, same order as `StateRef`).
#[derive(Deserialize)]
struct State {
    nodes: NodeNames,
    tree: ProcessTree,
    agents: FastMap<ProcKey, AgentState>,
    slab: Vec<Slot>,
    free: Vec<u32>,
    open_chains: usize,
    closed_chains: usize,
    deadlines: Deadlines,
    closed_order: VecDeque<ChainHandle>,
    held: Vec<ChainHandle>,
    dirty: Vec<ChainHandle>,
    out: Vec<Chain>,
    watermark: Watermark,
    clients: TupleIndex<ClientSide>,
    servers: TupleIndex<ServerSide>,
    ledger: CostLedger,
    last_sweep_ns: i64,
    waiting: FastMap<ProcKey, Vec<SemanticEvent>>,
    waiting_events: usize,
    waiting_due_ns: i64,
    nodes_with_processes: Vec<bool>,
    served_pending: VecDeque<(i64, TupleKey)>,
    exported: TupleIndex<Exported>,
    remote_fragments: TupleIndex<RemoteFragment>,
    stitch_out: Vec<StitchRecord>,
    #[serde(default)]
    out_encoded: Vec<EncodedChain>,
}

impl ChainBuilder {
    /// The builder's state as checkpoint bytes (see the module doc for the format).
    pub fn checkpoint(&self) -> Result<Vec<u8>, CheckpointError> {
        #[rustfmt::skip]
        let ChainBuilder {
            // configuration: comes from the builder restored into
            idle_gap_ns: _, lateness_ns: _, max_steps: _, max_depth: _, max_open_chains: _, team_label: _,
            prices: _, process_wait_ns: _, member: _, remote_stitching: _, encoded_output: _, memo: _,
            // this process's counters
            stats: _,
            nodes, tree, agents, slab, free, open_chains, closed_chains, deadlines, closed_order, held, dirty,
            out, watermark, clients, servers, ledger, last_sweep_ns, waiting, waiting_events, waiting_due_ns,
            nodes_with_processes, served_pending, exported, remote_fragments, stitch_out, out_encoded,
        } = self;
        let state = StateRef {
            nodes,
            tree,
            agents,
            slab,
            free,
            open_chains: *open_chains,
            closed_chains: *closed_chains,
            deadlines,
            closed_order,
            held,
            dirty,
            out,
            watermark,
            clients,
            servers,
            ledger,
            last_sweep_ns: *last_sweep_ns,
            waiting,
            waiting_events: *waiting_events,
            waiting_due_ns: *waiting_due_ns,
            nodes_with_processes,
            served_pending,
            exported,
            remote_fragments,
            stitch_out,
            out_encoded,
        };
        let mut bytes = Vec::with_capacity(64 * 1024);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
        let mut gz = BufWriter::with_capacity(64 * 1024, GzEncoder::new(bytes, Compression::fast()));
        ciborium::into_writer(&state, &mut gz).map_err(|e| CheckpointError::Encode(e.to_string()))?;
        let gz = gz.into_inner().map_err(|e| CheckpointError::Encode(e.error().to_string()))?;
        gz.finish().map_err(|e| CheckpointError::Encode(e.to_string()))
    }

    /// A builder configured by `cfg` with the state of `bytes`.
    pub fn restore(cfg: &ChainConfig, bytes: &[u8]) -> Result<Self, CheckpointError> {
        let mut builder = ChainBuilder::new(cfg);
        builder.restore_state(bytes)?;
        Ok(builder)
    }

    /// Replace this builder's state with the checkpoint's, keeping its configuration and
    /// counters. On an error the builder is left as it was.
    pub fn restore_state(&mut self, bytes: &[u8]) -> Result<(), CheckpointError> {
        let state = decode(bytes)?;
        let stats: BuilderStats = self.stats;
        #[rustfmt::skip]
        let restored = ChainBuilder {
            idle_gap_ns: self.idle_gap_ns, lateness_ns: self.lateness_ns, max_steps: self.max_steps,
            max_depth: self.max_depth, max_open_chains: self.max_open_chains,
            team_label: std::mem::take(&mut self.team_label), prices: std::mem::take(&mut self.prices),
            process_wait_ns: self.process_wait_ns,
            member: std::mem::take(&mut self.member), remote_stitching: self.remote_stitching,
            encoded_output: self.encoded_output, memo: std::mem::take(&mut self.memo),
            stats,
            nodes: state.nodes, tree: state.tree, agents: state.agents, slab: state.slab, free: state.free,
            open_chains: state.open_chains, closed_chains: state.closed_chains, deadlines: state.deadlines,
            closed_order: state.closed_order, held: state.held, dirty: state.dirty, out: state.out,
            watermark: state.watermark, clients: state.clients, servers: state.servers, ledger: state.ledger,
            last_sweep_ns: state.last_sweep_ns, waiting: state.waiting, waiting_events: state.waiting_events,
            waiting_due_ns: state.waiting_due_ns, nodes_with_processes: state.nodes_with_processes,
            served_pending: state.served_pending, exported: state.exported, remote_fragments: state.remote_fragments,
            stitch_out: state.stitch_out, out_encoded: state.out_encoded,
        };
        *self = restored;
        Ok(())
    }
}

fn decode(bytes: &[u8]) -> Result<State, CheckpointError> {
    let (magic, rest) = bytes.split_at_checked(MAGIC.len()).ok_or(CheckpointError::NotACheckpoint)?;
    if magic != MAGIC {
        return Err(CheckpointError::NotACheckpoint);
    }
    let (version, body) = rest.split_first_chunk::<4>().ok_or(CheckpointError::NotACheckpoint)?;
    let found = u32::from_le_bytes(*version);
    if found != CHECKPOINT_VERSION {
        return Err(CheckpointError::Version { found, expected: CHECKPOINT_VERSION });
    }
    let reader = BufReader::with_capacity(64 * 1024, GzDecoder::new(body).take(MAX_STATE_BYTES));
    let state: State = ciborium::from_reader(reader).map_err(|e| CheckpointError::Decode(e.to_string()))?;
    check(&state)?;
    Ok(state)
}

/// The invariants the builder indexes by without checking: a corrupt file that decodes is
/// refused rather than trusted.
fn check(s: &State) -> Result<(), CheckpointError> {
    let bad = |what: &str| Err(CheckpointError::Decode(format!("inconsistent state: {what}")));
    let slots = s.slab.len();
    if s.free.iter().any(|f| *f as usize >= slots) {
        return bad("free slot out of the slab");
    }
    let live = s.slab.iter().filter(|slot| slot.chain.is_some()).count();
    if s.open_chains + s.closed_chains != live {
        return bad("open + closed chains differ from the chains in the slab");
    }
    let queued: usize = s.waiting.values().map(Vec::len).sum();
    if queued != s.waiting_events {
        return bad("waiting event count");
    }
    Ok(())
}
