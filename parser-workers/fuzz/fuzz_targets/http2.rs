//! Fuzz target `http2`: arbitrary bytes through the HTTP/2 layer. The first bytes steer the
//! run (how to split, which direction, where gaps fall, tight or default bounds); the rest is
//! fed to `Http2Connection` in both directions, to the frame parser, to both kinds of HPACK
//! decoder and to the detector. Nothing may panic, every `Parsed` must stay inside the buffer,
//! the bounds must hold, and feeding in chunks must give what feeding whole gives.
#![no_main]

use chainwatch_parser_workers::protocols::http2::hpack::{HpackDecoder, HpackLimits};
use chainwatch_parser_workers::protocols::http2::{
    Http2Config, Http2Connection, Http2Exchange, Http2FrameParser, looks_like_http2,
};
use chainwatch_parser_workers::protocols::{Direction, FrameParser, Parsed};
use libfuzzer_sys::fuzz_target;

fn config(tight: bool) -> Http2Config {
    if tight {
        Http2Config {
            max_frame_size: 256,
            max_buffer_bytes: 0,
            max_header_block_bytes: 128,
            max_header_list_size: 96,
            max_dynamic_table_size: 128,
            max_open_streams: 3,
            max_request_body_bytes: 16,
            max_response_body_bytes: 16,
            remembered_closed_streams: 4,
            from_connection_start: false,
        }
    } else {
        Http2Config {
            from_connection_start: true,
            ..Http2Config::default()
        }
    }
}

/// Feed `data` cut into pieces of `chunk` bytes, alternating direction every `switch` pieces.
fn feed(
    data: &[u8],
    chunk: usize,
    switch: usize,
    gap_every: usize,
    tight: bool,
) -> Vec<Http2Exchange> {
    let mut conn = Http2Connection::new(config(tight));
    let mut out = Vec::new();
    for (i, piece) in data.chunks(chunk.max(1)).enumerate() {
        let dir = if (i / switch.max(1)) % 2 == 0 {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        if gap_every != 0 && i % gap_every == gap_every - 1 {
            conn.gap(dir, piece.len() as u64);
        }
        out.extend(conn.feed(dir, piece, i as u64));
    }
    out.extend(conn.flush());
    let cfg = config(tight);
    for ex in &out {
        assert!(ex.request_body.len() <= cfg.max_request_body_bytes);
        assert!(ex.response_body.len() <= cfg.max_response_body_bytes);
        assert!(ex.request_body.len() as u64 <= ex.request_body_size);
        assert!(ex.response_body.len() as u64 <= ex.response_body_size);
    }
    assert_eq!(conn.stitcher().open_streams(), 0);
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&steer, data)) = input.split_first() else {
        return;
    };
    let tight = steer & 1 == 1;
    let chunk = usize::from(steer >> 1 & 0x1f) + 1;
    let gap_every = usize::from(steer >> 6);

    // Chunking inside one direction must not change the result: one piece per direction
    // switch (`switch` pieces of `chunk` bytes) versus the same bytes byte by byte.
    let whole = feed(data, chunk * 4, 1, 0, tight);
    let mut conn = Http2Connection::new(config(tight));
    let mut split = Vec::new();
    for (i, piece) in data.chunks(chunk * 4).enumerate() {
        let dir = if i % 2 == 0 {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        for part in piece.chunks(chunk) {
            split.extend(conn.feed(dir, part, i as u64));
        }
    }
    split.extend(conn.flush());
    assert_eq!(whole, split);

    let _ = feed(data, chunk, 3, gap_every, tight);
    let _ = looks_like_http2(data);

    let mut parser = Http2FrameParser::new(if tight { 256 } else { 16_384 });
    let mut buf = data;
    while !buf.is_empty() {
        match parser.parse(buf) {
            Parsed::Frame { consumed, .. } => {
                assert!(consumed >= 1 && consumed <= buf.len());
                buf = &buf[consumed..];
            }
            Parsed::Invalid { skip } => {
                assert!(skip >= 1 && skip <= buf.len());
                buf = &buf[skip..];
            }
            Parsed::NeedMore => break,
        }
    }

    let limits = HpackLimits {
        max_table_size: 256,
        max_header_list_size: 256,
    };
    let mut synced = HpackDecoder::new(limits);
    let mut unsynced = HpackDecoder::new_mid_connection(limits);
    for block in data.split(|&b| b == 0xff) {
        let a = synced.decode(block);
        let b = unsynced.decode(block);
        assert!(synced.table().size() <= 256 && unsynced.table().size() <= 256);
        assert!(
            a.fields
                .iter()
                .map(|f| f.name.len() + f.value.len() + 32)
                .sum::<usize>()
                <= 256
        );
        assert!(b.fields.len() <= block.len());
    }
});
