//! Body decoders shared by HTTP/1.1 and HTTP/2: content encodings (bounded against
//! decompression bombs), server-sent events, multipart/form-data.

pub mod content_encoding;
pub mod multipart;
pub mod sse;

pub use content_encoding::{
    ContentCoding, ContentDecodeError, DecodedBody, decode_content, parse_content_encoding,
};
pub use multipart::{
    MultipartBody, MultipartLimits, MultipartPart, boundary_from_content_type, parse_multipart,
};
pub use sse::{SseDecoder, SseEvent, SseStats, decode_sse};
