//! The table of TCP connections of one capture: finds or opens the connection of each
//! segment (normalising client/server), drives the two per-direction reassemblers, closes on
//! FIN/RST, and bounds itself by idle eviction and a connection cap (least recently active
//! evicted first). Closed connections linger until evicted so that late ACKs and
//! retransmissions after the close are attributed to them instead of opening a new one.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use super::config::PcapConfig;
use super::events::{CloseReason, PcapEvent, PcapStats, StreamDirection, TcpConnKey};
use super::stream_reassembler::{Delivery, SegmentBytes, StreamReassembler};
use super::tcp_segment::{FLAG_ACK, FLAG_FIN, FLAG_RST, FLAG_SYN, TcpSegment};

/// The two endpoints in a canonical order, the table key.
type EndpointPair = (SocketAddr, SocketAddr);

fn endpoint_pair(a: SocketAddr, b: SocketAddr) -> EndpointPair {
    if a <= b { (a, b) } else { (b, a) }
}

struct Connection {
    key: TcpConnKey,
    index: u64,
    client_to_server: StreamReassembler,
    server_to_client: StreamReassembler,
    last_seen_ns: u64,
    closed: bool,
}

/// All connections of a capture.
pub(crate) struct ConnectionTable {
    config: PcapConfig,
    connections: HashMap<EndpointPair, Connection>,
    /// (last seen, index) -> key: the eviction order.
    by_activity: BTreeMap<(u64, u64), EndpointPair>,
    next_index: u64,
    /// Latest packet timestamp seen (capture clocks can step back; this never does).
    now_ns: u64,
    deliveries: Vec<Delivery>,
}

/// Guesses the client of a connection from its first segment: the SYN sender; the receiver of
/// a SYN-ACK; otherwise the side with the higher (ephemeral) port; equal ports: the sender.
fn guess_key(segment: &TcpSegment<'_>) -> TcpConnKey {
    let (client, server) = if segment.has(FLAG_SYN) {
        if segment.has(FLAG_ACK) {
            (segment.dst, segment.src)
        } else {
            (segment.src, segment.dst)
        }
    } else if segment.dst.port() > segment.src.port() {
        (segment.dst, segment.src)
    } else {
        (segment.src, segment.dst)
    };
    TcpConnKey { client, server }
}

impl ConnectionTable {
    pub fn new(config: PcapConfig) -> Self {
        ConnectionTable {
            config,
            connections: HashMap::new(),
            by_activity: BTreeMap::new(),
            next_index: 0,
            now_ns: 0,
            deliveries: Vec::new(),
        }
    }

    /// Feeds one TCP segment captured at `ts_ns`; appends the resulting events to `out`.
    pub fn on_segment(
        &mut self,
        segment: &TcpSegment<'_>,
        ts_ns: u64,
        stats: &mut PcapStats,
        out: &mut Vec<PcapEvent>,
    ) {
        self.now_ns = self.now_ns.max(ts_ns);
        self.expire_idle(stats, out);
        let pair = endpoint_pair(segment.src, segment.dst);
        let pure_syn = segment.has(FLAG_SYN) && !segment.has(FLAG_ACK);
        let carries_bytes = !segment.payload.is_empty() || segment.missing_tail > 0;

        if let Some(conn) = self.connections.get(&pair) {
            let retransmitted_syn = conn.key.client == segment.src
                && conn.client_to_server.syn_isn() == Some(segment.seq);
            if pure_syn && !retransmitted_syn {
                // A new connection on the same 4-tuple.
                if !conn.closed {
                    stats.evicted_reused_tuple += 1;
                }
                self.remove(pair, CloseReason::Evicted, ts_ns, stats, out);
            } else if conn.closed {
                if carries_bytes {
                    stats.segments_after_close += 1;
                }
                self.touch(pair);
                return;
            }
        }

        if !self.connections.contains_key(&pair) {
            self.make_room(stats, out);
            let key = guess_key(segment);
            let index = self.next_index;
            self.next_index += 1;
            stats.connections += 1;
            out.push(PcapEvent::ConnectionOpened {
                conn: key,
                index,
                ts_ns,
                syn_seen: segment.has(FLAG_SYN),
            });
            let window = self.config.conflict_check_window;
            self.connections.insert(
                pair,
                Connection {
                    key,
                    index,
                    client_to_server: StreamReassembler::new(window),
                    server_to_client: StreamReassembler::new(window),
                    last_seen_ns: self.now_ns,
                    closed: false,
                },
            );
            self.by_activity.insert((self.now_ns, index), pair);
        }
        self.touch(pair);

        let Some(conn) = self.connections.get_mut(&pair) else {
            return;
        };
        let dir = if segment.src == conn.key.client {
            StreamDirection::ClientToServer
        } else {
            StreamDirection::ServerToClient
        };
        let stream = match dir {
            StreamDirection::ClientToServer => &mut conn.client_to_server,
            StreamDirection::ServerToClient => &mut conn.server_to_client,
        };
        let mut seq = segment.seq;
        if segment.has(FLAG_SYN) {
            stream.on_syn(segment.seq);
            seq = seq.wrapping_add(1);
        }
        self.deliveries.clear();
        stream.on_segment(
            SegmentBytes {
                seq,
                payload: segment.payload,
                missing_tail: segment.missing_tail,
                fin: segment.has(FLAG_FIN),
            },
            &self.config,
            stats,
            &mut self.deliveries,
        );
        push_deliveries(conn, dir, ts_ns, &mut self.deliveries, out);

        if segment.has(FLAG_RST) {
            self.close(pair, CloseReason::Rst, ts_ns, stats, out);
        } else if conn.client_to_server.finished() && conn.server_to_client.finished() {
            self.close(pair, CloseReason::Fin, ts_ns, stats, out);
        }
    }

