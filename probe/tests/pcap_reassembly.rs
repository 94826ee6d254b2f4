//! Hand-made captures for the pcap source: TCP reassembly (order, retransmission, overlap,
//! wrap-around, truncation, gaps, FIN/RST, port reuse, eviction), link types, both file
//! formats, and file errors.

#[path = "pcap_builder.rs"]
mod pcap_builder;

use std::io::Cursor;

use chainwatch_probe::pcap::{
    CloseReason, PcapConfig, PcapError, PcapEvent, PcapReader, PcapStats, StreamDirection,
    TcpConnKey, read_pcap_file,
};
use pcap_builder::*;

const C2S: StreamDirection = StreamDirection::ClientToServer;
const S2C: StreamDirection = StreamDirection::ServerToClient;

fn replay_with(bytes: Vec<u8>, config: PcapConfig) -> (Vec<PcapEvent>, PcapStats) {
    let mut reader = PcapReader::new(Cursor::new(bytes), "test.pcap", config).expect("header");
    let events: Vec<PcapEvent> = reader.by_ref().map(|e| e.expect("event")).collect();
    (events, reader.stats().clone())
}

fn replay(bytes: Vec<u8>) -> (Vec<PcapEvent>, PcapStats) {
    replay_with(bytes, PcapConfig::default())
}

/// (dir, offset, Some(bytes) | None for a gap, gap len) of one connection, in event order.
fn pieces(events: &[PcapEvent], conn: u64) -> Vec<(StreamDirection, u64, Option<Vec<u8>>, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            PcapEvent::Data {
                index,
                dir,
                stream_offset,
                bytes,
                ..
            } if *index == conn => Some((
                *dir,
                *stream_offset,
                Some(bytes.clone()),
                bytes.len() as u64,
            )),
            PcapEvent::Gap {
                index,
                dir,
                stream_offset,
                len,
                ..
            } if *index == conn => Some((*dir, *stream_offset, None, *len)),
            _ => None,
        })
        .collect()
}

fn stream(events: &[PcapEvent], conn: u64, dir: StreamDirection) -> Vec<u8> {
    pieces(events, conn)
        .into_iter()
        .filter(|p| p.0 == dir)
        .flat_map(|p| p.2.unwrap_or_default())
        .collect()
}

fn closes(events: &[PcapEvent]) -> Vec<(u64, CloseReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            PcapEvent::ConnectionClosed { index, reason, .. } => Some((*index, *reason)),
            _ => None,
        })
        .collect()
}

fn client() -> std::net::SocketAddr {
    addr("10.0.0.1:40000")
}
fn server() -> std::net::SocketAddr {
    addr("10.0.0.2:80")
}
/// Client segment with relative sequence `rel` (ISN 1000).
fn c(rel: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    ip_tcp(
        client(),
        server(),
        1000u32.wrapping_add(rel),
        flags,
        payload,
    )
}
/// Server segment with relative sequence `rel` (ISN 5000).
fn s(rel: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    ip_tcp(
        server(),
        client(),
        5000u32.wrapping_add(rel),
        flags,
        payload,
    )
}
fn handshake() -> Vec<(u64, Vec<u8>)> {
    vec![
        (1_000, c(0, SYN, b"")),
        (2_000, s(0, SYN | ACK, b"")),
        (3_000, c(1, ACK, b"")),
    ]
}

#[test]
fn in_order_exchange_with_fin_close() {
    let mut pkts = handshake();
    pkts.push((4_000, c(1, PSH | ACK, b"GET / HTTP/1.1\r\n\r\n")));
    pkts.push((5_000, s(1, PSH | ACK, b"HTTP/1.1 200 OK\r\n\r\n")));
    pkts.push((6_000, c(19, FIN | ACK, b"")));
    pkts.push((7_000, s(20, FIN | ACK, b"")));
    pkts.push((8_000, c(20, ACK, b"")));
    let (events, stats) = replay(eth_pcap(&pkts));
    let key = TcpConnKey {
        client: client(),
        server: server(),
    };
    assert_eq!(
        events,
        vec![
            PcapEvent::ConnectionOpened {
                conn: key,
                index: 0,
                ts_ns: 1_000,
                syn_seen: true
            },
            PcapEvent::Data {
                conn: key,
                index: 0,
                dir: C2S,
                stream_offset: 0,
                ts_ns: 4_000,
                bytes: b"GET / HTTP/1.1\r\n\r\n".to_vec()
            },
            PcapEvent::Data {
                conn: key,
                index: 0,
                dir: S2C,
                stream_offset: 0,
                ts_ns: 5_000,
                bytes: b"HTTP/1.1 200 OK\r\n\r\n".to_vec()
            },
            PcapEvent::ConnectionClosed {
                conn: key,
                index: 0,
                ts_ns: 7_000,
                reason: CloseReason::Fin
            },
        ]
    );
    assert_eq!(stats.packets, 8);
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.gaps, 0);
}

