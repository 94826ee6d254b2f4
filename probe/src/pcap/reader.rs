//! The streaming pcap source: capture file -> link layer -> IP/TCP -> connection table, as an
//! iterator of `PcapEvent`s that holds only the open connections' bounded state in memory.

use std::collections::VecDeque;
use std::io::Read;

use super::capture_file::CaptureFile;
use super::config::PcapConfig;
use super::connection_table::ConnectionTable;
use super::error::PcapError;
use super::events::{PcapEvent, PcapStats};
use super::link_layer::{LinkPayload, decode_link};
use super::tcp_segment::{IpDecode, decode_ip};

/// Reads a pcap or pcapng capture from any `Read` and yields connection events in capture
/// order.
///
/// After an `Err` (truncated or corrupt file) the reader still yields the `ConnectionClosed`
/// (`EndOfCapture`) events of the connections open at that point, then ends; callers that want
/// all-or-nothing stop at the first error.
pub struct PcapReader<R: Read> {
    file: CaptureFile<R>,
    table: ConnectionTable,
    stats: PcapStats,
    queue: VecDeque<PcapEvent>,
    batch: Vec<PcapEvent>,
    done: bool,
}

impl<R: Read> PcapReader<R> {
    /// Reads the file header. `source_name` names the capture in errors (e.g. its path).
    pub fn new(input: R, source_name: &str, config: PcapConfig) -> Result<Self, PcapError> {
        let file = CaptureFile::open(input, source_name, config.read_buffer_bytes)?;
        Ok(PcapReader {
            file,
            table: ConnectionTable::new(config),
            stats: PcapStats::default(),
            queue: VecDeque::new(),
            batch: Vec::new(),
            done: false,
        })
    }

    /// Counters so far (final once the iterator has ended).
    pub fn stats(&self) -> &PcapStats {
        &self.stats
    }

    fn finish(&mut self) {
        self.done = true;
        self.batch.clear();
        self.table.finish(&mut self.stats, &mut self.batch);
        self.queue.extend(self.batch.drain(..));
    }

    /// Reads one packet record; false at the end of the capture.
    fn read_one(&mut self) -> Result<bool, PcapError> {
        let stats = &mut self.stats;
        let Some(frame) = self.file.next_frame(stats)? else {
            return Ok(false);
        };
        stats.packets += 1;
        self.batch.clear();
        match decode_link(frame.linktype, frame.data) {
            LinkPayload::Ip(packet) => match decode_ip(packet) {
                IpDecode::Tcp(segment) => {
                    stats.tcp_segments += 1;
                    self.table
                        .on_segment(&segment, frame.ts_ns, stats, &mut self.batch);
                }
                IpDecode::TcpTruncated(segment) => {
                    stats.tcp_segments += 1;
                    stats.truncated += 1;
                    self.table
                        .on_segment(&segment, frame.ts_ns, stats, &mut self.batch);
                }
                IpDecode::NotTcp => stats.non_tcp += 1,
                IpDecode::Fragment => stats.ip_fragments += 1,
                IpDecode::HeaderTruncated => stats.truncated += 1,
                IpDecode::Malformed => stats.malformed += 1,
            },
            LinkPayload::NotIp => stats.non_tcp += 1,
            LinkPayload::Malformed => stats.malformed += 1,
            LinkPayload::UnsupportedLinkType => stats.unsupported_link_type += 1,
        }
        self.queue.extend(self.batch.drain(..));
        Ok(true)
    }
}

impl<R: Read> Iterator for PcapReader<R> {
    type Item = Result<PcapEvent, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            match self.read_one() {
                Ok(true) => {}
                Ok(false) => self.finish(),
                Err(error) => {
                    self.finish();
                    return Some(Err(error));
                }
            }
        }
    }
}
