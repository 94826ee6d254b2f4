//! `Http1Exchange`: one request with its response (either may be missing when the capture
//! started late or the connection ended early), bodies decoded and capped, SSE events and
//! multipart parts extracted, secrets redacted.

use super::frame::Header;
use crate::body::{MultipartPart, SseEvent};

/// A body as kept: content-decoded, capped, with its real wire size.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CapturedBody {
    /// Decoded bytes (Content-Encoding undone), at most the body cap.
    pub bytes: Vec<u8>,
    /// Body bytes on the wire after de-chunking, before content decoding; counts bytes past
    /// the cap and bytes lost to gaps.
    pub wire_size: u64,
    /// `bytes` is only a prefix: the cap was hit, a gap lost bytes, or the message was cut.
    pub truncated: bool,
    /// The `Content-Encoding` header, if any.
    pub content_encoding: Option<String>,
    /// Why content decoding failed (then `bytes` holds the still-encoded bytes).
    pub decode_error: Option<String>,
    /// Chunked trailers (sensitive values redacted).
    pub trailers: Vec<Header>,
}

/// Flags of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExchangeFlags {
    /// Request or response missing or cut (connection end, gap, eviction, bad framing).
    pub partial: bool,
    /// The connection switched protocols (101, CONNECT 2xx); no more HTTP follows.
    pub upgraded: bool,
    /// A body was kept only in part (cap, gap, cut).
    pub truncated: bool,
    /// Bytes of this exchange were lost in a capture gap.
    pub gap: bool,
}

/// One HTTP/1.x request/response exchange.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Http1Exchange {
    /// Request method, empty when the request was not seen.
    pub method: String,
    /// Request target as sent.
    pub path: String,
    /// "HTTP/1.0" or "HTTP/1.1" of the request (of the response when no request was seen).
    pub version: String,
    /// `Host` header.
    pub host: Option<String>,
    pub request_headers: Vec<Header>,
    /// Final status, `None` when no response came.
    pub status: Option<u16>,
    pub reason: String,
    pub response_headers: Vec<Header>,
    /// Interim 1xx statuses seen before the final response (e.g. 100 Continue).
    pub interim_statuses: Vec<u16>,
    pub request_body: CapturedBody,
    pub response_body: CapturedBody,
    pub request_content_type: Option<String>,
    pub response_content_type: Option<String>,
    /// The `Upgrade` protocol asked for (e.g. "websocket"), if any.
    pub upgrade: Option<String>,
    /// Events of a `text/event-stream` response body.
    pub sse_events: Vec<SseEvent>,
    /// Parts of a `multipart/*` request (or response) body.
    pub multipart_parts: Vec<MultipartPart>,
    /// Timestamp (ns) of the first frame of the exchange.
    pub start_ns: u64,
    /// Timestamp (ns) of the last frame of the exchange.
    pub end_ns: u64,
    /// Timestamp (ns) of the first response body bytes (the first SSE event of a stream), or of
    /// the response head when the body is empty; `None` without a response.
    pub response_first_ns: Option<u64>,
    pub flags: ExchangeFlags,
}
