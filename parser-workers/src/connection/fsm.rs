//! `ConnectionFsm`: one per connection. Maps record directions to client/server, detects the
//! protocol once by content, then drives that protocol's connection driver; capture gaps and
//! stream-offset discontinuities become `gap(dir, len)`, connection end flushes.

use std::collections::VecDeque;
use std::sync::Arc;

use chainwatch_config::ParserConfig;
use chainwatch_schemas::{ConnRole, Direction as SegmentDirection, RawSegment, SegmentKind};

use super::detect::{DetectedProtocol, SideEvidence, find_http1_boundary, side_evidence};
use super::exchange::{ConnectionMeta, ParsedExchange, ProtocolExchange, TlsHandshake};
use crate::protocols::Direction;
use crate::protocols::grpc::{DescriptorRegistry, GrpcCall, decode_grpc_call, is_grpc_content_type};
use crate::protocols::http1::{Http1Config, Http1Connection};
use crate::protocols::http2::{HeaderField, Http2Config, Http2Connection, Http2Exchange};
use crate::protocols::postgres::{PgConfig, PgConnection};
use crate::protocols::tls::{TlsHello, TlsHelloSniffer};

/// Client-to-server segment positions remembered for event-id anchors.
const ANCHOR_RING: usize = 256;
/// Held bytes at which the first mid-stream scan runs; the next at twice as many.
const FIRST_SCAN_AT: usize = 4096;

/// Bounds of one connection FSM (the protocol drivers carry their own).
#[derive(Debug, Clone)]
pub struct FsmConfig {
    /// Bytes held (both sides together) while the protocol is not yet known; past it detection
    /// gives up and the connection is counted as undetected.
    pub max_detect_bytes: usize,
    pub http1: Http1Config,
    pub http2: Http2Config,
    pub postgres: PgConfig,
}

impl Default for FsmConfig {
    fn default() -> Self {
        FsmConfig {
            max_detect_bytes: 64 * 1024,
            http1: Http1Config::default(),
            http2: Http2Config::default(),
            postgres: PgConfig::default(),
        }
    }
}

impl FsmConfig {
    /// The drivers' buffer and body caps taken from the deployment's `[parser]` section.
    pub fn from_parser_config(cfg: &ParserConfig) -> Self {
        let mut out = FsmConfig::default();
        out.http1.buffer_cap = cfg.max_buffer_bytes.max(1);
        out.http1.body_cap = cfg.max_body_bytes;
        out.http2.max_buffer_bytes = cfg.max_buffer_bytes.max(1);
        out.http2.max_request_body_bytes = cfg.max_body_bytes;
        out.http2.max_response_body_bytes = cfg.max_body_bytes;
        out
    }
}

/// Counters of one connection FSM (the driver's own counters are in its `stats()`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsmStats {
    pub segments: u64,
    pub bytes: u64,
    /// GAP segments, and stream-offset jumps treated as gaps, with the bytes they lost.
    pub gaps: u64,
    pub offset_discontinuities: u64,
    pub gap_bytes: u64,
    /// Bytes at offsets already seen (retransmitted or replayed), dropped.
    pub overlap_bytes: u64,
    /// Bytes held for detection and dropped because a gap cut them.
    pub detect_dropped_bytes: u64,
    /// Detection gave up (no protocol recognised within `max_detect_bytes`).
    pub undetected: bool,
    /// Bytes not parsed: ciphertext after a TLS hello, or a connection whose protocol is unknown.
    pub opaque_bytes: u64,
    pub exchanges: u64,
}

/// The protocol state a connection is in.
#[derive(Debug)]
enum Driver {
    Detecting,
    Http1(Box<Http1Connection>),
    Http2(Box<Http2Connection>),
    Postgres(Box<PgConnection>),
    Tls(Box<TlsState>),
    Unknown,
}

#[derive(Debug, Default)]
struct TlsState {
    client: TlsHelloSniffer,
    server: TlsHelloSniffer,
    client_hello: Option<(TlsHello, u64)>,
    emitted: bool,
}

/// Bytes held while detecting, in arrival order.
#[derive(Debug)]
struct HeldChunk {
    side: usize,
    bytes: Vec<u8>,
    ts_ns: u64,
    offset: u64,
}

