//! Stream behaviour of the HTTP/2 stitcher on hand-built frames: CONTINUATION, padding and
//! priority, trailers, interim responses, server push, RST_STREAM, GOAWAY, body caps, the
//! open-stream bound, unknown frame types, redaction, binary (`-bin`) values, gaps and flush.

use chainwatch_parser_workers::protocols::http2::frame::{flags, frame_type};
use chainwatch_parser_workers::protocols::http2::{
    CONNECTION_PREFACE, Http2Config, Http2Connection, Http2Exchange, Http2Frame, Http2FrameParser,
    REDACTED,
};
use chainwatch_parser_workers::protocols::{Direction, FrameParser, Parsed};

const C2S: Direction = Direction::ClientToServer;
const S2C: Direction = Direction::ServerToClient;

fn frame(ty: u8, fl: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, fl];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK literal without indexing, new name, raw strings (lengths < 127).
fn lit(name: &str, value: &str) -> Vec<u8> {
    let mut b = vec![0x00, name.len() as u8];
    b.extend_from_slice(name.as_bytes());
    b.push(value.len() as u8);
    b.extend_from_slice(value.as_bytes());
    b
}

/// HPACK literal with incremental indexing, new name.
fn lit_indexed(name: &str, value: &str) -> Vec<u8> {
    let mut b = lit(name, value);
    b[0] = 0x40;
    b
}

fn request_block(path: &str) -> Vec<u8> {
    // :method POST (3), :scheme https (7), :path literal, :authority literal.
    let mut b = vec![0x83, 0x87];
    b.extend(lit(":path", path));
    b.extend(lit(":authority", "api.example.com"));
    b
}

fn config() -> Http2Config {
    Http2Config {
        from_connection_start: true,
        ..Http2Config::default()
    }
}

fn run(conn: &mut Http2Connection, steps: &[(Direction, Vec<u8>)]) -> Vec<Http2Exchange> {
    let mut out = Vec::new();
    for (i, (dir, bytes)) in steps.iter().enumerate() {
        out.extend(conn.feed(*dir, bytes, 100 * (i as u64 + 1)));
    }
    out
}

