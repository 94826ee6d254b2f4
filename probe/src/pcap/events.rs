//! What the pcap source emits: connection keys, directions, events and counters.

use std::net::SocketAddr;

/// One TCP connection, normalised: the client is the SYN sender (or, when the capture starts
/// mid-connection, the side with the higher port; equal ports: the first sender).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TcpConnKey {
    pub client: SocketAddr,
    pub server: SocketAddr,
}

/// Which way bytes travelled within one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamDirection {
    ClientToServer,
    ServerToClient,
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// Both sides sent FIN and every byte up to both FINs was delivered (or reported as a gap).
    Fin,
    /// A RST was seen.
    Rst,
    /// Removed while still open: idle too long, the connection table was full, or a new SYN
    /// reused the same 4-tuple.
    Evicted,
    /// The capture ended while the connection was still open.
    EndOfCapture,
}

/// One event of the pcap source, in capture order.
///
/// `index` is a per-capture connection counter starting at 0, so two connections that reuse
/// the same 4-tuple are distinct. `ts_ns` is the packet timestamp (nanoseconds since the Unix
/// epoch) of the packet that made the event happen (for `Data`: the segment that made the
/// bytes deliverable in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PcapEvent {
    ConnectionOpened {
        conn: TcpConnKey,
        index: u64,
        ts_ns: u64,
        /// A SYN (or SYN-ACK) of this connection was in the capture.
        syn_seen: bool,
    },
    Data {
        conn: TcpConnKey,
        index: u64,
        dir: StreamDirection,
        /// Position of `bytes[0]` in this direction's stream (first payload byte = 0; gaps count).
        stream_offset: u64,
        ts_ns: u64,
        bytes: Vec<u8>,
    },
    /// `len` bytes of the stream exist but are not in the capture (lost, never retransmitted,
    /// cut by the snap length, or given up on when the out-of-order buffer overflowed).
    Gap {
        conn: TcpConnKey,
        index: u64,
        dir: StreamDirection,
        stream_offset: u64,
        len: u64,
        ts_ns: u64,
    },
    ConnectionClosed {
        conn: TcpConnKey,
        index: u64,
        ts_ns: u64,
        reason: CloseReason,
    },
}

impl PcapEvent {
    /// The connection index the event belongs to.
    pub fn index(&self) -> u64 {
        match self {
            PcapEvent::ConnectionOpened { index, .. }
            | PcapEvent::Data { index, .. }
            | PcapEvent::Gap { index, .. }
            | PcapEvent::ConnectionClosed { index, .. } => *index,
        }
    }
}

/// Counters of everything the pcap source skipped, repaired or gave up on. Nothing is dropped
/// without being counted here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PcapStats {
    /// Packet records read (all link types).
    pub packets: u64,
    /// TCP segments handed to reassembly.
    pub tcp_segments: u64,
    /// IP packets that are not TCP (UDP, ICMP, ...) and non-IP frames (ARP, LLDP, ...).
    pub non_tcp: u64,
    /// IPv4/IPv6 fragments: counted and skipped (not reassembled).
    pub ip_fragments: u64,
    /// Frames whose link, IP or TCP header did not parse.
    pub malformed: u64,
    /// Packets whose IP payload was cut by the snap length (the missing bytes become a gap,
    /// or the packet is skipped if the TCP header itself is cut).
    pub truncated: u64,
    /// Frames of a link type this reader does not decode.
    pub unsupported_link_type: u64,
    /// Segments that arrived ahead of the next expected byte and were buffered.
    pub out_of_order_segments: u64,
    /// Payload bytes that had already been received (retransmissions, overlaps).
    pub retransmitted_bytes: u64,
    /// Overlapping copies whose bytes differed from the first copy (the first copy wins).
    pub overlap_conflicts: u64,
    /// Gap events emitted, and their total length.
    pub gaps: u64,
    pub gap_bytes: u64,
    /// Times the per-direction out-of-order buffer overflowed and a hole was declared a gap.
    pub out_of_order_cap_hits: u64,
    /// Connections opened.
    pub connections: u64,
    /// Open connections evicted because they were idle longer than `idle_timeout_ns`.
    pub evicted_idle: u64,
    /// Connections evicted because the table was full (`max_connections`).
    pub evicted_capacity: u64,
    /// Open connections closed because a new SYN reused their 4-tuple.
    pub evicted_reused_tuple: u64,
    /// Segments carrying payload that arrived for a connection already closed by FIN/RST.
    pub segments_after_close: u64,
}

impl PcapStats {
    /// All evictions together.
    pub fn evictions(&self) -> u64 {
        self.evicted_idle + self.evicted_capacity + self.evicted_reused_tuple
    }
}
