//! `Http1Connection`: the convenience driver for one HTTP/1.x connection. It owns the two
//! bounded byte buffers (eviction counted), runs the request and response parsers, tells the
//! response parser which method each response answers, switches both sides off HTTP after a
//! 101 / CONNECT 2xx, and hands frames to the stitcher. A head the capture cut (a gap, the
//! connection end, or a response arriving while no request was read whole) comes out as a
//! partial exchange when its start line is whole.

use super::config::Http1Config;
use super::exchange::Http1Exchange;
use super::frame::Http1Frame;
use super::head::{MessageKind, StartCheck, start_check};
use super::parser::{ExpectedResponse, Http1RequestParser, Http1ResponseParser, SwitchVerdict};
use super::stitcher::Http1Stitcher;
use crate::protocols::parsed::{Direction, FrameParser, Parsed, Stitcher};

/// Counters of one connection. Every cap hit and every skipped byte shows up here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Http1Stats {
    /// Bytes fed, client to server.
    pub client_bytes: u64,
    /// Bytes fed, server to client.
    pub server_bytes: u64,
    /// Frames the parsers produced.
    pub frames: u64,
    /// `Invalid` results (garbage skipped to resynchronise) and the bytes they skipped.
    pub invalid_skips: u64,
    pub invalid_bytes: u64,
    /// Buffers evicted because a direction held more than `buffer_cap` unparsed bytes.
    pub buffer_evictions: u64,
    pub evicted_bytes: u64,
    /// Gaps reported by the capture, and their total length.
    pub gaps: u64,
    pub gap_bytes: u64,
    /// Bodies that hit the body cap.
    pub body_cap_hits: u64,
    /// Decoded bodies that hit the body cap (decompression bombs included).
    pub decode_cap_hits: u64,
    /// Bodies whose Content-Encoding could not be undone.
    pub decode_errors: u64,
    /// SSE lines or events cut at their size bound.
    pub sse_cap_hits: u64,
    /// Multipart bodies with more parts than kept.
    pub multipart_cap_hits: u64,
    /// Bad chunked framings.
    pub malformed_bodies: u64,
    /// Bytes after a protocol switch (WebSocket, CONNECT tunnel), not parsed.
    pub opaque_bytes: u64,
    /// Exchanges emitted.
    pub exchanges: u64,
    /// Responses without a request.
    pub orphan_responses: u64,
    /// Pipelined requests forgotten / pending exchanges evicted at the pipelining cap.
    pub evicted_requests: u64,
    /// Heads cut by the capture (no blank line came) reported from their whole lines.
    pub cut_heads: u64,
}

/// One direction's unparsed bytes: `bytes[start..]` is pending.
#[derive(Debug, Clone, Default)]
struct DirBuffer {
    bytes: Vec<u8>,
    start: usize,
}

impl DirBuffer {
    fn pending(&self) -> &[u8] {
        self.bytes.get(self.start..).unwrap_or_default()
    }
    fn len(&self) -> usize {
        self.bytes.len().saturating_sub(self.start)
    }
    fn advance(&mut self, n: usize) {
        self.start = self.start.saturating_add(n).min(self.bytes.len());
    }
    fn compact(&mut self) {
        if self.start > 0 {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
    }
    fn clear(&mut self) -> usize {
        let dropped = self.len();
        self.bytes.clear();
        self.start = 0;
        dropped
    }
}

/// One HTTP/1.x connection: feed it bytes of either direction, get exchanges back.
#[derive(Debug, Clone)]
pub struct Http1Connection {
    config: Http1Config,
    client: DirBuffer,
    server: DirBuffer,
    requests: Http1RequestParser,
    responses: Http1ResponseParser,
    stitcher: Http1Stitcher,
    stats: Http1Stats,
    upgraded: bool,
    last_ts_ns: u64,
    /// When client bytes last came (a cut request head starts its exchange then).
    client_ts_ns: u64,
    /// The buffered client bytes were no cut head when a response came (reset by client bytes).
    client_cut_refused: bool,
}

impl Http1Connection {
    pub fn new(config: Http1Config) -> Self {
        let limits = config.parser_limits();
        Self {
            config,
            client: DirBuffer::default(),
            server: DirBuffer::default(),
            requests: Http1RequestParser::new(limits),
            responses: Http1ResponseParser::new(limits),
            stitcher: Http1Stitcher::new(config),
            stats: Http1Stats::default(),
            upgraded: false,
            last_ts_ns: 0,
            client_ts_ns: 0,
            client_cut_refused: false,
        }
    }

    /// True once the connection switched protocols (WebSocket, h2c, CONNECT tunnel).
    pub fn upgraded(&self) -> bool {
        self.upgraded
    }

