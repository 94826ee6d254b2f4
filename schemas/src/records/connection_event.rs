//! `ConnectionEvent`: a connection opened, accepted, closed, or found open at start.

use serde::{Deserialize, Serialize};

use super::common::{ConnRole, SegmentSource, SocketTuple};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectionEventKind {
    Connect,
    Accept,
    Close,
    /// Found open when the probe started (seeded from /proc).
    Seed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionEvent {
    pub node: String,
    pub conn_id: String,
    pub tgid: i32,
    pub process_start_ns: i64,
    pub fd: i32,
    pub comm: String,
    pub ts_ns: i64,
    pub kind: ConnectionEventKind,
    pub role: ConnRole,
    pub source: SegmentSource,
    pub tuple: Option<SocketTuple>,
    pub tls: bool,
    pub bytes_egress: i64,
    pub bytes_ingress: i64,
}
