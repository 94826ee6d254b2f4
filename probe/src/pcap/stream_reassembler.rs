//! Reassembly of one direction of one TCP connection: maps 32-bit sequence numbers (with
//! wrap-around) to 64-bit stream offsets, buffers out-of-order segments up to a cap, drops
//! retransmitted and overlapping bytes (the first copy wins; differing copies are counted as
//! conflicts) and releases bytes in order. A hole that is never filled is reported as a gap of
//! exact length when the buffer overflows or the connection is flushed.

use std::collections::{BTreeMap, VecDeque};

use super::config::PcapConfig;
use super::events::PcapStats;

/// A buffered piece of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunk {
    Data(Vec<u8>),
    /// Bytes the sender sent but the capture cut off (snap length).
    Missing(u64),
}

impl Chunk {
    fn len(&self) -> u64 {
        match self {
            Chunk::Data(d) => d.len() as u64,
            Chunk::Missing(n) => *n,
        }
    }
}

/// Stream bytes released in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Delivery {
    Data { offset: u64, bytes: Vec<u8> },
    Gap { offset: u64, len: u64 },
}

/// The part of a segment the reassembler needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentBytes<'a> {
    /// Sequence number of the first payload byte (after the SYN, if the segment carries one).
    pub seq: u32,
    /// Captured payload.
    pub payload: &'a [u8],
    /// Payload bytes after `payload` that the capture cut off.
    pub missing_tail: u32,
    /// The segment carries a FIN.
    pub fin: bool,
}

/// One direction of a TCP connection.
#[derive(Debug, Default)]
pub(crate) struct StreamReassembler {
    /// Sequence number of the next expected byte; `None` until the SYN or first segment.
    next_seq: Option<u32>,
    /// Stream offset of `next_seq`.
    next_offset: u64,
    /// ISN from the SYN, if one was seen.
    syn_isn: Option<u32>,
    /// Out-of-order pieces keyed by stream offset; never overlapping, all beyond `next_offset`.
    pending: BTreeMap<u64, Chunk>,
    pending_bytes: usize,
    /// The last delivered bytes (ending at `next_offset`) for the conflict check.
    recent: VecDeque<u8>,
    /// Stream offset of the FIN, once seen.
    fin_offset: Option<u64>,
    /// Cap of `recent`.
    conflict_window: usize,
}

impl StreamReassembler {
    /// `conflict_window`: how many delivered bytes to keep for the retransmission conflict check.
    pub fn new(conflict_window: usize) -> Self {
        StreamReassembler {
            conflict_window,
            ..StreamReassembler::default()
        }
    }

    /// The ISN of this direction's SYN, if one was seen.
    pub fn syn_isn(&self) -> Option<u32> {
        self.syn_isn
    }

    /// True once a FIN was seen and every byte before it was released.
    pub fn finished(&self) -> bool {
        self.fin_offset.is_some_and(|fin| fin <= self.next_offset)
    }

    pub fn fin_seen(&self) -> bool {
        self.fin_offset.is_some()
    }

    /// Records the SYN of this direction (the first SYN wins).
    pub fn on_syn(&mut self, isn: u32) {
        if self.next_seq.is_none() {
            self.syn_isn = Some(isn);
            self.next_seq = Some(isn.wrapping_add(1));
        }
    }