#[test]
fn out_of_order_segments_are_released_in_order() {
    let mut pkts = handshake();
    pkts.push((4_000, c(7, ACK, b"ghi")));
    pkts.push((5_000, c(4, ACK, b"def")));
    pkts.push((6_000, c(1, ACK, b"abc")));
    let (events, stats) = replay(eth_pcap(&pkts));
    assert_eq!(
        pieces(&events, 0),
        vec![(C2S, 0, Some(b"abcdefghi".to_vec()), 9)]
    );
    let ts = events.iter().find_map(|e| match e {
        PcapEvent::Data { ts_ns, .. } => Some(*ts_ns),
        _ => None,
    });
    assert_eq!(
        ts,
        Some(6_000),
        "bytes become deliverable with the segment that fills the hole"
    );
    assert_eq!(stats.out_of_order_segments, 2);
    assert_eq!(closes(&events), vec![(0, CloseReason::EndOfCapture)]);
}

#[test]
fn retransmissions_are_dropped_and_counted() {
    let mut pkts = handshake();
    pkts.push((4_000, c(1, ACK, b"abc")));
    pkts.push((5_000, c(1, ACK, b"abc")));
    pkts.push((6_000, c(1, ACK, b"abcdef")));
    let (events, stats) = replay(eth_pcap(&pkts));
    assert_eq!(stream(&events, 0, C2S), b"abcdef");
    assert_eq!(stats.retransmitted_bytes, 6);
    assert_eq!(stats.overlap_conflicts, 0);
}

#[test]
fn overlapping_copies_first_wins_and_conflicts_are_counted() {
    let mut pkts = handshake();
    // Delivered "abcd", then a retransmission that disagrees on "cd" and extends with "ef".
    pkts.push((4_000, c(1, ACK, b"abcd")));
    pkts.push((5_000, c(3, ACK, b"XXef")));
    // Out of order: "jkl" buffered at 9, then "ZZZZ" over [8, 12) disagreeing on 9..12.
    pkts.push((6_000, c(10, ACK, b"jkl")));
    pkts.push((7_000, c(9, ACK, b"ZZZZ")));
    pkts.push((8_000, c(7, ACK, b"gh")));
    let (events, stats) = replay(eth_pcap(&pkts));
    assert_eq!(stream(&events, 0, C2S), b"abcdefghZjkl");
    assert_eq!(stats.overlap_conflicts, 2);
    assert_eq!(stats.retransmitted_bytes, 2 + 3);
}

#[test]
fn sequence_numbers_wrap_around() {
    let isn = 0xffff_fff8u32;
    let seg =
        |rel: u32, flags: u8, p: &[u8]| ip_tcp(client(), server(), isn.wrapping_add(rel), flags, p);
    let pkts = vec![
        (1, seg(0, SYN, b"")),
        (2, seg(1, ACK, b"0123")),
        (3, seg(13, ACK, b"CDEF")),    // after the wrap, out of order
        (4, seg(5, ACK, b"456789AB")), // crosses 2^32
        (5, seg(17, ACK | FIN, b"")),
    ];
    let (events, stats) = replay(eth_pcap(&pkts));
    assert_eq!(
        pieces(&events, 0),
        vec![
            (C2S, 0, Some(b"0123".to_vec()), 4),
            (C2S, 4, Some(b"456789ABCDEF".to_vec()), 12),
        ]
    );
    assert_eq!(stats.gaps, 0);
}

