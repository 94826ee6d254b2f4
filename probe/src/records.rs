//! From the probe's events to the bus records (`RawSegment`, `ConnectionEvent`,
//! `ProcessEvent`), with the keys they travel under.
//!
//! The kernel stamps events with CLOCK_MONOTONIC; records carry wall-clock time, so the mapper
//! measures the offset between the two clocks once at start. Data segments carry neither the
//! connection's tuple and role nor the process's identity: the mapper remembers them from the
//! connection and process events it saw, in maps that are bounded (least recently inserted
//! entries evicted first, counted) and emptied on close and exit.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::SocketAddr;

use chainwatch_schemas::{
    AddressFamily, ConnRole, ConnectionEvent as ConnectionRecord, ConnectionEventKind as ConnectionRecordKind, JsonRecord,
    ProcessEvent as ProcessRecord, ProcessEventKind as ProcessRecordKind, RawSegment, SegmentKind, SegmentSource,
    SocketTuple as TupleRecord, connection_id,
};

use crate::events::{
    ConnectionEvent, ConnectionEventKind, ConnectionId, DataSegment, Direction, GapSegment, ProbeEvent, ProcessEvent,
    ProcessEventKind, Role, SocketTuple,
};

/// Most connections and processes remembered at once.
pub const DEFAULT_MAX_TRACKED: usize = 65_536;

/// Counters of the mapper.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MapperStats {
    pub records: u64,
    /// Connections forgotten because the table was full.
    pub connections_evicted: u64,
    /// Processes forgotten because the table was full.
    pub processes_evicted: u64,
    /// Segments of connections never announced (tuple and role unknown).
    pub segments_without_connection: u64,
}

#[derive(Clone)]
struct ConnInfo {
    role: ConnRole,
    tuple: Option<TupleRecord>,
    tls: bool,
}

#[derive(Clone)]
struct ProcInfo {
    start_ns: u64,
    comm: String,
}

/// A map with a size bound: beyond it, the oldest inserted key is dropped.
struct BoundedMap<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    cap: usize,
}

impl<K: Eq + Hash + Clone, V> BoundedMap<K, V> {
    fn new(cap: usize) -> Self {
        BoundedMap { map: HashMap::new(), order: VecDeque::new(), cap: cap.max(1) }
    }

    /// Insert; returns true when an old entry had to go.
    fn insert(&mut self, k: K, v: V) -> bool {
        if self.map.insert(k.clone(), v).is_some() {
            return false;
        }
        self.order.push_back(k);
        let mut evicted = false;
        while self.map.len() > self.cap {
            match self.order.pop_front() {
                Some(old) => evicted |= self.map.remove(&old).is_some(),
                None => break,
            }
        }
        // Keys removed through `remove` leave stale entries in `order`; keep it bounded too.
        if self.order.len() > 2 * self.cap {
            let map = &self.map;
            self.order.retain(|k| map.contains_key(k));
        }
        evicted
    }

    fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }

    fn remove(&mut self, k: &K) -> Option<V> {
        self.map.remove(k)
    }
}

/// Turns `ProbeEvent`s into bus records.
pub struct RecordMapper {
    node: String,
    /// CLOCK_REALTIME - CLOCK_MONOTONIC, in ns.
    wall_offset_ns: i64,
    conns: BoundedMap<ConnectionId, ConnInfo>,
    procs: BoundedMap<u32, ProcInfo>,
    stats: MapperStats,
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid pointer we pass.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec.saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec)
}

impl RecordMapper {
    pub fn new(node: impl Into<String>) -> Self {
        Self::with_capacity(node, DEFAULT_MAX_TRACKED)
    }