    /// Feeds one segment; appends the bytes (and gaps) it makes deliverable to `out`.
    pub fn on_segment(
        &mut self,
        segment: SegmentBytes<'_>,
        config: &PcapConfig,
        stats: &mut PcapStats,
        out: &mut Vec<Delivery>,
    ) {
        let SegmentBytes {
            seq,
            payload,
            missing_tail,
            fin,
        } = segment;
        let next_seq = *self.next_seq.get_or_insert(seq);
        // Signed distance handles sequence wrap-around: at most 2^31 ahead or behind.
        let relative = i64::from(seq.wrapping_sub(next_seq) as i32);
        let start = self.next_offset as i64 + relative;
        let total = payload.len() as i64 + i64::from(missing_tail);
        let end = start + total;
        if fin && self.fin_offset.is_none() && end >= 0 {
            self.fin_offset = Some(end as u64);
        }
        if total == 0 {
            return;
        }
        if end <= self.next_offset as i64 {
            stats.retransmitted_bytes += total as u64;
            self.check_delivered_overlap(start, payload, stats);
            return;
        }
        // Cut what was already delivered (or lies before the stream start).
        let mut data = payload;
        let mut missing = u64::from(missing_tail);
        let mut at = start;
        if at < self.next_offset as i64 {
            let cut = (self.next_offset as i64 - at) as u64;
            stats.retransmitted_bytes += cut;
            self.check_delivered_overlap(start, payload, stats);
            let cut_data = (cut as usize).min(data.len());
            data = data.get(cut_data..).unwrap_or(&[]);
            missing -= cut - cut_data as u64;
            at = self.next_offset as i64;
        }
        let at = at as u64;
        if at > self.next_offset {
            stats.out_of_order_segments += 1;
        }
        if !data.is_empty() {
            self.insert(at, Chunk::Data(data.to_vec()), stats);
        }
        if missing > 0 {
            self.insert(at + data.len() as u64, Chunk::Missing(missing), stats);
        }
        self.release(stats, out);
        if self.pending_bytes > config.max_out_of_order_bytes
            || self.pending.len() > config.max_out_of_order_segments
        {
            stats.out_of_order_cap_hits += 1;
            while self.pending_bytes > config.max_out_of_order_bytes
                || self.pending.len() > config.max_out_of_order_segments
            {
                if !self.skip_to_first_pending(stats, out) {
                    break;
                }
                self.release(stats, out);
            }
        }
    }

    /// Releases everything still buffered, with gaps for the holes, and a final gap up to the
    /// FIN if bytes before it never arrived. Used when the connection closes or is evicted.
    pub fn flush(&mut self, stats: &mut PcapStats, out: &mut Vec<Delivery>) {
        while self.skip_to_first_pending(stats, out) {
            self.release(stats, out);
        }
        if let Some(fin) = self.fin_offset
            && fin > self.next_offset
        {
            let len = fin - self.next_offset;
            self.emit_gap(len, stats, out);
        }
    }

    /// Frees the buffers of a closed connection; keeps the SYN's ISN so that a retransmitted
    /// SYN after the close is recognised as such.
    pub fn release_buffers(&mut self) {
        self.pending = BTreeMap::new();
        self.pending_bytes = 0;
        self.recent = VecDeque::new();
        self.conflict_window = 0;
    }

    /// Declares the hole before the first buffered piece a gap. False if nothing is buffered.
    fn skip_to_first_pending(&mut self, stats: &mut PcapStats, out: &mut Vec<Delivery>) -> bool {
        let Some((&first, _)) = self.pending.first_key_value() else {
            return false;
        };
        if first > self.next_offset {
            self.emit_gap(first - self.next_offset, stats, out);
        }
        true
    }

    fn emit_gap(&mut self, len: u64, stats: &mut PcapStats, out: &mut Vec<Delivery>) {
        stats.gaps += 1;
        stats.gap_bytes += len;
        out.push(Delivery::Gap {
            offset: self.next_offset,
            len,
        });
        self.advance(len);
        self.recent.clear();
    }

    fn advance(&mut self, len: u64) {
        self.next_offset += len;
        if let Some(seq) = self.next_seq.as_mut() {
            *seq = seq.wrapping_add(len as u32);
        }
    }

