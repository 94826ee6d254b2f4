//! HTTP/2 and gRPC over h2c captured by DeepFlow (tests/fixtures/http2/*.follow.txt, the TCP
//! payload of each pcap as `tshark -z follow,tcp,raw,0` prints it), checked against DeepFlow's
//! expected `.result` files: stream id, method, path, authority, status. Most captures join the
//! connection mid-way, so they also exercise unknown HPACK dynamic entries.

use chainwatch_parser_workers::protocols::Direction;
use chainwatch_parser_workers::protocols::http2::{
    Http2Config, Http2Connection, Http2Exchange, looks_like_http2,
};

/// One TCP segment's payload and its direction, in capture order.
fn segments(name: &str) -> Vec<(Direction, Vec<u8>)> {
    let path = format!(
        "{}/tests/fixtures/http2/{name}.follow.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let body = text.split("Node 1:").nth(1).unwrap();
    body.lines()
        .skip(1)
        .filter(|l| !l.starts_with('='))
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let dir = if l.starts_with('\t') {
                Direction::ServerToClient
            } else {
                Direction::ClientToServer
            };
            let hex = l.trim();
            let bytes = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            (dir, bytes)
        })
        .collect()
}

/// Every exchange of a capture, the open ones flushed at the end.
fn exchanges(name: &str) -> (Vec<Http2Exchange>, Http2Connection) {
    let mut conn = Http2Connection::new(Http2Config::default());
    let mut out = Vec::new();
    for (i, (dir, bytes)) in segments(name).into_iter().enumerate() {
        out.extend(conn.feed(dir, &bytes, 1_000 * (i as u64 + 1)));
    }
    out.extend(conn.flush());
    (out, conn)
}

fn only(name: &str) -> Http2Exchange {
    let (mut ex, _) = exchanges(name);
    assert_eq!(ex.len(), 1, "{name}: {ex:#?}");
    ex.remove(0)
}

fn assert_request(ex: &Http2Exchange, stream_id: u32, authority: Option<&str>, path: Option<&str>) {
    assert_eq!(ex.stream_id, stream_id);
    assert_eq!(ex.method.as_deref(), Some("POST"));
    assert_eq!(ex.scheme.as_deref(), Some("http"));
    assert_eq!(ex.authority.as_deref(), authority);
    assert_eq!(ex.path.as_deref(), path);
}

#[test]
fn h2c_ascii_grpc_unary_with_trailers() {
    let ex = only("h2c_ascii");
    assert_request(
        &ex,
        1,
        Some("cartservice:7070"),
        Some("/hipstershop.CartService/GetCart"),
    );
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.request_body_size, 43);
    assert_eq!(ex.request_body.len(), 43);
    assert_eq!(ex.response_body_size, 21);
    assert_eq!(ex.response_trailer("grpc-status"), Some("0"));
    assert_eq!(ex.request_header("user-agent"), Some("grpc-go/1.22.0"));
    assert_eq!(ex.flags, Default::default());
    assert!(ex.start_ts_ns < ex.end_ts_ns);
}

#[test]
fn http2_multi_two_interleaved_streams_with_unknown_dynamic_entries() {
    let (ex, conn) = exchanges("http2-multi");
    // DeepFlow: requests 18131981 and 18131983 (POST, 17 body bytes), responses 200 with 150
    // bytes (…983, first) and 148 bytes (…981). Paths refer to dynamic entries we never saw.
    let got: Vec<_> = ex
        .iter()
        .map(|e| {
            (
                e.stream_id,
                e.status,
                e.request_body_size,
                e.response_body_size,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (18131983, Some(200), 17, 150),
            (18131981, Some(200), 17, 148)
        ]
    );
    for e in &ex {
        assert_request(e, e.stream_id, None, None);
        assert!(e.flags.headers_incomplete && !e.flags.partial);
    }
    assert_eq!(conn.stats().stitcher.header_blocks_incomplete, 6);
}

#[test]
fn httpv2_stream_id_request_only() {
    let ex = only("httpv2-stream-id");
    // The :path name comes from a dynamic entry we never saw: not invented.
    assert_request(&ex, 1392369, None, None);
    assert!(ex.request_headers.is_empty() || ex.request_headers.iter().all(|h| !h.name.is_empty()));
    assert_eq!(ex.request_body_size, 0);
    assert!(ex.flags.headers_incomplete && ex.flags.partial);
    assert_eq!(ex.status, None);
}

#[test]
fn grpc_unary_cut_response_frame() {
    let ex = only("grpc-unary");
    assert_request(
        &ex,
        1,
        Some("10.1.23.21:30035"),
        Some("/agent.Synchronizer/Sync"),
    );
    assert_eq!(ex.request_body_size, 242);
    assert_eq!(ex.status, Some(200));
    // The capture stops inside a 16,384-byte DATA frame: flushed as partial.
    assert!(ex.flags.partial && !ex.flags.headers_incomplete);
}

#[test]
fn grpc_segmented_request() {
    let ex = only("grpc-segmented");
    assert_request(
        &ex,
        1,
        Some("192.168.199.215:30035"),
        Some("/agent.Synchronizer/Push"),
    );
    assert_eq!(ex.request_header("user-agent"), Some("tonic/0.8.3"));
    assert!(ex.flags.partial);
}

#[test]
fn grpc_server_stream() {
    let ex = only("grpc-server-stream");
    assert_request(
        &ex,
        1,
        Some("localhost:9001"),
        Some("/timeseriesquery.TimeSeriesQueryService/ServerStreamQuery"),
    );
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.request_body_size, 35);
    assert!(ex.response_body_size > 0);
    assert!(
        ex.flags.partial,
        "the stream was still open when the capture ended"
    );
}