    pub fn with_capacity(node: impl Into<String>, max_tracked: usize) -> Self {
        RecordMapper {
            node: node.into(),
            wall_offset_ns: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC),
            conns: BoundedMap::new(max_tracked),
            procs: BoundedMap::new(max_tracked),
            stats: MapperStats::default(),
        }
    }

    pub fn stats(&self) -> &MapperStats {
        &self.stats
    }

    fn wall(&self, monotonic_ns: u64) -> i64 {
        (monotonic_ns as i64).saturating_add(self.wall_offset_ns)
    }

    fn conn_id(&self, id: &ConnectionId) -> String {
        connection_id(&self.node, id.tgid as i32, id.fd, id.start_ns as i64)
    }

    /// The record for one probe event.
    pub fn map(&mut self, event: &ProbeEvent) -> JsonRecord {
        self.stats.records += 1;
        match event {
            ProbeEvent::Process(p) => JsonRecord::ProcessEvent(self.process(p)),
            ProbeEvent::Connection(c) => JsonRecord::ConnectionEvent(self.connection(c)),
            ProbeEvent::Data(d) => JsonRecord::RawSegment(self.data(d)),
            ProbeEvent::Gap(g) => JsonRecord::RawSegment(self.gap(g)),
        }
    }

    fn process(&mut self, p: &ProcessEvent) -> ProcessRecord {
        let kind = match p.kind {
            ProcessEventKind::Exec => ProcessRecordKind::Exec,
            ProcessEventKind::Fork => ProcessRecordKind::Fork,
            ProcessEventKind::Exit => ProcessRecordKind::Exit,
            ProcessEventKind::Existing => ProcessRecordKind::Seed,
        };
        if p.kind == ProcessEventKind::Exit {
            self.procs.remove(&p.tgid);
        } else if self.procs.insert(p.tgid, ProcInfo { start_ns: p.start_ns, comm: p.comm.clone() }) {
            self.stats.processes_evicted += 1;
        }
        ProcessRecord {
            node: self.node.clone(),
            ts_ns: self.wall(p.ts_ns),
            kind,
            tgid: p.tgid as i32,
            process_start_ns: p.start_ns as i64,
            ppid: p.ppid as i32,
            parent_start_ns: p.parent_start_ns as i64,
            uid: p.uid as i64,
            comm: p.comm.clone(),
            exe: p.exe.clone(),
            argv: p.argv.clone(),
            argv_truncated: p.argv_truncated,
            cgroup_id: p.cgroup_id as i64,
            cgroup_path: String::new(),
            container_id: p.container_id.clone(),
            pod_uid: p.pod_uid.clone(),
            exit_code: p.exit_status.map(exit_code),
        }
    }

    fn connection(&mut self, c: &ConnectionEvent) -> ConnectionRecord {
        let role = role(c.role);
        let tuple = c.tuple.map(tuple);
        let known = self.conns.get(&c.id).cloned();
        let kind = match (c.kind, c.role) {
            (ConnectionEventKind::Open, Role::Client) => ConnectionRecordKind::Connect,
            (ConnectionEventKind::Open, Role::Server) => ConnectionRecordKind::Accept,
            (ConnectionEventKind::Open, Role::Unknown) => ConnectionRecordKind::Seed,
            (ConnectionEventKind::Close, _) => ConnectionRecordKind::Close,
        };
        if c.kind == ConnectionEventKind::Close {
            self.conns.remove(&c.id);
        } else if self.conns.insert(c.id.clone(), ConnInfo { role, tuple: tuple.clone(), tls: c.tls }) {
            self.stats.connections_evicted += 1;
        }
        let (process_start_ns, comm) = self.process_of(c.id.tgid);
        ConnectionRecord {
            node: self.node.clone(),
            conn_id: self.conn_id(&c.id),
            tgid: c.id.tgid as i32,
            process_start_ns,
            fd: c.id.fd,
            comm,
            ts_ns: self.wall(c.ts_ns),
            kind,
            // A close knows the role the open had.
            role: if c.role == Role::Unknown { known.as_ref().map_or(role, |k| k.role) } else { role },
            source: if c.tls || known.as_ref().is_some_and(|k| k.tls) { SegmentSource::Tls } else { SegmentSource::Syscall },
            tuple: tuple.or_else(|| known.and_then(|k| k.tuple)),
            tls: c.tls,
            bytes_egress: c.bytes_egress as i64,
            bytes_ingress: c.bytes_ingress as i64,
        }
    }

    fn process_of(&self, tgid: u32) -> (i64, String) {
        self.procs.get(&tgid).map_or((0, String::new()), |p| (p.start_ns as i64, p.comm.clone()))
    }

    fn segment(&mut self, id: &ConnectionId, ts_ns: u64, tid: u32, dir: Direction, tls: bool) -> RawSegment {
        let known = self.conns.get(id).cloned();
        if known.is_none() {
            self.stats.segments_without_connection += 1;
        }
        let (process_start_ns, comm) = self.process_of(id.tgid);
        RawSegment {
            node: self.node.clone(),
            conn_id: self.conn_id(id),
            tgid: id.tgid as i32,
            tid: tid as i32,
            process_start_ns,
            fd: id.fd,
            comm,
            ts_ns: self.wall(ts_ns),
            direction: match dir {
                Direction::Egress => chainwatch_schemas::Direction::Egress,
                Direction::Ingress => chainwatch_schemas::Direction::Ingress,
            },
            source: if tls { SegmentSource::Tls } else { SegmentSource::Syscall },
            kind: SegmentKind::Data,
            stream_offset: 0,
            captured_len: 0,
            original_len: 0,
            truncated: false,
            payload: Vec::new(),
            role: known.as_ref().map_or(ConnRole::Unknown, |k| k.role),
            tuple: known.and_then(|k| k.tuple),
        }
    }

    fn data(&mut self, d: &DataSegment) -> RawSegment {
        let mut s = self.segment(&d.id, d.ts_ns, d.tid, d.direction, d.tls);
        s.stream_offset = d.position as i64;
        s.captured_len = d.payload.len() as i32;
        // A call larger than one chunk spans several segments; what the per-call cap cut
        // follows as a GAP record with its exact count.
        s.original_len = d.payload.len() as i64;
        s.payload = d.payload.clone();
        s
    }

    fn gap(&mut self, g: &GapSegment) -> RawSegment {
        let mut s = self.segment(&g.id, g.ts_ns, 0, g.direction, g.tls);
        s.kind = SegmentKind::Gap;
        s.stream_offset = g.position as i64;
        s.original_len = g.len as i64;
        s.truncated = true;
        s
    }
}

