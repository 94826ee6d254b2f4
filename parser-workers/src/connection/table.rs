//! `ConnectionTable`: the connection FSMs of one worker, bounded by `max_connections` (the
//! least recently used is evicted) and by `idle_timeout_secs`; both evictions are counted and
//! flush the evicted connection (its open exchanges come out flagged partial by the drivers).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chainwatch_config::ParserConfig;
use chainwatch_schemas::{ConnRole, ConnectionEvent, ConnectionEventKind, RawSegment};

use super::exchange::{ConnectionMeta, ParsedExchange};
use super::fsm::{ConnectionFsm, FsmConfig, FsmStats};
use crate::protocols::grpc::DescriptorRegistry;

/// Counters of a connection table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    pub connections_opened: u64,
    pub connections_closed: u64,
    /// Evicted because the table was full (least recently used first).
    pub evicted_lru: u64,
    /// Evicted because no record came for `idle_timeout_secs`.
    pub evicted_idle: u64,
    /// Connections whose protocol was never recognised (counted when they leave the table).
    pub undetected: u64,
    pub exchanges: u64,
    /// Sum of the FSM counters of connections that left the table.
    pub gaps: u64,
    pub gap_bytes: u64,
    pub opaque_bytes: u64,
}

#[derive(Debug)]
struct Entry {
    fsm: ConnectionFsm,
    tick: u64,
}

/// The connection FSMs of one worker.
#[derive(Debug)]
pub struct ConnectionTable {
    config: Arc<FsmConfig>,
    registry: Arc<DescriptorRegistry>,
    max_connections: usize,
    idle_timeout_ns: u64,
    entries: HashMap<String, Entry>,
    /// Recency order: tick of last use -> conn_id.
    lru: BTreeMap<u64, String>,
    tick: u64,
    stats: TableStats,
}

impl ConnectionTable {
    /// A table with `[parser]`'s bounds and one built-in gRPC descriptor registry.
    pub fn new(cfg: &ParserConfig) -> Self {
        Self::with_parts(
            FsmConfig::from_parser_config(cfg),
            Arc::new(DescriptorRegistry::builtin()),
            cfg.max_connections,
            cfg.idle_timeout_secs,
        )
    }