/// One connection's finite-state machine.
#[derive(Debug)]
pub struct ConnectionFsm {
    meta: ConnectionMeta,
    config: Arc<FsmConfig>,
    registry: Arc<DescriptorRegistry>,
    /// Which record side (0 = EGRESS, 1 = INGRESS) is the client, once known.
    client_side: Option<usize>,
    driver: Driver,
    protocol: Option<DetectedProtocol>,
    held: Vec<HeldChunk>,
    held_bytes: usize,
    /// Held bytes at which the next mid-stream scan runs.
    next_scan_at: usize,
    /// Next expected stream offset per record side.
    next_offset: [Option<u64>; 2],
    /// (timestamp, stream offset) of recent client-to-server segments.
    anchors: VecDeque<(u64, u64)>,
    last_anchor: Option<(u64, u32)>,
    last_ts_ns: u64,
    /// PostgreSQL switched to TLS and its handshake was emitted.
    pg_tls_emitted: bool,
    stats: FsmStats,
}

fn side_of(dir: SegmentDirection) -> usize {
    match dir {
        SegmentDirection::Egress => 0,
        SegmentDirection::Ingress => 1,
    }
}

impl ConnectionFsm {
    /// A connection FSM for `meta`; a CLIENT role makes EGRESS client-to-server, SERVER makes
    /// INGRESS client-to-server, UNKNOWN leaves it to the content.
    pub fn new(meta: ConnectionMeta, config: Arc<FsmConfig>, registry: Arc<DescriptorRegistry>) -> Self {
        let client_side = match meta.role {
            ConnRole::Client => Some(0),
            ConnRole::Server => Some(1),
            ConnRole::Unknown => None,
        };
        ConnectionFsm {
            meta,
            config,
            registry,
            client_side,
            driver: Driver::Detecting,
            protocol: None,
            held: Vec::new(),
            held_bytes: 0,
            next_scan_at: FIRST_SCAN_AT,
            next_offset: [None; 2],
            anchors: VecDeque::new(),
            last_anchor: None,
            last_ts_ns: 0,
            pg_tls_emitted: false,
            stats: FsmStats::default(),
        }
    }

    /// The connection's identity.
    pub fn meta(&self) -> &ConnectionMeta {
        &self.meta
    }

    /// The protocol detected, if any yet.
    pub fn protocol(&self) -> Option<DetectedProtocol> {
        self.protocol
    }

    /// Whether the EGRESS side is the client (`None` while unknown).
    pub fn egress_is_client(&self) -> Option<bool> {
        self.client_side.map(|s| s == 0)
    }

    /// Counters so far.
    pub fn stats(&self) -> FsmStats {
        self.stats
    }

    /// A record of this connection (e.g. its CONNECT) was seen at `ts_ns`: it is active.
    pub fn note_activity(&mut self, ts_ns: u64) {
        self.last_ts_ns = self.last_ts_ns.max(ts_ns);
    }

    /// Timestamp of the last record seen.
    pub fn last_ts_ns(&self) -> u64 {
        self.last_ts_ns
    }

    /// Take one raw segment (DATA or GAP) of this connection.
    pub fn on_segment(&mut self, seg: &RawSegment) -> Vec<ParsedExchange> {
        let side = side_of(seg.direction);
        let ts = u64::try_from(seg.ts_ns).unwrap_or(0);
        let offset = u64::try_from(seg.stream_offset).unwrap_or(0);
        self.stats.segments += 1;
        self.last_ts_ns = self.last_ts_ns.max(ts);
        let mut out = Vec::new();
        // A jump forward in the stream is bytes the capture never delivered.
        let expected = self.next_offset[side].unwrap_or(offset);
        if offset > expected {
            self.stats.offset_discontinuities += 1;
            self.lost(side, offset - expected, &mut out);
        }
        match seg.kind {
            SegmentKind::Gap => {
                let len = u64::try_from(seg.original_len).unwrap_or(0);
                let skip = expected.saturating_sub(offset).min(len);
                self.stats.overlap_bytes += skip;
                if len > skip {
                    self.lost(side, len - skip, &mut out);
                }
                self.advance(side, offset.saturating_add(len));
            }
            SegmentKind::Data => {
                let already = usize::try_from(expected.saturating_sub(offset)).unwrap_or(usize::MAX);
                let payload = seg.payload.get(already..).unwrap_or(&[]);
                self.stats.overlap_bytes += (seg.payload.len() - payload.len()) as u64;
                let start = offset.max(expected);
                if !payload.is_empty() {
                    self.stats.bytes += payload.len() as u64;
                    self.take_bytes(side, payload, ts, start, &mut out);
                }
                // A call that moved more than was captured: the rest is a gap.
                let moved = u64::try_from(seg.original_len)
                    .unwrap_or(0)
                    .max(seg.payload.len() as u64);
                let end = offset.saturating_add(moved);
                let captured_end = offset.saturating_add(seg.payload.len() as u64);
                let lost = end.saturating_sub(captured_end.max(expected));
                if lost > 0 {
                    self.lost(side, lost, &mut out);
                }
                self.advance(side, end);
            }
        }
        out
    }

