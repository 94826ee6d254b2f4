//! Protocol detection by content (never by port): which wire protocol a connection speaks and,
//! when the capture did not say, which side is the client.

use crate::protocols::http2::looks_like_http2;
use crate::protocols::postgres::looks_like_postgres_client;
use crate::protocols::tls::looks_like_tls_client_hello;

/// The protocol a connection was detected to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DetectedProtocol {
    Http1,
    Http2,
    Postgres,
    /// TLS: the ClientHello names the destination; what follows is ciphertext.
    Tls,
}

impl DetectedProtocol {
    /// The `protocol` name used in semantic events.
    pub fn name(self) -> &'static str {
        match self {
            DetectedProtocol::Http1 => "http1",
            DetectedProtocol::Http2 => "http2",
            DetectedProtocol::Postgres => "postgres",
            DetectedProtocol::Tls => "tls",
        }
    }
}

/// HTTP/1.x request methods recognised at the start of a client stream.
const HTTP1_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
];

/// Whether `buf` starts with an HTTP/1.x request line (a known method and a space).
pub fn looks_like_http1_request(buf: &[u8]) -> bool {
    HTTP1_METHODS.iter().any(|m| buf.starts_with(m))
}

/// Whether `buf` starts with an HTTP/1.x status line.
pub fn looks_like_http1_response(buf: &[u8]) -> bool {
    buf.starts_with(b"HTTP/1.")
}

/// What the first bytes of one side say about that side, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideEvidence {
    /// This side sends what a client sends first, in this protocol.
    Client(DetectedProtocol),
    /// This side sends what a server sends, in this protocol.
    Server(DetectedProtocol),
}

/// Look at the first buffered bytes of one side. Client evidence is checked first; a stream
/// too short to tell yields `None` (try again with more bytes).
pub fn side_evidence(buf: &[u8]) -> Option<SideEvidence> {
    if buf.is_empty() {
        return None;
    }
    if looks_like_tls_client_hello(buf) && buf.len() >= 6 {
        return Some(SideEvidence::Client(DetectedProtocol::Tls));
    }
    if buf.starts_with(b"PRI ") && looks_like_http2(buf) {
        return Some(SideEvidence::Client(DetectedProtocol::Http2));
    }
    if looks_like_http1_request(buf) {
        return Some(SideEvidence::Client(DetectedProtocol::Http1));
    }
    if looks_like_http1_response(buf) {
        return Some(SideEvidence::Server(DetectedProtocol::Http1));
    }
    if looks_like_postgres_client(buf) {
        return Some(SideEvidence::Client(DetectedProtocol::Postgres));
    }
    // HTTP/2 frames without the preface (joined mid-connection): either side may send them,
    // so they name the protocol but not the client.
    if buf.len() >= 9 && looks_like_http2(buf) {
        return Some(SideEvidence::Server(DetectedProtocol::Http2));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_is_told_by_its_first_bytes() {
        assert_eq!(
            side_evidence(b"GET / HTTP/1.1\r\n"),
            Some(SideEvidence::Client(DetectedProtocol::Http1))
        );
        assert_eq!(
            side_evidence(b"HTTP/1.1 200 OK\r\n"),
            Some(SideEvidence::Server(DetectedProtocol::Http1))
        );
        assert_eq!(
            side_evidence(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Some(SideEvidence::Client(DetectedProtocol::Http2))
        );
        assert_eq!(
            side_evidence(&[0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]),
            Some(SideEvidence::Client(DetectedProtocol::Postgres))
        );
        assert_eq!(
            side_evidence(&[0x16, 3, 1, 0, 0xc8, 1, 0, 0, 0xc4, 3, 3]),
            Some(SideEvidence::Client(DetectedProtocol::Tls))
        );
        assert_eq!(side_evidence(b"SSH-2.0-OpenSSH_9.6\r\n"), None);
        assert_eq!(side_evidence(b""), None);
    }
}

/// HTTP/1 joined mid-stream (the held bytes start inside a body): the first line start in
/// `buf` that begins a request line (a known method and " HTTP/1." on that line) or a status
/// line. Called rarely (at doubling thresholds of held bytes), so the scan stays linear overall.
pub fn find_http1_boundary(buf: &[u8]) -> Option<SideEvidence> {
    for nl in memchr::memchr_iter(b'\n', buf) {
        let line_start = buf.get(nl + 1..).unwrap_or_default();
        if looks_like_http1_response(line_start) {
            return Some(SideEvidence::Server(DetectedProtocol::Http1));
        }
        if looks_like_http1_request(line_start) {
            let line_end = memchr::memchr(b'\n', line_start).unwrap_or(line_start.len());
            let line = line_start.get(..line_end).unwrap_or_default();
            if memchr::memmem::find(line, b" HTTP/1.").is_some() {
                return Some(SideEvidence::Client(DetectedProtocol::Http1));
            }
        }
    }
    None
}

#[cfg(test)]
mod boundary_tests {
    use super::*;

    #[test]
    fn http1_is_found_after_a_body_tail() {
        assert_eq!(
            find_http1_boundary(b"\"a\":1}\r\nPOST /v1 HTTP/1.1\r\nHost: x\r\n"),
            Some(SideEvidence::Client(DetectedProtocol::Http1))
        );
        assert_eq!(
            find_http1_boundary(b"tail of body\nHTTP/1.1 200 OK\r\n"),
            Some(SideEvidence::Server(DetectedProtocol::Http1))
        );
        assert_eq!(find_http1_boundary(b"GET me a coffee\nplease"), None);
    }
}
