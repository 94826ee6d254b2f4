//! `TlsHelloParser`: a push parser over the TLS record layer of one direction. It reassembles
//! plaintext handshake messages across records (handshake fragmentation) in a bounded buffer
//! and reports ClientHello / ServerHello; every other record is reported by type and length.

use super::error::TlsError;
use super::hello::{TlsHello, parse_client_hello, parse_server_hello};
use crate::protocols::parsed::{FrameParser, Parsed};

/// Longest record payload TLS allows (2^14 plus the TLS 1.2 ciphertext expansion).
pub const MAX_RECORD_LEN: usize = 16_384 + 2_048;
/// Default bound of the handshake reassembly buffer.
pub const DEFAULT_MAX_HANDSHAKE: usize = 64 * 1024;

const CT_CHANGE_CIPHER_SPEC: u8 = 20;
const CT_HANDSHAKE: u8 = 22;
const CT_APPLICATION_DATA: u8 = 23;
const HS_CLIENT_HELLO: u8 = 1;
const HS_SERVER_HELLO: u8 = 2;

/// What one record (or the hello it completed) was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFrame {
    /// A ClientHello completed by this record.
    ClientHello(TlsHello),
    /// A ServerHello (or HelloRetryRequest) completed by this record.
    ServerHello(TlsHello),
    /// Any other record: content type and payload length.
    Record { content_type: u8, len: usize },
}

/// Counters of one parser.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsParserStats {
    /// Records parsed.
    pub records: u64,
    /// Times the reassembly bound was hit (the partial handshake message was dropped).
    pub reassembly_overflows: u64,
    /// Hellos that failed to parse.
    pub bad_hellos: u64,
    /// Hellos completed in a record that had already completed one (not reported).
    pub extra_hellos: u64,
}

/// Parser of one direction's TLS records.
#[derive(Debug, Clone)]
pub struct TlsHelloParser {
    max_handshake: usize,
    /// Plaintext handshake bytes not yet forming a whole message.
    handshake: Vec<u8>,
    /// Record version of the record carrying the first byte in `handshake`.
    handshake_version: u16,
    /// After ChangeCipherSpec or application data the handshake is encrypted: stop reading it.
    encrypted: bool,
    last_error: Option<TlsError>,
    stats: TlsParserStats,
}

impl Default for TlsHelloParser {
    fn default() -> Self {
        TlsHelloParser::new(DEFAULT_MAX_HANDSHAKE)
    }
}

impl TlsHelloParser {
    /// A parser whose handshake reassembly keeps at most `max_handshake` bytes.
    pub fn new(max_handshake: usize) -> Self {
        TlsHelloParser {
            max_handshake,
            handshake: Vec::new(),
            handshake_version: 0,
            encrypted: false,
            last_error: None,
            stats: TlsParserStats::default(),
        }
    }

    /// What was wrong with the last bytes reported `Invalid` (or the last bad hello).
    pub fn last_error(&self) -> Option<&TlsError> {
        self.last_error.as_ref()
    }

    /// Counters so far.
    pub fn stats(&self) -> &TlsParserStats {
        &self.stats
    }

    /// Bytes held for handshake reassembly.
    pub fn buffered(&self) -> usize {
        self.handshake.len()
    }

    /// Append a handshake fragment and parse every whole message; the first hello is returned.
    fn on_handshake(&mut self, fragment: &[u8], version: u16) -> Option<TlsFrame> {
        if self.handshake.is_empty() {
            self.handshake_version = version;
        }
        if self.handshake.len().saturating_add(fragment.len()) > self.max_handshake {
            self.stats.reassembly_overflows += 1;
            self.last_error = Some(TlsError::ReassemblyOverflow(self.max_handshake));
            self.handshake.clear();
            return None;
        }
        self.handshake.extend_from_slice(fragment);
        let mut found = None;
        let mut pos = 0usize;
        while let Some(&[ty, a, b, c]) = self
            .handshake
            .get(pos..pos + 4)
            .and_then(|h| <&[u8; 4]>::try_from(h).ok())
        {
            let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
            if len > self.max_handshake {
                self.stats.reassembly_overflows += 1;
                self.last_error = Some(TlsError::ReassemblyOverflow(self.max_handshake));
                pos = self.handshake.len();
                break;
            }
            let Some(body) = self.handshake.get(pos + 4..pos + 4 + len) else {
                break;
            };
            let parsed = match ty {
                HS_CLIENT_HELLO => Some(
                    parse_client_hello(body, self.handshake_version).map(TlsFrame::ClientHello),
                ),
                HS_SERVER_HELLO => Some(
                    parse_server_hello(body, self.handshake_version).map(TlsFrame::ServerHello),
                ),
                _ => None,
            };
            match parsed {
                Some(Ok(frame)) if found.is_none() => found = Some(frame),
                Some(Ok(_)) => self.stats.extra_hellos += 1,
                Some(Err(e)) => {
                    self.stats.bad_hellos += 1;
                    self.last_error = Some(e);
                }
                None => {}
            }
            pos += 4 + len;
        }
        self.handshake.drain(..pos.min(self.handshake.len()));
        if !self.handshake.is_empty() {
            self.handshake_version = version;
        }
        found
    }
}

impl FrameParser for TlsHelloParser {
    type Frame = TlsFrame;

    fn parse(&mut self, buf: &[u8]) -> Parsed<TlsFrame> {
        let Some(&[content_type, major, minor, hi, lo]) =
            buf.get(..5).and_then(|h| <&[u8; 5]>::try_from(h).ok())
        else {
            return Parsed::NeedMore;
        };
        if !(20..=24).contains(&content_type) {
            self.last_error = Some(TlsError::UnknownContentType(content_type));
            return Parsed::Invalid { skip: 1 };
        }
        let version = u16::from_be_bytes([major, minor]);
        if major != 3 {
            self.last_error = Some(TlsError::BadRecordVersion(version));
            return Parsed::Invalid { skip: 1 };
        }
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if len > MAX_RECORD_LEN {
            self.last_error = Some(TlsError::RecordTooLong(len));
            return Parsed::Invalid { skip: 1 };
        }
        let Some(payload) = buf.get(5..5 + len) else {
            return Parsed::NeedMore;
        };
        self.stats.records += 1;
        let consumed = 5 + len;
        let hello = match content_type {
            CT_HANDSHAKE if !self.encrypted => self.on_handshake(payload, version),
            CT_CHANGE_CIPHER_SPEC | CT_APPLICATION_DATA => {
                self.encrypted = true;
                self.handshake.clear();
                None
            }
            _ => None,
        };
        let frame = hello.unwrap_or(TlsFrame::Record { content_type, len });
        Parsed::Frame { frame, consumed }
    }
}