    /// Connection end (CLOSE, eviction, end of capture): everything pending comes out.
    pub fn flush(&mut self) -> Vec<ParsedExchange> {
        let mut out = Vec::new();
        if matches!(self.driver, Driver::Detecting) {
            match self.scan_mid_stream() {
                Some((protocol, client_side)) => self.start(protocol, client_side, &mut out),
                None => self.give_up_detection(),
            }
        }
        let exchanges: Vec<ProtocolExchange> = match &mut self.driver {
            Driver::Http1(c) => c.flush().into_iter().map(|e| ProtocolExchange::Http1(Box::new(e))).collect(),
            Driver::Http2(c) => {
                let ex = c.flush();
                ex.into_iter().map(|e| http2_exchange(e, &self.registry)).collect()
            }
            Driver::Postgres(c) => {
                let mut ex: Vec<ProtocolExchange> =
                    c.flush().into_iter().map(|e| ProtocolExchange::Postgres(Box::new(e))).collect();
                ex.extend(pg_tls(c, &mut self.pg_tls_emitted, true, self.last_ts_ns));
                ex
            }
            Driver::Tls(t) => tls_emit(t).into_iter().collect(),
            Driver::Detecting | Driver::Unknown => Vec::new(),
        };
        self.wrap(exchanges, &mut out);
        out
    }

    fn advance(&mut self, side: usize, end: u64) {
        let next = self.next_offset[side].map_or(end, |n| n.max(end));
        self.next_offset[side] = Some(next);
    }

    /// `len` bytes of `side` were lost.
    fn lost(&mut self, side: usize, len: u64, out: &mut Vec<ParsedExchange>) {
        if len == 0 {
            return;
        }
        self.stats.gaps += 1;
        self.stats.gap_bytes += len;
        if matches!(self.driver, Driver::Detecting) {
            // Held bytes of that side no longer continue into what follows.
            let mut dropped = 0usize;
            self.held.retain(|c| {
                let keep = c.side != side;
                if !keep {
                    dropped += c.bytes.len();
                }
                keep
            });
            self.held_bytes -= dropped;
            self.stats.detect_dropped_bytes += dropped as u64;
            return;
        }
        let Some(dir) = self.direction(side) else {
            return;
        };
        let exchanges: Vec<ProtocolExchange> = match &mut self.driver {
            Driver::Http1(c) => c.gap(dir, len).into_iter().map(|e| ProtocolExchange::Http1(Box::new(e))).collect(),
            Driver::Http2(c) => {
                c.gap(dir, len);
                Vec::new()
            }
            Driver::Postgres(c) => {
                c.gap(dir, len);
                Vec::new()
            }
            Driver::Tls(_) | Driver::Detecting | Driver::Unknown => Vec::new(),
        };
        self.wrap(exchanges, out);
    }

    fn direction(&self, side: usize) -> Option<Direction> {
        self.client_side.map(|c| {
            if c == side {
                Direction::ClientToServer
            } else {
                Direction::ServerToClient
            }
        })
    }

    fn take_bytes(&mut self, side: usize, bytes: &[u8], ts: u64, offset: u64, out: &mut Vec<ParsedExchange>) {
        if !matches!(self.driver, Driver::Detecting) {
            if let Some(dir) = self.direction(side) {
                self.drive(dir, bytes, ts, offset, out);
            }
            return;
        }
        self.held.push(HeldChunk {
            side,
            bytes: bytes.to_vec(),
            ts_ns: ts,
            offset,
        });
        self.held_bytes += bytes.len();
        let mut found = self.detect();
        let over = self.held_bytes > self.config.max_detect_bytes;
        if found.is_none() && (self.held_bytes >= self.next_scan_at || over) {
            self.next_scan_at = self.next_scan_at.saturating_mul(2);
            found = self.scan_mid_stream();
        }
        if let Some((protocol, client_side)) = found {
            self.start(protocol, client_side, out);
        } else if over {
            self.give_up_detection();
        }
    }

    /// The first bytes each side sent, up to the detection bound.
    fn side_prefix(&self, side: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        for c in self.held.iter().filter(|c| c.side == side) {
            buf.extend_from_slice(&c.bytes);
        }
        buf
    }

