//! pcap events as bus records: `ConnectionEvent`s (CONNECT at open, CLOSE at close) and
//! `RawSegment`s (DATA, and GAP for bytes not in the capture), seen from the client side (the
//! client plays the watched process: role CLIENT, EGRESS = client to server), source PCAP.
//!
//! conn_id is `connection_id(node, 0, index, first_ts_ns)`: the per-capture connection index
//! in the fd slot and the connection's first timestamp, so a replay gives the same ids.

use std::collections::HashMap;
use std::net::SocketAddr;

use chainwatch_schemas::{
    AddressFamily, ConnRole, ConnectionEvent, ConnectionEventKind, Direction, RawSegment,
    SegmentKind, SegmentSource, SocketTuple, connection_id,
};

use super::events::{PcapEvent, StreamDirection, TcpConnKey};

/// The node name used when none is given.
pub const PCAP_NODE: &str = "pcap";

/// One record made from a pcap event.
#[derive(Debug, Clone, PartialEq)]
pub enum PcapRecord {
    Segment(RawSegment),
    Connection(ConnectionEvent),
}

#[derive(Debug, Clone)]
struct OpenConn {
    conn_id: String,
    tuple: SocketTuple,
    first_ts_ns: u64,
    bytes: [u64; 2],
}

/// Maps pcap events, in capture order, to records; keeps one small entry per open connection
/// (removed at its close, which the pcap source always emits, at the latest at end of capture).
#[derive(Debug, Clone)]
pub struct PcapRecordMapper {
    node: String,
    open: HashMap<u64, OpenConn>,
}

impl Default for PcapRecordMapper {
    fn default() -> Self {
        Self::new(PCAP_NODE)
    }
}

fn tuple_of(key: &TcpConnKey) -> SocketTuple {
    SocketTuple {
        family: match key.client {
            SocketAddr::V4(_) => AddressFamily::Inet,
            SocketAddr::V6(_) => AddressFamily::Inet6,
        },
        local_addr: key.client.ip().to_string(),
        local_port: i32::from(key.client.port()),
        remote_addr: key.server.ip().to_string(),
        remote_port: i32::from(key.server.port()),
    }
}

