//! Stitches the frames of both directions into `Http2Exchange`s: header blocks assembled across
//! CONTINUATION and decoded by one HPACK decoder per direction, streams multiplexed by id,
//! bodies kept up to a cap, END_STREAM / RST_STREAM / GOAWAY / server push followed.
//!
//! Bounds: open streams (oldest evicted as partial), header block bytes, header list size,
//! body bytes per stream; every bound hit is counted in `StitcherStats`.

use std::collections::{BTreeMap, VecDeque};

use super::config::Http2Config;
use super::exchange::{HeaderField, Http2Exchange};
use super::frame::Http2Frame;
use super::hpack::{DecodedBlock, HpackDecoder, HpackLimits};
use crate::protocols::parsed::{Direction, Stitcher};

/// Counters of the stitcher; every bound hit shows up here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StitcherStats {
    /// Header blocks decoded (HEADERS or PUSH_PROMISE plus CONTINUATIONs).
    pub header_blocks: u64,
    /// Header blocks that could not be decoded completely.
    pub header_blocks_incomplete: u64,
    /// Header blocks that were malformed (the HPACK context was then forgotten).
    pub hpack_errors: u64,
    /// Header blocks whose decoded list exceeded `max_header_list_size`.
    pub header_lists_truncated: u64,
    /// Header blocks larger than `max_header_block_bytes`, dropped.
    pub header_block_overflows: u64,
    /// CONTINUATION frames that did not follow their block, or blocks cut by another frame.
    pub continuation_errors: u64,
    /// Streams evicted by the open-stream bound.
    pub streams_evicted: u64,
    /// Bodies that exceeded their cap.
    pub bodies_truncated: u64,
    pub rst_streams: u64,
    pub goaways: u64,
    pub pushes: u64,
    /// 1xx interim responses skipped.
    pub informational_responses: u64,
    /// Frames on streams already emitted (late DATA, trailers after RST...), ignored.
    pub frames_on_closed_streams: u64,
    /// Gaps (lost bytes) reported.
    pub gaps: u64,
    /// Exchanges emitted.
    pub exchanges: u64,
}

/// What a header block is for.
#[derive(Debug, Clone, Copy)]
enum BlockKind {
    Headers { end_stream: bool },
    PushPromise { promised_stream_id: u32 },
}

/// The first frame of a header block (HEADERS or PUSH_PROMISE).
struct FirstFragment {
    stream_id: u32,
    kind: BlockKind,
    fragment: Vec<u8>,
    end_headers: bool,
}

/// A header block waiting for its CONTINUATIONs.
#[derive(Debug)]
struct PendingBlock {
    stream_id: u32,
    kind: BlockKind,
    bytes: Vec<u8>,
    overflow: bool,
}

/// An open stream.
#[derive(Debug)]
struct StreamState {
    exchange: Http2Exchange,
    request_seen: bool,
    response_seen: bool,
    response_ended: bool,
    /// Creation order, for evicting the oldest.
    order: u64,
}

/// Frames of both directions in, exchanges out.
#[derive(Debug)]
pub struct Http2Stitcher {
    config: Http2Config,
    decoders: [HpackDecoder; 2],
    blocks_seen: [u64; 2],
    pending: [Option<PendingBlock>; 2],
    streams: BTreeMap<u32, StreamState>,
    next_order: u64,
    closed: VecDeque<u32>,
    stats: StitcherStats,
}

