//! TLS handshake hellos: a record-layer push parser that reassembles fragmented handshakes and
//! reports ClientHello (SNI, ALPN, versions, cipher suite count) and ServerHello (chosen
//! version, cipher, ALPN), a bounded per-direction sniffer, and content-based detection.
//!
//! Hand-written rather than `tls-parser`: we read four extensions of two messages, need
//! handshake reassembly across records and a hard buffer bound, and want no panics on any input.

pub mod detect;
pub mod error;
pub mod hello;
pub mod record;
pub mod sniffer;

pub use detect::looks_like_tls_client_hello;
pub use error::TlsError;
pub use hello::{
    TlsHello, TlsHelloKind, is_grease, parse_client_hello, parse_server_hello, version_name,
};
pub use record::{TlsFrame, TlsHelloParser, TlsParserStats};
pub use sniffer::{TlsHelloSniffer, TlsSnifferStats};
