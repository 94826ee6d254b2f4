//! `PgConnection`: a convenience driver that owns both direction buffers (bounded), the two
//! push parsers and the stitcher, handles gaps (resynchronising at the next plausible message
//! boundary), stops at an accepted SSLRequest, and counts everything it drops.

use super::backend::PgBackendParser;
use super::config::PgConfig;
use super::exchange::PgExchange;
use super::frontend::PgFrontendParser;
use super::message::{FrontendMessage, PgFrame, PgMessage};
use super::stitcher::{PgStitcher, PgStitcherStats};
use super::wire::{PgWireError, be_u32};
use crate::protocols::parsed::{Direction, FrameParser, Parsed, Stitcher};
use crate::protocols::tls::{TlsHello, TlsHelloSniffer};

/// Where the connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgConnectionState {
    /// Parsing PostgreSQL messages.
    Plaintext,
    /// The server accepted SSLRequest/GSSENCRequest: the rest is encrypted, not parsed as PG.
    Encrypted,
    /// The first client bytes were not PostgreSQL: nothing more is parsed.
    NotPostgres,
}

/// Counters of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgStats {
    /// Bytes fed client to server.
    pub client_bytes: u64,
    /// Bytes fed server to client.
    pub server_bytes: u64,
    /// Frontend messages parsed.
    pub client_frames: u64,
    /// Backend messages parsed.
    pub server_frames: u64,
    /// Bytes skipped as not parseable (resynchronisation).
    pub invalid_bytes: u64,
    /// Times a parser reported invalid bytes.
    pub invalid_events: u64,
    /// Gaps reported and bytes they covered.
    pub gaps: u64,
    /// Bytes lost in gaps.
    pub gap_bytes: u64,
    /// Gaps after which a parser had to scan for the next message boundary.
    pub resyncs: u64,
    /// Times a direction buffer reached its cap without a message completing (dropped).
    pub buffer_cap_hits: u64,
    /// Messages longer than the size bound (parsed from a prefix).
    pub oversized_messages: u64,
    /// Bytes after an accepted SSLRequest (not parsed as PostgreSQL).
    pub encrypted_bytes: u64,
    /// Bytes ignored because the connection is not PostgreSQL.
    pub ignored_bytes: u64,
    /// Exchanges emitted.
    pub exchanges: u64,
    /// The last parse error seen.
    pub last_error: Option<PgWireError>,
    /// The stitcher's own counters.
    pub stitcher: PgStitcherStats,
}

/// One PostgreSQL connection: feed bytes of both directions, get exchanges.
#[derive(Debug, Clone)]
pub struct PgConnection {
    config: PgConfig,
    frontend: PgFrontendParser,
    backend: PgBackendParser,
    stitcher: PgStitcher,
    client_buf: Vec<u8>,
    server_buf: Vec<u8>,
    state: PgConnectionState,
    client_frames_seen: bool,
    server_frames_seen: bool,
    tls_client: TlsHelloSniffer,
    tls_server: TlsHelloSniffer,
    stats: PgStats,
}

impl PgConnection {
    /// A connection seen from its first byte (or attached mid-way: typed messages are accepted).
    pub fn new(config: PgConfig) -> Self {
        PgConnection {
            frontend: PgFrontendParser::new(config.clone()),
            backend: PgBackendParser::new(config.clone()),
            stitcher: PgStitcher::new(config.clone()),
            config,
            client_buf: Vec::new(),
            server_buf: Vec::new(),
            state: PgConnectionState::Plaintext,
            client_frames_seen: false,
            server_frames_seen: false,
            tls_client: TlsHelloSniffer::default(),
            tls_server: TlsHelloSniffer::default(),
            stats: PgStats::default(),
        }
    }

    /// Where the connection stands.
    pub fn state(&self) -> PgConnectionState {
        self.state
    }

    /// Counters so far.
    pub fn stats(&self) -> PgStats {
        let mut s = self.stats.clone();
        s.stitcher = self.stitcher.stats().clone();
        s
    }