/// The bus key of a record: connection id for segments and connection events (so they share
/// a partition), the node for process and semantic events (co-partitioned for the chain
/// builder's join), chain id for chains and violations.
pub fn bus_key(record: &JsonRecord) -> String {
    match record {
        JsonRecord::RawSegment(r) => r.conn_id.clone(),
        JsonRecord::ConnectionEvent(r) => r.conn_id.clone(),
        JsonRecord::ProcessEvent(r) => r.bus_key(),
        JsonRecord::SemanticEvent(r) => r.node.clone(),
        JsonRecord::Chain(r) => r.chain_id.clone(),
        JsonRecord::Violation(r) => r.chain_id.clone(),
    }
}

fn role(r: Role) -> ConnRole {
    match r {
        Role::Client => ConnRole::Client,
        Role::Server => ConnRole::Server,
        Role::Unknown => ConnRole::Unknown,
    }
}

fn tuple(t: SocketTuple) -> TupleRecord {
    let family = if t.local.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let (la, lp) = addr(t.local);
    let (ra, rp) = addr(t.remote);
    TupleRecord { family, local_addr: la, local_port: lp, remote_addr: ra, remote_port: rp }
}

fn addr(a: SocketAddr) -> (String, i32) {
    (a.ip().to_string(), i32::from(a.port()))
}

