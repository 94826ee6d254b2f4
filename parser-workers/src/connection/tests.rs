//! Connection FSM and table tests: direction mapping, detection, gaps, caps and evictions.

use std::sync::Arc;

use chainwatch_schemas::{
    ConnRole, ConnectionEvent, ConnectionEventKind, Direction as SegDir, RawSegment, SegmentKind,
    SegmentSource,
};

use super::*;
use crate::protocols::grpc::DescriptorRegistry;

fn seg(conn: &str, dir: SegDir, role: ConnRole, offset: i64, ts: i64, bytes: &[u8]) -> RawSegment {
    RawSegment {
        node: "n".into(),
        conn_id: conn.into(),
        tgid: 7,
        tid: 7,
        process_start_ns: 1,
        fd: 3,
        comm: "agent".into(),
        ts_ns: ts,
        direction: dir,
        source: SegmentSource::Syscall,
        kind: SegmentKind::Data,
        stream_offset: offset,
        captured_len: bytes.len() as i32,
        original_len: bytes.len() as i64,
        truncated: false,
        payload: bytes.to_vec(),
        role,
        tuple: None,
    }
}

fn table(max: usize) -> ConnectionTable {
    ConnectionTable::with_parts(FsmConfig::default(), Arc::new(DescriptorRegistry::empty()), max, 10)
}

const REQ: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

fn http1(ex: &ParsedExchange) -> &crate::protocols::http1::Http1Exchange {
    match &ex.exchange {
        ProtocolExchange::Http1(e) => e,
        other => panic!("not http1: {other:?}"),
    }
}

#[test]
fn client_role_maps_egress_to_requests() {
    let mut t = table(8);
    assert!(t.on_segment(&seg("c", SegDir::Egress, ConnRole::Client, 0, 10, REQ)).is_empty());
    let out = t.on_segment(&seg("c", SegDir::Ingress, ConnRole::Client, 0, 20, RESP));
    assert_eq!(out.len(), 1);
    let e = http1(&out[0]);
    assert_eq!((e.method.as_str(), e.path.as_str(), e.status), ("GET", "/a", Some(200)));
    assert_eq!(t.get("c").and_then(|f| f.protocol()), Some(DetectedProtocol::Http1));
}

#[test]
fn server_role_and_unknown_role_are_mapped_by_content() {
    for role in [ConnRole::Server, ConnRole::Unknown] {
        let mut t = table(8);
        // The watched process is the server: it reads the request and writes the response.
        t.on_segment(&seg("s", SegDir::Ingress, role, 0, 10, REQ));
        let out = t.on_segment(&seg("s", SegDir::Egress, role, 0, 20, RESP));
        assert_eq!(out.len(), 1, "{role:?}");
        assert_eq!(http1(&out[0]).status, Some(200));
        assert_eq!(out[0].meta.role, ConnRole::Server);
    }
}

#[test]
fn unknown_role_response_first_names_the_client() {
    let mut t = table(8);
    t.on_segment(&seg("u", SegDir::Egress, ConnRole::Unknown, 0, 10, b"HTTP/1.1 204 No Content\r\n\r\n"));
    assert_eq!(t.get("u").and_then(|f| f.egress_is_client()), Some(false));
}

#[test]
fn offset_jump_is_a_gap_and_parsing_resumes() {
    let mut t = table(8);
    t.on_segment(&seg("g", SegDir::Egress, ConnRole::Client, 0, 10, REQ));
    t.on_segment(&seg("g", SegDir::Ingress, ConnRole::Client, 0, 20, RESP));
    // 100 bytes of the client stream never arrived.
    let off = REQ.len() as i64 + 100;
    t.on_segment(&seg("g", SegDir::Egress, ConnRole::Client, off, 30, REQ));
    let out = t.on_segment(&seg("g", SegDir::Ingress, ConnRole::Client, RESP.len() as i64, 40, RESP));
    let s = t.get("g").map(|f| f.stats()).unwrap_or_default();
    assert_eq!((s.gaps, s.gap_bytes, s.offset_discontinuities), (1, 100, 1));
    assert!(out.iter().any(|e| http1(e).path == "/a" && http1(e).status == Some(200)));
}