#[test]
fn preface_settings_request_response_trailers() {
    let mut conn = Http2Connection::new(Http2Config::default());
    let mut c = CONNECTION_PREFACE.to_vec();
    c.extend(frame(frame_type::SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]));
    let mut block = request_block("/v1/chat/completions");
    block.extend(lit_indexed("authorization", "Bearer sk-live-secret"));
    block.extend(lit("x-api-key", "key-123"));
    block.extend(lit("content-type", "application/json"));
    c.extend(frame(frame_type::HEADERS, flags::END_HEADERS, 1, &block));
    c.extend(frame(
        frame_type::DATA,
        flags::END_STREAM,
        1,
        b"{\"model\":\"gpt\"}",
    ));
    let mut s = frame(frame_type::SETTINGS, 0, 0, &[]);
    s.extend(frame(frame_type::SETTINGS, flags::ACK, 0, &[]));
    // 103 Early Hints first, then 200 (static index 8) with set-cookie, then a body and trailers.
    let mut early = vec![0x08, 0x03];
    early.extend_from_slice(b"103");
    s.extend(frame(frame_type::HEADERS, flags::END_HEADERS, 1, &early));
    let mut resp = vec![0x88];
    resp.extend(lit("set-cookie", "session=abc"));
    s.extend(frame(frame_type::HEADERS, flags::END_HEADERS, 1, &resp));
    s.extend(frame(frame_type::DATA, 0, 1, b"hello "));
    s.extend(frame(frame_type::DATA, 0, 1, b"world"));
    s.extend(frame(
        frame_type::HEADERS,
        flags::END_HEADERS | flags::END_STREAM,
        1,
        &lit("grpc-status", "0"),
    ));
    let out = run(&mut conn, &[(C2S, c), (S2C, s)]);
    assert_eq!(out.len(), 1);
    let ex = &out[0];
    assert_eq!(ex.stream_id, 1);
    assert_eq!(ex.method.as_deref(), Some("POST"));
    assert_eq!(ex.scheme.as_deref(), Some("https"));
    assert_eq!(ex.path.as_deref(), Some("/v1/chat/completions"));
    assert_eq!(ex.authority.as_deref(), Some("api.example.com"));
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.request_header("authorization"), Some(REDACTED));
    assert_eq!(ex.request_header("x-api-key"), Some(REDACTED));
    assert_eq!(ex.response_header("set-cookie"), Some(REDACTED));
    assert_eq!(ex.request_header("content-type"), Some("application/json"));
    assert_eq!(ex.request_body, b"{\"model\":\"gpt\"}");
    assert_eq!(ex.response_body, b"hello world");
    assert_eq!(ex.response_body_size, 11);
    assert_eq!(ex.response_trailer("grpc-status"), Some("0"));
    assert_eq!((ex.start_ts_ns, ex.end_ts_ns), (100, 200));
    assert_eq!(ex.flags, Default::default());
    assert_eq!(conn.stats().stitcher.informational_responses, 1);
    // The secret is nowhere in the exchange, not even in its Debug output.
    assert!(!format!("{ex:?}").contains("sk-live-secret"));
    // Nor in the HPACK table that still holds it for decoding.
    let table = format!("{:?}", conn.stitcher().decoder(C2S));
    assert!(table.contains("authorization") && !table.contains("sk-live-secret"));
    // The dynamic entry was kept for decoding: index 62 resolves (and is still redacted).
    let mut c2 = vec![0x83, 0x87, 0x84, 0xbe];
    c2.extend(lit(":authority", "x"));
    let out = run(
        &mut conn,
        &[(
            C2S,
            frame(
                frame_type::HEADERS,
                flags::END_HEADERS | flags::END_STREAM,
                3,
                &c2,
            ),
        )],
    );
    assert!(out.is_empty());
    let out = conn.flush();
    assert_eq!(out[0].request_header("authorization"), Some(REDACTED));
    assert!(!out[0].flags.headers_incomplete);
}

#[test]
fn binary_trailers_stay_base64_and_status_details_decode() {
    use chainwatch_parser_workers::protocols::grpc::{DescriptorRegistry, decode_grpc_call};
    // google.rpc.Status {code: 300, message: "boom"}: the varint 300 (0xac 0x02) is not UTF-8.
    let status: &[u8] = &[0x08, 0xac, 0x02, 0x12, 0x04, b'b', b'o', b'o', b'm'];
    let mut true_binary = vec![0u8];
    true_binary.extend_from_slice(status);
    // HPACK literal (new name, raw bytes) of the trailer as grpc-core sends true binary
    let name = b"grpc-status-details-bin";
    let mut trailer = vec![0x00, name.len() as u8];
    trailer.extend_from_slice(name);
    trailer.push(true_binary.len() as u8);
    trailer.extend_from_slice(&true_binary);
    trailer.extend(lit("grpc-status", "13"));
    trailer.extend(lit("x-trace-bin", "AAEC")); // already base64: kept as sent
    let mut conn = Http2Connection::new(config());
    let mut block = request_block("/x.Y/Z");
    block.extend(lit("content-type", "application/grpc"));
    let c = frame(
        frame_type::HEADERS,
        flags::END_HEADERS | flags::END_STREAM,
        1,
        &block,
    );
    let mut s = frame(frame_type::HEADERS, flags::END_HEADERS, 1, &[0x88]); // :status 200
    s.extend(frame(
        frame_type::HEADERS,
        flags::END_HEADERS | flags::END_STREAM,
        1,
        &trailer,
    ));
    let out = run(&mut conn, &[(C2S, c), (S2C, s)]);
    assert_eq!(out.len(), 1);
    let details = out[0].response_trailer("grpc-status-details-bin");
    assert_eq!(details, Some("CKwCEgRib29t")); // base64 of the raw bytes, no lossy U+FFFD
    assert_eq!(out[0].response_trailer("x-trace-bin"), Some("AAEC"));
    let pairs = |fields: &[chainwatch_parser_workers::protocols::http2::HeaderField]| {
        fields
            .iter()
            .map(|f| (f.name.clone(), f.value.clone()))
            .collect::<Vec<_>>()
    };
    let call = decode_grpc_call(
        "/x.Y/Z",
        &pairs(&out[0].request_headers),
        &[],
        &pairs(&out[0].response_headers),
        &[],
        &pairs(&out[0].response_trailers),
        &DescriptorRegistry::builtin(),
    );
    assert!(call.errors.is_empty(), "{:?}", call.errors);
    assert_eq!(
        call.status.and_then(|s| s.details),
        Some(serde_json::json!({"code": 300, "message": "boom"}))
    );
}

