//! `Http2Connection`: a convenience driver owning one bounded buffer and one frame parser per
//! direction plus the stitcher, for the connection FSM and benches. Feed bytes, report gaps,
//! flush at the end; every cap hit is counted.

use super::config::Http2Config;
use super::exchange::Http2Exchange;
use super::parser::{FrameParserStats, Http2FrameParser};
use super::stitcher::{Http2Stitcher, StitcherStats};
use crate::protocols::parsed::{Direction, FrameParser, Parsed, Stitcher};

/// Counters of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Http2ConnectionStats {
    /// Bytes fed per direction (client to server, server to client).
    pub bytes_fed: [u64; 2],
    /// Gaps reported and bytes lost in them.
    pub gaps: u64,
    pub gap_bytes: u64,
    /// Times a direction's buffer was full with no whole frame in it; it was then dropped and
    /// the parser resynchronised (as after a gap).
    pub buffer_cap_hits: u64,
    /// Bytes dropped by those cap hits.
    pub buffer_dropped_bytes: u64,
    /// Frame parser counters per direction.
    pub parser: [FrameParserStats; 2],
    /// Stitcher counters.
    pub stitcher: StitcherStats,
}

/// One HTTP/2 connection seen from the outside.
#[derive(Debug)]
pub struct Http2Connection {
    buffers: [Vec<u8>; 2],
    parsers: [Http2FrameParser; 2],
    stitcher: Http2Stitcher,
    buffer_cap: usize,
    /// Timestamp of the last bytes fed per direction (used for frames parsed at flush).
    last_ts: [u64; 2],
    stats: Http2ConnectionStats,
}

fn slot(dir: Direction) -> usize {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

impl Http2Connection {
    /// A connection with these bounds.
    pub fn new(config: Http2Config) -> Self {
        let parser = if config.from_connection_start {
            Http2FrameParser::at_connection_start(config.max_frame_size)
        } else {
            Http2FrameParser::new(config.max_frame_size)
        };
        Http2Connection {
            buffers: [Vec::new(), Vec::new()],
            parsers: [parser.clone(), parser],
            buffer_cap: config.effective_buffer_bytes(),
            stitcher: Http2Stitcher::new(config),
            last_ts: [0; 2],
            stats: Http2ConnectionStats::default(),
        }
    }

    /// Feed bytes of one direction observed at `ts_ns`; returns the exchanges they completed.
    pub fn feed(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64) -> Vec<Http2Exchange> {
        let s = slot(dir);
        self.stats.bytes_fed[s] += bytes.len() as u64;
        self.last_ts[s] = ts_ns;
        let mut out = Vec::new();
        let mut rest = bytes;
        loop {
            let room = self.buffer_cap.saturating_sub(self.buffers[s].len());
            let (now, later) = rest.split_at(room.min(rest.len()));
            rest = later;
            if self.buffers[s].is_empty() {
                // Nothing buffered: parse the caller's bytes in place and keep only the
                // unparsed tail (saves copying every frame once).
                let used = self.parse_run(dir, now, ts_ns, &mut out);
                self.buffers[s].extend_from_slice(now.get(used..).unwrap_or_default());
            } else {
                self.buffers[s].extend_from_slice(now);
                self.drain(dir, ts_ns, &mut out);
            }
            if rest.is_empty() {
                break;
            }
            if self.buffers[s].len() >= self.buffer_cap {
                // Full and still no whole frame: drop it all and hunt for a frame again.
                self.stats.buffer_cap_hits += 1;
                self.stats.buffer_dropped_bytes += self.buffers[s].len() as u64;
                self.buffers[s].clear();
                self.parsers[s].resync();
                self.stitcher.gap(dir);
            }
        }
        out
    }

    /// Parse every whole frame at the front of a direction's buffer.
    fn drain(&mut self, dir: Direction, ts_ns: u64, out: &mut Vec<Http2Exchange>) {
        let s = slot(dir);
        // Taken out so the parse loop can read it while the parser and stitcher change.
        let mut buffer = std::mem::take(&mut self.buffers[s]);
        let used = self.parse_run(dir, &buffer, ts_ns, out);
        buffer.drain(..used);
        self.buffers[s] = buffer;
    }

    /// Parse every whole frame at the front of `buf`; returns the bytes used.
    fn parse_run(
        &mut self,
        dir: Direction,
        buf: &[u8],
        ts_ns: u64,
        out: &mut Vec<Http2Exchange>,
    ) -> usize {
        let s = slot(dir);
        let mut start = 0usize;
        loop {
            let rest = buf.get(start..).unwrap_or_default();
            match self.parsers[s].parse(rest) {
                Parsed::Frame { frame, consumed } => {
                    start += consumed.max(1);
                    out.extend(self.stitcher.push(dir, frame, ts_ns));
                }
                Parsed::Invalid { skip } => start += skip.max(1),
                Parsed::NeedMore => break,
            }
            if start >= buf.len() {
                break;
            }
        }
        start.min(buf.len())
    }

    /// `len` bytes of `dir` were lost: drop the partial frame, hunt for the next plausible
    /// frame header, and treat that direction's HPACK context as out of sync.
    pub fn gap(&mut self, dir: Direction, len: u64) {
        let s = slot(dir);
        self.stats.gaps += 1;
        self.stats.gap_bytes += len;
        self.buffers[s].clear();
        self.parsers[s].resync();
        self.stitcher.gap(dir);
    }

    /// Connection end: open streams come out as partial exchanges.
    /// Frames still waiting in the buffers (a hunted frame with nothing after it) are parsed
    /// first, client direction then server direction.
    pub fn flush(&mut self) -> Vec<Http2Exchange> {
        let mut out = Vec::new();
        for dir in [Direction::ClientToServer, Direction::ServerToClient] {
            let s = slot(dir);
            self.parsers[s].set_end_of_stream();
            self.drain(dir, self.last_ts[s], &mut out);
            self.buffers[s].clear();
        }
        out.extend(self.stitcher.flush());
        out
    }

    /// Counters.
    pub fn stats(&self) -> Http2ConnectionStats {
        let mut stats = self.stats;
        stats.parser = [self.parsers[0].stats(), self.parsers[1].stats()];
        stats.stitcher = self.stitcher.stats();
        stats
    }

    /// Bytes currently buffered per direction.
    pub fn buffered(&self) -> [usize; 2] {
        [self.buffers[0].len(), self.buffers[1].len()]
    }

    /// The stitcher (for inspection: open streams, HPACK decoders).
    pub fn stitcher(&self) -> &Http2Stitcher {
        &self.stitcher
    }
}
