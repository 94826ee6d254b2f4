//! HTTP/2 (RFC 9113) with HPACK (RFC 7541): frames, a push frame parser per direction, a
//! stitcher from frames of both directions to `Http2Exchange`s, and `Http2Connection`, a driver
//! owning bounded buffers. Works from the connection start or joined mid-connection (no
//! preface, unknown HPACK tables): it then flags what it could not decode and invents nothing.
//!
//! Driving the parts directly (as the connection FSM does) instead of `Http2Connection`:
//! one `Http2FrameParser` per direction (`new` when joining mid-way, `at_connection_start` when
//! the first byte was seen) and one `Http2Stitcher`; on lost bytes call `parser.resync()` and
//! `stitcher.gap(dir)`; at connection end call `parser.set_end_of_stream()`, parse what is
//! left in the buffers, then `stitcher.flush()`.

pub mod config;
pub mod connection;
pub mod detect;
pub mod exchange;
pub mod frame;
pub mod hpack;
pub mod parser;
pub mod stitcher;

pub use config::Http2Config;
pub use connection::{Http2Connection, Http2ConnectionStats};
pub use detect::looks_like_http2;
pub use exchange::{ExchangeFlags, HeaderField, Http2Exchange, REDACTED};
pub use frame::{CONNECTION_PREFACE, FrameError, FrameHeader, Http2Frame, PriorityFields, Setting};
pub use hpack::{HpackDecoder, HpackError, HpackLimits};
pub use parser::{FrameParserStats, Http2FrameParser};
pub use stitcher::{Http2Stitcher, StitcherStats};
