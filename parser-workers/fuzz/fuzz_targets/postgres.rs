//! Fuzz target: arbitrary bytes into the PostgreSQL connection driver (both directions, with
//! gaps), the two push parsers and content detection; none may panic.
#![no_main]

use chainwatch_parser_workers::protocols::postgres::{
    PgBackendParser, PgConfig, PgConnection, PgFrontendParser, looks_like_postgres_client,
};
use chainwatch_parser_workers::protocols::{Direction, FrameParser, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_postgres_client(data);

    // The first byte steers: low bits pick chunk sizes and directions, so one input describes
    // a whole two-sided conversation with gaps.
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let config = PgConfig {
        max_message_len: 4096,
        resync_max_len: 1024,
        ..PgConfig::default()
    };
    let mut conn = PgConnection::new(config.clone());
    let chunk = usize::from(control % 61) + 1;
    for (i, piece) in rest.chunks(chunk).enumerate() {
        let dir = if (control >> (i % 8)) & 1 == 0 {
            Direction::ClientToServer
        } else {
            Direction::ServerToClient
        };
        if i % 13 == 12 {
            conn.gap(dir, piece.len() as u64);
        } else {
            let _ = conn.feed(dir, piece, i as u64);
        }
    }
    let _ = conn.flush();
    let _ = conn.stats();

    let mut frontend = PgFrontendParser::new(config.clone());
    let mut backend = PgBackendParser::new(config);
    if control & 1 == 1 {
        backend.expect_encryption_reply();
    }
    for which in 0..2 {
        let mut pos = 0;
        while let Some(view) = rest.get(pos..).filter(|v| !v.is_empty()) {
            let parsed = if which == 0 {
                frontend.parse(view)
            } else {
                backend.parse(view)
            };
            match parsed {
                Parsed::NeedMore => break,
                Parsed::Frame { consumed, .. } => pos += consumed.max(1),
                Parsed::Invalid { skip } => pos += skip.max(1),
            }
        }
    }
});
