//! Fuzz target: arbitrary bytes into the TLS record parser, the hello sniffer, the hello body
//! parsers and detection; none may panic.
#![no_main]

use chainwatch_parser_workers::protocols::tls::{
    TlsHelloParser, TlsHelloSniffer, looks_like_tls_client_hello, parse_client_hello,
    parse_server_hello,
};
use chainwatch_parser_workers::protocols::{FrameParser, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_tls_client_hello(data);
    let _ = parse_client_hello(data, 0x0303);
    let _ = parse_server_hello(data, 0x0303);

    let mut parser = TlsHelloParser::new(2048);
    let mut pos = 0;
    while let Some(view) = data.get(pos..).filter(|v| !v.is_empty()) {
        match parser.parse(view) {
            Parsed::NeedMore => break,
            Parsed::Frame { consumed, .. } => pos += consumed.max(1),
            Parsed::Invalid { skip } => pos += skip.max(1),
        }
    }

    // The same bytes through the sniffer in uneven pieces.
    let mut sniffer = TlsHelloSniffer::default();
    let step = usize::from(data.first().copied().unwrap_or(1) % 97) + 1;
    for piece in data.chunks(step) {
        let _ = sniffer.feed(piece);
    }
});