    /// (protocol, client side) when the held bytes say.
    fn detect(&self) -> Option<(DetectedProtocol, usize)> {
        let order = match self.client_side {
            Some(1) => [1, 0],
            _ => [0, 1],
        };
        for side in order {
            let prefix = self.side_prefix(side);
            let Some(evidence) = side_evidence(&prefix) else {
                continue;
            };
            let (protocol, client) = match evidence {
                SideEvidence::Client(p) => (p, side),
                // HTTP/2 frames can come from either side: they do not name the client.
                SideEvidence::Server(DetectedProtocol::Http2) => {
                    (DetectedProtocol::Http2, self.client_side.unwrap_or(0))
                }
                SideEvidence::Server(p) => (p, 1 - side),
            };
            match self.client_side {
                // The capture said who the client is; content that contradicts it is ignored.
                Some(c) if c != client => continue,
                _ => return Some((protocol, client)),
            }
        }
        None
    }

    /// Joined mid-stream: an HTTP/1 message boundary inside the held bytes (the driver skips
    /// the bytes before it as garbage, counted in its stats).
    fn scan_mid_stream(&self) -> Option<(DetectedProtocol, usize)> {
        for side in [0, 1] {
            let client = match find_http1_boundary(&self.side_prefix(side)) {
                Some(SideEvidence::Client(_)) => side,
                Some(SideEvidence::Server(_)) => 1 - side,
                None => continue,
            };
            if self.client_side.is_none_or(|c| c == client) {
                return Some((DetectedProtocol::Http1, client));
            }
        }
        None
    }

    fn give_up_detection(&mut self) {
        self.stats.undetected = true;
        self.stats.opaque_bytes += self.held_bytes as u64;
        self.held.clear();
        self.held_bytes = 0;
        self.driver = Driver::Unknown;
    }

    fn start(&mut self, protocol: DetectedProtocol, client_side: usize, out: &mut Vec<ParsedExchange>) {
        self.protocol = Some(protocol);
        self.client_side = Some(client_side);
        let from_start = self
            .held
            .iter()
            .find(|c| c.side == client_side)
            .is_some_and(|c| c.offset == 0);
        self.driver = match protocol {
            DetectedProtocol::Http1 => Driver::Http1(Box::new(Http1Connection::new(self.config.http1))),
            DetectedProtocol::Http2 => {
                let mut cfg = self.config.http2.clone();
                cfg.from_connection_start = from_start && self.side_prefix(client_side).starts_with(b"PRI ");
                Driver::Http2(Box::new(Http2Connection::new(cfg)))
            }
            DetectedProtocol::Postgres => Driver::Postgres(Box::new(PgConnection::new(self.config.postgres.clone()))),
            DetectedProtocol::Tls => Driver::Tls(Box::default()),
        };
        let held = std::mem::take(&mut self.held);
        self.held_bytes = 0;
        for chunk in held {
            if let Some(dir) = self.direction(chunk.side) {
                self.drive(dir, &chunk.bytes, chunk.ts_ns, chunk.offset, out);
            }
        }
    }

    fn drive(&mut self, dir: Direction, bytes: &[u8], ts: u64, offset: u64, out: &mut Vec<ParsedExchange>) {
        if dir == Direction::ClientToServer && self.anchors.back().is_none_or(|&(t, _)| t != ts) {
            if self.anchors.len() >= ANCHOR_RING {
                self.anchors.pop_front();
            }
            self.anchors.push_back((ts, offset));
        }
        let exchanges: Vec<ProtocolExchange> = match &mut self.driver {
            Driver::Http1(c) => c.feed(dir, bytes, ts).into_iter().map(|e| ProtocolExchange::Http1(Box::new(e))).collect(),
            Driver::Http2(c) => {
                let ex = c.feed(dir, bytes, ts);
                ex.into_iter().map(|e| http2_exchange(e, &self.registry)).collect()
            }
            Driver::Postgres(c) => {
                let mut ex: Vec<ProtocolExchange> =
                    c.feed(dir, bytes, ts).into_iter().map(|e| ProtocolExchange::Postgres(Box::new(e))).collect();
                ex.extend(pg_tls(c, &mut self.pg_tls_emitted, false, ts));
                ex
            }
            Driver::Tls(t) => tls_feed(t, dir, bytes, ts, &mut self.stats),
            Driver::Unknown | Driver::Detecting => {
                self.stats.opaque_bytes += bytes.len() as u64;
                Vec::new()
            }
        };
        self.wrap(exchanges, out);
    }

