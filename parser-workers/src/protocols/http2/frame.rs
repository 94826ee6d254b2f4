//! HTTP/2 frames (RFC 9113 section 4 and 6): the 9-byte frame header, every frame type with its
//! flags, padding and priority fields, and the client connection preface.

/// The client connection preface (RFC 9113 section 3.4).
pub const CONNECTION_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Length of a frame header.
pub const FRAME_HEADER_LEN: usize = 9;

/// Frame type codes.
pub mod frame_type {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flag bits.
pub mod flags {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS identifiers (RFC 9113 section 6.5.2).
pub mod settings_id {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// The fixed 9-byte header in front of every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length (24 bits).
    pub length: u32,
    pub frame_type: u8,
    pub flags: u8,
    /// Stream identifier (31 bits).
    pub stream_id: u32,
    /// The reserved high bit of the stream identifier (must be 0).
    pub reserved_bit: bool,
}

impl FrameHeader {
    /// Read a frame header from the first 9 bytes of `buf`, if there are 9.
    pub fn read(buf: &[u8]) -> Option<FrameHeader> {
        let [l0, l1, l2, frame_type, flags, s0, s1, s2, s3]: [u8; FRAME_HEADER_LEN] =
            buf.get(..FRAME_HEADER_LEN)?.try_into().ok()?;
        let raw_stream = u32::from_be_bytes([s0, s1, s2, s3]);
        Some(FrameHeader {
            length: u32::from_be_bytes([0, l0, l1, l2]),
            frame_type,
            flags,
            stream_id: raw_stream & 0x7fff_ffff,
            reserved_bit: raw_stream & 0x8000_0000 != 0,
        })
    }

    /// Whole frame length: header plus payload.
    pub fn frame_len(&self) -> usize {
        FRAME_HEADER_LEN + self.length as usize
    }

    /// Whether this header follows every MUST of RFC 9113 for its type, with no undefined flag
    /// set, a known type and a length within `max_frame_size`: strict enough to find frame
    /// boundaries in the middle of a byte stream.
    pub fn is_plausible(&self, max_frame_size: u32) -> bool {
        use frame_type::*;
        if self.reserved_bit || self.length > max_frame_size {
            return false;
        }
        let len = self.length;
        let on_stream = self.stream_id != 0;
        match self.frame_type {
            DATA => on_stream && self.flags & !(flags::END_STREAM | flags::PADDED) == 0,
            HEADERS => {
                on_stream
                    && self.flags
                        & !(flags::END_STREAM
                            | flags::END_HEADERS
                            | flags::PADDED
                            | flags::PRIORITY)
                        == 0
            }
            PRIORITY => on_stream && len == 5 && self.flags == 0,
            RST_STREAM => on_stream && len == 4 && self.flags == 0,
            SETTINGS => {
                !on_stream
                    && len.is_multiple_of(6)
                    && (self.flags == 0 || (self.flags == flags::ACK && len == 0))
            }
            PUSH_PROMISE => {
                on_stream && len >= 4 && self.flags & !(flags::END_HEADERS | flags::PADDED) == 0
            }
            PING => !on_stream && len == 8 && self.flags & !flags::ACK == 0,
            GOAWAY => !on_stream && len >= 8 && self.flags == 0,
            WINDOW_UPDATE => len == 4 && self.flags == 0,
            CONTINUATION => on_stream && self.flags & !flags::END_HEADERS == 0,
            _ => false,
        }
    }
}

/// The priority fields of HEADERS (PRIORITY flag) and of PRIORITY frames (deprecated in
/// RFC 9113 but still sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorityFields {
    pub exclusive: bool,
    pub stream_dependency: u32,
    /// Weight as sent (0..=255; the effective weight is one more).
    pub weight: u8,
}

/// One SETTINGS parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub id: u16,
    pub value: u32,
}

