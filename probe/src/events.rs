//! Events the probe produces (`ProbeEvent`) and the decoder from the kernel's
//! ring-buffer records (layout in probe/bpf/chainwatch.h) to those events.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use thiserror::Error;

/// Sizes of the kernel records; `chainwatch.h` is the source of truth.
pub const HEADER_LEN: usize = 24;
pub const PROC_EVENT_LEN: usize = 1368;
pub const CONN_EVENT_LEN: usize = 96;
pub const DATA_EVENT_LEN: usize = 72;
/// Largest payload of one data event (`CW_MAX_CHUNK`).
pub const MAX_CHUNK: usize = 16 * 1024;
/// Default bytes captured per call (`CW_DEFAULT_CALL_CAP`).
pub const DEFAULT_CALL_CAP: u32 = 256 * 1024;
/// Largest per-call cap the kernel honours (`CW_MAX_CALL_CAP`).
pub const MAX_CALL_CAP: u32 = 4 * 1024 * 1024;

const EV_EXEC: u32 = 1;
const EV_FORK: u32 = 2;
const EV_EXIT: u32 = 3;
const EV_CONN_OPEN: u32 = 4;
const EV_CONN_CLOSE: u32 = 5;
const EV_DATA: u32 = 6;
const EV_GAP: u32 = 7;

/// A connection, unique per node: fds and pids are reused, the start time is not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectionId {
    pub node: Arc<str>,
    pub tgid: u32,
    pub fd: i32,
    /// CLOCK_MONOTONIC ns at which the kernel started tracking the connection.
    pub start_ns: u64,
}

/// Which way bytes went, seen from the watched process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by the watched process (write, send, SSL_write).
    Egress,
    /// Received by the watched process (read, recv, SSL_read).
    Ingress,
}

/// How the watched process came to hold the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It called connect().
    Client,
    /// It called accept().
    Server,
    /// The connection existed before the probe saw it (first seen on data or in /proc).
    Unknown,
}

/// Both ends of a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketTuple {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// What happened to a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessEventKind {
    Exec,
    Fork,
    Exit,
    /// Found in /proc when the probe started watching it.
    Existing,
}

/// A process event. Identity is (tgid, start_ns), never a bare pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessEvent {
    pub kind: ProcessEventKind,
    pub node: Arc<str>,
    pub ts_ns: u64,
    pub tgid: u32,
    /// The thread that caused the event.
    pub tid: u32,
    pub ppid: u32,
    /// Process start, CLOCK_BOOTTIME ns truncated to clock ticks (10 ms): the kernel's
    /// start_boottime cut to the precision /proc/PID/stat has, so processes found in /proc and
    /// seen by the kernel have the same identity (as Pixie's UPID does). Unique with the tgid:
    /// a pid is not reused within one tick.
    pub start_ns: u64,
    pub parent_start_ns: u64,
    pub uid: u32,
    pub cgroup_id: u64,
    pub comm: String,
    /// Exec: the path given to execve (bprm->filename).
    pub exe: String,
    /// Exec: the arguments, at most 1 KiB of them.
    pub argv: Vec<String>,
    pub argv_truncated: bool,
    /// Exit: the wait(2) status (exit code << 8, or the signal).
    pub exit_status: Option<i32>,
    /// From /proc/PID/cgroup, when the process runs in a container.
    pub container_id: Option<String>,
    /// From /proc/PID/cgroup, when the process runs in a Kubernetes pod.
    pub pod_uid: Option<String>,
}

/// A connection opening (connect/accept/first seen) or closing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionEvent {
    pub kind: ConnectionEventKind,
    pub id: ConnectionId,
    pub ts_ns: u64,
    pub tid: u32,
    pub role: Role,
    /// None when the socket was already gone (close after shutdown, exit).
    pub tuple: Option<SocketTuple>,
    /// The connection carried TLS (plaintext came from the SSL uprobes).
    pub tls: bool,
    /// Close: bytes of the socket stream per direction.
    pub bytes_egress: u64,
    pub bytes_ingress: u64,
}

/// Open or close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEventKind {
    Open,
    Close,
}

/// Captured bytes of one direction of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSegment {
    pub id: ConnectionId,
    pub ts_ns: u64,
    pub tid: u32,
    pub direction: Direction,
    /// Stream offset of `payload[0]`; TLS plaintext has its own stream, from 0.
    pub position: u64,
    /// Bytes the whole call moved (the original length); this segment is part of it.
    pub call_len: u64,
    /// Plaintext from the SSL uprobes.
    pub tls: bool,
    pub payload: Vec<u8>,
}