#[test]
fn truncated_packet_becomes_an_exact_gap() {
    let mut frames: Vec<Frame> = handshake()
        .into_iter()
        .map(|(ts, ip)| Frame::new(ts, ethernet(&ip)))
        .collect();
    let payload: Vec<u8> = (0..100u8).collect();
    let full = Frame::new(4_000, ethernet(&c(1, ACK, &payload)));
    let caplen = full.data.len() - 40;
    frames.push(full.cut(caplen));
    frames.push(Frame::new(5_000, ethernet(&c(101, ACK, b"next"))));
    let (events, stats) = replay(pcap(1, false, false, &frames));
    assert_eq!(
        pieces(&events, 0),
        vec![
            (C2S, 0, Some(payload[..60].to_vec()), 60),
            (C2S, 60, None, 40),
            (C2S, 100, Some(b"next".to_vec()), 4),
        ]
    );
    assert_eq!(stats.truncated, 1);
    assert_eq!((stats.gaps, stats.gap_bytes), (1, 40));
}

#[test]
fn unfilled_hole_becomes_a_gap_at_close() {
    let mut pkts = handshake();
    pkts.push((4_000, c(1, ACK, b"abc")));
    pkts.push((5_000, c(7, ACK, b"ghi")));
    pkts.push((6_000, c(10, FIN | ACK, b"")));
    pkts.push((7_000, s(1, FIN | ACK, b"")));
    let (events, stats) = replay(eth_pcap(&pkts));
    assert_eq!(
        pieces(&events, 0),
        vec![
            (C2S, 0, Some(b"abc".to_vec()), 3),
            (C2S, 3, None, 3),
            (C2S, 6, Some(b"ghi".to_vec()), 3),
        ]
    );
    assert_eq!(closes(&events), vec![(0, CloseReason::Fin)]);
    assert_eq!((stats.gaps, stats.gap_bytes), (1, 3));
}

#[test]
fn missing_bytes_before_fin_are_a_gap() {
    let mut pkts = handshake();
    pkts.push((4_000, c(1, ACK, b"abc")));
    pkts.push((5_000, c(9, FIN | ACK, b""))); // 5 bytes [3, 8) never seen
    pkts.push((6_000, s(1, RST, b"")));
    let (events, _) = replay(eth_pcap(&pkts));
    assert_eq!(
        pieces(&events, 0),
        vec![(C2S, 0, Some(b"abc".to_vec()), 3), (C2S, 3, None, 5)]
    );
    assert_eq!(closes(&events), vec![(0, CloseReason::Rst)]);
}

#[test]
fn rst_closes_and_late_segments_do_not_reopen() {
    let mut pkts = handshake();
    pkts.push((4_000, c(1, ACK, b"abc")));
    pkts.push((5_000, s(1, RST | ACK, b"")));
    pkts.push((6_000, c(4, ACK, b"late")));
    let (events, stats) = replay(eth_pcap(&pkts));
    assert_eq!(closes(&events), vec![(0, CloseReason::Rst)]);
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.segments_after_close, 1);
}

#[test]
fn retransmitted_syn_after_rst_stays_in_the_same_connection() {
    let pkts = vec![
        (1_000, c(0, SYN, b"")),
        (2_000, s(0, RST | ACK, b"")),
        (3_000, c(0, SYN, b"")), // same ISN: a retransmission, not a new connection
        (4_000, s(0, RST | ACK, b"")),
    ];
    let (events, stats) = replay(eth_pcap(&pkts));
    assert_eq!(stats.connections, 1);
    assert_eq!(closes(&events), vec![(0, CloseReason::Rst)]);
}

#[test]
fn mid_stream_capture_guesses_the_client_by_port() {
    let pkts = vec![
        (1_000, s(100, ACK, b"response first")),
        (2_000, c(50, ACK, b"request")),
    ];
    let (events, _) = replay(eth_pcap(&pkts));
    assert_eq!(
        events[0],
        PcapEvent::ConnectionOpened {
            conn: TcpConnKey {
                client: client(),
                server: server()
            },
            index: 0,
            ts_ns: 1_000,
            syn_seen: false
        }
    );
    assert_eq!(stream(&events, 0, S2C), b"response first");
    assert_eq!(stream(&events, 0, C2S), b"request");
}

