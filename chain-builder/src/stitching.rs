//! Cross-service stitching: a client's connection tuple (local -> remote) is the server's
//! accepted tuple swapped, on whatever node the server runs. The two indexes here remember
//! recent client exchanges and recent served exchanges by that normalized tuple, so whichever
//! side arrives second finds the first, across nodes (keyed by tuple, not by process).
//! Loopback addresses are only unique per node, so their key includes the node.
//!
//! Bounded: entries expire one allowed lateness after their exchange ended (watermark), and
//! each index holds at most `cap` entries (the oldest go first, counted).

use std::collections::VecDeque;

use chainwatch_schemas::SocketTuple;
use serde::{Deserialize, Serialize};

use crate::chain_state::ChainHandle;
use crate::hashing::FastMap;
use crate::process_tree::{NodeId, ProcKey};

/// A TCP connection as (client, server) endpoints, hashed (FNV-1a 64 over the normalized
/// addresses and ports): no allocation per exchange, and a collision needs two live connections
/// in one lateness window to share 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TupleKey(u64);

fn normalize(addr: &str) -> &str {
    addr.strip_prefix("::ffff:").unwrap_or(addr)
}

fn is_loopback(addr: &str) -> bool {
    addr.starts_with("127.") || addr == "::1" || addr == "localhost"
}

/// Whether a connection is between loopback addresses (only unique per node: never stitched
/// across members).
pub fn is_loopback_tuple(t: &SocketTuple) -> bool {
    is_loopback(normalize(&t.local_addr)) || is_loopback(normalize(&t.remote_addr))
}

impl TupleKey {
    /// The key as carried on the stitch topic.
    pub fn to_wire(self) -> i64 {
        self.0 as i64
    }

    pub fn from_wire(v: i64) -> Self {
        TupleKey(v as u64)
    }

    /// The key of a connection this process opened.
    pub fn from_client(node: NodeId, t: &SocketTuple) -> Self {
        Self::new(node, &t.local_addr, t.local_port, &t.remote_addr, t.remote_port)
    }

    /// The key of a connection this process accepted.
    pub fn from_server(node: NodeId, t: &SocketTuple) -> Self {
        Self::new(node, &t.remote_addr, t.remote_port, &t.local_addr, t.local_port)
    }

    fn new(node: NodeId, client: &str, client_port: i32, server: &str, server_port: i32) -> Self {
        let (c, s) = (normalize(client), normalize(server));
        // Loopback addresses are only unique per node.
        let scope = if is_loopback(c) || is_loopback(s) { u64::from(node) + 1 } else { 0 };
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        };
        eat(c.as_bytes());
        eat(&[0xff]);
        eat(&client_port.to_le_bytes());
        eat(s.as_bytes());
        eat(&[0xff]);
        eat(&server_port.to_le_bytes());
        eat(&scope.to_le_bytes());
        TupleKey(h)
    }
}

/// A client exchange waiting for its server side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSide {
    pub chain: ChainHandle,
    pub start_ns: i64,
    pub end_ns: i64,
    /// Stitching depth of the calling step (0 = the agent itself).
    pub depth: u16,
}

/// A served exchange waiting for its client side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSide {
    /// The service's agent root and the chain its steps went to meanwhile.
    pub agent: ProcKey,
    pub chain: ChainHandle,
    pub start_ns: i64,
    pub end_ns: i64,
    /// `fnv64` of the served exchange's event id: its step leaves the service's chain.
    pub event_hash: u64,
}

/// The time window in which a service handled a request for another chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlingWindow {
    pub start_ns: i64,
    pub end_ns: i64,
    pub target: ChainHandle,
    pub depth: u16,
}

impl HandlingWindow {
    pub fn covers(&self, ts: i64) -> bool {
        ts >= self.start_ns && ts <= self.end_ns
    }
}

/// Recent exchanges by tuple, with expiry by end time and a size cap.
#[derive(Debug, Serialize, Deserialize)]
pub struct TupleIndex<V> {
    entries: FastMap<TupleKey, V>,
    order: VecDeque<(i64, TupleKey)>,
    cap: usize,
    pub evicted_cap: u64,
    /// Entries dropped by `expire` (never taken).
    #[serde(default)]
    pub expired: u64,
}

impl<V> TupleIndex<V> {
    pub fn new(cap: usize) -> Self {
        TupleIndex { entries: FastMap::default(), order: VecDeque::new(), cap: cap.max(1), evicted_cap: 0, expired: 0 }
    }

    pub fn insert(&mut self, key: TupleKey, end_ns: i64, value: V) {
        while self.entries.len() >= self.cap {
            let Some((_, old)) = self.order.pop_front() else { break };
            if self.entries.remove(&old).is_some() {
                self.evicted_cap += 1;
            }
        }
        self.order.push_back((end_ns, key));
        self.entries.insert(key, value);
    }

    /// Remove and return the entry for `key`.
    pub fn take(&mut self, key: &TupleKey) -> Option<V> {
        self.entries.remove(key)
    }

    /// Drop entries whose exchange ended before `before_ns` (roughly in arrival order).
    pub fn expire(&mut self, before_ns: i64) {
        while let Some((end, _)) = self.order.front() {
            if *end >= before_ns {
                break;
            }
            if let Some((_, k)) = self.order.pop_front()
                && self.entries.remove(&k).is_some()
            {
                self.expired += 1;
            }
        }
        if self.order.len() > self.entries.len() * 2 + 64 {
            let entries = &self.entries;
            self.order.retain(|(_, k)| entries.contains_key(k));
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chainwatch_schemas::AddressFamily;

    fn t(la: &str, lp: i32, ra: &str, rp: i32) -> SocketTuple {
        SocketTuple { family: AddressFamily::Inet, local_addr: la.into(), local_port: lp, remote_addr: ra.into(), remote_port: rp }
    }

    #[test]
    fn client_and_server_views_meet_across_nodes_but_loopback_stays_local() {
        let c = TupleKey::from_client(0, &t("10.0.0.1", 40000, "10.0.0.2", 8080));
        let s = TupleKey::from_server(1, &t("::ffff:10.0.0.2", 8080, "10.0.0.1", 40000));
        assert_eq!(c, s);
        let lc = TupleKey::from_client(0, &t("127.0.0.1", 40000, "127.0.0.1", 8080));
        assert_ne!(lc, TupleKey::from_server(1, &t("127.0.0.1", 8080, "127.0.0.1", 40000)));
        assert_eq!(lc, TupleKey::from_server(0, &t("127.0.0.1", 8080, "127.0.0.1", 40000)));
    }

    #[test]
    fn index_expires_and_caps() {
        let mut ix: TupleIndex<u8> = TupleIndex::new(2);
        for (i, port) in [1, 2, 3].into_iter().enumerate() {
            ix.insert(TupleKey::from_client(0, &t("10.0.0.1", port, "10.0.0.2", 80)), i as i64 * 10, 0);
        }
        assert_eq!((ix.len(), ix.evicted_cap), (2, 1));
        ix.expire(15);
        assert_eq!(ix.len(), 1);
        assert!(ix.take(&TupleKey::from_client(0, &t("10.0.0.1", 3, "10.0.0.2", 80))).is_some());
    }
}
