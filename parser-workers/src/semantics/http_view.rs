//! One view of an HTTP exchange, whatever its version: method, host, path, headers, and the
//! bodies with their content encoding undone, SSE events split and multipart parts whole.
//! The recognisers of LLM APIs, vector databases, SaaS actions and uploads read only this.

use std::borrow::Cow;

use serde_json::Value;

use crate::body::{
    MultipartLimits, MultipartPart, SseEvent, boundary_from_content_type, decode_content, decode_sse,
    parse_multipart,
};
use crate::connection::{ParsedExchange, ProtocolExchange};
use crate::protocols::grpc::GrpcCall;

/// Largest SSE event kept when an HTTP/2 event-stream body is split here.
const MAX_SSE_EVENT_BYTES: usize = 256 * 1024;
/// Multipart parts reported at most (more are counted by the parser, not here).
const MAX_MULTIPART_PARTS: usize = 256;

/// HTTP/1.x or HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    Http1,
    Http2,
}

/// An HTTP exchange as the semantics layer sees it. Bodies are content-decoded (bounded by the
/// parser's body cap); header values of secrets are already redacted by the parsers.
#[derive(Debug, Clone)]
pub struct HttpView<'a> {
    pub version: HttpVersion,
    /// Empty when the request was not seen.
    pub method: &'a str,
    /// `Host` or `:authority`, as sent (may carry a port).
    pub host: Option<&'a str>,
    /// The request target, query included.
    pub target: &'a str,
    pub status: Option<u16>,
    pub request_headers: Vec<(&'a str, &'a str)>,
    pub response_headers: Vec<(&'a str, &'a str)>,
    pub request_body: Cow<'a, [u8]>,
    /// The request body is only a prefix (cap, gap, cut).
    pub request_truncated: bool,
    pub response_body: Cow<'a, [u8]>,
    pub response_truncated: bool,
    /// Request and response body sizes on the wire.
    pub request_wire_bytes: u64,
    pub response_wire_bytes: u64,
    /// Events of a `text/event-stream` response.
    pub sse_events: Cow<'a, [SseEvent]>,
    /// Parts of a multipart request body, each with its whole kept content in `head`.
    pub multipart_parts: Vec<MultipartPart>,
    /// The gRPC decoding of an HTTP/2 exchange with content-type application/grpc.
    pub grpc: Option<&'a GrpcCall>,
    pub start_ns: u64,
    pub end_ns: u64,
    /// When the first response body bytes were seen (HTTP/1: the head when the body is empty):
    /// the time to first token of a stream is this minus `start_ns`.
    pub response_first_ns: Option<u64>,
}