impl DataSegment {
    /// Payload bytes in this segment (the captured length).
    pub fn captured_len(&self) -> usize {
        self.payload.len()
    }
}

/// Why bytes were not captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapReason {
    /// The call moved more than the per-call cap.
    CallCap,
    /// Process memory could not be read.
    ReadFault,
    /// The ring buffer was full (found by a jump in stream positions).
    RingFull,
    /// A kernel reason this decoder does not know.
    Other(u8),
}

/// Bytes of a stream that were not captured, with their exact count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapSegment {
    pub id: ConnectionId,
    pub ts_ns: u64,
    pub direction: Direction,
    pub position: u64,
    pub len: u64,
    pub tls: bool,
    pub reason: GapReason,
}

/// Everything the probe reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeEvent {
    Process(ProcessEvent),
    Connection(ConnectionEvent),
    Data(DataSegment),
    Gap(GapSegment),
}

impl ProbeEvent {
    /// The process the event belongs to.
    pub fn tgid(&self) -> u32 {
        match self {
            ProbeEvent::Process(p) => p.tgid,
            ProbeEvent::Connection(c) => c.id.tgid,
            ProbeEvent::Data(d) => d.id.tgid,
            ProbeEvent::Gap(g) => g.id.tgid,
        }
    }
}

/// A ring-buffer record that could not be decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("kernel record of {len} bytes is shorter than the {need} bytes of its kind {kind}")]
    TooShort { kind: u32, len: usize, need: usize },
    #[error("kernel record has unknown kind {0}")]
    UnknownKind(u32),
    #[error("kernel record has unknown address family {0}")]
    UnknownFamily(u16),
    #[error("data record says {captured} payload bytes but carries {present}")]
    PayloadLength { captured: usize, present: usize },
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_le_bytes)
        .unwrap_or(0)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .unwrap_or(0)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// A NUL-terminated C string inside a fixed field, lossily as UTF-8.
fn cstr_at(b: &[u8], off: usize, len: usize) -> String {
    let field = b.get(off..off + len).unwrap_or(&[]);
    let end = field.iter().position(|&c| c == 0).unwrap_or(field.len());
    String::from_utf8_lossy(field.get(..end).unwrap_or(&[])).into_owned()
}

fn need(b: &[u8], kind: u32, n: usize) -> Result<(), DecodeError> {
    if b.len() < n {
        Err(DecodeError::TooShort { kind, len: b.len(), need: n })
    } else {
        Ok(())
    }
}

/// Decode one ring-buffer record.
pub fn decode(b: &[u8], node: &Arc<str>) -> Result<ProbeEvent, DecodeError> {
    let kind = u32_at(b, 0);
    need(b, kind, HEADER_LEN)?;
    match kind {
        EV_EXEC | EV_FORK | EV_EXIT => decode_proc(b, kind, node).map(ProbeEvent::Process),
        EV_CONN_OPEN | EV_CONN_CLOSE => decode_conn(b, kind, node).map(ProbeEvent::Connection),
        EV_DATA | EV_GAP => decode_data(b, kind, node),
        other => Err(DecodeError::UnknownKind(other)),
    }
}

/// Does a process record (EXEC, FORK, EXIT) say the kernel had its subject in the watched set
/// when it made the record (`cw_proc_event.watched`)? False for any other record. The reader
/// trusts this over a later look at the `watched` map, which the exit program has already
/// cleaned when a short-lived process is gone before its record is read.
pub fn proc_record_watched(b: &[u8]) -> bool {
    matches!(u32_at(b, 0), EV_EXEC | EV_FORK | EV_EXIT) && b.len() >= PROC_EVENT_LEN && u32_at(b, 68) != 0
}

fn decode_proc(b: &[u8], kind: u32, node: &Arc<str>) -> Result<ProcessEvent, DecodeError> {
    need(b, kind, PROC_EVENT_LEN)?;
    let argv_len = (u32_at(b, 60) as usize).min(1024);
    let argv_bytes = b.get(344..344 + argv_len).unwrap_or(&[]);
    let argv = split_argv(argv_bytes);
    Ok(ProcessEvent {
        kind: match kind {
            EV_EXEC => ProcessEventKind::Exec,
            EV_FORK => ProcessEventKind::Fork,
            _ => ProcessEventKind::Exit,
        },
        node: node.clone(),
        ts_ns: u64_at(b, 16),
        tgid: u32_at(b, 4),
        tid: u32_at(b, 8),
        ppid: u32_at(b, 24),
        uid: u32_at(b, 28),
        start_ns: to_tick_ns(u64_at(b, 32)),
        parent_start_ns: to_tick_ns(u64_at(b, 40)),
        cgroup_id: u64_at(b, 48),
        exit_status: (kind == EV_EXIT).then(|| u32_at(b, 56) as i32),
        argv_truncated: u32_at(b, 64) != 0,
        comm: cstr_at(b, 72, 16),
        exe: cstr_at(b, 88, 256),
        argv,
        container_id: None,
        pod_uid: None,
    })
}