    /// Attach identity and the event-id anchor to exchanges.
    fn wrap(&mut self, exchanges: Vec<ProtocolExchange>, out: &mut Vec<ParsedExchange>) {
        for exchange in exchanges {
            let (start, _) = exchange.timestamps();
            let request_offset = self.anchor_for(start);
            let rank = match self.last_anchor {
                Some((o, r)) if o == request_offset => r + 1,
                _ => 0,
            };
            self.last_anchor = Some((request_offset, rank));
            self.stats.exchanges += 1;
            let mut meta = self.meta.clone();
            if meta.role == ConnRole::Unknown {
                // Inferred from content: the watched process sends on EGRESS.
                meta.role = match self.client_side {
                    Some(0) => ConnRole::Client,
                    Some(_) => ConnRole::Server,
                    None => ConnRole::Unknown,
                };
            }
            out.push(ParsedExchange {
                meta,
                exchange,
                request_offset,
                rank_at_offset: rank,
            });
        }
    }

    /// The client stream offset of the first segment at the exchange's start time (segments
    /// split further keep their timestamp, so the anchor does not depend on the split).
    fn anchor_for(&self, start_ts: u64) -> u64 {
        if let Some(&(_, o)) = self.anchors.iter().find(|&&(t, _)| t == start_ts) {
            return o;
        }
        self.anchors
            .iter()
            .rev()
            .find(|&&(t, _)| t < start_ts)
            .map(|&(_, o)| o)
            .or_else(|| self.client_side.and_then(|c| self.next_offset[c]))
            .unwrap_or(0)
    }
}

/// Build the HTTP/2 exchange, decoding gRPC when the stream carries it.
fn http2_exchange(e: Http2Exchange, registry: &DescriptorRegistry) -> ProtocolExchange {
    let grpc = grpc_call(&e, registry).map(Box::new);
    ProtocolExchange::Http2(Box::new(e), grpc)
}

/// gRPC: content-type application/grpc*, or (headers not decodable) a grpc-status answer.
fn grpc_call(e: &Http2Exchange, registry: &DescriptorRegistry) -> Option<GrpcCall> {
    let content_type = e.request_header("content-type").or_else(|| e.response_header("content-type"));
    let is_grpc = content_type.is_some_and(is_grpc_content_type)
        || e.response_trailer("grpc-status").is_some()
        || e.response_header("grpc-status").is_some();
    if !is_grpc {
        return None;
    }
    let pairs = |fields: &[HeaderField]| -> Vec<(String, String)> {
        fields.iter().map(|f| (f.name.clone(), f.value.clone())).collect()
    };
    Some(decode_grpc_call(
        e.path.as_deref().unwrap_or(""),
        &pairs(&e.request_headers),
        &e.request_body,
        &pairs(&e.response_headers),
        &e.response_body,
        &pairs(&e.response_trailers),
        registry,
    ))
}

/// PostgreSQL after an accepted SSLRequest: its TLS handshake as an exchange of its own (the
/// destination's name), once the ServerHello came or at connection end.
fn pg_tls(c: &PgConnection, emitted: &mut bool, at_end: bool, ts: u64) -> Option<ProtocolExchange> {
    if *emitted {
        return None;
    }
    let client = c.tls_client_hello()?;
    let server = c.tls_server_hello();
    if server.is_none() && !at_end {
        return None;
    }
    *emitted = true;
    Some(ProtocolExchange::Tls(Box::new(TlsHandshake {
        client_hello: client.clone(),
        server_hello: server.cloned(),
        ts_ns: ts,
        client_bytes: 0,
    })))
}

/// TLS: note the ClientHello (and the ServerHello), then count ciphertext.
fn tls_feed(t: &mut TlsState, dir: Direction, bytes: &[u8], ts: u64, stats: &mut FsmStats) -> Vec<ProtocolExchange> {
    match dir {
        Direction::ClientToServer => {
            if t.client_hello.is_none() {
                if let Some(h) = t.client.feed(bytes) {
                    t.client_hello = Some((h.clone(), ts));
                }
            } else {
                stats.opaque_bytes += bytes.len() as u64;
            }
            Vec::new()
        }
        Direction::ServerToClient => {
            let before = t.server.hello().is_some();
            if before {
                stats.opaque_bytes += bytes.len() as u64;
            } else {
                t.server.feed(bytes);
            }
            if !before && t.server.hello().is_some() {
                return tls_emit(t).into_iter().collect();
            }
            Vec::new()
        }
    }
}

/// The handshake exchange, once (when the ServerHello came, or at connection end).
fn tls_emit(t: &mut TlsState) -> Option<ProtocolExchange> {
    if t.emitted {
        return None;
    }
    let (hello, ts) = t.client_hello.clone()?;
    t.emitted = true;
    Some(ProtocolExchange::Tls(Box::new(TlsHandshake {
        client_hello: hello,
        server_hello: t.server.hello().cloned(),
        ts_ns: ts,
        client_bytes: t.client.stats().bytes,
    })))
}
