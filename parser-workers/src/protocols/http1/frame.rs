//! HTTP/1.x frame types: what the push parsers emit (a message head, a piece of body, the end
//! of a message, or opaque bytes after an upgrade) and the header type with redaction.

/// Header names whose values are secrets: the value is never kept, only its length.
pub const SENSITIVE_HEADERS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
];

/// Whether a header's value must be redacted.
pub fn is_sensitive_header(name: &str) -> bool {
    SENSITIVE_HEADERS
        .iter()
        .any(|s| s.eq_ignore_ascii_case(name))
}

/// One header field as kept. Sensitive values are dropped at parse time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name as sent.
    pub name: String,
    /// The value (lossy UTF-8); empty when `redacted`.
    pub value: String,
    /// True for Authorization, Proxy-Authorization, Cookie, Set-Cookie, X-Api-Key, Api-Key.
    pub redacted: bool,
    /// Length in bytes of the value on the wire (kept even when redacted).
    pub value_len: usize,
}

impl Header {
    /// Build a header from wire bytes, redacting sensitive values.
    pub fn from_wire(name: &str, value: &[u8]) -> Self {
        let redacted = is_sensitive_header(name);
        Self {
            name: name.to_string(),
            value: if redacted {
                String::new()
            } else {
                String::from_utf8_lossy(value).trim().to_string()
            },
            redacted,
            value_len: value.len(),
        }
    }
}

/// First value of a header by case-insensitive name.
pub fn header_value<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// How the body of a message is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body at all.
    None,
    /// Exactly this many bytes.
    ContentLength(u64),
    /// Chunked transfer coding, with trailers.
    Chunked,
    /// Until the connection closes (responses without a length).
    UntilClose,
}

/// A parsed request line and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request target as sent (origin form, absolute form, `*` or authority form).
    pub path: String,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version_minor: u8,
    pub headers: Vec<Header>,
    /// Bytes of the head on the wire (request line + headers + blank line).
    pub head_len: usize,
    pub framing: BodyFraming,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// The `Upgrade` header (e.g. `websocket`, `h2c`), if any.
    pub upgrade: Option<String>,
}

/// A parsed status line and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub version_minor: u8,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<Header>,
    pub head_len: usize,
    pub framing: BodyFraming,
}

impl ResponseHead {
    /// 1xx other than 101: an interim response that does not answer the request.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// What an HTTP/1.x parser emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Http1Frame {
    /// A request head; its body (if any) follows as `Body` frames and one `End`.
    Request(RequestHead),
    /// A response head; its body follows as `Body` frames and one `End`.
    Response(ResponseHead),
    /// A piece of body (de-chunked). `data` holds only the part under the parser's keep cap;
    /// `wire_len` counts every body byte this frame stands for.
    Body { data: Vec<u8>, wire_len: u64 },
    /// The message ended. `complete` is false when it was cut (gap, bad chunk framing,
    /// connection end before the declared length).
    End {
        trailers: Vec<Header>,
        complete: bool,
    },
    /// `len` body bytes of the current message were lost (capture gap); the body continues.
    Gap { len: u64 },
    /// Bytes after a protocol switch (101 / CONNECT tunnel): counted, not parsed.
    Opaque { len: u64 },
}