/// Nanoseconds per clock tick (sysconf(_SC_CLK_TCK), 100 Hz on Linux).
pub fn clock_tick_ns() -> u64 {
    static TICK: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICK.get_or_init(|| {
        // SAFETY: sysconf has no memory-safety preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if hz > 0 { 1_000_000_000 / hz as u64 } else { 10_000_000 }
    })
}

/// A kernel boot-time timestamp cut to whole clock ticks, like /proc/PID/stat's starttime.
pub fn to_tick_ns(ns: u64) -> u64 {
    let tick = clock_tick_ns().max(1);
    ns - ns % tick
}

/// argv as the kernel keeps it: NUL-separated, maybe cut in the middle.
pub fn split_argv(bytes: &[u8]) -> Vec<String> {
    let trimmed = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed
        .split(|&c| c == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

fn addr(family: u16, raw: &[u8], port: u16) -> Result<SocketAddr, DecodeError> {
    let ip = match family {
        2 => {
            let o: [u8; 4] = raw.get(..4).and_then(|s| s.try_into().ok()).unwrap_or([0; 4]);
            IpAddr::V4(Ipv4Addr::from(o))
        }
        10 => {
            let o: [u8; 16] = raw.get(..16).and_then(|s| s.try_into().ok()).unwrap_or([0; 16]);
            IpAddr::V6(Ipv6Addr::from(o))
        }
        f => return Err(DecodeError::UnknownFamily(f)),
    };
    Ok(SocketAddr::new(ip, port))
}

fn decode_conn(b: &[u8], kind: u32, node: &Arc<str>) -> Result<ConnectionEvent, DecodeError> {
    need(b, kind, CONN_EVENT_LEN)?;
    let family = u16_at(b, 28);
    let tuple = if family == 0 {
        None
    } else {
        Some(SocketTuple {
            local: addr(family, b.get(40..56).unwrap_or(&[]), u16_at(b, 72))?,
            remote: addr(family, b.get(56..72).unwrap_or(&[]), u16_at(b, 74))?,
        })
    };
    Ok(ConnectionEvent {
        kind: if kind == EV_CONN_OPEN { ConnectionEventKind::Open } else { ConnectionEventKind::Close },
        id: ConnectionId { node: node.clone(), tgid: u32_at(b, 4), fd: u32_at(b, 24) as i32, start_ns: u64_at(b, 32) },
        ts_ns: u64_at(b, 16),
        tid: u32_at(b, 8),
        role: match u16_at(b, 30) {
            1 => Role::Client,
            2 => Role::Server,
            _ => Role::Unknown,
        },
        tuple,
        tls: u32_at(b, 76) != 0,
        bytes_egress: u64_at(b, 80),
        bytes_ingress: u64_at(b, 88),
    })
}

fn decode_data(b: &[u8], kind: u32, node: &Arc<str>) -> Result<ProbeEvent, DecodeError> {
    need(b, kind, DATA_EVENT_LEN)?;
    let id = ConnectionId { node: node.clone(), tgid: u32_at(b, 4), fd: u32_at(b, 24) as i32, start_ns: u64_at(b, 32) };
    let direction = if b.get(28).copied().unwrap_or(0) == 0 { Direction::Egress } else { Direction::Ingress };
    let tls = b.get(29).copied().unwrap_or(0) != 0;
    let position = u64_at(b, 40);
    let call_len = u64_at(b, 48);
    if kind == EV_GAP {
        return Ok(ProbeEvent::Gap(GapSegment {
            id,
            ts_ns: u64_at(b, 16),
            direction,
            position,
            len: u64_at(b, 64),
            tls,
            reason: match b.get(30).copied().unwrap_or(0) {
                1 => GapReason::CallCap,
                2 => GapReason::ReadFault,
                r => GapReason::Other(r),
            },
        }));
    }
    let captured = u32_at(b, 56) as usize;
    let payload = b
        .get(DATA_EVENT_LEN..DATA_EVENT_LEN.saturating_add(captured))
        .ok_or(DecodeError::PayloadLength { captured, present: b.len().saturating_sub(DATA_EVENT_LEN) })?;
    Ok(ProbeEvent::Data(DataSegment {
        id,
        ts_ns: u64_at(b, 16),
        tid: u32_at(b, 8),
        direction,
        position,
        call_len,
        tls,
        payload: payload.to_vec(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u32, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        b[0..4].copy_from_slice(&kind.to_le_bytes());
        b[4..8].copy_from_slice(&1234u32.to_le_bytes());
        b[8..12].copy_from_slice(&1235u32.to_le_bytes());
        b[16..24].copy_from_slice(&99u64.to_le_bytes());
        b
    }

    #[test]
    fn decodes_a_data_record() {
        let mut b = header(EV_DATA, DATA_EVENT_LEN);
        b[24..28].copy_from_slice(&7i32.to_le_bytes());
        b[28] = 1;
        b[32..40].copy_from_slice(&5u64.to_le_bytes());
        b[40..48].copy_from_slice(&100u64.to_le_bytes());
        b[48..56].copy_from_slice(&3u64.to_le_bytes());
        b[56..60].copy_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(b"abc");
        let node: Arc<str> = Arc::from("n1");
        let ProbeEvent::Data(d) = decode(&b, &node).unwrap() else { panic!("not data") };
        assert_eq!(d.id, ConnectionId { node, tgid: 1234, fd: 7, start_ns: 5 });
        assert_eq!((d.direction, d.position, d.call_len, d.payload.as_slice()), (Direction::Ingress, 100, 3, &b"abc"[..]));
    }

    #[test]
    fn payload_longer_than_record_is_an_error() {
        let mut b = header(EV_DATA, DATA_EVENT_LEN);
        b[56..60].copy_from_slice(&10u32.to_le_bytes());
        assert!(matches!(decode(&b, &Arc::from("n")), Err(DecodeError::PayloadLength { .. })));
    }

    #[test]
    fn decodes_an_ipv4_connection() {
        let mut b = header(EV_CONN_OPEN, CONN_EVENT_LEN);
        b[28..30].copy_from_slice(&2u16.to_le_bytes());
        b[30..32].copy_from_slice(&1u16.to_le_bytes());
        b[40..44].copy_from_slice(&[127, 0, 0, 1]);
        b[56..60].copy_from_slice(&[10, 0, 0, 2]);
        b[72..74].copy_from_slice(&40000u16.to_le_bytes());
        b[74..76].copy_from_slice(&443u16.to_le_bytes());
        let ProbeEvent::Connection(c) = decode(&b, &Arc::from("n")).unwrap() else { panic!("not conn") };
        let t = c.tuple.unwrap();
        assert_eq!(t.local, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(t.remote, "10.0.0.2:443".parse().unwrap());
        assert_eq!(c.role, Role::Client);
    }

    #[test]
    fn argv_split_handles_truncation() {
        assert_eq!(split_argv(b"sh\0-c\0echo hi\0"), vec!["sh", "-c", "echo hi"]);
        assert_eq!(split_argv(b"python3\0-c\0pri"), vec!["python3", "-c", "pri"]);
        assert!(split_argv(b"").is_empty());
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics_on_arbitrary_records(kind in 0u32..10, rest in proptest::collection::vec(proptest::num::u8::ANY, 0..1500)) {
            let mut b = kind.to_le_bytes().to_vec();
            b.extend(rest);
            let _ = decode(&b, &Arc::from("n"));
        }

        #[test]
        fn data_payload_is_exactly_the_captured_length(n in 0usize..64, extra in 0usize..8) {
            let mut b = header(EV_DATA, DATA_EVENT_LEN);
            b[56..60].copy_from_slice(&(n as u32).to_le_bytes());
            b.extend(std::iter::repeat_n(7u8, n + extra));
            let ProbeEvent::Data(d) = decode(&b, &Arc::from("n")).unwrap() else { panic!("not data") };
            proptest::prop_assert_eq!(d.payload.len(), n);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let node: Arc<str> = Arc::from("n");
        // every kind, every length up to past the largest record
        for kind in 0..9u32 {
            for len in 0..PROC_EVENT_LEN + 8 {
                let mut b = vec![0xffu8; len];
                if len >= 4 {
                    b[0..4].copy_from_slice(&kind.to_le_bytes());
                }
                let _ = decode(&b, &node);
            }
        }
    }
}
