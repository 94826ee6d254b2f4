//! Properties of the HTTP/2 parser: any split of the byte streams gives the same exchanges
//! (real captures and an RFC 7541 conversation), and arbitrary or mutated bytes never panic.

use std::sync::OnceLock;

use chainwatch_parser_workers::protocols::http2::hpack::{HpackDecoder, HpackLimits};
use chainwatch_parser_workers::protocols::http2::{
    CONNECTION_PREFACE, Http2Config, Http2Connection, Http2Exchange, Http2FrameParser,
    looks_like_http2,
};
use chainwatch_parser_workers::protocols::{Direction, FrameParser, Parsed};
use proptest::prelude::*;

type Capture = Vec<(Direction, Vec<u8>)>;

fn hex(text: &str) -> Vec<u8> {
    let h: String = text.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..h.len() / 2)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn load(name: &str) -> Capture {
    let path = format!(
        "{}/tests/fixtures/http2/{name}.follow.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    let body = text.split("Node 1:").nth(1).unwrap();
    body.lines()
        .skip(1)
        .filter(|l| !l.starts_with('=') && !l.trim().is_empty())
        .map(|l| {
            let dir = if l.starts_with('\t') {
                Direction::ServerToClient
            } else {
                Direction::ClientToServer
            };
            (dir, hex(l))
        })
        .collect()
}

fn frame(ty: u8, fl: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, fl];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// RFC 7541 C.4 requests and C.6 responses on three interleaved streams, after a preface.
fn rfc_conversation() -> Capture {
    let requests = [
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ];
    let responses = [
        "3fe101 4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad
         1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2
         e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ];
    let mut c = CONNECTION_PREFACE.to_vec();
    c.extend(frame(4, 0, 0, &[0, 1, 0, 0, 1, 0]));
    let mut out = vec![(Direction::ClientToServer, c)];
    out.push((Direction::ServerToClient, frame(4, 0, 0, &[])));
    for (i, r) in requests.iter().enumerate() {
        let id = 2 * i as u32 + 1;
        let block = hex(r);
        let (a, b) = block.split_at(block.len() / 2);
        let mut bytes = frame(1, 0, id, a);
        bytes.extend(frame(9, 4, id, b));
        bytes.extend(frame(0, 1, id, format!("request body {i}").as_bytes()));
        out.push((Direction::ClientToServer, bytes));
    }
    for (i, r) in responses.iter().enumerate() {
        let id = 2 * (2 - i) as u32 + 1;
        let mut bytes = frame(1, 4, id, &hex(r));
        bytes.extend(frame(0, 0, id, &vec![b'x'; 100 * i]));
        // Trailer: literal without indexing, static name 26 (content-encoding), value "0".
        bytes.extend(frame(1, 5, id, &hex("0f 0b 01 30")));
        out.push((Direction::ServerToClient, bytes));
    }
    out
}

fn captures() -> &'static Vec<(String, Capture)> {
    static CAPTURES: OnceLock<Vec<(String, Capture)>> = OnceLock::new();
    CAPTURES.get_or_init(|| {
        let mut v: Vec<(String, Capture)> = [
            "h2c_ascii",
            "http2-multi",
            "httpv2-stream-id",
            "grpc-unary",
            "grpc-segmented",
            "grpc-server-stream",
            "grpc-unknown",
            "grpc-service-name",
        ]
        .iter()
        .map(|n| (n.to_string(), load(n)))
        .collect();
        v.push(("rfc7541-conversation".to_string(), rfc_conversation()));
        v
    })
}

/// Feed a capture, cutting every segment into chunks whose sizes cycle through `chunks`.
fn run(capture: &Capture, chunks: &[usize]) -> Vec<Http2Exchange> {
    let mut conn = Http2Connection::new(Http2Config::default());
    let mut out = Vec::new();
    let mut k = 0usize;
    for (i, (dir, bytes)) in capture.iter().enumerate() {
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let n = chunks
                .get(k % chunks.len().max(1))
                .copied()
                .unwrap_or(usize::MAX)
                .max(1)
                .min(rest.len());
            k += 1;
            let (now, later) = rest.split_at(n);
            out.extend(conn.feed(*dir, now, 10 * (i as u64 + 1)));
            rest = later;
        }
    }
    out.extend(conn.flush());
    out
}