#[test]
fn retransmitted_bytes_are_dropped() {
    let mut t = table(8);
    t.on_segment(&seg("r", SegDir::Egress, ConnRole::Client, 0, 10, REQ));
    t.on_segment(&seg("r", SegDir::Egress, ConnRole::Client, 0, 11, REQ));
    let out = t.on_segment(&seg("r", SegDir::Ingress, ConnRole::Client, 0, 20, RESP));
    assert_eq!(out.len(), 1);
    assert_eq!(t.get("r").map(|f| f.stats().overlap_bytes), Some(REQ.len() as u64));
}

#[test]
fn undetectable_traffic_gives_up_and_is_counted() {
    let mut t = ConnectionTable::with_parts(
        FsmConfig { max_detect_bytes: 64, ..FsmConfig::default() },
        Arc::new(DescriptorRegistry::empty()),
        8,
        10,
    );
    for i in 0..10 {
        t.on_segment(&seg("x", SegDir::Egress, ConnRole::Client, i * 20, 10, &[0xAB; 20]));
    }
    let s = t.get("x").map(|f| f.stats()).unwrap_or_default();
    assert!(s.undetected);
    assert_eq!(s.opaque_bytes, 200);
    t.finish();
    assert_eq!(t.stats().undetected, 1);
}

#[test]
fn close_flushes_a_request_without_response_as_partial() {
    let mut t = table(8);
    t.on_segment(&seg("p", SegDir::Egress, ConnRole::Client, 0, 10, REQ));
    let close = ConnectionEvent {
        node: "n".into(),
        conn_id: "p".into(),
        tgid: 7,
        process_start_ns: 1,
        fd: 3,
        comm: "agent".into(),
        ts_ns: 30,
        kind: ConnectionEventKind::Close,
        role: ConnRole::Client,
        source: SegmentSource::Syscall,
        tuple: None,
        tls: false,
        bytes_egress: 0,
        bytes_ingress: 0,
    };
    let out = t.on_connection_event(&close);
    assert_eq!(out.len(), 1);
    assert!(http1(&out[0]).flags.partial);
    assert!(t.is_empty());
    assert_eq!(t.stats().connections_closed, 1);
}

#[test]
fn lru_and_idle_evictions_are_counted() {
    let mut t = table(2);
    t.on_segment(&seg("a", SegDir::Egress, ConnRole::Client, 0, 1, REQ));
    t.on_segment(&seg("b", SegDir::Egress, ConnRole::Client, 0, 2, REQ));
    let out = t.on_segment(&seg("c", SegDir::Egress, ConnRole::Client, 0, 3, REQ));
    assert_eq!(t.stats().evicted_lru, 1);
    assert!(t.get("a").is_none());
    assert_eq!(out.len(), 1, "the evicted request comes out partial");
    // 10 s idle timeout: "b" and "c" are idle by t = 20 s.
    t.on_segment(&seg("d", SegDir::Egress, ConnRole::Client, 0, 20_000_000_000, REQ));
    assert_eq!(t.stats().evicted_idle, 2);
    assert_eq!(t.len(), 1);
}

#[test]
fn tls_client_hello_names_the_destination_and_stops() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/tls-conn-with-extensions.0.hex");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut t = table(8);
    let mut offsets = [0i64; 2];
    let mut out = Vec::new();
    for (i, line) in text.lines().filter(|l| l.len() > 2).enumerate() {
        let (d, hex) = line.split_at(2);
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .filter_map(|i| hex.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect();
        let (dir, k) = if d.starts_with('C') { (SegDir::Egress, 0) } else { (SegDir::Ingress, 1) };
        out.extend(t.on_segment(&seg("t", dir, ConnRole::Unknown, offsets[k], i as i64, &bytes)));
        offsets[k] += bytes.len() as i64;
    }
    out.extend(t.finish());
    assert_eq!(out.len(), 1, "{out:?}");
    let ProtocolExchange::Tls(h) = &out[0].exchange else { panic!("not tls: {out:?}") };
    assert_eq!(h.client_hello.server_name.as_deref(), Some("ssl.gstatic.com"));
    assert!(h.server_hello.is_some());
    assert!(t.stats().opaque_bytes > 0);
}