impl<'a> HttpView<'a> {
    /// The view of an HTTP exchange; `None` for PostgreSQL and TLS handshakes.
    pub fn from_exchange(ex: &'a ParsedExchange) -> Option<HttpView<'a>> {
        match &ex.exchange {
            ProtocolExchange::Http1(e) => {
                let request_headers: Vec<(&str, &str)> =
                    e.request_headers.iter().map(|h| (h.name.as_str(), h.value.as_str())).collect();
                let response_headers: Vec<(&str, &str)> =
                    e.response_headers.iter().map(|h| (h.name.as_str(), h.value.as_str())).collect();
                let multipart_parts = whole_parts(
                    e.request_content_type.as_deref(),
                    &e.request_body.bytes,
                    e.multipart_parts.as_slice(),
                );
                Some(HttpView {
                    version: HttpVersion::Http1,
                    method: &e.method,
                    host: e.host.as_deref(),
                    target: &e.path,
                    status: e.status,
                    request_headers,
                    response_headers,
                    request_body: Cow::Borrowed(&e.request_body.bytes),
                    request_truncated: e.request_body.truncated,
                    response_body: Cow::Borrowed(&e.response_body.bytes),
                    response_truncated: e.response_body.truncated,
                    request_wire_bytes: e.request_body.wire_size,
                    response_wire_bytes: e.response_body.wire_size,
                    sse_events: Cow::Borrowed(&e.sse_events),
                    multipart_parts,
                    grpc: None,
                    start_ns: e.start_ns,
                    end_ns: e.end_ns,
                    response_first_ns: e.response_first_ns,
                })
            }
            ProtocolExchange::Http2(e, grpc) => {
                let request_headers: Vec<(&str, &str)> =
                    e.request_headers.iter().map(|h| (h.name.as_str(), h.value.as_str())).collect();
                let response_headers: Vec<(&str, &str)> =
                    e.response_headers.iter().map(|h| (h.name.as_str(), h.value.as_str())).collect();
                let req_truncated = e.request_body_size > e.request_body.len() as u64;
                let resp_truncated = e.response_body_size > e.response_body.len() as u64;
                let is_grpc = grpc.is_some();
                let (request_body, request_truncated) = if is_grpc {
                    (Cow::Borrowed(e.request_body.as_slice()), req_truncated)
                } else {
                    decoded(e.request_header("content-encoding"), &e.request_body, req_truncated)
                };
                let (response_body, response_truncated) = if is_grpc {
                    (Cow::Borrowed(e.response_body.as_slice()), resp_truncated)
                } else {
                    decoded(e.response_header("content-encoding"), &e.response_body, resp_truncated)
                };
                let sse_events = if e
                    .response_header("content-type")
                    .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("text/event-stream"))
                {
                    Cow::Owned(decode_sse(&response_body, MAX_SSE_EVENT_BYTES))
                } else {
                    Cow::Owned(Vec::new())
                };
                let multipart_parts = whole_parts(e.request_header("content-type"), &request_body, &[]);
                Some(HttpView {
                    version: HttpVersion::Http2,
                    method: e.method.as_deref().unwrap_or(""),
                    host: e.authority.as_deref().or_else(|| e.request_header("host")),
                    target: e.path.as_deref().unwrap_or(""),
                    status: e.status,
                    request_headers,
                    response_headers,
                    request_body,
                    request_truncated,
                    response_body,
                    response_truncated,
                    request_wire_bytes: e.request_body_size,
                    response_wire_bytes: e.response_body_size,
                    sse_events,
                    multipart_parts,
                    grpc: grpc.as_deref(),
                    start_ns: e.start_ts_ns,
                    end_ns: e.end_ts_ns,
                    response_first_ns: e.response_first_ts_ns,
                })
            }
            ProtocolExchange::Postgres(_) | ProtocolExchange::Tls(_) => None,
        }
    }

    /// The first request header of that name (case-insensitive).
    pub fn request_header(&self, name: &str) -> Option<&'a str> {
        find(&self.request_headers, name)
    }

    /// The first response header of that name (case-insensitive).
    pub fn response_header(&self, name: &str) -> Option<&'a str> {
        find(&self.response_headers, name)
    }

    /// The path without the query string.
    pub fn path(&self) -> &'a str {
        self.target.split_once('?').map_or(self.target, |(p, _)| p)
    }

    /// The (undecoded) value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<&'a str> {
        let (_, query) = self.target.split_once('?')?;
        query.split('&').find_map(|kv| match kv.split_once('=') {
            Some((k, v)) if k == name => Some(v),
            None if kv == name => Some(""),
            _ => None,
        })
    }

    /// The host name without a port, lower-cased.
    pub fn host_name(&self) -> Option<String> {
        self.host.map(|h| host_without_port(h).to_ascii_lowercase())
    }

    /// The request body as JSON, when it is (whole) JSON.
    pub fn request_json(&self) -> Option<Value> {
        json_of(&self.request_body)
    }

    /// The response body as JSON, when it is (whole) JSON.
    pub fn response_json(&self) -> Option<Value> {
        json_of(&self.response_body)
    }

    /// The request content type, lower-cased, without parameters.
    pub fn request_mime(&self) -> Option<String> {
        self.request_header("content-type").map(mime_of)
    }

    /// The response content type, lower-cased, without parameters.
    pub fn response_mime(&self) -> Option<String> {
        self.response_header("content-type").map(mime_of)
    }
}

