//! Limits of one HTTP/1.x connection: body cap, buffer cap, head size, pipelining depth, SSE
//! and multipart bounds.

use super::parser::ParserLimits;
use crate::body::MultipartLimits;

/// Every bound an HTTP/1.x connection keeps to. Hitting one is counted in `Http1Stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http1Config {
    /// Body bytes kept per message (before and after content decoding). Default 1 MiB.
    pub body_cap: usize,
    /// Unparsed bytes buffered per direction; past it the buffer is evicted. Default 256 KiB.
    pub buffer_cap: usize,
    /// Longest message head accepted. Default 64 KiB.
    pub max_head_bytes: usize,
    /// Requests waiting for responses (pipelining depth). Default 256.
    pub max_pending_requests: usize,
    /// Bound on one SSE event's data. Default 1 MiB.
    pub sse_max_event_bytes: usize,
    /// Bounds for multipart parts.
    pub multipart: MultipartLimits,
}

impl Default for Http1Config {
    fn default() -> Self {
        Self {
            body_cap: 1 << 20,
            buffer_cap: 256 * 1024,
            max_head_bytes: 64 * 1024,
            max_pending_requests: 256,
            sse_max_event_bytes: 1 << 20,
            multipart: MultipartLimits::default(),
        }
    }
}

impl Http1Config {
    /// The per-direction parser limits this config implies.
    pub fn parser_limits(&self) -> ParserLimits {
        ParserLimits {
            body_keep_cap: self.body_cap,
            max_head_bytes: self.max_head_bytes.min(self.buffer_cap),
            max_pending_requests: self.max_pending_requests,
        }
    }
}
