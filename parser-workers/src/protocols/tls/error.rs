//! What was wrong with bytes that claimed to be TLS.

use thiserror::Error;

/// A TLS record or hello that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TlsError {
    /// A record content type outside 20..=24.
    #[error("unknown TLS record content type {0}")]
    UnknownContentType(u8),
    /// A record version whose major byte is not 3.
    #[error("unsupported TLS record version 0x{0:04x}")]
    BadRecordVersion(u16),
    /// A record longer than TLS allows (2^14 + 2048).
    #[error("TLS record length {0} exceeds the maximum")]
    RecordTooLong(usize),
    /// A handshake message ended before a field it must contain.
    #[error("{message} truncated while reading {field}")]
    Truncated {
        message: &'static str,
        field: &'static str,
    },
    /// A length field inconsistent with its contents.
    #[error("{message}: inconsistent length of {field}")]
    BadLength {
        message: &'static str,
        field: &'static str,
    },
    /// Handshake messages larger than the reassembly bound.
    #[error("handshake reassembly exceeded {0} bytes")]
    ReassemblyOverflow(usize),
}