fn slot(dir: Direction) -> usize {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

impl Http2Stitcher {
    /// A stitcher with these bounds.
    pub fn new(config: Http2Config) -> Self {
        let decoder = Self::fresh_decoder(&config, config.from_connection_start);
        Http2Stitcher {
            decoders: [decoder.clone(), decoder],
            blocks_seen: [0; 2],
            pending: [None, None],
            streams: BTreeMap::new(),
            next_order: 0,
            closed: VecDeque::new(),
            stats: StitcherStats::default(),
            config,
        }
    }

    fn fresh_decoder(config: &Http2Config, synced: bool) -> HpackDecoder {
        let limits = HpackLimits {
            max_table_size: config.max_dynamic_table_size,
            max_header_list_size: config.max_header_list_size,
        };
        if synced {
            HpackDecoder::new(limits)
        } else {
            HpackDecoder::new_mid_connection(limits)
        }
    }

    /// Counters.
    pub fn stats(&self) -> StitcherStats {
        self.stats
    }

    /// Number of streams currently open.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// The HPACK decoder of one direction (for inspection).
    pub fn decoder(&self, dir: Direction) -> &HpackDecoder {
        &self.decoders[slot(dir)]
    }

    /// Bytes were lost in `dir`: the header block in progress is gone, the HPACK context of
    /// that direction may have missed insertions, and any open stream may have lost data.
    pub fn gap(&mut self, dir: Direction) {
        self.stats.gaps += 1;
        let s = slot(dir);
        if let Some(p) = self.pending[s].take() {
            self.stats.header_blocks_incomplete += 1;
            if let Some(st) = self.streams.get_mut(&p.stream_id) {
                st.exchange.flags.headers_incomplete = true;
            }
        }
        self.decoders[s].desync();
        for st in self.streams.values_mut() {
            st.exchange.flags.partial = true;
        }
    }

    /// Connection end: every open stream is emitted as partial, oldest stream id first.
    pub fn flush(&mut self) -> Vec<Http2Exchange> {
        for s in 0..2 {
            if let Some(p) = self.pending[s].take() {
                self.stats.header_blocks_incomplete += 1;
                if let Some(st) = self.streams.get_mut(&p.stream_id) {
                    st.exchange.flags.headers_incomplete = true;
                }
            }
        }
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(ex) = self.close(id, true) {
                out.push(ex);
            }
        }
        out
    }

    fn is_closed(&self, stream_id: u32) -> bool {
        self.closed.contains(&stream_id)
    }

    /// Remove a stream and produce its exchange.
    fn close(&mut self, stream_id: u32, unfinished: bool) -> Option<Http2Exchange> {
        let st = self.streams.remove(&stream_id)?;
        let mut ex = st.exchange;
        if unfinished || (!st.request_seen && !ex.flags.pushed) {
            ex.flags.partial = true;
        }
        if self.config.remembered_closed_streams > 0 {
            if self.closed.len() >= self.config.remembered_closed_streams {
                self.closed.pop_front();
            }
            self.closed.push_back(stream_id);
        }
        self.stats.exchanges += 1;
        Some(ex)
    }

    /// The stream's state, created if new (evicting the oldest stream when at the bound).
    fn stream(
        &mut self,
        stream_id: u32,
        ts_ns: u64,
        out: &mut Vec<Http2Exchange>,
    ) -> &mut StreamState {
        if !self.streams.contains_key(&stream_id) {
            while self.streams.len() >= self.config.max_open_streams.max(1) {
                let oldest = self
                    .streams
                    .iter()
                    .min_by_key(|(_, s)| s.order)
                    .map(|(id, _)| *id);
                let Some(oldest) = oldest else { break };
                self.stats.streams_evicted += 1;
                if let Some(mut ex) = self.close(oldest, true) {
                    ex.flags.evicted = true;
                    out.push(ex);
                }
            }
            self.next_order += 1;
        }
        let order = self.next_order;
        let st = self
            .streams
            .entry(stream_id)
            .or_insert_with(|| StreamState::new(stream_id, ts_ns, order));
        st.exchange.end_ts_ns = st.exchange.end_ts_ns.max(ts_ns);
        st
    }

    fn on_data(
        &mut self,
        dir: Direction,
        stream_id: u32,
        end_stream: bool,
        data: &[u8],
        ts_ns: u64,
        out: &mut Vec<Http2Exchange>,
    ) {
        if self.is_closed(stream_id) {
            self.stats.frames_on_closed_streams += 1;
            return;
        }
        let (req_cap, resp_cap) = (
            self.config.max_request_body_bytes,
            self.config.max_response_body_bytes,
        );
        let st = self.stream(stream_id, ts_ns, out);
        let ex = &mut st.exchange;
        let (body, size, cap) = match dir {
            Direction::ClientToServer => (&mut ex.request_body, &mut ex.request_body_size, req_cap),
            Direction::ServerToClient => {
                (&mut ex.response_body, &mut ex.response_body_size, resp_cap)
            }
        };
        *size += data.len() as u64;
        if dir == Direction::ServerToClient && !data.is_empty() && ex.response_first_ts_ns.is_none() {
            ex.response_first_ts_ns = Some(ts_ns);
        }
        let room = cap.saturating_sub(body.len());
        let newly_truncated = data.len() > room && !ex.flags.truncated;
        body.extend_from_slice(data.get(..data.len().min(room)).unwrap_or_default());
        if data.len() > room {
            ex.flags.truncated = true;
        }
        let response_end = end_stream && dir == Direction::ServerToClient;
        if response_end {
            st.response_ended = true;
        }
        if newly_truncated {
            self.stats.bodies_truncated += 1;
        }
        if response_end && let Some(ex) = self.close(stream_id, false) {
            out.push(ex);
        }
    }

    fn start_block(
        &mut self,
        dir: Direction,
        first: FirstFragment,
        ts_ns: u64,
        out: &mut Vec<Http2Exchange>,
    ) {
        let FirstFragment {
            stream_id,
            kind,
            fragment,
            end_headers,
        } = first;
        if matches!(kind, BlockKind::Headers { .. }) && !self.is_closed(stream_id) {
            // The stream exists from its first HEADERS frame, so a block that never finishes
            // still leaves a (flagged) exchange behind.
            self.stream(stream_id, ts_ns, out);
        }
        let overflow = fragment.len() > self.config.max_header_block_bytes;
        let bytes = if overflow { Vec::new() } else { fragment };
        let block = PendingBlock {
            stream_id,
            kind,
            bytes,
            overflow,
        };
        if end_headers {
            self.finish_block(dir, block, ts_ns, out);
        } else {
            self.pending[slot(dir)] = Some(block);
        }
    }

    fn on_continuation(
        &mut self,
        dir: Direction,
        stream_id: u32,
        end_headers: bool,
        fragment: &[u8],
        ts_ns: u64,
        out: &mut Vec<Http2Exchange>,
    ) {
        let s = slot(dir);
        let Some(mut block) = self.pending[s].take() else {
            self.stats.continuation_errors += 1;
            return;
        };
        if block.stream_id != stream_id {
            self.broken_block(dir, block);
            self.stats.continuation_errors += 1;
            return;
        }
        if !block.overflow {
            if block.bytes.len() + fragment.len() > self.config.max_header_block_bytes {
                block.overflow = true;
                block.bytes = Vec::new();
            } else {
                block.bytes.extend_from_slice(fragment);
            }
        }
        if end_headers {
            self.finish_block(dir, block, ts_ns, out);
        } else {
            self.pending[s] = Some(block);
        }
    }

    /// A header block that will never be finished: its table updates are lost.
    fn broken_block(&mut self, dir: Direction, block: PendingBlock) {
        self.stats.header_blocks_incomplete += 1;
        self.decoders[slot(dir)].desync();
        if let Some(st) = self.streams.get_mut(&block.stream_id) {
            st.exchange.flags.headers_incomplete = true;
        }
    }

    fn finish_block(
        &mut self,
        dir: Direction,
        block: PendingBlock,
        ts_ns: u64,
        out: &mut Vec<Http2Exchange>,
    ) {
        let s = slot(dir);
        if block.stream_id == 1 && self.blocks_seen[s] == 0 && !self.decoders[s].is_synced() {
            // The first header block of each direction belongs to stream 1 only at the
            // connection start, when both HPACK tables are still empty.
            self.decoders[s] = Self::fresh_decoder(&self.config, true);
        }
        self.blocks_seen[s] += 1;
        self.stats.header_blocks += 1;
        let encoded_len = block.bytes.len() as u64;
        let decoded = if block.overflow {
            self.stats.header_block_overflows += 1;
            self.decoders[s].desync();
            DecodedBlock {
                incomplete: true,
                ..Default::default()
            }
        } else {
            self.decoders[s].decode(&block.bytes)
        };
        if decoded.incomplete {
            self.stats.header_blocks_incomplete += 1;
        }
        if decoded.error.is_some() {
            self.stats.hpack_errors += 1;
        }
        if decoded.list_truncated {
            self.stats.header_lists_truncated += 1;
        }
        let headers_incomplete = decoded.incomplete || decoded.list_truncated;
        match block.kind {
            BlockKind::PushPromise { promised_stream_id } => {
                if self.is_closed(promised_stream_id) {
                    self.stats.frames_on_closed_streams += 1;
                    return;
                }
                self.stats.pushes += 1;
                let st = self.stream(promised_stream_id, ts_ns, out);
                st.request_seen = true;
                let ex = &mut st.exchange;
                ex.flags.pushed = true;
                ex.promised_on_stream = Some(block.stream_id);
                ex.flags.headers_incomplete |= headers_incomplete;
                ex.request_header_bytes += encoded_len;
                apply_request_headers(ex, &decoded);
            }
            BlockKind::Headers { end_stream } => {
                if self.is_closed(block.stream_id) {
                    self.stats.frames_on_closed_streams += 1;
                    return;
                }
                let mut informational = false;
                let st = self.stream(block.stream_id, ts_ns, out);
                let ex = &mut st.exchange;
                ex.flags.headers_incomplete |= headers_incomplete;
                match dir {
                    Direction::ClientToServer => {
                        ex.request_header_bytes += encoded_len;
                        if st.request_seen {
                            ex.request_trailers.extend(fields(&decoded, false));
                        } else {
                            st.request_seen = true;
                            apply_request_headers(ex, &decoded);
                        }
                    }
                    Direction::ServerToClient => {
                        ex.response_header_bytes += encoded_len;
                        let status = status_of(&decoded);
                        if st.response_seen {
                            ex.response_trailers.extend(fields(&decoded, false));
                        } else if status.is_some_and(|c| (100..200).contains(&c)) && !end_stream {
                            informational = true;
                        } else {
                            st.response_seen = true;
                            ex.status = status;
                            ex.response_headers = fields(&decoded, true).collect();
                        }
                        if end_stream {
                            st.response_ended = true;
                        }
                    }
                }
                if informational {
                    self.stats.informational_responses += 1;
                }
                if end_stream
                    && dir == Direction::ServerToClient
                    && let Some(ex) = self.close(block.stream_id, false)
                {
                    out.push(ex);
                }
            }
        }
    }

    fn on_rst_stream(
        &mut self,
        stream_id: u32,
        error_code: u32,
        ts_ns: u64,
        out: &mut Vec<Http2Exchange>,
    ) {
        self.stats.rst_streams += 1;
        if let Some(st) = self.streams.get_mut(&stream_id) {
            st.exchange.flags.reset = true;
            st.exchange.reset_error_code = Some(error_code);
            st.exchange.end_ts_ns = st.exchange.end_ts_ns.max(ts_ns);
            if let Some(ex) = self.close(stream_id, false) {
                out.push(ex);
            }
        }
    }

    fn on_goaway(
        &mut self,
        dir: Direction,
        last_stream_id: u32,
        error_code: u32,
        ts_ns: u64,
        out: &mut Vec<Http2Exchange>,
    ) {
        self.stats.goaways += 1;
        // Streams started by the receiver of the GOAWAY, above last_stream_id, were never
        // processed. Clients start odd streams, servers (push) even ones.
        let receiver_parity = match dir {
            Direction::ServerToClient => 1,
            Direction::ClientToServer => 0,
        };
        let refused: Vec<u32> = self
            .streams
            .keys()
            .copied()
            .filter(|&id| id > last_stream_id && id % 2 == receiver_parity)
            .collect();
        for id in refused {
            if let Some(st) = self.streams.get_mut(&id) {
                st.exchange.flags.reset = true;
                st.exchange.reset_error_code = Some(error_code);
                st.exchange.end_ts_ns = st.exchange.end_ts_ns.max(ts_ns);
            }
            if let Some(ex) = self.close(id, false) {
                out.push(ex);
            }
        }
    }
}