#[test]
fn continuation_padding_and_priority() {
    let mut conn = Http2Connection::new(config());
    let block = request_block("/split/across/continuations");
    let (a, rest) = block.split_at(3);
    let (b, c) = rest.split_at(10);
    // HEADERS with PADDED and PRIORITY: pad length 4, exclusive dep on 0, weight 15.
    let mut payload = vec![4u8, 0x80, 0, 0, 0, 15];
    payload.extend_from_slice(a);
    payload.extend_from_slice(&[0; 4]);
    let mut bytes = frame(
        frame_type::HEADERS,
        flags::PADDED | flags::PRIORITY | flags::END_STREAM,
        1,
        &payload,
    );
    bytes.extend(frame(frame_type::CONTINUATION, 0, 1, b));
    bytes.extend(frame(frame_type::CONTINUATION, flags::END_HEADERS, 1, c));
    let mut padded_data = vec![2u8];
    padded_data.extend_from_slice(b"ok");
    padded_data.extend_from_slice(&[0, 0]);
    let mut s = frame(frame_type::HEADERS, flags::END_HEADERS, 1, &[0x8d]); // :status 404
    s.extend(frame(
        frame_type::DATA,
        flags::PADDED | flags::END_STREAM,
        1,
        &padded_data,
    ));
    let out = run(&mut conn, &[(C2S, bytes), (S2C, s)]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].path.as_deref(), Some("/split/across/continuations"));
    assert_eq!(out[0].status, Some(404));
    assert_eq!(out[0].response_body, b"ok");
    assert_eq!(out[0].response_body_size, 2);
}