#[test]
fn grpc_unknown_stream_ids_and_unknown_path() {
    let ex = only("grpc-unknown");
    assert_request(&ex, 928401, Some("currencyservice:7000"), None);
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.request_body_size, 5);
    assert_eq!(ex.response_body_size, 170);
    // The trailers only refer to dynamic entries we never saw: nothing is invented.
    assert!(ex.response_trailers.is_empty());
    assert!(ex.flags.headers_incomplete && !ex.flags.partial);
}

#[test]
fn grpc_service_name_from_the_preface() {
    let ex = only("grpc-service-name");
    assert_request(
        &ex,
        1,
        Some("10.1.23.22:38888"),
        Some("/StreamingService/ClientStreamRPC"),
    );
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.response_trailer("grpc-status"), Some("0"));
    assert_eq!(ex.response_trailer("grpc-message"), Some(""));
    assert_eq!(ex.flags, Default::default());
}

#[test]
fn detection_on_first_segments() {
    for name in [
        "h2c_ascii",
        "http2-multi",
        "httpv2-stream-id",
        "grpc-unary",
        "grpc-segmented",
        "grpc-server-stream",
        "grpc-unknown",
        "grpc-service-name",
    ] {
        let segs = segments(name);
        let first = &segs
            .iter()
            .find(|(d, _)| *d == Direction::ClientToServer)
            .unwrap()
            .1;
        assert!(looks_like_http2(first), "{name}");
    }
    let http1 = segments("httpv1");
    for (_, bytes) in http1 {
        assert!(!looks_like_http2(&bytes));
    }
}

#[test]
fn byte_by_byte_feeding_gives_the_same_exchanges() {
    for name in [
        "h2c_ascii",
        "http2-multi",
        "grpc-unknown",
        "grpc-service-name",
        "grpc-server-stream",
    ] {
        let (whole, _) = exchanges(name);
        let mut conn = Http2Connection::new(Http2Config::default());
        let mut out = Vec::new();
        for (i, (dir, bytes)) in segments(name).into_iter().enumerate() {
            for b in bytes {
                out.extend(conn.feed(dir, &[b], 1_000 * (i as u64 + 1)));
            }
        }
        out.extend(conn.flush());
        assert_eq!(out, whole, "{name}");
    }
}

#[test]
fn joining_after_a_gap_resynchronises() {
    // Lose the first 30 bytes of the client's first segment of h2c_ascii: the parser hunts
    // for the next frame header; the request's HEADERS frame is cut, so the exchange comes
    // out with the response (decodable: the server's table is fresh) and flagged.
    let segs = segments("h2c_ascii");
    let mut conn = Http2Connection::new(Http2Config::default());
    let mut out = Vec::new();
    for (i, (dir, bytes)) in segs.into_iter().enumerate() {
        if i == 0 {
            conn.gap(dir, 30);
            out.extend(conn.feed(dir, &bytes[30..], 1));
        } else {
            out.extend(conn.feed(dir, &bytes, 2));
        }
    }
    out.extend(conn.flush());
    assert_eq!(out.len(), 1, "{out:#?}");
    let ex = &out[0];
    assert_eq!(ex.stream_id, 1);
    assert_eq!(ex.method, None);
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.response_trailer("grpc-status"), Some("0"));
    assert!(ex.flags.partial);
    assert!(conn.stats().parser[0].hunted_bytes > 0);
}
