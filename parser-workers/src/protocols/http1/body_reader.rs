//! Body framing state shared by the request and response parsers: Content-Length, chunked
//! (with trailers), until-close, and opaque bytes after a protocol switch. Body bytes are
//! consumed as they arrive (never buffered whole); only the first `keep_cap` bytes of a
//! message are copied into frames, the rest is counted.

use super::frame::{BodyFraming, Header, Http1Frame};
use super::head::find_blank_line;
use crate::protocols::parsed::Parsed;

/// Longest chunk-size line (size + extensions) accepted.
const MAX_CHUNK_LINE: usize = 1024;

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkPhase {
    SizeLine,
    Data(u64),
    DataEnd,
}

/// What the direction expects next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyState {
    /// A message head (handled by the owning parser).
    Head,
    Length(u64),
    Chunked(ChunkPhaseState),
    UntilClose,
    /// Emit `End` (consuming nothing) and go to `after_end`.
    EndPending {
        complete: bool,
    },
    /// Request side after an Upgrade / CONNECT request: wait for the response's verdict.
    AwaitVerdict,
    /// After a protocol switch: bytes are counted, not parsed.
    Opaque,
}

/// Opaque wrapper so `ChunkPhase` stays private.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPhaseState(ChunkPhase);

/// What follows the end of the current message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterEnd {
    Head,
    AwaitVerdict,
    Opaque,
}

/// Per-direction body state machine.
#[derive(Debug, Clone)]
pub struct BodyReader {
    pub state: BodyState,
    pub after_end: AfterEnd,
    keep_cap: usize,
    kept: usize,
    max_trailer_bytes: usize,
    /// Bad chunk framing seen (counted by the connection).
    pub malformed: u64,
    /// Set on bad chunk framing: the owner must look for a head strictly (resync).
    pub resync_requested: bool,
    /// Bytes of a pending trailer section already searched for its blank line.
    trailer_scanned: usize,
}

impl BodyReader {
    pub fn new(keep_cap: usize, max_trailer_bytes: usize) -> Self {
        Self {
            state: BodyState::Head,
            after_end: AfterEnd::Head,
            keep_cap,
            kept: 0,
            max_trailer_bytes,
            malformed: 0,
            resync_requested: false,
            trailer_scanned: 0,
        }
    }

    /// A head was parsed: set up its body.
    pub fn start(&mut self, framing: BodyFraming, after_end: AfterEnd) {
        self.kept = 0;
        self.trailer_scanned = 0;
        self.after_end = after_end;
        self.state = match framing {
            BodyFraming::None | BodyFraming::ContentLength(0) => {
                BodyState::EndPending { complete: true }
            }
            BodyFraming::ContentLength(n) => BodyState::Length(n),
            BodyFraming::Chunked => BodyState::Chunked(ChunkPhaseState(ChunkPhase::SizeLine)),
            BodyFraming::UntilClose => BodyState::UntilClose,
        };
    }

    fn body_frame(&mut self, bytes: &[u8]) -> Http1Frame {
        let room = self.keep_cap.saturating_sub(self.kept);
        let keep = bytes.len().min(room);
        self.kept += keep;
        Http1Frame::Body {
            data: bytes.get(..keep).unwrap_or_default().to_vec(),
            wire_len: bytes.len() as u64,
        }
    }

    fn end_state(&self) -> BodyState {
        match self.after_end {
            AfterEnd::Head => BodyState::Head,
            AfterEnd::AwaitVerdict => BodyState::AwaitVerdict,
            AfterEnd::Opaque => BodyState::Opaque,
        }
    }