#[test]
fn frame_parser_reads_priority_and_padding_fields() {
    let mut parser = Http2FrameParser::at_connection_start(16_384);
    let mut payload = vec![1u8, 0x80, 0, 0, 3, 200, 0x82, 0];
    payload.truncate(8);
    let bytes = frame(
        frame_type::HEADERS,
        flags::PADDED | flags::PRIORITY | flags::END_HEADERS,
        5,
        &payload,
    );
    match parser.parse(&bytes) {
        Parsed::Frame {
            frame:
                Http2Frame::Headers {
                    stream_id,
                    priority,
                    fragment,
                    end_headers,
                    end_stream,
                },
            consumed,
        } => {
            assert_eq!(
                (stream_id, end_headers, end_stream, consumed),
                (5, true, false, bytes.len())
            );
            let p = priority.unwrap();
            assert!(p.exclusive);
            assert_eq!((p.stream_dependency, p.weight), (3, 200));
            assert_eq!(fragment, vec![0x82]);
        }
        other => panic!("{other:?}"),
    }
    // Padding longer than the payload: skipped whole while synced.
    let bad = frame(frame_type::DATA, flags::PADDED, 5, &[9, 1, 2]);
    assert_eq!(parser.parse(&bad), Parsed::Invalid { skip: bad.len() });
    assert_eq!(parser.stats().malformed_frames, 1);
    // An unknown frame type is skipped as a frame.
    let unknown = frame(0xfa, 0x3, 7, b"xyz");
    assert!(matches!(
        parser.parse(&unknown),
        Parsed::Frame {
            frame: Http2Frame::Unknown {
                frame_type: 0xfa,
                ..
            },
            consumed: 12
        }
    ));
    // Every other type.
    let cases = [
        frame(frame_type::PRIORITY, 0, 3, &[0, 0, 0, 1, 16]),
        frame(frame_type::RST_STREAM, 0, 3, &[0, 0, 0, 8]),
        frame(frame_type::PING, flags::ACK, 0, &[1, 2, 3, 4, 5, 6, 7, 8]),
        frame(
            frame_type::GOAWAY,
            0,
            0,
            &[0, 0, 0, 9, 0, 0, 0, 2, b'b', b'y', b'e'],
        ),
        frame(frame_type::WINDOW_UPDATE, 0, 0, &[0, 1, 0, 0]),
        frame(
            frame_type::PUSH_PROMISE,
            flags::END_HEADERS,
            1,
            &[0, 0, 0, 2, 0x82],
        ),
    ];
    let expected = [
        "Priority { stream_id: 3, priority: PriorityFields { exclusive: false, stream_dependency: 1, weight: 16 } }",
        "RstStream { stream_id: 3, error_code: 8 }",
        "Ping { ack: true, opaque: [1, 2, 3, 4, 5, 6, 7, 8] }",
        "GoAway { last_stream_id: 9, error_code: 2, debug_data: [98, 121, 101] }",
        "WindowUpdate { stream_id: 0, increment: 65536 }",
        "PushPromise { stream_id: 1, end_headers: true, promised_stream_id: 2, fragment: [130] }",
    ];
    for (bytes, want) in cases.iter().zip(expected) {
        match parser.parse(bytes) {
            Parsed::Frame { frame, consumed } => {
                assert_eq!(format!("{frame:?}"), want);
                assert_eq!(consumed, bytes.len());
            }
            other => panic!("{other:?}"),
        }
    }
    // A frame longer than the bound: lost sync, hunt byte by byte.
    let huge = [0x01, 0x00, 0x00, 0x00, 0, 0, 0, 0, 1];
    assert_eq!(parser.parse(&huge), Parsed::Invalid { skip: 1 });
    assert!(!parser.is_synced());
    assert_eq!(parser.stats().oversize_frames, 1);
}

#[test]
fn server_push_gives_a_pushed_exchange() {
    let mut conn = Http2Connection::new(config());
    let c = frame(
        frame_type::HEADERS,
        flags::END_HEADERS | flags::END_STREAM,
        1,
        &request_block("/index.html"),
    );
    let mut promise = vec![0, 0, 0, 2, 0x82, 0x87];
    promise.extend(lit(":path", "/style.css"));
    promise.extend(lit(":authority", "api.example.com"));
    let mut s = frame(frame_type::PUSH_PROMISE, flags::END_HEADERS, 1, &promise);
    s.extend(frame(frame_type::HEADERS, flags::END_HEADERS, 1, &[0x88]));
    s.extend(frame(frame_type::HEADERS, flags::END_HEADERS, 2, &[0x88]));
    s.extend(frame(frame_type::DATA, flags::END_STREAM, 2, b"body{}"));
    s.extend(frame(frame_type::DATA, flags::END_STREAM, 1, b"<html>"));
    let out = run(&mut conn, &[(C2S, c), (S2C, s)]);
    assert_eq!(out.len(), 2);
    let pushed = &out[0];
    assert_eq!(pushed.stream_id, 2);
    assert!(pushed.flags.pushed && !pushed.flags.partial);
    assert_eq!(pushed.promised_on_stream, Some(1));
    assert_eq!(pushed.method.as_deref(), Some("GET"));
    assert_eq!(pushed.path.as_deref(), Some("/style.css"));
    assert_eq!(pushed.response_body, b"body{}");
    assert_eq!(out[1].stream_id, 1);
    assert_eq!(out[1].response_body, b"<html>");
    assert_eq!(conn.stats().stitcher.pushes, 1);
}

