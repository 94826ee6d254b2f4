//! pcap source: replays pcap/pcapng captures as per-connection, per-direction TCP byte streams
//! (the same shape the eBPF probe produces), with explicit gaps for bytes not in the capture.
//!
//! Pipeline, one file per stage: `capture_file` (pcap/pcapng records via pcap-parser) ->
//! `link_layer` (Ethernet+VLAN, SLL, SLL2, NULL/LOOP, raw IP) -> `tcp_segment` (IPv4/IPv6/TCP
//! headers) -> `connection_table` (connections, eviction, FIN/RST) -> `stream_reassembler`
//! (sequence numbers to ordered bytes). `reader` ties them into a streaming iterator.
//!
//! Choices:
//! - IP fragments are counted (`PcapStats::ip_fragments`) and skipped, not reassembled.
//! - Only TCP is reassembled; everything else is counted in `non_tcp`.
//! - The client is the SYN sender (or the receiver of a SYN-ACK). When the capture starts
//!   mid-connection, the client is the side with the higher (ephemeral) port, and on equal
//!   ports the sender of the first captured segment.
//! - A direction's stream starts at its SYN's ISN + 1, or at the first segment seen (bytes
//!   before that are not in the capture and are not reported as a gap: their length is unknown).
//! - Retransmitted/overlapping bytes: the first copy wins; differing copies are counted.
//! - Bytes cut by the snap length become a `Gap` at their exact position.
//! - A hole that is never filled becomes a `Gap` of exact length (when the connection closes,
//!   is evicted, the capture ends, or the out-of-order buffer overflows) and delivery goes on
//!   after it. (tshark's `follow,tcp` instead stops at the first unfilled hole.)
//! - A connection closed by FIN/RST stays in the table until evicted: late ACKs, retransmitted
//!   SYNs (same ISN) and stray segments belong to it (payload counted in
//!   `segments_after_close`); a SYN with a new ISN on the same 4-tuple opens a new connection.

mod capture_file;
mod config;
mod connection_table;
mod error;
mod events;
mod link_layer;
mod reader;
pub mod records;
mod stream_reassembler;
mod tcp_segment;

use std::fs::File;
use std::path::Path;

pub use config::PcapConfig;
pub use error::PcapError;
pub use events::{CloseReason, PcapEvent, PcapStats, StreamDirection, TcpConnKey};
pub use reader::PcapReader;

/// Reads a whole capture file into memory as events. For large captures iterate a
/// [`PcapReader`] instead.
pub fn read_pcap_file(
    path: &Path,
    config: &PcapConfig,
) -> Result<(Vec<PcapEvent>, PcapStats), PcapError> {
    let source_name = path.display().to_string();
    let file = File::open(path).map_err(|error| PcapError::Io {
        source_name: source_name.clone(),
        error,
    })?;
    let mut reader = PcapReader::new(file, &source_name, config.clone())?;
    let mut events = Vec::new();
    for event in reader.by_ref() {
        events.push(event?);
    }
    Ok((events, reader.stats().clone()))
}
