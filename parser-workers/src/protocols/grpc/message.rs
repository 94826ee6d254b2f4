//! gRPC length-prefixed messages (1-byte compressed flag, 4-byte big-endian length, body) as a
//! push parser over one direction of one HTTP/2 stream, plus `GrpcMessageStream`, a bounded
//! buffer that feeds it DATA chunks split anywhere.
//!
//! A message longer than the cap is not buffered: its prefix yields a `GrpcMessage` marked
//! `oversized` (payload empty), then its body is consumed as `GrpcFrame::Skipped` pieces.

use crate::protocols::parsed::{FrameParser, Parsed};

use super::error::GrpcMessageError;

/// Bytes of the prefix before each message body.
pub const GRPC_PREFIX_LEN: usize = 5;

/// Default cap on one message body (gRPC's own default max receive size is 4 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// One gRPC message as it was framed on the wire (before decompression).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcMessage {
    /// The compressed-flag byte was 1.
    pub compressed: bool,
    /// Body length from the prefix.
    pub declared_len: u32,
    /// The body (empty when `oversized`).
    pub payload: Vec<u8>,
    /// The body was over the cap and is skipped, not kept.
    pub oversized: bool,
}

/// What the parser recognised at the front of its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrpcFrame {
    /// A message (whole, or just the prefix of an oversized one).
    Message(GrpcMessage),
    /// Body bytes of an oversized message, dropped unread.
    Skipped { bytes: usize },
}

/// Running counts of one parser (caps hit are counted here, never silent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrpcParserCounters {
    /// Message prefixes seen (including oversized ones).
    pub messages: u64,
    /// Messages over the size cap.
    pub oversized_messages: u64,
    /// Body bytes of oversized messages dropped.
    pub skipped_bytes: u64,
    /// Bytes refused after a bad compressed-flag byte desynchronised the stream.
    pub invalid_bytes: u64,
}

/// Push parser for gRPC length-prefixed messages (one direction of one stream).
#[derive(Debug, Clone)]
pub struct GrpcMessageParser {
    max_message_bytes: usize,
    /// Body bytes of an oversized message still to drop.
    skip_remaining: usize,
    /// Declared length of the oversized message being skipped.
    skip_declared: u32,
    /// The flag byte seen when framing broke; everything after it is refused.
    desynced: Option<u8>,
    counters: GrpcParserCounters,
}

impl Default for GrpcMessageParser {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE_BYTES)
    }
}

impl GrpcMessageParser {
    /// A parser that keeps message bodies of at most `max_message_bytes`.
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            max_message_bytes,
            skip_remaining: 0,
            skip_declared: 0,
            desynced: None,
            counters: GrpcParserCounters::default(),
        }
    }

    /// Counts so far.
    pub fn counters(&self) -> GrpcParserCounters {
        self.counters
    }

    /// The cap on one message body.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// The oversized message being skipped, if its body has not all passed yet:
    /// (body bytes seen, declared length).
    pub fn skipping(&self) -> Option<(usize, u32)> {
        (self.skip_remaining > 0).then(|| {
            (
                (self.skip_declared as usize).saturating_sub(self.skip_remaining),
                self.skip_declared,
            )
        })
    }

    /// The bad compressed-flag byte that broke framing, if it broke.
    pub fn desynced_by(&self) -> Option<u8> {
        self.desynced
    }
}

impl FrameParser for GrpcMessageParser {
    type Frame = GrpcFrame;

    fn parse(&mut self, buf: &[u8]) -> Parsed<GrpcFrame> {
        if buf.is_empty() {
            return Parsed::NeedMore;
        }
        if self.desynced.is_some() {
            // gRPC framing has no resync marker: once a prefix is wrong, nothing after it can
            // be trusted to be a message boundary.
            self.counters.invalid_bytes += buf.len() as u64;
            return Parsed::Invalid { skip: buf.len() };
        }
        if self.skip_remaining > 0 {
            let bytes = self.skip_remaining.min(buf.len());
            self.skip_remaining -= bytes;
            self.counters.skipped_bytes += bytes as u64;
            return Parsed::Frame {
                frame: GrpcFrame::Skipped { bytes },
                consumed: bytes,
            };
        }
        let Some(&[flag, l0, l1, l2, l3]) = buf.get(..GRPC_PREFIX_LEN) else {
            return Parsed::NeedMore;
        };
        if flag > 1 {
            self.desynced = Some(flag);
            self.counters.invalid_bytes += buf.len() as u64;
            return Parsed::Invalid { skip: buf.len() };
        }
        let declared_len = u32::from_be_bytes([l0, l1, l2, l3]);
        let body_len = declared_len as usize;
        let compressed = flag == 1;
        if body_len > self.max_message_bytes {
            let available = buf.len().saturating_sub(GRPC_PREFIX_LEN).min(body_len);
            self.skip_remaining = body_len - available;
            self.skip_declared = declared_len;
            self.counters.messages += 1;
            self.counters.oversized_messages += 1;
            self.counters.skipped_bytes += available as u64;
            let frame = GrpcMessage {
                compressed,
                declared_len,
                payload: Vec::new(),
                oversized: true,
            };
            return Parsed::Frame {
                frame: GrpcFrame::Message(frame),
                consumed: GRPC_PREFIX_LEN + available,
            };
        }
        let end = GRPC_PREFIX_LEN + body_len;
        let Some(body) = buf.get(GRPC_PREFIX_LEN..end) else {
            return Parsed::NeedMore;
        };
        self.counters.messages += 1;
        let frame = GrpcMessage {
            compressed,
            declared_len,
            payload: body.to_vec(),
            oversized: false,
        };
        Parsed::Frame {
            frame: GrpcFrame::Message(frame),
            consumed: end,
        }
    }
}