/// wait(2) status -> exit code, or 128 + signal like a shell says it.
fn exit_code(status: i32) -> i32 {
    if status & 0x7f == 0 { (status >> 8) & 0xff } else { 128 + (status & 0x7f) }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn id() -> ConnectionId {
        ConnectionId { node: Arc::from("n"), tgid: 42, fd: 7, start_ns: 1000 }
    }

    #[test]
    fn segments_carry_the_tuple_role_and_process_of_their_connection() {
        let mut m = RecordMapper::new("node-a");
        m.map(&ProbeEvent::Process(ProcessEvent {
            kind: ProcessEventKind::Exec,
            node: Arc::from("n"),
            ts_ns: 5,
            tgid: 42,
            tid: 42,
            ppid: 1,
            start_ns: 77,
            parent_start_ns: 1,
            uid: 0,
            cgroup_id: 0,
            comm: "curl".into(),
            exe: "/usr/bin/curl".into(),
            argv: vec!["curl".into()],
            argv_truncated: false,
            exit_status: None,
            container_id: None,
            pod_uid: None,
        }));
        let open = m.map(&ProbeEvent::Connection(ConnectionEvent {
            kind: ConnectionEventKind::Open,
            id: id(),
            ts_ns: 10,
            tid: 42,
            role: Role::Client,
            tuple: Some(SocketTuple { local: "127.0.0.1:5000".parse().unwrap(), remote: "127.0.0.1:443".parse().unwrap() }),
            tls: false,
            bytes_egress: 0,
            bytes_ingress: 0,
        }));
        let JsonRecord::ConnectionEvent(open) = open else { panic!("not a connection event") };
        assert_eq!(open.kind, ConnectionRecordKind::Connect);
        assert_eq!(open.conn_id, "node-a/42/7/1000");
        let seg = m.map(&ProbeEvent::Data(DataSegment {
            id: id(),
            ts_ns: 20,
            tid: 43,
            direction: Direction::Egress,
            position: 0,
            call_len: 5,
            tls: true,
            payload: b"hello".to_vec(),
        }));
        let JsonRecord::RawSegment(seg) = seg else { panic!("not a segment") };
        assert_eq!(seg.conn_id, open.conn_id);
        assert_eq!(seg.role, ConnRole::Client);
        assert_eq!(seg.tuple.as_ref().map(|t| t.remote_port), Some(443));
        assert_eq!((seg.process_start_ns, seg.comm.as_str()), (77, "curl"));
        assert_eq!(seg.source, SegmentSource::Tls);
        assert!(seg.ts_ns > 1_600_000_000_000_000_000, "wall clock, not monotonic: {}", seg.ts_ns);
        let gap = m.map(&ProbeEvent::Gap(GapSegment {
            id: id(),
            ts_ns: 21,
            direction: Direction::Egress,
            position: 5,
            len: 786_432,
            tls: true,
            reason: crate::events::GapReason::CallCap,
        }));
        let JsonRecord::RawSegment(gap) = gap else { panic!("not a segment") };
        assert_eq!((gap.kind, gap.original_len, gap.captured_len), (SegmentKind::Gap, 786_432, 0));
        assert_eq!(bus_key(&JsonRecord::RawSegment(gap)), "node-a/42/7/1000");
    }

    #[test]
    fn tables_are_bounded_and_evictions_counted() {
        let mut m = RecordMapper::with_capacity("n", 2);
        for fd in 0..5 {
            m.map(&ProbeEvent::Connection(ConnectionEvent {
                kind: ConnectionEventKind::Open,
                id: ConnectionId { fd, ..id() },
                ts_ns: 1,
                tid: 1,
                role: Role::Server,
                tuple: None,
                tls: false,
                bytes_egress: 0,
                bytes_ingress: 0,
            }));
        }
        assert_eq!(m.stats().connections_evicted, 3);
        assert!(m.conns.map.len() <= 2);
    }

    #[test]
    fn exit_status_becomes_an_exit_code() {
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(9), 137);
    }
}