#[test]
fn rfc_conversation_decodes() {
    let out = run(&rfc_conversation(), &[]);
    assert_eq!(out.len(), 3);
    let statuses: Vec<_> = out.iter().map(|e| (e.stream_id, e.status)).collect();
    assert_eq!(
        statuses,
        vec![(5, Some(302)), (3, Some(307)), (1, Some(200))]
    );
    assert!(
        out.iter()
            .all(|e| !e.flags.headers_incomplete && !e.flags.partial)
    );
    assert_eq!(out[0].path.as_deref(), Some("/index.html"));
    assert_eq!(out[0].request_header("custom-key"), Some("custom-value"));
    assert_eq!(out[0].request_body, b"request body 2");
    assert_eq!(out[2].path.as_deref(), Some("/"));
    assert_eq!(out[2].authority.as_deref(), Some("www.example.com"));
    assert_eq!(out[2].response_header("set-cookie"), Some("[REDACTED]"));
    assert_eq!(out[2].response_header("content-encoding"), Some("gzip"));
    assert_eq!(out[2].response_trailers.len(), 1);
    assert_eq!(out[2].response_body.len(), 200);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_split_gives_the_same_exchanges(which in 0usize..9, chunks in prop::collection::vec(1usize..40, 1..50)) {
        let caps = captures();
        let (name, capture) = &caps[which % caps.len()];
        let whole = run(capture, &[]);
        let split = run(capture, &chunks);
        prop_assert_eq!(whole, split, "{}", name);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        ops in prop::collection::vec((any::<bool>(), any::<bool>(), prop::collection::vec(any::<u8>(), 0..300)), 0..20)
    ) {
        let mut conn = Http2Connection::new(Http2Config { max_frame_size: 512, max_open_streams: 4, ..Http2Config::default() });
        for (to_server, gap, bytes) in &ops {
            let dir = if *to_server { Direction::ClientToServer } else { Direction::ServerToClient };
            if *gap {
                conn.gap(dir, bytes.len() as u64);
            }
            let _ = conn.feed(dir, bytes, 1);
            let _ = looks_like_http2(bytes);
            let mut dec = HpackDecoder::new(HpackLimits::default());
            let _ = dec.decode(bytes);
            let mut dec = HpackDecoder::new_mid_connection(HpackLimits { max_table_size: 256, max_header_list_size: 128 });
            let _ = dec.decode(bytes);
            let mut parser = Http2FrameParser::new(512);
            let mut buf = bytes.as_slice();
            while !buf.is_empty() {
                match parser.parse(buf) {
                    Parsed::Frame { consumed, .. } => { prop_assert!(consumed >= 1 && consumed <= buf.len()); buf = &buf[consumed..]; }
                    Parsed::Invalid { skip } => { prop_assert!(skip >= 1 && skip <= buf.len()); buf = &buf[skip..]; }
                    Parsed::NeedMore => break,
                }
            }
        }
        let _ = conn.flush();
    }

    #[test]
    fn plausible_frames_with_arbitrary_payloads_never_panic(
        frames in prop::collection::vec((0u8..11, any::<u8>(), 0u32..8, prop::collection::vec(any::<u8>(), 0..64)), 0..30)
    ) {
        let mut conn = Http2Connection::new(Http2Config { max_open_streams: 3, max_header_block_bytes: 100, ..Http2Config::default() });
        for (i, (ty, fl, stream, payload)) in frames.iter().enumerate() {
            let dir = if i % 3 == 0 { Direction::ServerToClient } else { Direction::ClientToServer };
            let _ = conn.feed(dir, &frame(*ty, *fl, *stream, payload), i as u64);
        }
        let out = conn.flush();
        prop_assert!(out.len() <= 3);
        prop_assert_eq!(conn.stitcher().open_streams(), 0);
    }

    #[test]
    fn mutated_captures_never_panic(which in 0usize..9, flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..20)) {
        let caps = captures();
        let (_, capture) = &caps[which % caps.len()];
        let mut capture = capture.clone();
        for (pos, byte) in flips {
            let count = capture.len();
            let seg = pos % count;
            let bytes = &mut capture[seg].1;
            if !bytes.is_empty() {
                let at = (pos / count) % bytes.len();
                bytes[at] ^= byte;
            }
        }
        let _ = run(&capture, &[7, 13, 1]);
    }
}