    /// Closes every open connection at the end of the capture (in connection order).
    pub fn finish(&mut self, stats: &mut PcapStats, out: &mut Vec<PcapEvent>) {
        let mut open: Vec<(u64, EndpointPair)> = self
            .connections
            .iter()
            .filter(|(_, c)| !c.closed)
            .map(|(pair, c)| (c.index, *pair))
            .collect();
        open.sort_unstable();
        let now = self.now_ns;
        for (_, pair) in open {
            self.close(pair, CloseReason::EndOfCapture, now, stats, out);
        }
        self.connections.clear();
        self.by_activity.clear();
    }

    fn touch(&mut self, pair: EndpointPair) {
        let now = self.now_ns;
        if let Some(conn) = self.connections.get_mut(&pair) {
            self.by_activity.remove(&(conn.last_seen_ns, conn.index));
            conn.last_seen_ns = now;
            self.by_activity.insert((now, conn.index), pair);
        }
    }

    /// Flushes both directions (holes become gaps) and emits `ConnectionClosed`; the entry stays
    /// in the table, closed. A connection that saw both FINs closes as `Fin` whatever `reason`.
    fn close(
        &mut self,
        pair: EndpointPair,
        reason: CloseReason,
        ts_ns: u64,
        stats: &mut PcapStats,
        out: &mut Vec<PcapEvent>,
    ) {
        let Some(conn) = self.connections.get_mut(&pair) else {
            return;
        };
        if conn.closed {
            return;
        }
        let both_fins = conn.client_to_server.fin_seen() && conn.server_to_client.fin_seen();
        let reason = match reason {
            CloseReason::Evicted | CloseReason::EndOfCapture if both_fins => CloseReason::Fin,
            other => other,
        };
        for dir in [
            StreamDirection::ClientToServer,
            StreamDirection::ServerToClient,
        ] {
            self.deliveries.clear();
            match dir {
                StreamDirection::ClientToServer => {
                    conn.client_to_server.flush(stats, &mut self.deliveries)
                }
                StreamDirection::ServerToClient => {
                    conn.server_to_client.flush(stats, &mut self.deliveries)
                }
            }
            push_deliveries(conn, dir, ts_ns, &mut self.deliveries, out);
        }
        conn.closed = true;
        // Free the buffers now; the closed entry only remembers the 4-tuple and the ISNs.
        conn.client_to_server.release_buffers();
        conn.server_to_client.release_buffers();
        out.push(PcapEvent::ConnectionClosed {
            conn: conn.key,
            index: conn.index,
            ts_ns,
            reason,
        });
    }

    /// Closes (if open) and forgets a connection.
    fn remove(
        &mut self,
        pair: EndpointPair,
        reason: CloseReason,
        ts_ns: u64,
        stats: &mut PcapStats,
        out: &mut Vec<PcapEvent>,
    ) {
        self.close(pair, reason, ts_ns, stats, out);
        if let Some(conn) = self.connections.remove(&pair) {
            self.by_activity.remove(&(conn.last_seen_ns, conn.index));
        }
    }

    /// Evicts connections idle for longer than the configured timeout.
    fn expire_idle(&mut self, stats: &mut PcapStats, out: &mut Vec<PcapEvent>) {
        let timeout = self.config.idle_timeout_ns;
        while let Some((&(last_seen, _), &pair)) = self.by_activity.first_key_value() {
            if last_seen.saturating_add(timeout) >= self.now_ns {
                break;
            }
            match self.connections.get(&pair) {
                None => {
                    // Stale activity entry: drop it.
                    self.by_activity.pop_first();
                    continue;
                }
                Some(conn) if !conn.closed => stats.evicted_idle += 1,
                Some(_) => {}
            }
            let now = self.now_ns;
            self.by_activity.pop_first();
            self.remove(pair, CloseReason::Evicted, now, stats, out);
        }
    }

    /// Makes room for one more connection by evicting the least recently active ones.
    fn make_room(&mut self, stats: &mut PcapStats, out: &mut Vec<PcapEvent>) {
        let cap = self.config.max_connections.max(1);
        while self.connections.len() >= cap {
            let Some((_, pair)) = self.by_activity.pop_first() else {
                break;
            };
            if self.connections.get(&pair).is_some_and(|c| !c.closed) {
                stats.evicted_capacity += 1;
            }
            let now = self.now_ns;
            self.remove(pair, CloseReason::Evicted, now, stats, out);
        }
    }
}

fn push_deliveries(
    conn: &Connection,
    dir: StreamDirection,
    ts_ns: u64,
    deliveries: &mut Vec<Delivery>,
    out: &mut Vec<PcapEvent>,
) {
    for delivery in deliveries.drain(..) {
        out.push(match delivery {
            Delivery::Data { offset, bytes } => PcapEvent::Data {
                conn: conn.key,
                index: conn.index,
                dir,
                stream_offset: offset,
                ts_ns,
                bytes,
            },
            Delivery::Gap { offset, len } => PcapEvent::Gap {
                conn: conn.key,
                index: conn.index,
                dir,
                stream_offset: offset,
                len,
                ts_ns,
            },
        });
    }
}