    /// Counters so far (parser, buffer and stitcher counters together).
    pub fn stats(&self) -> Http1Stats {
        let s = self.stitcher.stats();
        Http1Stats {
            body_cap_hits: s.body_cap_hits,
            decode_cap_hits: s.decode_cap_hits,
            decode_errors: s.decode_errors,
            sse_cap_hits: s.sse_cap_hits,
            multipart_cap_hits: s.multipart_cap_hits,
            exchanges: s.exchanges,
            orphan_responses: s.orphan_responses,
            evicted_requests: s.evicted_pending + self.responses.evicted_expectations,
            malformed_bodies: self.requests.malformed_bodies() + self.responses.malformed_bodies(),
            ..self.stats
        }
    }

    /// Feed bytes that travelled in `dir` at `ts_ns`; returns the exchanges they completed.
    pub fn feed(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64) -> Vec<Http1Exchange> {
        self.last_ts_ns = ts_ns;
        match dir {
            Direction::ClientToServer => {
                self.stats.client_bytes += bytes.len() as u64;
                self.client_ts_ns = ts_ns;
                self.client_cut_refused = false;
            }
            Direction::ServerToClient => self.stats.server_bytes += bytes.len() as u64,
        }
        let mut out = Vec::new();
        let mut rest = bytes;
        loop {
            let cap = self.config.buffer_cap.max(1);
            let buffer = self.buffer_mut(dir);
            let room = cap.saturating_sub(buffer.len());
            let take = room.min(rest.len());
            let (now, later) = rest.split_at(take);
            rest = later;
            if buffer.len() == 0 {
                // Nothing buffered: parse the caller's bytes in place and keep only the tail
                // the parser could not use yet (saves copying every body byte once).
                let consumed = self.parse_run(dir, now, ts_ns, &mut out);
                let buffer = self.buffer_mut(dir);
                buffer.clear();
                buffer
                    .bytes
                    .extend_from_slice(now.get(consumed..).unwrap_or_default());
            } else {
                buffer.compact();
                buffer.bytes.extend_from_slice(now);
                self.drain(dir, ts_ns, &mut out);
            }
            if rest.is_empty() {
                break;
            }
            if self.buffer_mut(dir).len() >= cap {
                // The parser cannot make progress with a full buffer: drop it (counted) and
                // resynchronise, as after a gap.
                let dropped = self.buffer_mut(dir).clear();
                self.stats.buffer_evictions += 1;
                self.stats.evicted_bytes += dropped as u64;
                self.lose(dir, dropped as u64, ts_ns, &mut out);
            }
        }
        out
    }

    /// `len` bytes of `dir` were lost by the capture. The buffered partial message is
    /// dropped; inside a sized body the loss is stepped over, elsewhere the parser
    /// resynchronises at the next message start. Returns exchanges this completed (a message
    /// cut by the gap ends incomplete).
    pub fn gap(&mut self, dir: Direction, len: u64) -> Vec<Http1Exchange> {
        self.stats.gaps += 1;
        self.stats.gap_bytes += len;
        let mut out = Vec::new();
        let ts = self.last_ts_ns;
        self.cut_head(dir, true, ts, &mut out);
        let dropped = self.buffer_mut(dir).clear() as u64;
        self.lose(dir, len + dropped, ts, &mut out);
        out
    }

    /// Connection end: until-close bodies end, everything still pending comes out (partial
    /// where a request or response is missing or cut).
    pub fn flush(&mut self) -> Vec<Http1Exchange> {
        let ts = self.last_ts_ns;
        let mut out = Vec::new();
        self.cut_head(Direction::ClientToServer, false, ts, &mut out);
        if let Some(frame) = self.requests.finish() {
            out.extend(self.stitcher.push(Direction::ClientToServer, frame, ts));
        }
        self.cut_head(Direction::ServerToClient, false, ts, &mut out);
        if let Some(frame) = self.responses.finish() {
            out.extend(self.stitcher.push(Direction::ServerToClient, frame, ts));
        }
        self.client.clear();
        self.server.clear();
        out.extend(self.stitcher.flush());
        out
    }

    fn buffer_mut(&mut self, dir: Direction) -> &mut DirBuffer {
        match dir {
            Direction::ClientToServer => &mut self.client,
            Direction::ServerToClient => &mut self.server,
        }
    }

    /// The head buffered for `dir` will never end: when its start line is whole, hand it (with
    /// its whole header lines) to the stitcher as a message that ended incomplete, marked as
    /// hit by a gap when `lost`, and drop the buffered bytes. A request is timed by the last
    /// client bytes, as a whole head is. Returns whether there was such a head.
    fn cut_head(
        &mut self,
        dir: Direction,
        lost: bool,
        ts_ns: u64,
        out: &mut Vec<Http1Exchange>,
    ) -> bool {
        let frames = match dir {
            Direction::ClientToServer if self.client.len() > 0 => {
                self.requests.cut_head(self.client.pending())
            }
            Direction::ServerToClient if self.server.len() > 0 => {
                self.responses.cut_head(self.server.pending())
            }
            _ => None,
        };
        let Some([head, end]) = frames else {
            return false;
        };
        let ts_ns = match dir {
            Direction::ClientToServer => self.client_ts_ns,
            Direction::ServerToClient => ts_ns,
        };
        self.buffer_mut(dir).clear();
        self.stats.cut_heads += 1;
        if let Http1Frame::Request(request) = &head {
            self.responses.expect(ExpectedResponse {
                method: request.method.clone(),
                may_switch: false,
            });
        }
        let lost = lost.then_some(Http1Frame::Gap { len: 0 });
        for frame in [Some(head), lost, Some(end)].into_iter().flatten() {
            self.stats.frames += 1;
            out.extend(self.stitcher.push(dir, frame, ts_ns));
        }
        true
    }