    /// The TLS ClientHello sent after an accepted SSLRequest (SNI, ALPN), if seen.
    pub fn tls_client_hello(&self) -> Option<&TlsHello> {
        self.tls_client.hello()
    }

    /// The TLS ServerHello sent after an accepted SSLRequest, if seen.
    pub fn tls_server_hello(&self) -> Option<&TlsHello> {
        self.tls_server.hello()
    }

    fn buffer_cap(&self) -> usize {
        self.config
            .max_message_len
            .saturating_add(64)
            .max(self.config.resync_max_len.saturating_add(64))
    }

    /// Feed bytes that travelled in `dir` at `ts_ns`; returns the exchanges they completed.
    pub fn feed(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64) -> Vec<PgExchange> {
        match dir {
            Direction::ClientToServer => self.stats.client_bytes += bytes.len() as u64,
            Direction::ServerToClient => self.stats.server_bytes += bytes.len() as u64,
        }
        let mut out = Vec::new();
        let mut input = bytes;
        let cap = self.buffer_cap();
        while !input.is_empty() {
            match self.state {
                PgConnectionState::NotPostgres => {
                    self.stats.ignored_bytes += input.len() as u64;
                    break;
                }
                PgConnectionState::Encrypted => {
                    self.feed_tls(dir, input);
                    break;
                }
                PgConnectionState::Plaintext => {}
            }
            let buf = self.buf_mut(dir);
            let room = cap.saturating_sub(buf.len());
            let take = room.min(input.len());
            let (now, rest) = input.split_at(take);
            buf.extend_from_slice(now);
            input = rest;
            self.drain(dir, ts_ns, &mut out);
            if self.state == PgConnectionState::Plaintext && self.buf_mut(dir).len() >= cap {
                // No message completes within the cap: drop the buffer and resynchronise.
                self.stats.buffer_cap_hits += 1;
                self.buf_mut(dir).clear();
                self.lose_boundary(dir);
            }
        }
        self.stats.exchanges += out.len() as u64;
        out
    }

    /// `len` bytes in `dir` were lost: skip them exactly when the lost bytes fall inside the
    /// message being buffered, otherwise scan for the next plausible message boundary.
    pub fn gap(&mut self, dir: Direction, len: u64) {
        self.stats.gaps += 1;
        self.stats.gap_bytes += len;
        if self.state != PgConnectionState::Plaintext {
            return;
        }
        self.stitcher.note_gap(dir);
        let rest = match dir {
            Direction::ClientToServer => self.frontend.absorb_gap(len),
            Direction::ServerToClient => self.backend.absorb_gap(len),
        };
        if rest == 0 {
            return;
        }
        let buf = self.buf_mut(dir);
        let buffered = buf.len() as u64;
        let owed = match (buf.first(), be_u32(buf, 1)) {
            (Some(&t), Some(l)) if t != 0 && l >= 4 => {
                Some((1 + u64::from(l)).saturating_sub(buffered))
            }
            _ => None,
        };
        buf.clear();
        match owed {
            // The lost bytes end inside the buffered message: skip exactly its remainder.
            Some(owed) if rest <= owed => {
                let skip = owed - rest;
                self.stats.invalid_bytes += buffered;
                match dir {
                    Direction::ClientToServer => self.frontend.skip_bytes(skip),
                    Direction::ServerToClient => self.backend.skip_bytes(skip),
                }
            }
            _ => self.lose_boundary(dir),
        }
    }

    /// The connection ended: whatever is in flight, flagged partial.
    pub fn flush(&mut self) -> Vec<PgExchange> {
        let out = self.stitcher.flush();
        self.stats.exchanges += out.len() as u64;
        out
    }

    fn lose_boundary(&mut self, dir: Direction) {
        self.stats.resyncs += 1;
        self.stitcher.note_gap(dir);
        match dir {
            Direction::ClientToServer => self.frontend.resync(),
            Direction::ServerToClient => self.backend.resync(),
        }
    }

    fn buf_mut(&mut self, dir: Direction) -> &mut Vec<u8> {
        match dir {
            Direction::ClientToServer => &mut self.client_buf,
            Direction::ServerToClient => &mut self.server_buf,
        }
    }

