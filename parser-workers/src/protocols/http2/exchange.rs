//! `Http2Exchange`: one HTTP/2 stream as a request/response pair, with secrets redacted and
//! binary (`-bin`) header values kept as base64 text.

use base64::Engine as _;

/// What replaces the value of a header that carries a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Header names whose values are never kept (compared lowercase; HTTP/2 names are lowercase).
pub const REDACTED_HEADERS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
];

/// Whether a header's value must be redacted.
pub fn is_secret_header(name: &str) -> bool {
    REDACTED_HEADERS
        .iter()
        .any(|s| s.eq_ignore_ascii_case(name))
}

/// Whether a header carries binary metadata (gRPC: the name ends in `-bin`).
pub fn is_binary_header(name: &str) -> bool {
    name.len() > 4
        && name
            .get(name.len() - 4..)
            .is_some_and(|end| end.eq_ignore_ascii_case("-bin"))
}

/// The text kept for a `-bin` header value: base64 as gRPC sends it (kept as sent when it is
/// text), or the raw bytes base64-encoded (unpadded, as gRPC emits it) when they are not:
/// grpc-core's "true binary" form (a 0 byte, then the raw value) loses its 0 byte. Never
/// lossy, so `grpc-status-details-bin` still decodes.
pub fn binary_header_text(value: &[u8]) -> String {
    let engine = base64::engine::general_purpose::STANDARD_NO_PAD;
    match value.split_first() {
        Some((0, raw)) => engine.encode(raw),
        _ => match std::str::from_utf8(value) {
            Ok(text) => text.to_string(),
            Err(_) => engine.encode(value),
        },
    }
}

/// One header field as kept in an exchange (lossy UTF-8, `-bin` values as base64 text;
/// secret values redacted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderField {
    pub name: String,
    pub value: String,
}

impl HeaderField {
    /// Build from wire bytes, redacting secret values.
    pub fn from_wire(name: &[u8], value: &[u8]) -> Self {
        let name = String::from_utf8_lossy(name).into_owned();
        let value = if is_secret_header(&name) {
            REDACTED.to_string()
        } else if is_binary_header(&name) {
            binary_header_text(value)
        } else {
            String::from_utf8_lossy(value).into_owned()
        };
        HeaderField { name, value }
    }
}

/// What happened to an exchange beyond the happy path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExchangeFlags {
    /// RST_STREAM was seen on the stream, or a GOAWAY said it was never processed.
    pub reset: bool,
    /// Part of the exchange was not seen (joined mid-stream, bytes lost, evicted, flushed open).
    pub partial: bool,
    /// Server push: the request came from a PUSH_PROMISE.
    pub pushed: bool,
    /// Some header field could not be decoded (unknown dynamic table entry, lost or malformed
    /// header block, header list over its bound); no header was invented.
    pub headers_incomplete: bool,
    /// A body was longer than its cap; only the first bytes are kept.
    pub truncated: bool,
    /// The stream was pushed out by the open-stream bound before it ended.
    pub evicted: bool,
}

/// One HTTP/2 stream: the request (or push promise) and its response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Http2Exchange {
    pub stream_id: u32,
    /// For a pushed exchange: the stream that carried the PUSH_PROMISE.
    pub promised_on_stream: Option<u32>,
    pub method: Option<String>,
    pub scheme: Option<String>,
    pub authority: Option<String>,
    pub path: Option<String>,
    /// Final (non-1xx) response status.
    pub status: Option<u16>,
    /// Request header fields other than the pseudo-headers above, in order.
    pub request_headers: Vec<HeaderField>,
    /// Final response header fields other than `:status`, in order.
    pub response_headers: Vec<HeaderField>,
    pub request_trailers: Vec<HeaderField>,
    /// Response trailers (gRPC's grpc-status / grpc-message live here, or in the response
    /// headers for a trailers-only response).
    pub response_trailers: Vec<HeaderField>,
    /// First request body bytes (DATA payloads without padding), as received (not decoded).
    pub request_body: Vec<u8>,
    pub response_body: Vec<u8>,
    /// True request body size (every DATA byte seen, kept or not).
    pub request_body_size: u64,
    pub response_body_size: u64,
    /// Encoded header block bytes (HPACK) seen per side, trailers and pushes included.
    pub request_header_bytes: u64,
    pub response_header_bytes: u64,
    /// Error code of the RST_STREAM (or of the GOAWAY) that ended the stream.
    pub reset_error_code: Option<u32>,
    /// Timestamp (ns) of the first and of the last frame of this stream.
    pub start_ts_ns: u64,
    pub end_ts_ns: u64,
    /// Timestamp (ns) of the first response DATA bytes (the first SSE event of a stream);
    /// `None` when no response data came.
    pub response_first_ts_ns: Option<u64>,
    pub flags: ExchangeFlags,
}

impl Http2Exchange {
    /// The value of the first request header of that name (case-insensitive).
    pub fn request_header(&self, name: &str) -> Option<&str> {
        find(&self.request_headers, name)
    }

    /// The value of the first response header of that name.
    pub fn response_header(&self, name: &str) -> Option<&str> {
        find(&self.response_headers, name)
    }

    /// The value of the first response trailer of that name.
    pub fn response_trailer(&self, name: &str) -> Option<&str> {
        find(&self.response_trailers, name)
    }
}

fn find<'a>(fields: &'a [HeaderField], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|f| f.name.eq_ignore_ascii_case(name))
        .map(|f| f.value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        for name in [
            "authorization",
            "Proxy-Authorization",
            "cookie",
            "set-cookie",
            "x-api-key",
            "api-key",
        ] {
            let f = HeaderField::from_wire(name.as_bytes(), b"Bearer sk-secret");
            assert_eq!(f.value, REDACTED, "{name}");
        }
        assert_eq!(HeaderField::from_wire(b"content-type", b"a/b").value, "a/b");
    }

    #[test]
    fn binary_values_stay_base64_text() {
        // google.rpc.Status {code: 13, message: "boom"}
        let status = b"\x08\x0d\x12\x04boom";
        // as gRPC sends it: base64 text, kept as sent (padded or not)
        let f = HeaderField::from_wire(b"grpc-status-details-bin", b"CA0SBGJvb20=");
        assert_eq!(f.value, "CA0SBGJvb20=");
        // grpc-core's true binary (0 byte, raw bytes): base64 of the raw bytes, not lossy text
        let mut raw = vec![0u8];
        raw.extend_from_slice(status);
        let f = HeaderField::from_wire(b"grpc-status-details-bin", &raw);
        assert_eq!(f.value, "CA0SBGJvb20");
        // raw bytes without the 0 byte that are not UTF-8
        let f = HeaderField::from_wire(b"X-Trace-Bin", &[0xff, 0xfe, 0x01]);
        assert_eq!(f.value, "//4B");
        // a header merely named like one is untouched; a non-bin header stays lossy text
        assert_eq!(HeaderField::from_wire(b"-bin", &[0xff]).value, "\u{FFFD}");
        assert_eq!(
            HeaderField::from_wire(b"x-cabin", &[0xff]).value,
            "\u{FFFD}"
        );
        assert_eq!(HeaderField::from_wire(b"x-bin", b"").value, "");
        // secrets stay redacted whatever their name ends with
        assert_eq!(
            HeaderField::from_wire(b"authorization", b"\0abc").value,
            REDACTED
        );
    }
}