    /// A table from explicit parts (tests, or a registry with user descriptor sets).
    pub fn with_parts(
        config: FsmConfig,
        registry: Arc<DescriptorRegistry>,
        max_connections: usize,
        idle_timeout_secs: u64,
    ) -> Self {
        ConnectionTable {
            config: Arc::new(config),
            registry,
            max_connections: max_connections.max(1),
            idle_timeout_ns: idle_timeout_secs.saturating_mul(1_000_000_000),
            entries: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
            stats: TableStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No open connection.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The FSM of a connection, if open.
    pub fn get(&self, conn_id: &str) -> Option<&ConnectionFsm> {
        self.entries.get(conn_id).map(|e| &e.fsm)
    }

    /// Take one raw segment: idle connections are evicted first (by this segment's clock),
    /// then the segment goes to its connection's FSM (created on first sight).
    pub fn on_segment(&mut self, seg: &RawSegment) -> Vec<ParsedExchange> {
        let mut out = self.evict_idle(u64::try_from(seg.ts_ns).unwrap_or(0));
        let meta = ConnectionMeta {
            node: seg.node.clone(),
            conn_id: seg.conn_id.clone(),
            tgid: seg.tgid,
            process_start_ns: seg.process_start_ns,
            comm: seg.comm.clone(),
            role: seg.role,
            tuple: seg.tuple.clone(),
        };
        let fsm = self.touch(meta, u64::try_from(seg.ts_ns).unwrap_or(0), &mut out);
        let ex = fsm.on_segment(seg);
        self.stats.exchanges += ex.len() as u64;
        out.extend(ex);
        out
    }

    /// Take a connection event: CONNECT/ACCEPT/SEED open the FSM with the role they name,
    /// CLOSE flushes and removes it.
    pub fn on_connection_event(&mut self, ev: &ConnectionEvent) -> Vec<ParsedExchange> {
        let mut out = self.evict_idle(u64::try_from(ev.ts_ns).unwrap_or(0));
        match ev.kind {
            ConnectionEventKind::Close => {
                if self.entries.contains_key(&ev.conn_id) {
                    out.extend(self.remove(&ev.conn_id));
                    self.stats.connections_closed += 1;
                }
            }
            ConnectionEventKind::Connect | ConnectionEventKind::Accept | ConnectionEventKind::Seed => {
                let role = match (ev.kind, ev.role) {
                    (_, ConnRole::Client) | (ConnectionEventKind::Connect, _) => ConnRole::Client,
                    (_, ConnRole::Server) | (ConnectionEventKind::Accept, _) => ConnRole::Server,
                    _ => ConnRole::Unknown,
                };
                let meta = ConnectionMeta {
                    node: ev.node.clone(),
                    conn_id: ev.conn_id.clone(),
                    tgid: ev.tgid,
                    process_start_ns: ev.process_start_ns,
                    comm: ev.comm.clone(),
                    role,
                    tuple: ev.tuple.clone(),
                };
                self.touch(meta, u64::try_from(ev.ts_ns).unwrap_or(0), &mut out);
            }
        }
        out
    }

    /// Flush every open connection (end of input), in conn_id order.
    pub fn finish(&mut self) -> Vec<ParsedExchange> {
        let mut ids: Vec<String> = self.entries.keys().cloned().collect();
        ids.sort();
        let mut out = Vec::new();
        for id in ids {
            out.extend(self.remove(&id));
        }
        out
    }

    /// Evict connections idle since before `now_ns - idle_timeout`, least recent first.
    pub fn evict_idle(&mut self, now_ns: u64) -> Vec<ParsedExchange> {
        let mut out = Vec::new();
        let Some(limit) = now_ns.checked_sub(self.idle_timeout_ns) else {
            return out;
        };
        // Recency order approximates time order; stop at the first connection still active.
        while let Some((_, id)) = self.lru.first_key_value() {
            let idle = self
                .entries
                .get(id)
                .is_some_and(|e| e.fsm.last_ts_ns() < limit);
            if !idle {
                break;
            }
            let id = id.clone();
            out.extend(self.remove(&id));
            self.stats.evicted_idle += 1;
        }
        out
    }

    /// The FSM of `meta.conn_id`, created (evicting the least recently used when full) if new,
    /// and marked most recently used.
    fn touch(&mut self, meta: ConnectionMeta, ts_ns: u64, out: &mut Vec<ParsedExchange>) -> &mut ConnectionFsm {
        self.tick += 1;
        let tick = self.tick;
        let id = meta.conn_id.clone();
        if !self.entries.contains_key(&id) {
            while self.entries.len() >= self.max_connections {
                let Some((_, oldest)) = self.lru.first_key_value() else {
                    break;
                };
                let oldest = oldest.clone();
                out.extend(self.remove(&oldest));
                self.stats.evicted_lru += 1;
            }
            self.stats.connections_opened += 1;
        }
        let (config, registry) = (self.config.clone(), self.registry.clone());
        let entry = self.entries.entry(id.clone()).or_insert_with(|| Entry {
            fsm: ConnectionFsm::new(meta, config, registry),
            tick: 0,
        });
        self.lru.remove(&entry.tick);
        entry.tick = tick;
        self.lru.insert(tick, id);
        entry.fsm.note_activity(ts_ns);
        &mut entry.fsm
    }

    /// Flush and drop one connection, folding its counters into the table's.
    fn remove(&mut self, conn_id: &str) -> Vec<ParsedExchange> {
        let Some(mut e) = self.entries.remove(conn_id) else {
            return Vec::new();
        };
        self.lru.remove(&e.tick);
        let out = e.fsm.flush();
        self.stats.exchanges += out.len() as u64;
        let s: FsmStats = e.fsm.stats();
        self.stats.undetected += u64::from(s.undetected);
        self.stats.gaps += s.gaps;
        self.stats.gap_bytes += s.gap_bytes;
        self.stats.opaque_bytes += s.opaque_bytes;
        out
    }
}
