//! Fuzz target `http1`: the fuzzer's bytes become a client stream and a server stream (split at
//! a position taken from the first two bytes), fed in chunks whose sizes come from the data,
//! with occasional capture gaps, through `Http1Connection`; then the connection is flushed.
//! Nothing may panic, and every exchange must respect the configured body cap.

#![no_main]

use chainwatch_parser_workers::protocols::Direction;
use chainwatch_parser_workers::protocols::http1::{Http1Config, Http1Connection};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (Some(&a), Some(&b)) = (data.first(), data.get(1)) else {
        return;
    };
    let rest = data.get(2..).unwrap_or_default();
    let split = (usize::from(a) << 8 | usize::from(b)) % (rest.len() + 1);
    let (client, server) = rest.split_at(split);
    let config = Http1Config {
        body_cap: 256,
        buffer_cap: 2048,
        max_head_bytes: 1024,
        max_pending_requests: 8,
        ..Http1Config::default()
    };
    let mut conn = Http1Connection::new(config);
    let mut exchanges = Vec::new();
    let (mut ci, mut si) = (0usize, 0usize);
    let mut step = 0u64;
    while ci < client.len() || si < server.len() {
        step += 1;
        // chunk size from the byte at the cursor, 1..=64
        if ci < client.len() {
            let n = usize::from(client.get(ci).copied().unwrap_or(0) % 64) + 1;
            let end = (ci + n).min(client.len());
            if step % 17 == 0 {
                exchanges.extend(conn.gap(Direction::ClientToServer, n as u64));
            } else {
                exchanges.extend(conn.feed(Direction::ClientToServer, &client[ci..end], step));
            }
            ci = end;
        }
        if si < server.len() {
            let n = usize::from(server.get(si).copied().unwrap_or(0) % 64) + 1;
            let end = (si + n).min(server.len());
            exchanges.extend(conn.feed(Direction::ServerToClient, &server[si..end], step));
            si = end;
        }
    }
    exchanges.extend(conn.flush());
    for ex in &exchanges {
        assert!(ex.request_body.bytes.len() <= config.body_cap);
        assert!(ex.response_body.bytes.len() <= config.body_cap);
        assert!(
            ex.request_headers
                .iter()
                .all(|h| !h.redacted || h.value.is_empty())
        );
    }
    let _ = conn.stats();
});
