//! Types shared by several records: socket tuples, connection roles, sources.

use serde::{Deserialize, Serialize};

/// Which side of the connection the watched process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnRole {
    /// The watched process connected.
    Client,
    /// The watched process accepted.
    Server,
    /// Not known (e.g. the connection existed before the probe started).
    #[default]
    Unknown,
}

/// Where bytes were captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SegmentSource {
    /// Socket syscall tracepoints (plaintext TCP).
    Syscall,
    /// OpenSSL uprobes (TLS plaintext).
    Tls,
    /// Replayed from a pcap/pcapng file.
    Pcap,
    #[default]
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AddressFamily {
    Inet,
    Inet6,
}

/// A TCP connection's addresses as the watched process sees them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SocketTuple {
    pub family: AddressFamily,
    pub local_addr: String,
    pub local_port: i32,
    pub remote_addr: String,
    pub remote_port: i32,
}

/// The connection id: stable and unique per node (fds and pids are reused, the start
/// timestamp makes them unique).
pub fn connection_id(node: &str, tgid: i32, fd: i32, conn_start_ns: i64) -> String {
    format!("{node}/{tgid}/{fd}/{conn_start_ns}")
}
