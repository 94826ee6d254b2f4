//! Limits of the pcap source: every per-connection buffer and the connection table are bounded.

/// Caps and timeouts of the pcap source. Hitting any of them is counted in `PcapStats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcapConfig {
    /// Open (and recently closed) connections kept at once; the least recently active one is
    /// evicted when a new connection would exceed this.
    pub max_connections: usize,
    /// A connection with no packet for this long (capture time) is evicted.
    pub idle_timeout_ns: u64,
    /// Out-of-order bytes buffered per direction; on overflow the first hole becomes a gap.
    pub max_out_of_order_bytes: usize,
    /// Out-of-order segments buffered per direction (bounds bookkeeping for tiny segments).
    pub max_out_of_order_segments: usize,
    /// Bytes of already-delivered stream kept per direction to detect retransmissions whose
    /// bytes differ from the first copy (`overlap_conflicts`). 0 disables that check.
    pub conflict_check_window: usize,
    /// Read buffer of the capture file reader; one pcap record / pcapng block must fit.
    pub read_buffer_bytes: usize,
}

impl Default for PcapConfig {
    fn default() -> Self {
        PcapConfig {
            max_connections: 65_536,
            idle_timeout_ns: 300 * 1_000_000_000,
            max_out_of_order_bytes: 1 << 20,
            max_out_of_order_segments: 4096,
            conflict_check_window: 2048,
            read_buffer_bytes: 4 << 20,
        }
    }
}