#[test]
fn new_syn_on_the_same_tuple_is_a_new_connection() {
    let mut pkts = handshake();
    pkts.push((4_000, c(1, FIN | ACK, b"one")));
    pkts.push((5_000, s(1, FIN | ACK, b"")));
    pkts.push((6_000, c(5, ACK, b""))); // last ACK: stays with connection 0
    pkts.push((7_000, ip_tcp(client(), server(), 90_000, SYN, b"")));
    pkts.push((8_000, ip_tcp(client(), server(), 90_001, ACK, b"two")));
    let (events, stats) = replay(eth_pcap(&pkts));
    assert_eq!(stats.connections, 2);
    assert_eq!(stream(&events, 0, C2S), b"one");
    assert_eq!(stream(&events, 1, C2S), b"two");
    assert_eq!(
        closes(&events),
        vec![(0, CloseReason::Fin), (1, CloseReason::EndOfCapture)]
    );
}

#[test]
fn out_of_order_buffer_overflow_declares_the_hole_a_gap() {
    let config = PcapConfig {
        max_out_of_order_bytes: 8,
        ..PcapConfig::default()
    };
    let mut pkts = handshake();
    pkts.push((4_000, c(11, ACK, b"0123456789"))); // 10 bytes after a 10-byte hole
    pkts.push((5_000, c(1, ACK, b"late-fill!"))); // arrives after the gap was declared
    let (events, stats) = replay_with(eth_pcap(&pkts), config);
    assert_eq!(
        pieces(&events, 0),
        vec![
            (C2S, 0, None, 10),
            (C2S, 10, Some(b"0123456789".to_vec()), 10)
        ]
    );
    assert_eq!(stats.out_of_order_cap_hits, 1);
    assert_eq!(stats.retransmitted_bytes, 10);
}

#[test]
fn idle_and_capacity_eviction_are_counted() {
    let other = addr("10.0.0.3:40001");
    let config = PcapConfig {
        idle_timeout_ns: 1_000,
        ..PcapConfig::default()
    };
    let pkts = vec![
        (0, c(1, ACK, b"a")),
        (10_000, ip_tcp(other, server(), 1, ACK, b"b")),
    ];
    let (events, stats) = replay_with(eth_pcap(&pkts), config);
    assert_eq!(
        closes(&events),
        vec![(0, CloseReason::Evicted), (1, CloseReason::EndOfCapture)]
    );
    assert_eq!(stats.evicted_idle, 1);

    let config = PcapConfig {
        max_connections: 1,
        ..PcapConfig::default()
    };
    let pkts = vec![
        (0, c(1, ACK, b"a")),
        (1, ip_tcp(other, server(), 1, ACK, b"b")),
    ];
    let (events, stats) = replay_with(eth_pcap(&pkts), config);
    assert_eq!(
        closes(&events),
        vec![(0, CloseReason::Evicted), (1, CloseReason::EndOfCapture)]
    );
    assert_eq!(stats.evicted_capacity, 1);
    assert_eq!(stats.evictions(), 1);
}

#[test]
fn big_endian_nanosecond_pcap() {
    let frames: Vec<Frame> = vec![Frame::new(
        1_700_000_000_123_456_789,
        ethernet(&c(1, ACK, b"x")),
    )];
    let (events, _) = replay(pcap(1, true, true, &frames));
    assert!(matches!(
        events[1],
        PcapEvent::Data {
            ts_ns: 1_700_000_000_123_456_789,
            ..
        }
    ));
    let (events, _) = replay(pcap(1, true, false, &frames));
    assert!(matches!(
        events[1],
        PcapEvent::Data {
            ts_ns: 1_700_000_000_123_456_000,
            ..
        }
    ));
}

#[test]
fn link_types_sll_sll2_null_vlan_raw_ipv6() {
    let ip = c(1, ACK, b"payload");
    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&ip);
    let mut sll2 = vec![
        0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
    ];
    sll2.extend_from_slice(&ip);
    let mut null = vec![2, 0, 0, 0];
    null.extend_from_slice(&ip);
    let mut vlan = vec![
        2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x81, 0x00, 0x00, 0x07, 0x08, 0x00,
    ];
    vlan.extend_from_slice(&ip);
    let v6 = ip_tcp(
        addr("[fe80::1]:40000"),
        addr("[fe80::2]:443"),
        7,
        ACK,
        b"payload",
    );
    for (linktype, frame) in [(113, sll), (276, sll2), (0, null), (1, vlan), (101, v6)] {
        let (events, stats) = replay(pcap(linktype, false, false, &[Frame::new(1, frame)]));
        assert_eq!(stream(&events, 0, C2S), b"payload", "linktype {linktype}");
        assert_eq!(stats.tcp_segments, 1);
    }
    let (_, stats) = replay(pcap(147, false, false, &[Frame::new(1, vec![0; 60])]));
    assert_eq!(stats.unsupported_link_type, 1);
}