impl StreamState {
    fn new(stream_id: u32, ts_ns: u64, order: u64) -> Self {
        let exchange = Http2Exchange {
            stream_id,
            start_ts_ns: ts_ns,
            end_ts_ns: ts_ns,
            ..Default::default()
        };
        StreamState {
            exchange,
            request_seen: false,
            response_seen: false,
            response_ended: false,
            order,
        }
    }
}

/// Header fields of a block as kept in an exchange; pseudo-headers dropped when `skip_pseudo`
/// (they were copied into the exchange's own fields).
fn fields(decoded: &DecodedBlock, skip_pseudo: bool) -> impl Iterator<Item = HeaderField> + '_ {
    const KNOWN_PSEUDO: [&[u8]; 5] = [b":method", b":scheme", b":authority", b":path", b":status"];
    decoded
        .fields
        .iter()
        .filter(move |f| !(skip_pseudo && KNOWN_PSEUDO.contains(&f.name.as_slice())))
        .map(|f| HeaderField::from_wire(&f.name, &f.value))
}

fn pseudo(decoded: &DecodedBlock, name: &[u8]) -> Option<String> {
    decoded
        .fields
        .iter()
        .find(|f| f.name == name)
        .map(|f| String::from_utf8_lossy(&f.value).into_owned())
}