    fn drain(&mut self, dir: Direction, ts_ns: u64, out: &mut Vec<PgExchange>) {
        let mut buf = std::mem::take(self.buf_mut(dir));
        let mut pos = 0usize;
        while pos < buf.len() && self.state == PgConnectionState::Plaintext {
            let view = buf.get(pos..).unwrap_or(&[]);
            let parsed = match dir {
                Direction::ClientToServer => self.frontend.parse(view),
                Direction::ServerToClient => {
                    self.backend
                        .set_row_sampling(self.stitcher.wants_row_samples());
                    self.backend.parse(view)
                }
            };
            match parsed {
                Parsed::NeedMore => break,
                Parsed::Frame { frame, consumed } => {
                    if consumed == 0 {
                        break;
                    }
                    pos = pos.saturating_add(consumed).min(buf.len());
                    let owed = match dir {
                        Direction::ClientToServer => self.frontend.skip_remaining(),
                        Direction::ServerToClient => self.backend.skip_remaining(),
                    };
                    if owed > 0 && frame.message != PgMessage::Continuation {
                        self.stats.oversized_messages += 1;
                    }
                    self.on_frame(dir, frame, ts_ns, out);
                }
                Parsed::Invalid { skip } => {
                    self.stats.invalid_events += 1;
                    self.stats.last_error = match dir {
                        Direction::ClientToServer => self.frontend.last_error().cloned(),
                        Direction::ServerToClient => self.backend.last_error().cloned(),
                    };
                    if dir == Direction::ClientToServer && !self.client_frames_seen {
                        // The very first client bytes are not PostgreSQL: give up on it.
                        self.state = PgConnectionState::NotPostgres;
                        self.stats.ignored_bytes += (buf.len() - pos) as u64;
                        pos = buf.len();
                        self.server_buf.clear();
                        break;
                    }
                    let skip = skip.max(1).min(buf.len() - pos);
                    self.stats.invalid_bytes += skip as u64;
                    pos += skip;
                }
            }
        }
        if self.state == PgConnectionState::Encrypted {
            // What follows an accepted SSLRequest is TLS.
            let rest = buf.get(pos..).unwrap_or(&[]).to_vec();
            self.feed_tls(dir, &rest);
            let other = std::mem::take(self.buf_mut(dir.reverse()));
            self.feed_tls(dir.reverse(), &other);
            return;
        }
        buf.drain(..pos.min(buf.len()));
        *self.buf_mut(dir) = buf;
    }

    fn on_frame(&mut self, dir: Direction, frame: PgFrame, ts_ns: u64, out: &mut Vec<PgExchange>) {
        match dir {
            Direction::ClientToServer => {
                self.stats.client_frames += 1;
                if !self.client_frames_seen {
                    self.client_frames_seen = true;
                    let at_start = matches!(
                        frame.message,
                        PgMessage::Frontend(
                            FrontendMessage::Startup { .. }
                                | FrontendMessage::SslRequest
                                | FrontendMessage::GssEncRequest
                                | FrontendMessage::CancelRequest { .. }
                        )
                    );
                    if !at_start && !self.server_frames_seen {
                        // Attached mid-connection: the server side may start mid-message.
                        self.backend.resync();
                    }
                }
                if matches!(
                    frame.message,
                    PgMessage::Frontend(
                        FrontendMessage::SslRequest | FrontendMessage::GssEncRequest
                    )
                ) {
                    self.backend.expect_encryption_reply();
                }
            }
            Direction::ServerToClient => {
                self.stats.server_frames += 1;
                self.server_frames_seen = true;
            }
        }
        out.extend(self.stitcher.push(dir, frame, ts_ns));
        if self.stitcher.encrypted() {
            self.state = PgConnectionState::Encrypted;
        }
    }

    fn feed_tls(&mut self, dir: Direction, bytes: &[u8]) {
        self.stats.encrypted_bytes += bytes.len() as u64;
        match dir {
            Direction::ClientToServer => self.tls_client.feed(bytes),
            Direction::ServerToClient => self.tls_server.feed(bytes),
        };
    }
}