#[test]
fn rst_stream_and_goaway_end_streams_as_reset() {
    let mut conn = Http2Connection::new(config());
    let mut c = frame(
        frame_type::HEADERS,
        flags::END_HEADERS,
        1,
        &request_block("/a"),
    );
    c.extend(frame(
        frame_type::HEADERS,
        flags::END_HEADERS,
        3,
        &request_block("/b"),
    ));
    c.extend(frame(
        frame_type::HEADERS,
        flags::END_HEADERS,
        5,
        &request_block("/c"),
    ));
    c.extend(frame(frame_type::RST_STREAM, 0, 1, &[0, 0, 0, 8]));
    let out = run(&mut conn, &[(C2S, c)]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].path.as_deref(), Some("/a"));
    assert!(out[0].flags.reset);
    assert_eq!(out[0].reset_error_code, Some(8));
    // Late DATA on the reset stream is not a new stream.
    let late = frame(frame_type::DATA, 0, 1, b"late");
    assert!(run(&mut conn, &[(C2S, late)]).is_empty());
    assert_eq!(conn.stats().stitcher.frames_on_closed_streams, 1);
    // GOAWAY from the server with last stream 3: stream 5 was never processed.
    let g = frame(frame_type::GOAWAY, 0, 0, &[0, 0, 0, 3, 0, 0, 0, 0]);
    let out = run(&mut conn, &[(S2C, g)]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].stream_id, 5);
    assert!(out[0].flags.reset);
    let rest = conn.flush();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].stream_id, 3);
    assert!(rest[0].flags.partial);
}

#[test]
fn bodies_are_capped_and_counted() {
    let cfg = Http2Config {
        max_response_body_bytes: 4,
        ..config()
    };
    let mut conn = Http2Connection::new(cfg);
    let c = frame(
        frame_type::HEADERS,
        flags::END_HEADERS | flags::END_STREAM,
        1,
        &request_block("/big"),
    );
    let mut s = frame(frame_type::HEADERS, flags::END_HEADERS, 1, &[0x88]);
    s.extend(frame(frame_type::DATA, 0, 1, b"abc"));
    s.extend(frame(frame_type::DATA, flags::END_STREAM, 1, b"defgh"));
    let out = run(&mut conn, &[(C2S, c), (S2C, s)]);
    assert_eq!(out[0].response_body, b"abcd");
    assert_eq!(out[0].response_body_size, 8);
    assert!(out[0].flags.truncated);
    assert_eq!(conn.stats().stitcher.bodies_truncated, 1);
}

#[test]
fn open_stream_bound_evicts_the_oldest() {
    let cfg = Http2Config {
        max_open_streams: 2,
        ..config()
    };
    let mut conn = Http2Connection::new(cfg);
    let mut c = Vec::new();
    for id in [1u32, 3, 5] {
        c.extend(frame(
            frame_type::HEADERS,
            flags::END_HEADERS,
            id,
            &request_block("/s"),
        ));
    }
    let out = run(&mut conn, &[(C2S, c)]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].stream_id, 1);
    assert!(out[0].flags.evicted && out[0].flags.partial);
    assert_eq!(conn.stats().stitcher.streams_evicted, 1);
    assert_eq!(conn.stitcher().open_streams(), 2);
}

#[test]
fn header_block_bound_marks_incomplete_and_forgets_the_table() {
    let cfg = Http2Config {
        max_header_block_bytes: 16,
        ..config()
    };
    let mut conn = Http2Connection::new(cfg);
    let c = frame(
        frame_type::HEADERS,
        flags::END_HEADERS,
        1,
        &request_block("/a/long/path/over/the/bound"),
    );
    let out = run(&mut conn, &[(C2S, c)]);
    assert!(out.is_empty());
    let out = conn.flush();
    assert!(out[0].flags.headers_incomplete);
    assert_eq!(out[0].path, None);
    assert_eq!(conn.stats().stitcher.header_block_overflows, 1);
    assert!(!conn.stitcher().decoder(C2S).is_synced());
}

#[test]
fn interrupted_continuation_is_counted() {
    let mut conn = Http2Connection::new(config());
    let block = request_block("/x");
    let mut c = frame(frame_type::HEADERS, 0, 1, &block[..4]);
    c.extend(frame(frame_type::DATA, 0, 1, b"oops"));
    run(&mut conn, &[(C2S, c)]);
    assert_eq!(conn.stats().stitcher.continuation_errors, 1);
    let out = conn.flush();
    assert!(out[0].flags.headers_incomplete);
}