    /// Parse body bytes; `None` when a head is expected (the owner parses it).
    pub fn parse(&mut self, buf: &[u8]) -> Option<Parsed<Http1Frame>> {
        Some(match self.state {
            BodyState::Head => return None,
            BodyState::AwaitVerdict => Parsed::NeedMore,
            BodyState::EndPending { complete } => {
                self.state = self.end_state();
                Parsed::Frame {
                    frame: Http1Frame::End {
                        trailers: Vec::new(),
                        complete,
                    },
                    consumed: 0,
                }
            }
            BodyState::Opaque => {
                if buf.is_empty() {
                    Parsed::NeedMore
                } else {
                    Parsed::Frame {
                        frame: Http1Frame::Opaque {
                            len: buf.len() as u64,
                        },
                        consumed: buf.len(),
                    }
                }
            }
            BodyState::UntilClose => {
                if buf.is_empty() {
                    Parsed::NeedMore
                } else {
                    Parsed::Frame {
                        frame: self.body_frame(buf),
                        consumed: buf.len(),
                    }
                }
            }
            BodyState::Length(remaining) => {
                let take = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                if take == 0 {
                    Parsed::NeedMore
                } else {
                    let frame = self.body_frame(buf.get(..take).unwrap_or_default());
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        BodyState::EndPending { complete: true }
                    } else {
                        BodyState::Length(left)
                    };
                    Parsed::Frame {
                        frame,
                        consumed: take,
                    }
                }
            }
            BodyState::Chunked(ChunkPhaseState(phase)) => self.parse_chunked(buf, phase),
        })
    }

    /// Bad chunk framing: end the message as incomplete and look for the next head.
    fn malformed_chunk(&mut self) -> Parsed<Http1Frame> {
        self.malformed += 1;
        self.resync_requested = true;
        self.state = BodyState::Head;
        Parsed::Frame {
            frame: Http1Frame::End {
                trailers: Vec::new(),
                complete: false,
            },
            consumed: 0,
        }
    }

    /// One step of chunked decoding. State is only committed when a frame is returned, so a
    /// size line split across reads is simply parsed again when more bytes came.
    fn parse_chunked(&mut self, buf: &[u8], mut phase: ChunkPhase) -> Parsed<Http1Frame> {
        let mut pos = 0usize;
        loop {
            let rest = buf.get(pos..).unwrap_or_default();
            match phase {
                ChunkPhase::Data(remaining) => {
                    let take = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(rest.len());
                    if take == 0 {
                        return Parsed::NeedMore;
                    }
                    let frame = self.body_frame(rest.get(..take).unwrap_or_default());
                    let left = remaining - take as u64;
                    // The CRLF after the chunk's data is taken with it when it is already
                    // there: the caller then keeps no 2-byte tail that the next segment would
                    // have to be copied behind.
                    let after = rest.get(take..).unwrap_or_default();
                    let (next, line_end) = if left > 0 {
                        (ChunkPhase::Data(left), 0)
                    } else if after.starts_with(b"\r\n") {
                        (ChunkPhase::SizeLine, 2)
                    } else if after.starts_with(b"\n") {
                        (ChunkPhase::SizeLine, 1)
                    } else {
                        (ChunkPhase::DataEnd, 0)
                    };
                    self.state = BodyState::Chunked(ChunkPhaseState(next));
                    return Parsed::Frame {
                        frame,
                        consumed: pos + take + line_end,
                    };
                }
                ChunkPhase::DataEnd => {
                    if rest.starts_with(b"\r\n") {
                        pos += 2;
                    } else if rest.starts_with(b"\n") {
                        pos += 1;
                    } else if rest.is_empty() || rest == b"\r" {
                        return Parsed::NeedMore;
                    } else {
                        return self.malformed_chunk();
                    }
                    phase = ChunkPhase::SizeLine;
                }
                ChunkPhase::SizeLine => {
                    let Some(nl) = memchr::memchr(b'\n', rest) else {
                        return if rest.len() > MAX_CHUNK_LINE {
                            self.malformed_chunk()
                        } else {
                            Parsed::NeedMore
                        };
                    };
                    if nl > MAX_CHUNK_LINE {
                        return self.malformed_chunk();
                    }
                    let line = rest.get(..nl).unwrap_or_default();
                    let size_part = line
                        .split(|&b| b == b';')
                        .next()
                        .unwrap_or_default()
                        .trim_ascii();
                    let Some(size) = parse_hex(size_part) else {
                        return self.malformed_chunk();
                    };
                    pos += nl + 1;
                    if size > 0 {
                        phase = ChunkPhase::Data(size);
                        continue;
                    }
                    let trailer_bytes = buf.get(pos..).unwrap_or_default();
                    if self.trailer_scanned > trailer_bytes.len() {
                        self.trailer_scanned = 0;
                    }
                    // search only new bytes for the blank line: linear even if fed bytewise
                    match find_blank_line(trailer_bytes, self.trailer_scanned) {
                        Some(end) if end <= self.max_trailer_bytes => self.trailer_scanned = 0,
                        None if trailer_bytes.len() < self.max_trailer_bytes => {
                            self.trailer_scanned = trailer_bytes.len();
                            return Parsed::NeedMore;
                        }
                        _ => {
                            self.trailer_scanned = 0;
                            return self.malformed_chunk();
                        }
                    }
                    let mut raw = [httparse::EMPTY_HEADER; 32];
                    return match httparse::parse_headers(trailer_bytes, &mut raw) {
                        Ok(httparse::Status::Complete((len, hs))) => {
                            let trailers = hs
                                .iter()
                                .map(|h| Header::from_wire(h.name, h.value))
                                .collect();
                            self.state = self.end_state();
                            Parsed::Frame {
                                frame: Http1Frame::End {
                                    trailers,
                                    complete: true,
                                },
                                consumed: pos + len,
                            }
                        }
                        Ok(httparse::Status::Partial)
                            if trailer_bytes.len() < self.max_trailer_bytes =>
                        {
                            Parsed::NeedMore
                        }
                        _ => self.malformed_chunk(),
                    };
                }
            }
        }
    }

    /// The connection ended: close the message in progress.
    pub fn finish(&mut self) -> Option<Http1Frame> {
        let complete = match self.state {
            BodyState::Head | BodyState::AwaitVerdict | BodyState::Opaque => return None,
            BodyState::UntilClose => true,
            BodyState::EndPending { complete } => complete,
            BodyState::Length(_) | BodyState::Chunked(_) => false,
        };
        self.state = BodyState::Head;
        Some(Http1Frame::End {
            trailers: Vec::new(),
            complete,
        })
    }

    /// `len` bytes of this direction were lost. Inside a Content-Length or until-close body
    /// the loss is stepped over (reported as a `Gap` frame); otherwise the
    /// message in progress ends incomplete and the owner resynchronises.
    /// Returns the frames to hand to the stitcher and whether a resync is needed.
    pub fn gap(&mut self, len: u64) -> (Vec<Http1Frame>, bool) {
        self.trailer_scanned = 0;
        let lost = Http1Frame::Gap { len };
        match self.state {
            BodyState::Head => (Vec::new(), true),
            BodyState::AwaitVerdict => (Vec::new(), false),
            BodyState::Opaque => (vec![Http1Frame::Opaque { len }], false),
            BodyState::UntilClose => {
                self.kept = self.keep_cap; // keep no bytes after a hole
                (vec![lost], false)
            }
            BodyState::Length(remaining) if len < remaining => {
                self.kept = self.keep_cap;
                self.state = BodyState::Length(remaining - len);
                (vec![lost], false)
            }
            BodyState::EndPending { complete } => {
                self.state = BodyState::Head;
                (
                    vec![Http1Frame::End {
                        trailers: Vec::new(),
                        complete,
                    }],
                    true,
                )
            }
            BodyState::Length(_) | BodyState::Chunked(_) => {
                self.state = BodyState::Head;
                (
                    vec![Http1Frame::End {
                        trailers: Vec::new(),
                        complete: false,
                    }],
                    true,
                )
            }
        }
    }
}

fn parse_hex(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 15 {
        return None;
    }
    let mut n: u64 = 0;
    for &d in digits {
        let v = char::from(d).to_digit(16)?;
        n = n.checked_mul(16)?.checked_add(u64::from(v))?;
    }
    Some(n)
}