#[test]
fn non_tcp_and_fragments_are_counted_and_skipped() {
    let mut udp = c(1, ACK, b"dns?");
    udp[9] = 17;
    let mut frag = c(1, ACK, b"frag");
    frag[6] = 0x20; // more fragments
    let pkts = vec![(1, udp), (2, frag)];
    let (events, stats) = replay(eth_pcap(&pkts));
    assert!(events.is_empty());
    assert_eq!(
        (stats.non_tcp, stats.ip_fragments, stats.packets),
        (1, 1, 2)
    );
}

#[test]
fn pcapng_with_two_interfaces_of_different_link_types() {
    let interfaces = [
        NgInterface {
            linktype: 1,
            tsresol: None,
        }, // Ethernet, microseconds
        NgInterface {
            linktype: 101,
            tsresol: Some(9),
        }, // raw IP, nanoseconds
    ];
    let packets = [
        NgPacket {
            if_id: Some(0),
            ts_units: 1_000_000_000_000_000,
            data: ethernet(&c(1, ACK, b"eth-")),
        },
        NgPacket {
            if_id: Some(1),
            ts_units: 1_000_000_000_000_000_500,
            data: c(5, ACK, b"raw-"),
        },
        NgPacket {
            if_id: None,
            ts_units: 0,
            data: ethernet(&c(9, ACK, b"spb")),
        },
        NgPacket {
            if_id: Some(7), // never described: skipped and counted
            ts_units: 0,
            data: ethernet(&c(12, ACK, b"lost")),
        },
    ];
    let (events, stats) = replay(pcapng(&interfaces, &packets));
    assert_eq!(stream(&events, 0, C2S), b"eth-raw-spb");
    let ts: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            PcapEvent::Data { ts_ns, .. } => Some(*ts_ns),
            _ => None,
        })
        .collect();
    assert_eq!(
        ts,
        vec![
            1_000_000_000_000_000_000,
            1_000_000_000_000_000_500,
            1_000_000_000_000_000_500
        ]
    );
    assert_eq!((stats.packets, stats.malformed), (4, 1));
}

#[test]
fn pcapng_sections_of_both_byte_orders() {
    // Section 1 (little-endian): interface 0 is Ethernet. Section 2 (big-endian) resets the
    // interfaces: interface 0 is now Linux SLL2 with 2^-10 s (binary) resolution.
    let first = pcapng_section(
        Endian { big: false },
        &[NgInterface {
            linktype: 1,
            tsresol: None,
        }],
        &[NgPacket {
            if_id: Some(0),
            ts_units: 5_000_000,
            data: ethernet(&c(1, ACK, b"le-")),
        }],
    );
    let mut sll2 = vec![
        0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
    ];
    sll2.extend_from_slice(&c(4, ACK, b"be"));
    let second = pcapng_section(
        Endian { big: true },
        &[NgInterface {
            linktype: 276,
            tsresol: Some(0x8a),
        }],
        &[NgPacket {
            if_id: Some(0),
            ts_units: 6 * 1024 + 512,
            data: sll2,
        }],
    );
    let (events, stats) = replay([first, second].concat());
    assert_eq!(stream(&events, 0, C2S), b"le-be");
    let ts: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            PcapEvent::Data { ts_ns, .. } => Some(*ts_ns),
            _ => None,
        })
        .collect();
    assert_eq!(ts, vec![5_000_000_000, 6_500_000_000]);
    assert_eq!(stats.malformed, 0);
}