#[test]
fn a_connect_event_counts_as_activity_for_idle_eviction() {
    let mut t = table(8);
    let connect = ConnectionEvent {
        node: "n".into(),
        conn_id: "k".into(),
        tgid: 7,
        process_start_ns: 1,
        fd: 3,
        comm: "agent".into(),
        ts_ns: 1_000_000_000_000,
        kind: ConnectionEventKind::Connect,
        role: ConnRole::Client,
        source: SegmentSource::Syscall,
        tuple: None,
        tls: false,
        bytes_egress: 0,
        bytes_ingress: 0,
    };
    t.on_connection_event(&connect);
    t.on_segment(&seg("k", SegDir::Egress, ConnRole::Client, 0, 1_000_000_000_001, REQ));
    assert_eq!((t.stats().evicted_idle, t.stats().connections_opened), (0, 1));
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn any_segment() -> impl Strategy<Value = RawSegment> {
        (
            any::<bool>(),
            prop_oneof![Just(ConnRole::Client), Just(ConnRole::Server), Just(ConnRole::Unknown)],
            0i64..4096,
            any::<bool>(),
            -5i64..100_000,
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300),
                Just(REQ.to_vec()),
                Just(RESP.to_vec()),
                Just(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()),
                Just(vec![0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]),
                Just(vec![0x16, 3, 1, 0, 0xc8, 1, 0, 0, 0xc4, 3, 3]),
            ],
        )
            .prop_map(|(egress, role, offset, gap, len, bytes)| {
                let mut s = seg(
                    "z",
                    if egress { SegDir::Egress } else { SegDir::Ingress },
                    role,
                    offset,
                    offset,
                    &bytes,
                );
                if gap {
                    s.kind = SegmentKind::Gap;
                    s.payload.clear();
                    s.original_len = len;
                } else {
                    s.original_len = len;
                }
                s
            })
    }

    proptest! {
        #[test]
        fn arbitrary_segments_never_panic(segs in proptest::collection::vec(any_segment(), 0..40)) {
            let mut t = table(4);
            for s in &segs {
                let _ = t.on_segment(s);
            }
            let _ = t.finish();
            prop_assert!(t.is_empty());
        }
    }
}

#[test]
fn joined_mid_body_http1_is_found_at_the_next_message() {
    let mut t = table(8);
    // The capture starts inside a large request body; the next request follows it.
    let mut first = vec![b'x'; 5000];
    first.extend_from_slice(b"\r\n");
    first.extend_from_slice(REQ);
    t.on_segment(&seg("m", SegDir::Egress, ConnRole::Client, 1000, 10, &first));
    let out = t.on_segment(&seg("m", SegDir::Ingress, ConnRole::Client, 0, 20, RESP));
    let mut all = out;
    all.extend(t.finish());
    assert!(
        all.iter().any(|e| http1(e).path == "/a" && http1(e).status == Some(200)),
        "{all:?}"
    );
}

#[test]
fn flush_while_detecting_still_finds_a_mid_stream_request() {
    let mut t = table(8);
    let mut first = b"ody tail}\r\n".to_vec();
    first.extend_from_slice(REQ);
    t.on_segment(&seg("f", SegDir::Egress, ConnRole::Client, 77, 10, &first));
    let all = t.finish();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(http1(&all[0]).path, "/a");
    assert!(http1(&all[0]).flags.partial);
}