    fn lose(&mut self, dir: Direction, len: u64, ts_ns: u64, out: &mut Vec<Http1Exchange>) {
        let frames = match dir {
            Direction::ClientToServer => self.requests.gap(len),
            Direction::ServerToClient => self.responses.gap(len),
        };
        for frame in frames {
            if let Http1Frame::Opaque { len } = frame {
                self.stats.opaque_bytes += len;
            }
            out.extend(self.stitcher.push(dir, frame, ts_ns));
        }
    }

    /// Run `dir`'s parser over its buffer until it needs more bytes.
    fn drain(&mut self, dir: Direction, ts_ns: u64, out: &mut Vec<Http1Exchange>) {
        if dir == Direction::ClientToServer {
            self.client_cut_refused = false;
        }
        // Taken out so the parse loop can read it while the parsers and stitcher change.
        let mut buffer = std::mem::take(self.buffer_mut(dir));
        let consumed = self.parse_run(dir, buffer.pending(), ts_ns, out);
        buffer.advance(consumed);
        buffer.compact();
        *self.buffer_mut(dir) = buffer;
    }

    /// Run `dir`'s parser over `buf` until it needs more bytes; returns the bytes used.
    fn parse_run(
        &mut self,
        dir: Direction,
        buf: &[u8],
        ts_ns: u64,
        out: &mut Vec<Http1Exchange>,
    ) -> usize {
        let mut zero_progress = 0u32;
        let mut pos = 0usize;
        loop {
            let pending = buf.get(pos..).unwrap_or_default();
            if dir == Direction::ServerToClient
                && !self.client_cut_refused
                && self.client.len() > 0
                && self.responses.expects_nothing()
                && start_check(pending, MessageKind::Response, true) == StartCheck::Yes
            {
                // A status line while the request it answers is still a head without its
                // blank line: the capture cut that head (a server answers whole heads).
                // Tried once per client feed, so junk waiting there is not re-read per response.
                self.client_cut_refused =
                    !self.cut_head(Direction::ClientToServer, false, ts_ns, out);
            }
            let parsed = match dir {
                Direction::ClientToServer => self.requests.parse(pending),
                Direction::ServerToClient => self.responses.parse(pending),
            };
            match parsed {
                Parsed::NeedMore => break,
                Parsed::Invalid { skip } => {
                    if pending.is_empty() {
                        break;
                    }
                    let skip = skip.clamp(1, pending.len());
                    pos += skip;
                    self.stats.invalid_skips += 1;
                    self.stats.invalid_bytes += skip as u64;
                }
                Parsed::Frame { frame, consumed } => {
                    self.stats.frames += 1;
                    if consumed == 0 {
                        zero_progress += 1;
                        if zero_progress > 8 {
                            break; // defensive: a parser must change state on empty frames
                        }
                    } else {
                        zero_progress = 0;
                    }
                    pos = pos.saturating_add(consumed).min(buf.len());
                    // the request side resumed (refused upgrade) or went opaque (switch): its
                    // waiting bytes are parsed right after this response, before the next one
                    let mut drain_client_after = false;
                    match &frame {
                        Http1Frame::Request(head) => {
                            self.responses.expect(ExpectedResponse {
                                method: head.method.clone(),
                                may_switch: head.upgrade.is_some() || head.method == "CONNECT",
                            });
                        }
                        Http1Frame::Response(head) if !head.is_interim() => {
                            match std::mem::replace(
                                &mut self.responses.last_verdict,
                                SwitchVerdict::None,
                            ) {
                                SwitchVerdict::None => {}
                                SwitchVerdict::Refused => {
                                    self.requests.resume_http();
                                    drain_client_after = true;
                                }
                                SwitchVerdict::Switched => {
                                    self.upgraded = true;
                                    self.requests.switch_to_opaque();
                                    drain_client_after = true;
                                }
                            }
                        }
                        Http1Frame::Opaque { len } => self.stats.opaque_bytes += len,
                        _ => {}
                    }
                    out.extend(self.stitcher.push(dir, frame, ts_ns));
                    if drain_client_after && dir == Direction::ServerToClient {
                        self.drain(Direction::ClientToServer, ts_ns, out);
                    }
                }
            }
        }
        pos
    }
}