/// One parsed frame (or the preface). Payload bytes are owned: a frame outlives the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Http2Frame {
    /// The 24-byte client connection preface.
    Preface,
    Data {
        stream_id: u32,
        end_stream: bool,
        /// The data without padding.
        data: Vec<u8>,
        /// Payload length including padding (what flow control counts).
        flow_len: u32,
    },
    Headers {
        stream_id: u32,
        end_stream: bool,
        end_headers: bool,
        priority: Option<PriorityFields>,
        /// Header block fragment, padding removed.
        fragment: Vec<u8>,
    },
    Priority {
        stream_id: u32,
        priority: PriorityFields,
    },
    RstStream {
        stream_id: u32,
        error_code: u32,
    },
    Settings {
        ack: bool,
        settings: Vec<Setting>,
    },
    PushPromise {
        stream_id: u32,
        end_headers: bool,
        promised_stream_id: u32,
        fragment: Vec<u8>,
    },
    Ping {
        ack: bool,
        opaque: [u8; 8],
    },
    GoAway {
        last_stream_id: u32,
        error_code: u32,
        /// Opaque debug data, at most `MAX_GOAWAY_DEBUG` bytes kept.
        debug_data: Vec<u8>,
    },
    WindowUpdate {
        stream_id: u32,
        increment: u32,
    },
    Continuation {
        stream_id: u32,
        end_headers: bool,
        fragment: Vec<u8>,
    },
    /// A frame of a type this parser does not know: skipped, as RFC 9113 section 4.1 requires.
    Unknown {
        frame_type: u8,
        flags: u8,
        stream_id: u32,
        length: u32,
    },
}

/// How much GOAWAY debug data is kept.
pub const MAX_GOAWAY_DEBUG: usize = 256;

/// What was wrong in a frame payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error(
        "frame type {frame_type:#x} has padding length {pad} not smaller than its payload of {len} bytes"
    )]
    PaddingTooLong {
        frame_type: u8,
        pad: usize,
        len: usize,
    },
    #[error("frame type {frame_type:#x} payload of {len} bytes is too short for its fixed fields")]
    PayloadTooShort { frame_type: u8, len: usize },
    #[error("frame type {frame_type:#x} has length {len}, which its type does not allow")]
    BadLength { frame_type: u8, len: usize },
    #[error("frame type {frame_type:#x} must {must} stream 0, but has stream {stream_id}")]
    BadStream {
        frame_type: u8,
        must: &'static str,
        stream_id: u32,
    },
}

fn be_u32(bytes: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?))
}

/// Split off padding: returns the payload between the Pad Length byte and the padding.
fn strip_padding(header: &FrameHeader, payload: &[u8]) -> Result<(usize, usize), FrameError> {
    if header.flags & flags::PADDED == 0 {
        return Ok((0, payload.len()));
    }
    let pad = *payload.first().ok_or(FrameError::PayloadTooShort {
        frame_type: header.frame_type,
        len: payload.len(),
    })? as usize;
    let rest = payload.len() - 1;
    if pad > rest {
        return Err(FrameError::PaddingTooLong {
            frame_type: header.frame_type,
            pad,
            len: payload.len(),
        });
    }
    Ok((1, payload.len() - pad))
}

fn read_priority(bytes: &[u8]) -> Option<PriorityFields> {
    let dep = be_u32(bytes)?;
    Some(PriorityFields {
        exclusive: dep & 0x8000_0000 != 0,
        stream_dependency: dep & 0x7fff_ffff,
        weight: *bytes.get(4)?,
    })
}

fn require_stream(header: &FrameHeader, nonzero: bool) -> Result<(), FrameError> {
    match (nonzero, header.stream_id) {
        (true, 0) => Err(FrameError::BadStream {
            frame_type: header.frame_type,
            must: "not be on",
            stream_id: 0,
        }),
        (false, id) if id != 0 => Err(FrameError::BadStream {
            frame_type: header.frame_type,
            must: "be on",
            stream_id: id,
        }),
        _ => Ok(()),
    }
}

