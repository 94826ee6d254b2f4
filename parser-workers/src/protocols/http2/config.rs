//! Bounds of one HTTP/2 connection's state: frame size, buffers, header blocks, HPACK tables,
//! open streams and kept body bytes. Every bound has a counter that says when it was hit.

/// Limits of one `Http2Connection` / `Http2Stitcher`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http2Config {
    /// Largest frame payload accepted (RFC 9113: 16,384 by default, up to 2^24 - 1 if a peer
    /// advertised it). Larger headers are taken as a lost frame boundary.
    pub max_frame_size: u32,
    /// Per-direction reassembly buffer of `Http2Connection`; never less than one whole frame.
    pub max_buffer_bytes: usize,
    /// Largest header block (HEADERS/PUSH_PROMISE plus CONTINUATIONs) assembled; a larger one
    /// is dropped, marked incomplete, and the HPACK context of that direction forgotten.
    pub max_header_block_bytes: usize,
    /// Largest decoded header list kept per block (RFC 7541 size: name + value + 32 per field).
    pub max_header_list_size: usize,
    /// Largest HPACK dynamic table size an encoder may switch to.
    pub max_dynamic_table_size: usize,
    /// Streams tracked at once; past it the oldest stream is emitted as partial (an eviction).
    pub max_open_streams: usize,
    /// Request body bytes kept per stream (the true size is still counted).
    pub max_request_body_bytes: usize,
    /// Response body bytes kept per stream (the true size is still counted).
    pub max_response_body_bytes: usize,
    /// How many closed stream ids are remembered, so late frames on them are not taken as a
    /// new stream.
    pub remembered_closed_streams: usize,
    /// Whether the connection is observed from its first byte (HPACK tables known empty).
    /// When false, the decoders start "unsynced" and unknown dynamic references are flagged.
    pub from_connection_start: bool,
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            max_frame_size: 1 << 20,
            max_buffer_bytes: (1 << 20) + 64,
            max_header_block_bytes: 256 * 1024,
            max_header_list_size: 64 * 1024,
            max_dynamic_table_size: 64 * 1024,
            max_open_streams: 256,
            max_request_body_bytes: 256 * 1024,
            max_response_body_bytes: 1024 * 1024,
            remembered_closed_streams: 128,
            from_connection_start: false,
        }
    }
}

impl Http2Config {
    /// The buffer actually used per direction: at least one whole maximum-size frame.
    pub fn effective_buffer_bytes(&self) -> usize {
        self.max_buffer_bytes
            .max(self.max_frame_size as usize + super::frame::FRAME_HEADER_LEN)
    }
}