fn status_of(decoded: &DecodedBlock) -> Option<u16> {
    pseudo(decoded, b":status").and_then(|s| s.parse().ok())
}

fn apply_request_headers(ex: &mut Http2Exchange, decoded: &DecodedBlock) {
    ex.method = pseudo(decoded, b":method");
    ex.scheme = pseudo(decoded, b":scheme");
    ex.authority = pseudo(decoded, b":authority");
    ex.path = pseudo(decoded, b":path");
    ex.request_headers = fields(decoded, true).collect();
}

impl Stitcher for Http2Stitcher {
    type Frame = Http2Frame;
    type Exchange = Http2Exchange;

    fn push(&mut self, dir: Direction, frame: Http2Frame, ts_ns: u64) -> Vec<Http2Exchange> {
        let mut out = Vec::new();
        let s = slot(dir);
        if self.pending[s].is_some() {
            let continues = matches!(&frame, Http2Frame::Continuation { stream_id, .. }
                if self.pending[s].as_ref().is_some_and(|p| p.stream_id == *stream_id));
            if !continues && !matches!(frame, Http2Frame::Continuation { .. }) {
                // RFC 9113 section 6.10: nothing may come between a block and its CONTINUATIONs.
                if let Some(block) = self.pending[s].take() {
                    self.stats.continuation_errors += 1;
                    self.broken_block(dir, block);
                }
            }
        }
        match frame {
            Http2Frame::Preface => {
                if self.blocks_seen == [0, 0] {
                    // We saw the connection start: both HPACK tables are known to be empty.
                    self.decoders = [
                        Self::fresh_decoder(&self.config, true),
                        Self::fresh_decoder(&self.config, true),
                    ];
                }
            }
            Http2Frame::Data {
                stream_id,
                end_stream,
                data,
                ..
            } => {
                self.on_data(dir, stream_id, end_stream, &data, ts_ns, &mut out);
            }
            Http2Frame::Headers {
                stream_id,
                end_stream,
                end_headers,
                fragment,
                ..
            } => {
                let kind = BlockKind::Headers { end_stream };
                self.start_block(
                    dir,
                    FirstFragment {
                        stream_id,
                        kind,
                        fragment,
                        end_headers,
                    },
                    ts_ns,
                    &mut out,
                );
            }
            Http2Frame::PushPromise {
                stream_id,
                end_headers,
                promised_stream_id,
                fragment,
            } => {
                let kind = BlockKind::PushPromise { promised_stream_id };
                self.start_block(
                    dir,
                    FirstFragment {
                        stream_id,
                        kind,
                        fragment,
                        end_headers,
                    },
                    ts_ns,
                    &mut out,
                );
            }
            Http2Frame::Continuation {
                stream_id,
                end_headers,
                fragment,
            } => {
                self.on_continuation(dir, stream_id, end_headers, &fragment, ts_ns, &mut out);
            }
            Http2Frame::RstStream {
                stream_id,
                error_code,
            } => {
                self.on_rst_stream(stream_id, error_code, ts_ns, &mut out);
            }
            Http2Frame::GoAway {
                last_stream_id,
                error_code,
                ..
            } => {
                self.on_goaway(dir, last_stream_id, error_code, ts_ns, &mut out);
            }
            Http2Frame::Settings { .. }
            | Http2Frame::Ping { .. }
            | Http2Frame::WindowUpdate { .. }
            | Http2Frame::Priority { .. }
            | Http2Frame::Unknown { .. } => {}
        }
        out
    }
}