/// "host:port" or "[v6]:port" without the port (the event layer's split, one rule for both).
pub fn host_without_port(h: &str) -> &str {
    crate::events::split_host_port(h).0
}

fn mime_of(ct: &str) -> String {
    ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

fn find<'a>(headers: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
}

fn json_of(body: &[u8]) -> Option<Value> {
    let trimmed = body.trim_ascii_start();
    if !matches!(trimmed.first(), Some(b'{' | b'[')) {
        return None;
    }
    serde_json::from_slice(trimmed).ok()
}

/// HTTP/2 bodies arrive as sent: undo their content encoding (bounded by their own size cap,
/// since the parser already bounded what it kept). A decoding error keeps the bytes as sent.
fn decoded<'a>(encoding: Option<&str>, body: &'a [u8], truncated: bool) -> (Cow<'a, [u8]>, bool) {
    let Some(encoding) = encoding.filter(|e| !e.trim().is_empty() && !e.eq_ignore_ascii_case("identity")) else {
        return (Cow::Borrowed(body), truncated);
    };
    let cap = body.len().saturating_mul(32).clamp(64 * 1024, 16 * 1024 * 1024);
    match decode_content(encoding, body, cap, truncated) {
        Ok(d) => (Cow::Owned(d.bytes), d.truncated),
        Err(_) => (Cow::Borrowed(body), truncated),
    }
}

/// Multipart parts with their whole kept content: the parser keeps only a head of each part
/// for the event; uploads and detectors need what the body cap kept.
fn whole_parts(content_type: Option<&str>, body: &[u8], parsed: &[MultipartPart]) -> Vec<MultipartPart> {
    let Some(boundary) = content_type.and_then(boundary_from_content_type) else {
        return parsed.to_vec();
    };
    let limits = MultipartLimits { max_parts: MAX_MULTIPART_PARTS, keep_bytes: body.len() };
    parse_multipart(body, &boundary, limits).parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports_are_dropped() {
        assert_eq!(host_without_port("api.openai.com:443"), "api.openai.com");
        assert_eq!(host_without_port("[::1]:8080"), "::1");
        assert_eq!(host_without_port("localhost"), "localhost");
    }

    #[test]
    fn http2_bodies_are_decoded_and_split() {
        use std::io::Write;

        use crate::connection::ConnectionMeta;
        use crate::protocols::http2::{Http2Exchange, HeaderField};

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"data: {\"a\":1}\n\ndata: [DONE]\n\n").unwrap();
        let body = gz.finish().unwrap();
        let field = |n: &str, v: &str| HeaderField { name: n.into(), value: v.into() };
        let e = Http2Exchange {
            stream_id: 1,
            method: Some("POST".into()),
            authority: Some("api.example.com:443".into()),
            path: Some("/v1/chat/completions?x=1".into()),
            status: Some(200),
            response_headers: vec![field("content-type", "text/event-stream"), field("content-encoding", "gzip")],
            response_body_size: body.len() as u64,
            response_body: body,
            ..Default::default()
        };
        let ex = ParsedExchange {
            meta: ConnectionMeta::default(),
            exchange: ProtocolExchange::Http2(Box::new(e), None),
            request_offset: 0,
            rank_at_offset: 0,
        };
        let v = HttpView::from_exchange(&ex).unwrap();
        assert_eq!(v.sse_events.len(), 2);
        assert_eq!(v.path(), "/v1/chat/completions");
        assert_eq!(v.query_param("x"), Some("1"));
        assert_eq!(v.host_name().as_deref(), Some("api.example.com"));
    }
}
