//! `ChainBuilder`: semantic and process events in, chains out. It owns the process tree, the
//! agents, the open chains and the watermark, and decides for every event which chain it joins:
//!
//! - the agent: the event's process's agent root (see `process_tree`);
//! - a served request (SERVER role): if an observed client sent it (same tuple, any node),
//!   the service's actions while handling it join the client's chain (`stitching`); else it is
//!   a user request: it approves pending tool calls, or starts a new task (a new chain that
//!   takes the agent's steps from the request's start on);
//! - an LLM call joins the chain whose conversation it extends (a prefix hash or a tool
//!   result id), a fresh conversation starts a new chain;
//! - anything else joins the agent's current chain unless the idle gap has passed.
//!
//! Across members of the chain-builder group (the client's node and the service's node owned by
//! different members), a served request no local client claimed is offered to the other
//! members as a fragment once its hold ends, and its chain is held one lateness more waiting for
//! a claim (`remote_stitch`, `push_stitch`, `take_stitch_records`; off unless the worker turns
//! it on, so one member alone, offline or embedded, works as before).
//!
//! Chains are bounded (max open chains: the least recently active is closed early; max steps:
//! a full chain closes and a new one continues), and every cap hit is counted in `BuilderStats`.
//! Upserts are collected per changed chain and handed out by `take_updates` (or `push_event`),
//! closings by `advance_watermark` / `finish` (and by `take_updates`, for chains a cap closed).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use chainwatch_config::ChainConfig;
use chainwatch_schemas::{AgentRef, Chain, ChainStatus, ConnRole, ProcessEvent, SemanticEvent, SocketTuple, StitchKind, StitchRecord};

use crate::agent::agent_ref;
use crate::attribution::AttributionMemo;
use crate::chain_state::{ChainHandle, ChainState, TAG_EVENT, TAG_PREFIX, TAG_TOOL, fnv64};
use crate::chain_avro::encode_chain_reusing;
use crate::chain_view::EncodedChain;
use crate::cost::{CostLedger, PriceTable};
use crate::hashing::FastMap;
use crate::pii_flow::FlowStats;
use crate::process_tree::{NodeId, NodeNames, ProcKey, ProcessTree, ProcessTreeStats};
use crate::step::{KIND_LLM, StepRecord, take_step};
use crate::hashing::FastSet;
use crate::remote_stitch::{Exported, MAX_FRAGMENT_STEPS, MAX_WAITING_FRAGMENTS, RemoteFragment, from_wire, to_wire};
use crate::stitching::{ClientSide, HandlingWindow, ServerSide, TupleIndex, TupleKey, is_loopback_tuple};
use crate::watermark::Watermark;

// The checkpoint (a child module: it reads the private state without widening it).
mod checkpoint;
pub use checkpoint::CheckpointError;

const NS_PER_SEC: i64 = 1_000_000_000;
/// The time an event counts at: its end (or start, if later).
fn event_time(ev: &SemanticEvent) -> i64 {
    ev.ts_end_ns.max(ev.ts_start_ns)
}

/// How long (event time) an event of a not yet described process waits for the process's
/// fork/exec/seed record (at most the allowed lateness). Process and semantic events come on two
/// topics, and a consumer's order across topics is not guaranteed: without the wait, a `curl`
/// whose upload is read before its fork would become an agent of its own.
const PROCESS_WAIT_NS: i64 = NS_PER_SEC;
/// Events waiting for their process, at most (past it they join at once, counted).
pub const MAX_WAITING_EVENTS: usize = 65_536;
/// Processes remembered per builder (live ones; exited ones leave after a grace period).
pub const MAX_PROCESSES: usize = 262_144;
/// A process with no exit seen and no event for this long (or 10 idle gaps) is forgotten.
const PROCESS_SILENCE_NS: i64 = 3_600 * NS_PER_SEC;
/// Handling windows remembered per service agent.
const MAX_WINDOWS_PER_AGENT: usize = 256;

/// Counters of one builder. Every cap hit and every dropped input is here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuilderStats {
    pub semantic_events: u64,
    pub process_events: u64,
    pub duplicate_events: u64,
    /// Behind the watermark for a chain already forgotten: not a second chain, dropped.
    pub late_dropped: u64,
    pub chains_opened: u64,
    pub chains_closed: u64,
    pub chains_reopened: u64,
    /// Open chains closed early because `max_open_chains` was reached.
    pub evicted_open_chains: u64,
    /// Closed chains forgotten before their lateness passed (retention cap or open cap).
    pub forgotten_early: u64,
    /// Chains closed because they reached `max_steps` (a new chain continues).
    pub split_max_steps: u64,
    pub user_requests: u64,
    pub approvals: u64,
    pub stitched_requests: u64,
    pub stitched_steps: u64,
    /// Stitches refused by `max_depth`.
    pub depth_limited: u64,
    /// Chains whose every step moved to another chain (a stitched request).
    pub chains_emptied: u64,
    pub fingerprints_dropped: u64,
    /// Chains closed with their PII flows cut by the caps (`pii_flow::MAX_TRACKED_FINGERPRINTS`,
    /// `pii_flow::MAX_FLOWS`).
    pub pii_flows_cut: u64,
    pub tuple_index_evicted: u64,
    pub window_evicted: u64,
    pub published: u64,
    /// Events that are not actions of the agent (database session setup and teardown,
    /// transaction control): counted, not steps.
    pub bookkeeping_events: u64,
    /// Events of a process the tree had no fork/exec/seed for yet, held until it came.
    pub waited_for_process: u64,
    /// Of those, released after the wait without their process (joined as their own agent's).
    pub process_never_seen: u64,
    /// Events not held because MAX_WAITING_EVENTS were already waiting.
    pub wait_cap_hits: u64,
    /// Chains opened for a process not yet known as an agent (held as a possible service's),
    /// published at once when its first LLM call came.
    pub agent_holds_released: u64,
    /// Cross-member stitching: fragments this member published (served requests no local
    /// client claimed), and steps cut from them by MAX_FRAGMENT_STEPS.
    pub remote_fragments_published: u64,
    pub remote_fragment_steps_cut: u64,
    /// Fragments of other members received; of those, joined into a local client's chain (a
    /// claim sent back; also counted in `stitched_requests`).
    pub remote_fragments_received: u64,
    pub remote_stitched_requests: u64,
    /// Fragments that arrived behind the watermark, that waited for their client exchange
    /// until they expired, or that the waiting cap pushed out.
    pub remote_fragments_late: u64,
    pub remote_fragments_expired: u64,
    pub remote_fragments_evicted: u64,
    /// Claims of this member's fragments (the service's chain dropped), and claims for a
    /// fragment no longer waiting (its service chain was published meanwhile: counted).
    pub remote_claims_received: u64,
    pub remote_claims_unmatched: u64,
    /// This member's fragments nobody claimed in time (their service chain was published).
    pub remote_exports_unclaimed: u64,
    /// Served requests not offered to other members because too many were pending.
    pub remote_pending_evicted: u64,
}