#[test]
fn gap_then_resync_and_desynced_hpack() {
    let mut conn = Http2Connection::new(config());
    // An indexed entry is created on stream 1 ...
    let mut block = request_block("/first");
    block.extend(lit_indexed("x-trace", "abc"));
    let c = frame(
        frame_type::HEADERS,
        flags::END_HEADERS | flags::END_STREAM,
        1,
        &block,
    );
    let out = run(&mut conn, &[(C2S, c)]);
    assert!(out.is_empty());
    // ... bytes are lost, then garbage-tail of a frame, then stream 3 refers to index 62.
    conn.gap(C2S, 1000);
    let mut c = vec![0xde, 0xad, 0xbe];
    let mut b3 = request_block("/third");
    b3.push(0xbe);
    c.extend(frame(
        frame_type::HEADERS,
        flags::END_HEADERS | flags::END_STREAM,
        3,
        &b3,
    ));
    run(&mut conn, &[(C2S, c)]);
    let out = conn.flush();
    assert_eq!(out.len(), 2);
    let third = out.iter().find(|e| e.stream_id == 3).unwrap();
    assert_eq!(third.path.as_deref(), Some("/third"));
    assert!(third.flags.headers_incomplete);
    assert!(third.request_header("x-trace").is_none());
    let stats = conn.stats();
    assert_eq!(stats.gaps, 1);
    assert_eq!(stats.parser[0].hunted_bytes, 3);
}

#[test]
fn buffer_cap_is_counted() {
    // The buffer always holds one whole frame of the maximum size, so a frame never overflows
    // it; bytes that never form a frame header are hunted through, keeping the buffer bounded.
    let cfg = Http2Config {
        max_frame_size: 64,
        max_buffer_bytes: 0,
        ..config()
    };
    let mut conn = Http2Connection::new(cfg);
    let junk = vec![0xffu8; 10_000];
    conn.feed(C2S, &junk, 1);
    assert!(conn.buffered()[0] < 9);
    assert!(conn.stats().parser[0].hunted_bytes >= 9_990);
}

#[test]
fn hunting_ignores_huge_plausible_lengths() {
    let mut conn = Http2Connection::new(config());
    conn.gap(C2S, 10);
    // Looks like a DATA header on stream 1 announcing 60,000 bytes: too big while hunting.
    let mut c = vec![0x00, 0xea, 0x60, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01];
    c.extend(frame(
        frame_type::HEADERS,
        flags::END_HEADERS | flags::END_STREAM,
        7,
        &request_block("/found"),
    ));
    run(&mut conn, &[(C2S, c)]);
    let out = conn.flush();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].stream_id, 7);
    assert_eq!(out[0].path.as_deref(), Some("/found"));
}

#[test]
fn hunting_parser_waits_for_a_confirming_header() {
    let mut parser = Http2FrameParser::new(16_384);
    let ping = frame(frame_type::PING, 0, 0, &[0; 8]);
    // Alone, the PING is not yet confirmed.
    assert_eq!(parser.parse(&ping), Parsed::NeedMore);
    // Followed by junk that is no frame header: not a boundary, skip a byte.
    let mut with_junk = ping.clone();
    with_junk.extend_from_slice(&[0xff; 9]);
    assert_eq!(parser.parse(&with_junk), Parsed::Invalid { skip: 1 });
    // Followed by a plausible header: accepted, and from then on synced.
    let mut confirmed = ping.clone();
    confirmed.extend(frame(frame_type::SETTINGS, flags::ACK, 0, &[]));
    assert!(matches!(
        parser.parse(&confirmed),
        Parsed::Frame { consumed: 17, .. }
    ));
    assert!(parser.is_synced());
    // At the end of the stream a lone hunted frame is accepted.
    let mut parser = Http2FrameParser::new(16_384);
    parser.set_end_of_stream();
    assert!(matches!(
        parser.parse(&ping),
        Parsed::Frame { consumed: 17, .. }
    ));
}
