//! HTTP/1.x: frame types (`frame`), head parsing and resync checks (`head`), body framing
//! (`body_reader`), one push parser per direction (`parser`), the request/response stitcher
//! (`stitcher`) into `Http1Exchange`s (`exchange`), and `Http1Connection`, the driver that owns
//! the bounded buffers (`connection`), configured by `Http1Config` (`config`).
//!
//! Supported: keep-alive, pipelining, Content-Length / chunked (trailers) / until-close
//! bodies, 100-continue and other interim responses, HEAD / 204 / 304 without bodies,
//! Content-Encoding (gzip, deflate, br, zstd, stacked), SSE events, multipart parts, WebSocket
//! and h2c upgrades and CONNECT tunnels (noted, then the connection is no longer parsed),
//! redaction of credential headers, resynchronisation after garbage and capture gaps.

mod body_reader;
pub mod config;
pub mod connection;
pub mod exchange;
pub mod frame;
pub mod head;
pub mod parser;
pub mod stitcher;

#[cfg(test)]
mod tests;

pub use config::Http1Config;
pub use connection::{Http1Connection, Http1Stats};
pub use exchange::{CapturedBody, ExchangeFlags, Http1Exchange};
pub use frame::{BodyFraming, Header, Http1Frame, RequestHead, ResponseHead, is_sensitive_header};
pub use parser::{ExpectedResponse, Http1RequestParser, Http1ResponseParser, ParserLimits};
pub use stitcher::{Http1Stitcher, StitcherStats};