/// Decode the payload of a frame whose header was already read.
pub fn decode_frame(header: &FrameHeader, payload: &[u8]) -> Result<Http2Frame, FrameError> {
    use frame_type::*;
    let len = payload.len();
    let too_short = || FrameError::PayloadTooShort {
        frame_type: header.frame_type,
        len,
    };
    let bad_len = || FrameError::BadLength {
        frame_type: header.frame_type,
        len,
    };
    let stream_id = header.stream_id;
    Ok(match header.frame_type {
        DATA => {
            require_stream(header, true)?;
            let (start, end) = strip_padding(header, payload)?;
            Http2Frame::Data {
                stream_id,
                end_stream: header.flags & flags::END_STREAM != 0,
                data: payload.get(start..end).ok_or_else(too_short)?.to_vec(),
                flow_len: header.length,
            }
        }
        HEADERS => {
            require_stream(header, true)?;
            let (mut start, end) = strip_padding(header, payload)?;
            let priority = if header.flags & flags::PRIORITY != 0 {
                let p = payload
                    .get(start..end)
                    .and_then(read_priority)
                    .ok_or_else(too_short)?;
                start += 5;
                Some(p)
            } else {
                None
            };
            Http2Frame::Headers {
                stream_id,
                end_stream: header.flags & flags::END_STREAM != 0,
                end_headers: header.flags & flags::END_HEADERS != 0,
                priority,
                fragment: payload.get(start..end).ok_or_else(too_short)?.to_vec(),
            }
        }
        PRIORITY => {
            require_stream(header, true)?;
            if len != 5 {
                return Err(bad_len());
            }
            Http2Frame::Priority {
                stream_id,
                priority: read_priority(payload).ok_or_else(too_short)?,
            }
        }
        RST_STREAM => {
            require_stream(header, true)?;
            if len != 4 {
                return Err(bad_len());
            }
            Http2Frame::RstStream {
                stream_id,
                error_code: be_u32(payload).ok_or_else(too_short)?,
            }
        }
        SETTINGS => {
            require_stream(header, false)?;
            let ack = header.flags & flags::ACK != 0;
            if !len.is_multiple_of(6) || (ack && len != 0) {
                return Err(bad_len());
            }
            let settings = payload
                .chunks_exact(6)
                .filter_map(|c| <[u8; 6]>::try_from(c).ok())
                .map(|[i0, i1, v0, v1, v2, v3]| Setting {
                    id: u16::from_be_bytes([i0, i1]),
                    value: u32::from_be_bytes([v0, v1, v2, v3]),
                })
                .collect();
            Http2Frame::Settings { ack, settings }
        }
        PUSH_PROMISE => {
            require_stream(header, true)?;
            let (start, end) = strip_padding(header, payload)?;
            let body = payload.get(start..end).ok_or_else(too_short)?;
            let promised = be_u32(body).ok_or_else(too_short)? & 0x7fff_ffff;
            Http2Frame::PushPromise {
                stream_id,
                end_headers: header.flags & flags::END_HEADERS != 0,
                promised_stream_id: promised,
                fragment: body.get(4..).ok_or_else(too_short)?.to_vec(),
            }
        }
        PING => {
            require_stream(header, false)?;
            let opaque: [u8; 8] = payload.try_into().map_err(|_| bad_len())?;
            Http2Frame::Ping {
                ack: header.flags & flags::ACK != 0,
                opaque,
            }
        }
        GOAWAY => {
            require_stream(header, false)?;
            let last = be_u32(payload).ok_or_else(too_short)? & 0x7fff_ffff;
            let code = payload.get(4..).and_then(be_u32).ok_or_else(too_short)?;
            let debug = payload.get(8..).unwrap_or_default();
            Http2Frame::GoAway {
                last_stream_id: last,
                error_code: code,
                debug_data: debug
                    .get(..debug.len().min(MAX_GOAWAY_DEBUG))
                    .unwrap_or_default()
                    .to_vec(),
            }
        }
        WINDOW_UPDATE => {
            if len != 4 {
                return Err(bad_len());
            }
            Http2Frame::WindowUpdate {
                stream_id,
                increment: be_u32(payload).ok_or_else(too_short)? & 0x7fff_ffff,
            }
        }
        CONTINUATION => {
            require_stream(header, true)?;
            Http2Frame::Continuation {
                stream_id,
                end_headers: header.flags & flags::END_HEADERS != 0,
                fragment: payload.to_vec(),
            }
        }
        other => Http2Frame::Unknown {
            frame_type: other,
            flags: header.flags,
            stream_id,
            length: header.length,
        },
    })
}