    /// Releases the buffered pieces that now continue the stream.
    fn release(&mut self, stats: &mut PcapStats, out: &mut Vec<Delivery>) {
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() != self.next_offset {
                break;
            }
            let chunk = entry.remove();
            match chunk {
                Chunk::Data(bytes) => {
                    self.pending_bytes -= bytes.len();
                    self.advance(bytes.len() as u64);
                    self.remember(&bytes);
                    match out.last_mut() {
                        Some(Delivery::Data {
                            offset,
                            bytes: prev,
                        }) if *offset + prev.len() as u64 + bytes.len() as u64
                            == self.next_offset =>
                        {
                            prev.extend_from_slice(&bytes);
                        }
                        _ => out.push(Delivery::Data {
                            offset: self.next_offset - bytes.len() as u64,
                            bytes,
                        }),
                    }
                }
                Chunk::Missing(len) => self.emit_gap(len, stats, out),
            }
        }
    }

    fn remember(&mut self, bytes: &[u8]) {
        if self.conflict_window == 0 {
            return;
        }
        let keep = bytes.len().min(self.conflict_window);
        let tail = bytes.get(bytes.len() - keep..).unwrap_or(&[]);
        self.recent.extend(tail.iter().copied());
        while self.recent.len() > self.conflict_window {
            self.recent.pop_front();
        }
    }

    /// Inserts `chunk` at `at` (>= next_offset), keeping only the parts no earlier copy covers.
    fn insert(&mut self, at: u64, chunk: Chunk, stats: &mut PcapStats) {
        let end = at + chunk.len();
        // Existing pieces that overlap [at, end): the one starting before `at`, and those inside.
        let mut covered: Vec<(u64, u64)> = Vec::new();
        if let Some((&k, c)) = self.pending.range(..at).next_back()
            && k + c.len() > at
        {
            covered.push((k, k + c.len()));
        }
        for (&k, c) in self.pending.range(at..end) {
            covered.push((k, k + c.len()));
        }
        // Compare overlapping data bytes (first copy wins; count differing copies).
        if let Chunk::Data(new) = &chunk {
            let mut conflict = false;
            for &(k, _) in &covered {
                if let Some(Chunk::Data(old)) = self.pending.get(&k) {
                    let lo = k.max(at);
                    let hi = (k + old.len() as u64).min(end);
                    let old_part = old.get((lo - k) as usize..(hi - k) as usize);
                    let new_part = new.get((lo - at) as usize..(hi - at) as usize);
                    if old_part != new_part {
                        conflict = true;
                    }
                }
            }
            if conflict {
                stats.overlap_conflicts += 1;
            }
        }
        let mut cursor = at;
        for (k, kend) in covered {
            if k > cursor {
                self.put(at, &chunk, cursor, k);
            }
            stats.retransmitted_bytes += kend.min(end).saturating_sub(k.max(at));
            cursor = cursor.max(kend);
        }
        if cursor < end {
            self.put(at, &chunk, cursor, end);
        }
    }

    /// Stores the part [from, to) of `chunk` (which starts at `at`).
    fn put(&mut self, at: u64, chunk: &Chunk, from: u64, to: u64) {
        let piece = match chunk {
            Chunk::Data(d) => {
                let Some(part) = d.get((from - at) as usize..(to - at) as usize) else {
                    return;
                };
                self.pending_bytes += part.len();
                Chunk::Data(part.to_vec())
            }
            Chunk::Missing(_) => Chunk::Missing(to - from),
        };
        self.pending.insert(from, piece);
    }

    /// Compares a retransmitted copy starting at stream offset `start` with the delivered bytes
    /// still kept in `recent`; counts one conflict if any overlapping byte differs.
    fn check_delivered_overlap(&self, start: i64, payload: &[u8], stats: &mut PcapStats) {
        let window_start = self.next_offset as i64 - self.recent.len() as i64;
        let lo = start.max(window_start);
        let hi = (start + payload.len() as i64).min(self.next_offset as i64);
        if lo >= hi {
            return;
        }
        let differs = (lo..hi).any(|pos| {
            let old = self.recent.get((pos - window_start) as usize);
            let new = payload.get((pos - start) as usize);
            old != new
        });
        if differs {
            stats.overlap_conflicts += 1;
        }
    }
}