fn ts(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

impl PcapRecordMapper {
    /// A mapper naming `node` in every record.
    pub fn new(node: &str) -> Self {
        PcapRecordMapper {
            node: node.to_string(),
            open: HashMap::new(),
        }
    }

    /// The records of one event (none, one, or for a connection first seen by its data, a
    /// CONNECT followed by the segment).
    pub fn map(&mut self, event: &PcapEvent) -> Vec<PcapRecord> {
        let mut out = Vec::new();
        match event {
            PcapEvent::ConnectionOpened { conn, index, ts_ns, .. } => {
                self.open_conn(conn, *index, *ts_ns, &mut out);
            }
            PcapEvent::Data {
                conn,
                index,
                dir,
                stream_offset,
                ts_ns,
                bytes,
            } => {
                self.open_conn(conn, *index, *ts_ns, &mut out);
                out.push(PcapRecord::Segment(self.segment(
                    *index,
                    *dir,
                    *stream_offset,
                    *ts_ns,
                    SegmentKind::Data,
                    bytes.len() as u64,
                    bytes.clone(),
                )));
            }
            PcapEvent::Gap {
                conn,
                index,
                dir,
                stream_offset,
                len,
                ts_ns,
            } => {
                self.open_conn(conn, *index, *ts_ns, &mut out);
                out.push(PcapRecord::Segment(self.segment(
                    *index,
                    *dir,
                    *stream_offset,
                    *ts_ns,
                    SegmentKind::Gap,
                    *len,
                    Vec::new(),
                )));
            }
            PcapEvent::ConnectionClosed { conn, index, ts_ns, .. } => {
                self.open_conn(conn, *index, *ts_ns, &mut out);
                if let Some(c) = self.open.remove(index) {
                    out.push(PcapRecord::Connection(self.conn_event(
                        &c,
                        ConnectionEventKind::Close,
                        *ts_ns,
                    )));
                }
            }
        }
        out
    }

    fn open_conn(&mut self, key: &TcpConnKey, index: u64, ts_ns: u64, out: &mut Vec<PcapRecord>) {
        if self.open.contains_key(&index) {
            return;
        }
        let conn = OpenConn {
            conn_id: connection_id(
                &self.node,
                0,
                i32::try_from(index).unwrap_or(i32::MAX),
                ts(ts_ns),
            ),
            tuple: tuple_of(key),
            first_ts_ns: ts_ns,
            bytes: [0; 2],
        };
        out.push(PcapRecord::Connection(self.conn_event(&conn, ConnectionEventKind::Connect, ts_ns)));
        self.open.insert(index, conn);
    }

    fn conn_event(&self, c: &OpenConn, kind: ConnectionEventKind, ts_ns: u64) -> ConnectionEvent {
        ConnectionEvent {
            node: self.node.clone(),
            conn_id: c.conn_id.clone(),
            tgid: 0,
            process_start_ns: 0,
            fd: -1,
            comm: String::new(),
            ts_ns: ts(ts_ns.max(c.first_ts_ns)),
            kind,
            role: ConnRole::Client,
            source: SegmentSource::Pcap,
            tuple: Some(c.tuple.clone()),
            tls: false,
            bytes_egress: ts(c.bytes[0]),
            bytes_ingress: ts(c.bytes[1]),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn segment(
        &mut self,
        index: u64,
        dir: StreamDirection,
        stream_offset: u64,
        ts_ns: u64,
        kind: SegmentKind,
        len: u64,
        payload: Vec<u8>,
    ) -> RawSegment {
        let (direction, slot) = match dir {
            StreamDirection::ClientToServer => (Direction::Egress, 0),
            StreamDirection::ServerToClient => (Direction::Ingress, 1),
        };
        let (conn_id, tuple) = match self.open.get_mut(&index) {
            Some(c) => {
                if let Some(b) = c.bytes.get_mut(slot) {
                    *b += len;
                }
                (c.conn_id.clone(), Some(c.tuple.clone()))
            }
            None => (String::new(), None),
        };
        RawSegment {
            node: self.node.clone(),
            conn_id,
            tgid: 0,
            tid: 0,
            process_start_ns: 0,
            fd: -1,
            comm: String::new(),
            ts_ns: ts(ts_ns),
            direction,
            source: SegmentSource::Pcap,
            kind,
            stream_offset: ts(stream_offset),
            captured_len: i32::try_from(payload.len()).unwrap_or(i32::MAX),
            original_len: ts(len),
            truncated: false,
            payload,
            role: ConnRole::Client,
            tuple,
        }
    }
}

/// All records of a capture's events, in order.
pub fn records_from_events(events: &[PcapEvent], node: &str) -> Vec<PcapRecord> {
    let mut mapper = PcapRecordMapper::new(node);
    events.iter().flat_map(|e| mapper.map(e)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap::events::CloseReason;

    fn key() -> TcpConnKey {
        TcpConnKey {
            client: "10.0.0.1:40000".parse().unwrap_or_else(|_| SocketAddr::from(([0; 4], 0))),
            server: "10.0.0.2:80".parse().unwrap_or_else(|_| SocketAddr::from(([0; 4], 0))),
        }
    }

    #[test]
    fn a_connection_becomes_connect_segments_gap_and_close() {
        let conn = key();
        let events = vec![
            PcapEvent::ConnectionOpened { conn, index: 3, ts_ns: 100, syn_seen: true },
            PcapEvent::Data {
                conn,
                index: 3,
                dir: StreamDirection::ClientToServer,
                stream_offset: 0,
                ts_ns: 110,
                bytes: b"GET".to_vec(),
            },
            PcapEvent::Gap {
                conn,
                index: 3,
                dir: StreamDirection::ServerToClient,
                stream_offset: 0,
                len: 40,
                ts_ns: 120,
            },
            PcapEvent::ConnectionClosed { conn, index: 3, ts_ns: 130, reason: CloseReason::Fin },
        ];
        let recs = records_from_events(&events, "pcap");
        assert_eq!(recs.len(), 4);
        let PcapRecord::Connection(open) = &recs[0] else { panic!("{recs:?}") };
        assert_eq!(open.conn_id, "pcap/0/3/100");
        assert_eq!(open.kind, ConnectionEventKind::Connect);
        assert_eq!(open.role, ConnRole::Client);
        let tuple = open.tuple.clone().unwrap_or_else(|| tuple_of(&conn));
        assert_eq!((tuple.local_port, tuple.remote_port), (40000, 80));
        let PcapRecord::Segment(data) = &recs[1] else { panic!("{recs:?}") };
        assert_eq!((data.direction, data.kind, data.source), (Direction::Egress, SegmentKind::Data, SegmentSource::Pcap));
        assert_eq!((data.conn_id.as_str(), data.payload.as_slice()), ("pcap/0/3/100", &b"GET"[..]));
        let PcapRecord::Segment(gap) = &recs[2] else { panic!("{recs:?}") };
        assert_eq!((gap.direction, gap.kind, gap.original_len, gap.captured_len), (Direction::Ingress, SegmentKind::Gap, 40, 0));
        let PcapRecord::Connection(close) = &recs[3] else { panic!("{recs:?}") };
        assert_eq!((close.kind, close.bytes_egress, close.bytes_ingress), (ConnectionEventKind::Close, 3, 40));
    }
}