/// Statements that only frame a transaction or a session; the work is in the statements
/// between them.
const BOOKKEEPING_SQL: &[&str] = &[
    "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET", "RESET", "SHOW",
    "DISCARD", "DEALLOCATE", "LISTEN", "UNLISTEN",
];

/// A database session's startup, SSL negotiation, cancel and terminate, and transaction
/// control statements: not steps of a chain.
fn is_bookkeeping(ev: &SemanticEvent) -> bool {
    match ev.kind.as_str() {
        "db_session" => true,
        "sql" if ev.vector.is_none() => {
            let statement = ev.sql.as_ref().map_or("", |s| s.statement.as_str());
            let is_framing = |word: &str| BOOKKEEPING_SQL.iter().any(|b| b.eq_ignore_ascii_case(word));
            match statement.split_whitespace().next() {
                Some(word) => is_framing(word.trim_end_matches(';')),
                None => ev.method.as_deref().is_some_and(is_framing),
            }
        }
        _ => false,
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct AgentState {
    agent: AgentRef,
    /// Open and recently closed chains, oldest first.
    chains: Vec<ChainHandle>,
    current: Option<ChainHandle>,
    windows: Vec<HandlingWindow>,
    last_seen_ns: i64,
    /// End + idle gap of the newest chain already forgotten: later-arriving events before it
    /// are too late to join anything.
    forgotten_until: i64,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Slot {
    generation: u32,
    agent: Option<ProcKey>,
    chain: Option<ChainState>,
}

const DEADLINE_CLOSE: u8 = 0;
const DEADLINE_FORGET: u8 = 1;

/// Joins events into chains. Single-threaded; one per consumer-group member.
pub struct ChainBuilder {
    idle_gap_ns: i64,
    lateness_ns: i64,
    max_steps: usize,
    max_depth: u16,
    max_open_chains: usize,
    team_label: String,
    prices: PriceTable,
    nodes: NodeNames,
    tree: ProcessTree,
    agents: FastMap<ProcKey, AgentState>,
    slab: Vec<Slot>,
    free: Vec<u32>,
    open_chains: usize,
    closed_chains: usize,
    deadlines: BinaryHeap<Reverse<(i64, u32, u32, u8)>>,
    closed_order: VecDeque<ChainHandle>,
    held: Vec<ChainHandle>,
    dirty: Vec<ChainHandle>,
    out: Vec<Chain>,
    watermark: Watermark,
    clients: TupleIndex<ClientSide>,
    servers: TupleIndex<ServerSide>,
    ledger: CostLedger,
    stats: BuilderStats,
    last_sweep_ns: i64,
    /// Events waiting for their process's record, by process (in arrival order).
    waiting: FastMap<ProcKey, Vec<SemanticEvent>>,
    waiting_events: usize,
    /// The earliest end of a wait (first waiting event's time + the wait), `i64::MAX` when none:
    /// most events find nothing due and skip the scan of `waiting`.
    waiting_due_ns: i64,
    process_wait_ns: i64,
    /// Nodes that sent process records: only there is an undescribed process worth waiting for
    /// (a pcap replay has none).
    nodes_with_processes: Vec<bool>,
    /// Cross-member stitching (`remote_stitch`): this member's name, and whether other members
    /// share the input (set by the worker; both configuration, not state).
    member: String,
    remote_stitching: bool,
    /// Versions go out Avro-encoded straight from the state (`out_encoded`), not as `Chain`s.
    encoded_output: bool,
    out_encoded: Vec<EncodedChain>,
    /// Tool-name facts for attribution, kept across versions (a cache: not checkpointed).
    memo: AttributionMemo,
    /// Served requests to offer as fragments once their hold ends: (hold end, tuple), in order.
    served_pending: VecDeque<(i64, TupleKey)>,
    /// This member's fragments waiting for a claim, and other members' fragments waiting for
    /// their client exchange.
    exported: TupleIndex<Exported>,
    remote_fragments: TupleIndex<RemoteFragment>,
    /// Fragments and claims to publish (`take_stitch_records`).
    stitch_out: Vec<StitchRecord>,
}

impl ChainBuilder {
    pub fn new(cfg: &ChainConfig) -> Self {
        let max_open_chains = cfg.max_open_chains.max(1);
        ChainBuilder {
            idle_gap_ns: i64::try_from(cfg.idle_gap_secs).unwrap_or(i64::MAX / NS_PER_SEC).max(1).saturating_mul(NS_PER_SEC),
            lateness_ns: i64::try_from(cfg.allowed_lateness_secs).unwrap_or(0).saturating_mul(NS_PER_SEC),
            max_steps: cfg.max_steps.max(1),
            max_depth: u16::try_from(cfg.max_depth).unwrap_or(u16::MAX),
            max_open_chains,
            team_label: cfg.team_label.clone(),
            prices: PriceTable::new(&cfg.prices),
            nodes: NodeNames::default(),
            tree: ProcessTree::new(MAX_PROCESSES, cfg.max_depth.max(1)),
            agents: FastMap::default(),
            slab: Vec::new(),
            free: Vec::new(),
            open_chains: 0,
            closed_chains: 0,
            deadlines: BinaryHeap::new(),
            closed_order: VecDeque::new(),
            held: Vec::new(),
            dirty: Vec::new(),
            out: Vec::new(),
            watermark: Watermark::new(i64::try_from(cfg.allowed_lateness_secs).unwrap_or(0).saturating_mul(NS_PER_SEC)),
            clients: TupleIndex::new(max_open_chains.saturating_mul(4)),
            servers: TupleIndex::new(max_open_chains.saturating_mul(4)),
            ledger: CostLedger::default(),
            stats: BuilderStats::default(),
            last_sweep_ns: i64::MIN,
            waiting: FastMap::default(),
            waiting_events: 0,
            waiting_due_ns: i64::MAX,
            nodes_with_processes: Vec::new(),
            process_wait_ns: PROCESS_WAIT_NS.min(i64::try_from(cfg.allowed_lateness_secs).unwrap_or(0).saturating_mul(NS_PER_SEC)),
            member: String::new(),
            remote_stitching: false,
            encoded_output: false,
            out_encoded: Vec::new(),
            memo: AttributionMemo::default(),
            served_pending: VecDeque::new(),
            exported: TupleIndex::new(max_open_chains.saturating_mul(4)),
            remote_fragments: TupleIndex::new(max_open_chains.saturating_mul(4).min(MAX_WAITING_FRAGMENTS)),
            stitch_out: Vec::new(),
        }
    }

    pub fn stats(&self) -> BuilderStats {
        BuilderStats {
            tuple_index_evicted: self.clients.evicted_cap + self.servers.evicted_cap,
            remote_fragments_expired: self.remote_fragments.expired,
            remote_fragments_evicted: self.remote_fragments.evicted_cap,
            remote_exports_unclaimed: self.exported.expired + self.exported.evicted_cap,
            ..self.stats
        }
    }

    /// Name this builder as member `member` of its group (the origin of its stitch records).
    pub fn set_member(&mut self, member: &str) {
        self.member = member.to_string();
    }

    /// Turn cross-member stitching on (other members share the input) or off (this member
    /// owns all of it). Needs a member name.
    pub fn set_remote_stitching(&mut self, on: bool) {
        self.remote_stitching = on;
    }

    pub fn remote_stitching(&self) -> bool {
        self.remote_stitching && !self.member.is_empty()
    }

    /// The fragments and claims to publish on the stitch topic since the last call.
    pub fn take_stitch_records(&mut self) -> Vec<StitchRecord> {
        std::mem::take(&mut self.stitch_out)
    }

    /// Fragments and claims waiting (this member's fragments unclaimed, others' unmatched).
    pub fn stitch_waiting(&self) -> (usize, usize) {
        (self.exported.len(), self.remote_fragments.len())
    }

    /// A record of another member from the stitch topic (this member's own are ignored, and
    /// so is everything while cross-member stitching is off).
    pub fn push_stitch(&mut self, rec: StitchRecord) {
        if !self.remote_stitching() || rec.origin_member == self.member {
            return;
        }
        let key = TupleKey::from_wire(rec.tuple_key);
        match rec.kind {
            StitchKind::Fragment => {
                self.stats.remote_fragments_received += 1;
                let mut steps = Vec::with_capacity(rec.steps.len().min(MAX_FRAGMENT_STEPS));
                for w in rec.steps.into_iter().take(MAX_FRAGMENT_STEPS) {
                    let node = self.nodes.intern(&w.step.node);
                    let step = Box::new(from_wire(w, node));
                    self.stats.fingerprints_dropped += step.fingerprints_dropped;
                    steps.push(step);
                }
                let frag = RemoteFragment { origin_member: rec.origin_member, fragment_id: rec.fragment_id, steps };
                if let Some(client) = self.clients.take(&key)
                    && self.chain(client.chain).is_some()
                {
                    self.merge_fragment(key, client, frag);
                    return;
                }
                let until = rec.end_ns.saturating_add(self.lateness_ns);
                if until < self.watermark.current().saturating_sub(self.lateness_ns) {
                    self.stats.remote_fragments_late += 1;
                    return;
                }
                self.remote_fragments.insert(key, until, frag);
            }
            // Matched by tuple and fragment id rather than by member name alone: a member
            // restarted under a new name still takes the claims of its restored fragments.
            StitchKind::Claim => match self.exported.take(&key) {
                Some(e) if e.served_hash == fnv64(TAG_EVENT, &rec.fragment_id) => {
                    self.stats.remote_claims_received += 1;
                    self.drop_claimed(&e);
                }
                Some(_) => self.stats.remote_claims_unmatched += 1,
                None if rec.fragment_member == self.member => self.stats.remote_claims_unmatched += 1,
                None => {}
            },
        }
    }

    pub fn process_stats(&self) -> ProcessTreeStats {
        self.tree.stats()
    }

    /// Cost and tokens per agent and per team so far.
    pub fn ledger(&self) -> &CostLedger {
        &self.ledger
    }

    pub fn open_chains(&self) -> usize {
        self.open_chains
    }

    /// Closed chains still kept for late events.
    pub fn retained_closed_chains(&self) -> usize {
        self.closed_chains
    }

    pub fn watermark(&self) -> i64 {
        self.watermark.current()
    }

    /// The newest event time seen (`i64::MIN` before any).
    pub fn max_event_ns(&self) -> i64 {
        self.watermark.max_event_ns()
    }

    /// Estimated bytes held by the chains (open and retained), their steps and indexes.
    pub fn chain_bytes(&self) -> usize {
        self.slab.iter().filter_map(|s| s.chain.as_ref()).map(ChainState::approx_bytes).sum::<usize>()
            + self.slab.capacity() * size_of::<Slot>()
    }

    /// One event, then the upserts of the chains it changed.
    pub fn push_event(&mut self, ev: SemanticEvent) -> Vec<Chain> {
        self.ingest_event(ev);
        self.take_updates()
    }

    /// One process event (fork/exec/exit/seed).
    pub fn push_process(&mut self, ev: &ProcessEvent) {
        self.stats.process_events += 1;
        let node = self.nodes.intern(&ev.node);
        self.tree.apply(node, ev);
        self.watermark.observe(ev.ts_ns);
        if self.nodes_with_processes.len() <= node as usize {
            self.nodes_with_processes.resize(node as usize + 1, false);
        }
        self.nodes_with_processes[node as usize] = true;
        let key = ProcKey { node, tgid: ev.tgid, start_ns: ev.process_start_ns };
        if let Some(events) = self.waiting.remove(&key) {
            self.waiting_events -= events.len();
            self.recompute_waiting_due();
            for mut e in events {
                self.join_event(&mut e);
            }
        }
    }

    fn recompute_waiting_due(&mut self) {
        self.waiting_due_ns = self
            .waiting
            .values()
            .filter_map(|evs| evs.first())
            .map(|e| event_time(e).saturating_add(self.process_wait_ns))
            .min()
            .unwrap_or(i64::MAX);
    }

    /// Events waiting for their process's record.
    pub fn waiting_events(&self) -> usize {
        self.waiting_events
    }

    /// Join the waiting events whose wait ended by `now_ns` (event time), oldest process first.
    fn release_waiting(&mut self, now_ns: i64) {
        if self.waiting.is_empty() || now_ns < self.waiting_due_ns {
            return;
        }
        let mut due: Vec<(i64, ProcKey)> = self
            .waiting
            .iter()
            .filter_map(|(k, evs)| {
                let first = evs.first().map_or(i64::MIN, event_time);
                (first.saturating_add(self.process_wait_ns) <= now_ns).then_some((first, *k))
            })
            .collect();
        due.sort_unstable();
        let mut released = Vec::with_capacity(due.len());
        for (_, k) in due {
            if let Some(events) = self.waiting.remove(&k) {
                self.waiting_events -= events.len();
                self.stats.process_never_seen += events.len() as u64;
                released.push(events);
            }
        }
        self.recompute_waiting_due();
        for mut e in released.into_iter().flatten() {
            self.join_event(&mut e);
        }
    }

    /// Move the watermark to `clock_ns - allowed lateness` (or the newest event's) and close
    /// the chains whose idle gap it passed. Returns the closings (final versions, and chains
    /// closed early by caps); upserts of chains still open come from `take_updates`.
    pub fn advance_watermark(&mut self, clock_ns: i64) -> Vec<Chain> {
        self.release_waiting(clock_ns.max(self.watermark.max_event_ns()));
        self.take_dirty();
        let w = self.watermark.advance(clock_ns);
        self.expire(w);
        std::mem::take(&mut self.out)
    }

    /// End of input: close every chain. Returns the final versions.
    pub fn finish(&mut self) -> Vec<Chain> {
        self.release_waiting(i64::MAX);
        let w = self.watermark.finish();
        self.expire(w);
        self.take_updates()
    }

    /// The upserts collected since the last call (one per changed chain) and the chains closed
    /// by caps meanwhile. Chains held for stitching are not published until released.
    pub fn take_updates(&mut self) -> Vec<Chain> {
        self.take_dirty();
        std::mem::take(&mut self.out)
    }

    /// Publish chain versions Avro-encoded (`take_encoded`) instead of as `Chain` records
    /// (`take_updates`, `advance_watermark`, `finish` then return none): what the worker puts
    /// on the bus, without building an owned `Chain` per version.
    pub fn set_encoded_output(&mut self, on: bool) {
        self.encoded_output = on;
    }

    /// The encoded versions collected since the last call, in publishing order.
    pub fn take_encoded(&mut self) -> Vec<EncodedChain> {
        std::mem::take(&mut self.out_encoded)
    }

    /// Output the current version of chain `h` (its version already bumped).
    fn emit(&mut self, h: ChainHandle) {
        let Some(c) = self.slab.get_mut(h.slot as usize).filter(|s| s.generation == h.generation).and_then(|s| s.chain.as_mut())
        else {
            return;
        };
        if !self.encoded_output {
            let view = c.view(&mut self.memo);
            self.out.push(view.to_chain());
            return;
        }
        let open = c.status == ChainStatus::Open;
        let previous = c.last_encoding.take();
        if c.encoding_current
            && let Some(last) = previous
        {
            // Unchanged since its last version: the same bytes with this version and status (a
            // closing takes them: nothing is kept after it).
            let bytes = if open {
                let bytes = last.with_version(c.version, c.status);
                c.last_encoding = Some(last);
                bytes
            } else {
                last.into_version(c.version, c.status)
            };
            self.out_encoded.push(EncodedChain { chain_id: c.chain_id.clone(), version: c.version, bytes });
            return;
        }
        let unmoved = c.unmoved_steps;
        let view = c.view(&mut self.memo);
        let encoding = encode_chain_reusing(&view, previous.as_ref().map(|p| (p, unmoved)));
        let (chain_id, version) = (view.chain_id.to_string(), view.version);
        let bytes = if open {
            let (bytes, kept) = encoding.publish_and_keep();
            (c.last_encoding, c.encoding_current, c.unmoved_steps) = (Some(kept), true, c.steps.len());
            bytes
        } else {
            encoding.bytes
        };
        self.out_encoded.push(EncodedChain { chain_id, version, bytes });
    }

    /// Publish every changed chain into `out`.
    fn take_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        self.out.reserve(dirty.len());
        for h in dirty.drain(..) {
            self.publish(h);
        }
        // The buffer is kept for the next round (unless something was marked dirty meanwhile).
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// Join one event without publishing (see `take_updates`). On a node that sends process
    /// records, an event of a process the tree has no record of yet waits for it
    /// (PROCESS_WAIT_NS of event time at most), and so do the later events of that process, to
    /// keep their order.
    pub fn ingest_event(&mut self, mut ev: SemanticEvent) {
        self.ingest_event_from(&mut ev);
    }

    /// `ingest_event`, taking what the chain keeps out of `ev` in place (an event is ~1.3 KB:
    /// a caller holding it boxed or in a buffer saves moving it). What is left in `ev` is
    /// the caller's to drop or reuse.
    pub fn ingest_event_from(&mut self, ev: &mut SemanticEvent) {
        if self.process_wait_ns > 0 {
            let node = self.nodes.intern(&ev.node);
            let proc = ProcKey { node, tgid: ev.tgid, start_ns: ev.process_start_ns };
            let feed = self.nodes_with_processes.get(node as usize).copied().unwrap_or(false);
            if self.waiting.contains_key(&proc) || (feed && !self.tree.is_described(&proc)) {
                if self.waiting_events < MAX_WAITING_EVENTS {
                    self.stats.waited_for_process += 1;
                    self.waiting_events += 1;
                    self.watermark.observe(event_time(ev));
                    let due = event_time(ev).saturating_add(self.process_wait_ns);
                    let queue = self.waiting.entry(proc).or_default();
                    if queue.is_empty() {
                        self.waiting_due_ns = self.waiting_due_ns.min(due);
                    }
                    queue.push(std::mem::take(ev));
                    self.release_waiting(self.watermark.max_event_ns());
                    return;
                }
                self.stats.wait_cap_hits += 1;
            }
        }
        self.join_event(ev);
        self.release_waiting(self.watermark.max_event_ns());
    }

    /// Join one event now.
    fn join_event(&mut self, ev: &mut SemanticEvent) {
        self.stats.semantic_events += 1;
        if is_bookkeeping(ev) {
            self.stats.bookkeeping_events += 1;
            return;
        }
        let node = self.nodes.intern(&ev.node);
        let proc = ProcKey { node, tgid: ev.tgid, start_ns: ev.process_start_ns };
        let is_llm = ev.kind == KIND_LLM;
        let is_server = ev.role == ConnRole::Server;
        self.tree.mark(proc, &ev.comm, is_llm, is_server, ev.ts_end_ns);
        let root = self.tree.agent_root(proc);
        self.watermark.observe(ev.ts_end_ns.max(ev.ts_start_ns));

        // Conversation keys for routing (the step keeps only the full-prefix hash).
        let mut conv_keys: Vec<u64> = Vec::new();
        let mut has_prefix = false;
        if let Some(llm) = &ev.llm {
            has_prefix = !llm.conversation_prefix_hashes.is_empty();
            conv_keys.extend(llm.conversation_prefix_hashes.iter().map(|h| fnv64(TAG_PREFIX, h)));
            conv_keys.extend(llm.tool_result_ids.iter().map(|r| fnv64(TAG_TOOL, r)));
        }
        let tuple = ev.tuple.take();
        if !self.agents.contains_key(&root) {
            let node_name = self.nodes.name(node).to_string();
            let agent = agent_ref(&node_name, root, self.tree.get(&root), &ev.comm, &ev.attributes, &self.team_label);
            let state = AgentState {
                agent,
                chains: Vec::new(),
                current: None,
                windows: Vec::new(),
                last_seen_ns: i64::MIN,
                forgotten_until: i64::MIN,
            };
            self.agents.insert(root, state);
        }
        let mut step = Box::new(take_step(ev, proc, &self.prices));
        self.stats.fingerprints_dropped += step.fingerprints_dropped;
        let (start, end) = (step.ts_start_ns, step.ts_end_ns);
        if let Some(a) = self.agents.get_mut(&root) {
            a.last_seen_ns = a.last_seen_ns.max(end);
        }

        if is_server {
            self.on_served(root, node, step, tuple.as_ref());
            return;
        }

        // A service handling a request for an observed client: the client's chain.
        if let Some(w) = self.window_for(root, start) {
            step.stitched = true;
            step.depth = w.depth;
            self.stats.stitched_steps += 1;
            let depth = w.depth;
            if let Some(h) = self.add_step(w.target, step) {
                self.register_client(node, tuple.as_ref(), h, start, end, depth);
            }
            return;
        }

        let target = match self.route(root, is_llm, &conv_keys, has_prefix, start, end) {
            Some(h) => h,
            None => {
                let late_for_forgotten = self.agents.get(&root).is_some_and(|a| start <= a.forgotten_until);
                if self.watermark.is_late(end) && late_for_forgotten {
                    self.stats.late_dropped += 1;
                    return;
                }
                self.new_chain(root, step.event_id(), start)
            }
        };
        if let Some(h) = self.add_step(target, step) {
            if let Some(a) = self.agents.get_mut(&root) {
                a.current = Some(h);
            }
            self.register_client(node, tuple.as_ref(), h, start, end, 0);
        }
        if is_llm {
            self.release_agent_holds(root);
        }
    }

    /// `root` called an LLM: it is an agent, so its chains held as a possible service's (an
    /// event of it arrived before its first LLM call, e.g. from another parser worker) are
    /// published now instead of after the lateness.
    fn release_agent_holds(&mut self, root: ProcKey) {
        let Some(a) = self.agents.get(&root) else { return };
        let chains = a.chains.clone();
        for h in chains {
            if let Some(c) = self.chain_mut(h)
                && c.held_until_agent
                && c.held_until.is_some()
            {
                c.held_until = None;
                c.held_until_agent = false;
                self.dirty.push(h);
                self.stats.agent_holds_released += 1;
            }
        }
    }

    // ---- routing -------------------------------------------------------------------------

    fn chain(&self, h: ChainHandle) -> Option<&ChainState> {
        self.slab.get(h.slot as usize).filter(|s| s.generation == h.generation).and_then(|s| s.chain.as_ref())
    }

    fn chain_mut(&mut self, h: ChainHandle) -> Option<&mut ChainState> {
        self.slab.get_mut(h.slot as usize).filter(|s| s.generation == h.generation).and_then(|s| s.chain.as_mut())
    }

    fn compatible(&self, c: &ChainState, start: i64, end: i64) -> bool {
        start <= c.end_ns.saturating_add(self.idle_gap_ns) && end >= c.start_ns.saturating_sub(self.idle_gap_ns)
    }

    /// The chain an agent's own (not served, not stitched) event joins; `None` = a new one.
    fn route(&self, root: ProcKey, is_llm: bool, keys: &[u64], has_prefix: bool, start: i64, end: i64) -> Option<ChainHandle> {
        let agent = self.agents.get(&root)?;
        let fits = |h: &ChainHandle| self.chain(*h).is_some_and(|c| self.compatible(c, start, end));
        if is_llm && !keys.is_empty() {
            let cont = agent.chains.iter().rev().find(|h| fits(h) && self.chain(**h).is_some_and(|c| c.continues(keys)));
            if let Some(h) = cont {
                return Some(*h);
            }
        }
        let fallback = agent.current.filter(fits).or_else(|| agent.chains.iter().rev().find(|h| fits(h)).copied());
        if is_llm && has_prefix {
            // A fresh conversation: it may open the task a user request (or plain actions)
            // started, otherwise it is a new chain.
            return fallback.filter(|h| self.chain(*h).is_some_and(|c| !c.has_llm));
        }
        fallback
    }

    fn window_for(&mut self, root: ProcKey, ts: i64) -> Option<HandlingWindow> {
        let horizon = self.watermark.current().saturating_sub(self.lateness_ns);
        let slab = &self.slab;
        let agent = self.agents.get_mut(&root)?;
        if agent.windows.is_empty() {
            return None;
        }
        agent.windows.retain(|w| {
            w.end_ns >= horizon && slab.get(w.target.slot as usize).is_some_and(|s| s.generation == w.target.generation && s.chain.is_some())
        });
        agent.windows.iter().rev().find(|w| w.covers(ts)).copied()
    }

    /// A request this agent served (SERVER role).
    fn on_served(&mut self, root: ProcKey, node: NodeId, mut step: Box<StepRecord>, tuple: Option<&SocketTuple>) {
        let (start, end) = (step.ts_start_ns, step.ts_end_ns);
        let key = tuple.map(|t| TupleKey::from_server(node, t));
        if let Some(k) = &key
            && let Some(client) = self.clients.take(k)
            && self.chain(client.chain).is_some()
        {
            if client.depth < self.max_depth {
                self.stitch(root, client.chain, start, end, client.depth + 1, None);
                self.stats.stitched_requests += 1;
                return;
            }
            self.stats.depth_limited += 1;
        }
        step.user_request = true;
        // Between a tool call and its execution, a user's request is an approval.
        let pending = self.agents.get(&root).and_then(|a| a.current).filter(|h| {
            self.chain(*h).is_some_and(|c| c.has_open_tool_calls() && self.compatible(c, start, end))
        });
        if let Some(h) = pending {
            self.stats.approvals += 1;
            self.add_step(h, step);
            return;
        }
        // A new task: a new chain with the agent's steps from the request's start on.
        self.stats.user_requests += 1;
        let event_hash = fnv64(TAG_EVENT, step.event_id());
        let others: Vec<ChainHandle> = self.agents.get(&root).map(|a| a.chains.clone()).unwrap_or_default();
        // An open chain that began inside this request is the task itself (it was waiting for
        // the request, which ends last): keep it rather than empty it into a new one.
        let started_inside = others.iter().copied().find(|o| {
            self.chain(*o).is_some_and(|c| {
                c.status == ChainStatus::Open && c.steps.first().is_some_and(|s| s.ts_start_ns >= start) && c.start_ns <= end
            })
        });
        let (h, fresh) = match started_inside {
            Some(h) => (h, false),
            None => (self.new_chain(root, step.event_id(), start), true),
        };
        for o in others.into_iter().filter(|o| *o != h) {
            let taken = match self.chain_mut(o) {
                Some(c) if c.status == ChainStatus::Open => c.remove_where(|s| s.ts_start_ns >= start),
                _ => continue,
            };
            if taken.is_empty() {
                continue;
            }
            self.dirty.push(o);
            for s in taken {
                self.add_step(h, s);
            }
            self.drop_if_empty(o);
        }
        let Some(h) = self.add_step(h, step) else { return };
        // Not published until an observed client had the time to claim it (lateness).
        let held_until = end.saturating_add(self.lateness_ns);
        if let Some(c) = self.chain_mut(h)
            && (fresh || !c.published)
        {
            c.held_until = Some(held_until);
            c.held_until_agent = false;
            self.held.push(h);
        }
        if let Some(a) = self.agents.get_mut(&root) {
            a.current = Some(h);
        }
        if let Some(k) = key {
            self.servers.insert(k, end, ServerSide { agent: root, chain: h, start_ns: start, end_ns: end, event_hash });
            if self.remote_stitching() && tuple.is_some_and(|t| !is_loopback_tuple(t)) {
                if self.served_pending.len() >= self.servers_cap() {
                    self.served_pending.pop_front();
                    self.stats.remote_pending_evicted += 1;
                }
                self.served_pending.push_back((held_until, k));
            }
        }
    }

    fn servers_cap(&self) -> usize {
        self.max_open_chains.saturating_mul(4)
    }

    /// Offer the served requests whose hold ended by `w` and that no local client claimed to
    /// the other members (a fragment), holding their chains one lateness more.
    fn export_served(&mut self, w: i64) {
        while let Some(&(due, key)) = self.served_pending.front() {
            if due > w {
                break;
            }
            self.served_pending.pop_front();
            if !self.remote_stitching() {
                continue;
            }
            if let Some(server) = self.servers.take(&key) {
                self.export_fragment(key, server);
            }
        }
    }

    fn export_fragment(&mut self, key: TupleKey, server: ServerSide) {
        let (start, end) = (server.start_ns, server.end_ns);
        let hold = end.saturating_add(self.lateness_ns.saturating_mul(2));
        let chains: Vec<ChainHandle> = self.agents.get(&server.agent).map(|a| a.chains.clone()).unwrap_or_default();
        let (mut steps, mut step_hashes, mut cut, mut fragment_id) = (Vec::new(), Vec::new(), 0u64, None);
        for h in chains {
            let Some(c) = self.chain_mut(h) else { continue };
            let mut involved = false;
            for s in &c.steps {
                let hash = fnv64(TAG_EVENT, s.event_id());
                if hash == server.event_hash {
                    fragment_id = Some(s.event_id().to_string());
                    involved = true;
                } else if s.ts_start_ns >= start && s.ts_start_ns <= end {
                    involved = true;
                    if steps.len() >= MAX_FRAGMENT_STEPS {
                        cut += 1;
                    } else {
                        steps.push(to_wire(s));
                        step_hashes.push(hash);
                    }
                }
            }
            if involved && let Some(t) = c.held_until {
                c.held_until = Some(t.max(hold));
            }
        }
        // The served step went elsewhere meanwhile: nothing left to offer.
        let Some(fragment_id) = fragment_id else { return };
        let service = self.agents.get(&server.agent).map(|a| a.agent.agent_key.clone()).unwrap_or_default();
        self.stats.remote_fragments_published += 1;
        self.stats.remote_fragment_steps_cut += cut;
        self.exported.insert(key, end.saturating_add(self.lateness_ns), Exported { agent: server.agent, served_hash: server.event_hash, step_hashes });
        self.stitch_out.push(StitchRecord {
            kind: StitchKind::Fragment,
            origin_member: self.member.clone(),
            fragment_member: self.member.clone(),
            fragment_id,
            tuple_key: key.to_wire(),
            service,
            start_ns: start,
            end_ns: end,
            steps,
            steps_cut: i64::try_from(cut).unwrap_or(i64::MAX),
        });
    }

    /// Another member's fragment meets its client exchange here: its steps join the client's
    /// chain like a local stitch, and a claim goes back to its origin.
    fn merge_fragment(&mut self, key: TupleKey, client: ClientSide, frag: RemoteFragment) {
        if client.depth >= self.max_depth {
            self.stats.depth_limited += 1;
            return;
        }
        let base = client.depth.saturating_add(1);
        for mut s in frag.steps {
            s.stitched = true;
            s.user_request = false;
            s.depth = base.saturating_add(s.depth);
            self.stats.stitched_steps += 1;
            self.add_step(client.chain, s);
        }
        self.stats.stitched_requests += 1;
        self.stats.remote_stitched_requests += 1;
        self.stitch_out.push(StitchRecord {
            kind: StitchKind::Claim,
            origin_member: self.member.clone(),
            fragment_member: frag.origin_member,
            fragment_id: frag.fragment_id,
            tuple_key: key.to_wire(),
            service: String::new(),
            start_ns: client.start_ns,
            end_ns: client.end_ns,
            steps: Vec::new(),
            steps_cut: 0,
        });
    }

    /// A fragment of this member was claimed: its steps and the served exchange leave the
    /// service's chains (a chain left empty is gone, never published if it was still held).
    fn drop_claimed(&mut self, e: &Exported) {
        let hashes: FastSet<u64> = e.step_hashes.iter().copied().chain([e.served_hash]).collect();
        let chains: Vec<ChainHandle> = self.agents.get(&e.agent).map(|a| a.chains.clone()).unwrap_or_default();
        for h in chains {
            let taken = match self.chain_mut(h) {
                Some(c) => c.remove_where(|s| hashes.contains(&fnv64(TAG_EVENT, s.event_id()))),
                None => continue,
            };
            if taken.is_empty() {
                continue;
            }
            self.dirty.push(h);
            self.drop_if_empty(h);
        }
    }

    /// A client exchange of chain `h`: if its server side was seen, stitch; else remember it.
    fn register_client(&mut self, node: NodeId, tuple: Option<&SocketTuple>, h: ChainHandle, start: i64, end: i64, depth: u16) {
        let Some(t) = tuple else { return };
        let key = TupleKey::from_client(node, t);
        if let Some(server) = self.servers.take(&key) {
            if depth < self.max_depth {
                self.stitch(server.agent, h, server.start_ns, server.end_ns, depth + 1, Some(server.event_hash));
                self.stats.stitched_requests += 1;
            } else {
                self.stats.depth_limited += 1;
            }
            return;
        }
        let client = ClientSide { chain: h, start_ns: start, end_ns: end, depth };
        if !self.remote_fragments.is_empty()
            && let Some(frag) = self.remote_fragments.take(&key)
        {
            self.merge_fragment(key, client, frag);
            return;
        }
        self.clients.insert(key, end, client);
    }

    /// The service `service` handled a request of chain `target` during [start, end]: its
    /// steps there move to `target` (the served exchange itself, `drop_event`, is the client's
    /// step seen from the other side and is dropped), and later ones follow via a window.
    fn stitch(&mut self, service: ProcKey, target: ChainHandle, start: i64, end: i64, depth: u16, drop_event: Option<u64>) {
        let chains: Vec<ChainHandle> = match self.agents.get_mut(&service) {
            Some(a) => {
                if a.windows.len() >= MAX_WINDOWS_PER_AGENT {
                    a.windows.remove(0);
                    self.stats.window_evicted += 1;
                }
                a.windows.push(HandlingWindow { start_ns: start, end_ns: end, target, depth });
                a.chains.clone()
            }
            None => return,
        };
        for c in chains.into_iter().filter(|c| *c != target) {
            let taken = match self.chain_mut(c) {
                Some(chain) => chain.remove_where(|s| {
                    (s.ts_start_ns >= start && s.ts_start_ns <= end) || drop_event == Some(fnv64(TAG_EVENT, s.event_id()))
                }),
                None => continue,
            };
            if taken.is_empty() {
                continue;
            }
            self.dirty.push(c);
            for mut s in taken {
                if drop_event == Some(fnv64(TAG_EVENT, s.event_id())) {
                    continue;
                }
                s.stitched = true;
                s.depth = depth;
                s.user_request = false;
                self.stats.stitched_steps += 1;
                self.add_step(target, s);
            }
            self.drop_if_empty(c);
        }
    }

    // ---- chain lifecycle -----------------------------------------------------------------

    fn new_chain(&mut self, root: ProcKey, first_event_id: &str, ts: i64) -> ChainHandle {
        while self.open_chains >= self.max_open_chains {
            if !self.evict_oldest_open() {
                break;
            }
        }
        let agent = self.agents.get(&root).map(|a| a.agent.clone()).unwrap_or_default();
        let mut chain = ChainState::new(agent, first_event_id, ts);
        // A process that never called an LLM may be a service whose work an observed client's
        // request will claim: publish its chain only once that had the time to happen.
        let is_agent = self.tree.get(&root).is_some_and(|p| p.llm_caller);
        if !is_agent {
            chain.held_until = Some(ts.saturating_add(self.lateness_ns));
            chain.held_until_agent = true;
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slab.push(Slot::default());
                u32::try_from(self.slab.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let entry = &mut self.slab[slot as usize];
        entry.chain = Some(chain);
        entry.agent = Some(root);
        let h = ChainHandle { slot, generation: entry.generation };
        self.deadlines.push(Reverse((ts.saturating_add(self.idle_gap_ns), h.slot, h.generation, DEADLINE_CLOSE)));
        if !is_agent {
            self.held.push(h);
        }
        if let Some(a) = self.agents.get_mut(&root) {
            a.chains.push(h);
        }
        self.open_chains += 1;
        self.stats.chains_opened += 1;
        h
    }

    /// Add `step` to `h` (reopening it if closed; continuing in a new chain if full). Returns
    /// the chain it went to, or `None` for a duplicate / a vanished chain.
    fn add_step(&mut self, h: ChainHandle, step: Box<StepRecord>) -> Option<ChainHandle> {
        let (full, closed, dup) = {
            let c = self.chain(h)?;
            (c.steps.len() >= self.max_steps, c.status == ChainStatus::Closed, c.contains_event(step.event_id()))
        };
        if dup {
            self.stats.duplicate_events += 1;
            return None;
        }
        let h = if full {
            self.stats.split_max_steps += 1;
            let root = self.slab.get(h.slot as usize).and_then(|s| s.agent)?;
            if !closed {
                self.close_chain(h);
            }
            let n = self.new_chain(root, step.event_id(), step.ts_start_ns);
            if let Some(a) = self.agents.get_mut(&root)
                && a.current == Some(h)
            {
                a.current = Some(n);
            }
            n
        } else {
            if closed {
                self.reopen(h);
            }
            h
        };
        if step.is_llm()
            && let Some(c) = self.slab.get(h.slot as usize).and_then(|s| s.chain.as_ref())
        {
            let a = &c.agent;
            self.ledger.add(&a.agent_key, a.team.as_deref(), step.cost_usd, step.input_tokens, step.output_tokens);
        }
        self.chain_mut(h)?.add(step);
        self.dirty.push(h);
        Some(h)
    }

    fn reopen(&mut self, h: ChainHandle) {
        let gap = self.idle_gap_ns;
        let Some(c) = self.chain_mut(h) else { return };
        c.status = ChainStatus::Open;
        let deadline = c.end_ns.saturating_add(gap);
        self.deadlines.push(Reverse((deadline, h.slot, h.generation, DEADLINE_CLOSE)));
        self.open_chains += 1;
        self.closed_chains = self.closed_chains.saturating_sub(1);
        self.stats.chains_reopened += 1;
    }

    fn publish(&mut self, h: ChainHandle) {
        let Some(c) = self.chain_mut(h) else { return };
        if !c.dirty || c.held_until.is_some() {
            return;
        }
        c.version += 1;
        c.dirty = false;
        c.published = true;
        self.emit(h);
        self.stats.published += 1;
    }

    fn close_chain(&mut self, h: ChainHandle) {
        let forget_after = self.idle_gap_ns.saturating_add(self.lateness_ns);
        let Some(c) = self.chain_mut(h) else { return };
        if c.status == ChainStatus::Closed {
            return;
        }
        c.status = ChainStatus::Closed;
        c.held_until = None;
        c.version += 1;
        c.dirty = false;
        c.published = true;
        let deadline = c.end_ns.saturating_add(forget_after);
        self.emit(h);
        // the closing version's flows (its analysis, or its last upsert's when unchanged)
        if self.chain(h).is_some_and(|c| c.flow_stats != FlowStats::default()) {
            self.stats.pii_flows_cut += 1;
        }
        self.stats.published += 1;
        self.stats.chains_closed += 1;
        self.open_chains = self.open_chains.saturating_sub(1);
        self.closed_chains += 1;
        self.closed_order.push_back(h);
        self.deadlines.push(Reverse((deadline, h.slot, h.generation, DEADLINE_FORGET)));
        while self.closed_chains > self.max_open_chains {
            let Some(old) = self.closed_order.pop_front() else { break };
            if self.chain(old).is_some_and(|c| c.status == ChainStatus::Closed) {
                self.forget(old);
                self.stats.forgotten_early += 1;
            }
        }
    }

    /// Remove a chain from memory (closed, or emptied by a stitch).
    fn forget(&mut self, h: ChainHandle) {
        let gap = self.idle_gap_ns;
        let Some(slot) = self.slab.get_mut(h.slot as usize).filter(|s| s.generation == h.generation) else { return };
        let Some(chain) = slot.chain.take() else { return };
        let root = slot.agent.take();
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(h.slot);
        match chain.status {
            ChainStatus::Open => self.open_chains = self.open_chains.saturating_sub(1),
            ChainStatus::Closed => self.closed_chains = self.closed_chains.saturating_sub(1),
        }
        if let Some(a) = root.and_then(|r| self.agents.get_mut(&r)) {
            a.chains.retain(|c| *c != h);
            if a.current == Some(h) {
                a.current = None;
            }
            if chain.published {
                a.forgotten_until = a.forgotten_until.max(chain.end_ns.saturating_add(gap));
            }
        }
    }

    /// A chain whose steps all moved elsewhere: gone (a published one says so with a last,
    /// closed, empty version).
    fn drop_if_empty(&mut self, h: ChainHandle) {
        let Some(c) = self.chain_mut(h) else { return };
        if !c.steps.is_empty() {
            return;
        }
        if c.published {
            c.status = ChainStatus::Closed;
            c.version += 1;
            self.emit(h);
            self.stats.published += 1;
        }
        self.stats.chains_emptied += 1;
        self.forget(h);
    }

    /// Close the least recently active open chain (the `max_open_chains` cap).
    fn evict_oldest_open(&mut self) -> bool {
        let gap = self.idle_gap_ns;
        while let Some(Reverse((deadline, slot, generation, kind))) = self.deadlines.pop() {
            let h = ChainHandle { slot, generation };
            let Some(c) = self.chain(h) else { continue };
            match (kind, c.status) {
                (DEADLINE_CLOSE, ChainStatus::Open) => {
                    let real = c.end_ns.saturating_add(gap);
                    if real > deadline {
                        self.deadlines.push(Reverse((real, slot, generation, DEADLINE_CLOSE)));
                        continue;
                    }
                    self.close_chain(h);
                    self.stats.evicted_open_chains += 1;
                    return true;
                }
                (DEADLINE_FORGET, ChainStatus::Closed) => {
                    self.forget(h);
                    self.stats.forgotten_early += 1;
                }
                _ => {}
            }
        }
        false
    }

    /// Watermark `w`: close idle chains, forget old closed ones, release held ones, expire
    /// indexes, and now and then sweep agents and exited processes.
    fn expire(&mut self, w: i64) {
        self.export_served(w);
        let horizon = w.saturating_sub(self.lateness_ns);
        // Across members a fragment comes one lateness after its exchange, by the origin's
        // watermark, which may trail this one: client exchanges wait two latenesses longer.
        let client_horizon = if self.remote_stitching() { horizon.saturating_sub(self.lateness_ns.saturating_mul(2)) } else { horizon };
        self.clients.expire(client_horizon);
        self.servers.expire(horizon);
        self.exported.expire(horizon);
        self.remote_fragments.expire(horizon);
        let held = std::mem::take(&mut self.held);
        for h in held {
            let Some(c) = self.chain_mut(h) else { continue };
            match c.held_until {
                Some(t) if t <= w => {
                    c.held_until = None;
                    self.dirty.push(h);
                }
                Some(_) => self.held.push(h),
                None => {}
            }
        }
        let (gap, forget_after) = (self.idle_gap_ns, self.idle_gap_ns.saturating_add(self.lateness_ns));
        while let Some(Reverse((deadline, slot, generation, kind))) = self.deadlines.peek().copied() {
            if deadline > w {
                break;
            }
            self.deadlines.pop();
            let h = ChainHandle { slot, generation };
            let Some(c) = self.chain(h) else { continue };
            match (kind, c.status) {
                (DEADLINE_CLOSE, ChainStatus::Open) => {
                    let real = c.end_ns.saturating_add(gap);
                    if real > w {
                        self.deadlines.push(Reverse((real, slot, generation, DEADLINE_CLOSE)));
                    } else {
                        self.close_chain(h);
                    }
                }
                (DEADLINE_FORGET, ChainStatus::Closed) => {
                    let real = c.end_ns.saturating_add(forget_after);
                    if real > w {
                        self.deadlines.push(Reverse((real, slot, generation, DEADLINE_FORGET)));
                    } else {
                        self.forget(h);
                    }
                }
                _ => {}
            }
        }
        if w == i64::MAX || self.last_sweep_ns == i64::MIN || w.saturating_sub(self.last_sweep_ns) >= gap {
            let cutoff = w.saturating_sub(forget_after);
            self.agents.retain(|_, a| !a.chains.is_empty() || a.last_seen_ns >= cutoff);
            self.tree.evict_exited(cutoff);
            self.tree.evict_silent(w.saturating_sub(PROCESS_SILENCE_NS.max(forget_after.saturating_mul(10))));
            self.last_sweep_ns = w;
        }
    }
}