/// What was left when a stream ended in the middle of a message.
pub fn unfinished_tail(parser: &GrpcMessageParser, tail: &[u8]) -> Option<GrpcMessageError> {
    if let Some(flag) = parser.desynced_by() {
        return Some(GrpcMessageError::BadCompressedFlag {
            flag,
            dropped: parser.counters().invalid_bytes as usize,
        });
    }
    if let Some((got, declared)) = parser.skipping() {
        return Some(GrpcMessageError::Incomplete { got, declared });
    }
    if tail.is_empty() {
        return None;
    }
    match tail.get(..GRPC_PREFIX_LEN) {
        Some(&[_, l0, l1, l2, l3]) => Some(GrpcMessageError::Incomplete {
            got: tail.len() - GRPC_PREFIX_LEN,
            declared: u32::from_be_bytes([l0, l1, l2, l3]),
        }),
        _ => Some(GrpcMessageError::IncompletePrefix { got: tail.len() }),
    }
}

/// Everything parsed from one direction's bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SplitMessages {
    /// Messages in order (oversized ones with an empty payload).
    pub messages: Vec<GrpcMessage>,
    /// Bytes left over when the input ended inside a message (kept only up to the cap).
    pub tail: Vec<u8>,
    /// Why the input ended badly (cut message, bad flag), if it did.
    pub error: Option<GrpcMessageError>,
    /// The parser's counts.
    pub counters: GrpcParserCounters,
}

/// Split a whole direction's DATA bytes into messages, without copying more than each body.
pub fn split_messages(body: &[u8], max_message_bytes: usize) -> SplitMessages {
    let mut stream = GrpcMessageStream::new(max_message_bytes);
    let mut messages = Vec::new();
    stream.push(body, &mut messages);
    let (tail, error, counters) = stream.finish();
    SplitMessages {
        messages,
        tail,
        error,
        counters,
    }
}

/// A bounded buffer that drives a `GrpcMessageParser` over DATA chunks split anywhere.
///
/// It never holds more than one unfinished message (at most `max_message_bytes` + 5 bytes):
/// oversized bodies are skipped as they arrive, and bytes after a framing error are dropped.
#[derive(Debug, Clone, Default)]
pub struct GrpcMessageStream {
    parser: GrpcMessageParser,
    pending: Vec<u8>,
}

impl GrpcMessageStream {
    /// A stream whose messages are capped at `max_message_bytes`.
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            parser: GrpcMessageParser::new(max_message_bytes),
            pending: Vec::new(),
        }
    }

    /// Feed the next DATA bytes; complete messages are appended to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<GrpcMessage>) {
        let mut data = data;
        // Complete the pending message with only the bytes it needs, then go on zero-copy.
        while !self.pending.is_empty() {
            if data.is_empty() {
                return;
            }
            let take = self.bytes_to_finish_pending().clamp(1, data.len());
            let (head, rest) = data.split_at(take);
            self.pending.extend_from_slice(head);
            data = rest;
            let used = Self::drain(&mut self.parser, &self.pending, out);
            self.pending.drain(..used);
        }
        let used = Self::drain(&mut self.parser, data, out);
        self.pending
            .extend_from_slice(data.get(used..).unwrap_or_default());
    }

    /// The stream ended: the unfinished bytes, why they are unfinished, and the counts.
    pub fn finish(self) -> (Vec<u8>, Option<GrpcMessageError>, GrpcParserCounters) {
        let error = unfinished_tail(&self.parser, &self.pending);
        (self.pending, error, self.parser.counters())
    }

    /// Counts so far.
    pub fn counters(&self) -> GrpcParserCounters {
        self.parser.counters()
    }

    /// Bytes buffered for an unfinished message.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    fn bytes_to_finish_pending(&self) -> usize {
        match self.pending.get(1..GRPC_PREFIX_LEN) {
            Some(&[l0, l1, l2, l3]) => {
                let body = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
                // Oversized bodies are not buffered: one more byte lets the parser skip on.
                let body = body.min(self.parser.max_message_bytes().saturating_add(1));
                (GRPC_PREFIX_LEN + body).saturating_sub(self.pending.len())
            }
            _ => GRPC_PREFIX_LEN - self.pending.len(),
        }
    }

    /// Parse frames from `buf` until it needs more; returns the bytes consumed.
    fn drain(parser: &mut GrpcMessageParser, buf: &[u8], out: &mut Vec<GrpcMessage>) -> usize {
        let mut used = 0;
        while let Some(rest) = buf.get(used..) {
            match parser.parse(rest) {
                Parsed::Frame { frame, consumed } => {
                    if let GrpcFrame::Message(message) = frame {
                        out.push(message);
                    }
                    used += consumed.max(1);
                }
                Parsed::Invalid { skip } => used += skip.max(1),
                Parsed::NeedMore => break,
            }
        }
        used.min(buf.len())
    }
}