#[test]
fn file_errors_name_the_file_and_offset() {
    let dir = std::env::temp_dir().join(format!("chainwatch-pcap-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");

    let not_capture = dir.join("not-a-capture.txt");
    std::fs::write(&not_capture, b"GET / HTTP/1.1\r\n").expect("write");
    let err = read_pcap_file(&not_capture, &PcapConfig::default()).expect_err("must fail");
    assert!(matches!(err, PcapError::NotACapture { .. }));
    assert!(err.to_string().contains("not-a-capture.txt"), "{err}");

    let mut bytes = eth_pcap(&[(1, c(1, ACK, b"abc")), (2, c(4, ACK, b"def"))]);
    let second_record = bytes.len() - (16 + 14 + 40 + 3);
    bytes.truncate(bytes.len() - 2);
    let truncated = dir.join("cut.pcap");
    std::fs::write(&truncated, &bytes).expect("write");
    let err = read_pcap_file(&truncated, &PcapConfig::default()).expect_err("must fail");
    match &err {
        PcapError::Truncated {
            offset,
            source_name,
        } => {
            assert_eq!(*offset, second_record as u64);
            assert!(source_name.ends_with("cut.pcap"));
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    // The streaming reader still yields what it had, then the error, then the closes.
    let mut reader =
        PcapReader::new(Cursor::new(bytes), "cut", PcapConfig::default()).expect("header");
    let items: Vec<_> = reader.by_ref().collect();
    assert!(
        items
            .iter()
            .any(|i| matches!(i, Ok(PcapEvent::Data { .. })))
    );
    assert!(items.iter().any(|i| i.is_err()));
    assert!(matches!(
        items.last(),
        Some(Ok(PcapEvent::ConnectionClosed { .. }))
    ));

    let empty = dir.join("empty.pcap");
    std::fs::write(&empty, b"").expect("write");
    assert!(matches!(
        read_pcap_file(&empty, &PcapConfig::default()),
        Err(PcapError::Empty { .. })
    ));
    let missing = dir.join("does-not-exist.pcap");
    assert!(matches!(
        read_pcap_file(&missing, &PcapConfig::default()),
        Err(PcapError::Io { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

fn fixture(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pcap")
        .join(rel)
}

fn all_fixtures() -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![fixture("")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("fixture dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e == "pcap" || e == "pcapng")
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn converted_formats_replay_identically() {
    for (original, converted) in [
        ("zeek/http/methods.pcap", "derived/methods.pcapng"),
        (
            "zeek/tls/tls12-decryption.pcap",
            "derived/tls12-decryption.nsec.pcap",
        ),
        (
            "zeek/postgresql/psql-login.pcap",
            "derived/psql-login.modpcap.pcap",
        ),
    ] {
        let (a, sa) = read_pcap_file(&fixture(original), &PcapConfig::default()).expect(original);
        let (b, sb) = read_pcap_file(&fixture(converted), &PcapConfig::default()).expect(converted);
        assert!(!a.is_empty());
        assert_eq!(a, b, "{original} vs {converted}");
        assert_eq!(sa, sb);
    }
}

/// Every fixture gives well-formed output: each connection opens once before its data and
/// closes exactly once, stream offsets are contiguous per direction, and nothing is left open.
#[test]
fn corpus_output_is_well_formed() {
    for path in all_fixtures() {
        let (events, stats) = read_pcap_file(&path, &PcapConfig::default()).expect("readable");
        let mut opened = std::collections::HashSet::new();
        let mut closed = std::collections::HashSet::new();
        let mut next = std::collections::HashMap::new();
        for e in &events {
            let index = e.index();
            match e {
                PcapEvent::ConnectionOpened { .. } => assert!(opened.insert(index)),
                PcapEvent::ConnectionClosed { .. } => assert!(closed.insert(index)),
                PcapEvent::Data {
                    dir,
                    stream_offset,
                    bytes,
                    ..
                } => {
                    assert!(opened.contains(&index) && !closed.contains(&index));
                    let at = next.entry((index, *dir)).or_insert(0u64);
                    assert_eq!(*at, *stream_offset, "{}", path.display());
                    assert!(!bytes.is_empty());
                    *at += bytes.len() as u64;
                }
                PcapEvent::Gap {
                    dir,
                    stream_offset,
                    len,
                    ..
                } => {
                    assert!(opened.contains(&index) && !closed.contains(&index));
                    let at = next.entry((index, *dir)).or_insert(0u64);
                    assert_eq!(*at, *stream_offset, "{}", path.display());
                    *at += len;
                }
            }
        }
        assert_eq!(opened, closed, "{}", path.display());
        assert_eq!(stats.connections as usize, opened.len());
        assert_eq!(stats.malformed, 0, "{}", path.display());
    }
}
