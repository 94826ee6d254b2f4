//! The push frame parser for one direction of an HTTP/2 connection: the preface, then frames.
//!
//! It starts "hunting" (we may have joined mid-connection): a frame header is accepted only if
//! it is strictly plausible (known type, defined flags only, the stream and length rules of its
//! type, at most 16,384 bytes long) and followed by another plausible header (or the end of
//! the stream, see `set_end_of_stream`). After the first good frame it is "synced" and follows
//! lengths, skipping unknown types; a length past the bound sends it back to hunting, one byte
//! at a time.

use super::frame::{CONNECTION_PREFACE, FrameError, FrameHeader, Http2Frame, decode_frame};
use crate::protocols::parsed::{FrameParser, Parsed};

/// While hunting, frames are held to the size every peer must accept (RFC 9113
/// SETTINGS_MAX_FRAME_SIZE default): a random "header" announcing a huge length would otherwise
/// swallow the real frames behind it.
const HUNTING_MAX_FRAME_SIZE: u32 = 16_384;

/// The stricter test of a frame header while hunting: `is_plausible` within 16,384 bytes, no
/// CONTINUATION (useless without its HEADERS), no empty HEADERS, and no empty DATA unless it
/// ends the stream (runs of zero bytes would otherwise look like frames).
fn is_plausible_while_hunting(header: &FrameHeader, max_frame_size: u32) -> bool {
    use super::frame::{flags, frame_type};
    if !header.is_plausible(max_frame_size.min(HUNTING_MAX_FRAME_SIZE)) {
        return false;
    }
    match header.frame_type {
        frame_type::CONTINUATION => false,
        frame_type::HEADERS => header.length > 0,
        frame_type::DATA => header.length > 0 || header.flags & flags::END_STREAM != 0,
        _ => true,
    }
}

/// Counters of one direction's frame parser.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameParserStats {
    /// Frames returned (the preface included).
    pub frames: u64,
    /// Frames of a type we do not know, skipped.
    pub unknown_frames: u64,
    /// Frames whose header was fine but whose payload broke its type's rules; skipped whole.
    pub malformed_frames: u64,
    /// Frame headers announcing more than the maximum frame size (synced mode).
    pub oversize_frames: u64,
    /// Bytes skipped while looking for a frame boundary.
    pub hunted_bytes: u64,
    /// Times the parser lost sync and started hunting.
    pub resyncs: u64,
}

/// Push parser from one direction's bytes to `Http2Frame`s.
#[derive(Debug, Clone)]
pub struct Http2FrameParser {
    max_frame_size: u32,
    synced: bool,
    seen_frame: bool,
    end_of_stream: bool,
    last_error: Option<FrameError>,
    stats: FrameParserStats,
}

impl Http2FrameParser {
    /// A parser accepting frames of up to `max_frame_size` payload bytes (RFC 9113 allows
    /// up to 2^24 - 1 once a peer advertised it; 16,384 is the default).
    pub fn new(max_frame_size: u32) -> Self {
        Http2FrameParser {
            max_frame_size: max_frame_size.min((1 << 24) - 1),
            synced: false,
            seen_frame: false,
            end_of_stream: false,
            last_error: None,
            stats: FrameParserStats::default(),
        }
    }

    /// A parser for a direction observed from its first byte: it follows frame lengths at once
    /// (the client may still begin with the preface).
    pub fn at_connection_start(max_frame_size: u32) -> Self {
        Http2FrameParser {
            synced: true,
            ..Http2FrameParser::new(max_frame_size)
        }
    }

    /// No more bytes will come in this direction: while hunting, a frame is then accepted
    /// without the next frame header that normally confirms it.
    pub fn set_end_of_stream(&mut self) {
        self.end_of_stream = true;
    }

    /// Bytes were lost: look for the next plausible frame header.
    pub fn resync(&mut self) {
        if self.synced {
            self.stats.resyncs += 1;
        }
        self.synced = false;
        self.seen_frame = true; // no preface can follow lost bytes
    }

    /// Whether the parser is following frame lengths (as opposed to hunting for a header).
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// The last malformed frame payload seen, if any.
    pub fn last_error(&self) -> Option<FrameError> {
        self.last_error
    }

    /// Counters.
    pub fn stats(&self) -> FrameParserStats {
        self.stats
    }

    fn skip(&mut self, skip: usize) -> Parsed<Http2Frame> {
        self.stats.hunted_bytes += skip as u64;
        Parsed::Invalid { skip }
    }
}

impl FrameParser for Http2FrameParser {
    type Frame = Http2Frame;

    fn parse(&mut self, buf: &[u8]) -> Parsed<Http2Frame> {
        if buf.is_empty() {
            return Parsed::NeedMore;
        }
        if !self.seen_frame {
            if buf.len() < CONNECTION_PREFACE.len() && CONNECTION_PREFACE.starts_with(buf) {
                return Parsed::NeedMore;
            }
            if buf.starts_with(CONNECTION_PREFACE) {
                self.seen_frame = true;
                self.synced = true;
                self.stats.frames += 1;
                return Parsed::Frame {
                    frame: Http2Frame::Preface,
                    consumed: CONNECTION_PREFACE.len(),
                };
            }
        }
        let Some(header) = FrameHeader::read(buf) else {
            return Parsed::NeedMore;
        };
        if self.synced {
            if header.length > self.max_frame_size {
                self.stats.oversize_frames += 1;
                self.stats.resyncs += 1;
                self.synced = false;
                return self.skip(1);
            }
        } else if !is_plausible_while_hunting(&header, self.max_frame_size) {
            return self.skip(1);
        }
        let total = header.frame_len();
        let Some(payload) = buf.get(super::frame::FRAME_HEADER_LEN..total) else {
            return Parsed::NeedMore;
        };
        if !self.synced && !self.end_of_stream {
            // Confirm the boundary: the next frame header must be plausible too. Waiting for
            // it (rather than accepting when it is not there yet) keeps the result the same
            // whatever the segment boundaries were.
            match buf.get(total..).and_then(FrameHeader::read) {
                None => return Parsed::NeedMore,
                Some(next) if !next.is_plausible(self.max_frame_size) => return self.skip(1),
                Some(_) => {}
            }
        }
        match decode_frame(&header, payload) {
            Ok(frame) => {
                self.synced = true;
                self.seen_frame = true;
                self.stats.frames += 1;
                if matches!(frame, Http2Frame::Unknown { .. }) {
                    self.stats.unknown_frames += 1;
                }
                Parsed::Frame {
                    frame,
                    consumed: total,
                }
            }
            Err(error) => {
                self.last_error = Some(error);
                if self.synced {
                    // The boundary is known: drop exactly this frame and stay in step.
                    self.stats.malformed_frames += 1;
                    Parsed::Invalid { skip: total }
                } else {
                    self.skip(1)
                }
            }
        }
    }
}
