//! `RawSegment`: bytes of one direction of one connection, or a GAP of bytes not captured.

use serde::{Deserialize, Serialize};

use super::common::{ConnRole, SegmentSource, SocketTuple};

/// Direction from the watched process's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    /// Written (sent) by the watched process.
    Egress,
    /// Read (received) by the watched process.
    Ingress,
}

/// Captured bytes, or a GAP: loss is data, not silence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SegmentKind {
    Data,
    Gap,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawSegment {
    pub node: String,
    pub conn_id: String,
    pub tgid: i32,
    pub tid: i32,
    pub process_start_ns: i64,
    pub fd: i32,
    pub comm: String,
    pub ts_ns: i64,
    pub direction: Direction,
    pub source: SegmentSource,
    pub kind: SegmentKind,
    /// Byte position of the first byte in this direction's stream.
    pub stream_offset: i64,
    pub captured_len: i32,
    /// Bytes the call moved (DATA) or bytes lost (GAP).
    pub original_len: i64,
    pub truncated: bool,
    #[serde(with = "apache_avro::serde::bytes")]
    pub payload: Vec<u8>,
    pub role: ConnRole,
    pub tuple: Option<SocketTuple>,
}
