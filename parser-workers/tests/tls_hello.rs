//! TLS hellos against real captures (zeek's TLS traces, SNI/ALPN/cipher counts checked against
//! what tshark says), splits at every byte offset, handshake fragmentation across records, and
//! property tests that arbitrary bytes never panic.

use chainwatch_parser_workers::protocols::tls::{
    TlsFrame, TlsHello, TlsHelloKind, TlsHelloParser, TlsHelloSniffer, looks_like_tls_client_hello,
    parse_client_hello, parse_server_hello,
};
use chainwatch_parser_workers::protocols::{FrameParser, Parsed};
use proptest::prelude::*;

fn fixture(path: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// (is_client, bytes) runs of a fixture.
fn load(path: &str) -> Vec<(bool, Vec<u8>)> {
    std::fs::read_to_string(fixture(path))
        .expect("fixture")
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (d, hex) = l.split_at(2);
            let bytes = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex"))
                .collect();
            (d.starts_with('C'), bytes)
        })
        .collect()
}

fn direction_bytes(path: &str, client: bool) -> Vec<u8> {
    load(path)
        .into_iter()
        .filter(|(c, _)| *c == client)
        .flat_map(|(_, b)| b)
        .collect()
}

fn tsv(path: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(fixture(path))
        .expect("tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn hello_of(bytes: &[u8]) -> Option<TlsHello> {
    let mut s = TlsHelloSniffer::default();
    s.feed(bytes);
    s.hello().cloned()
}

#[test]
fn client_hellos_match_tshark() {
    let rows = tsv("tls/expected.tsv");
    assert_eq!(rows.len(), 10);
    for row in rows {
        let file = &row[0];
        let runs = load(&format!("tls/{file}"));
        let first_client = runs.iter().find(|(c, _)| *c).expect("client bytes");
        assert!(
            looks_like_tls_client_hello(&first_client.1),
            "{file}: not detected"
        );
        // Feed run by run, as segments arrived.
        let mut sniffer = TlsHelloSniffer::default();
        for (_, b) in runs.iter().filter(|(c, _)| *c) {
            sniffer.feed(b);
        }
        let h = sniffer.hello().unwrap_or_else(|| {
            panic!(
                "{file}: no ClientHello ({:?})",
                sniffer.parser().last_error()
            )
        });
        assert_eq!(h.kind, TlsHelloKind::Client);
        let sni = row.get(1).filter(|s| !s.is_empty()).cloned();
        assert_eq!(h.server_name, sni, "{file}: SNI");
        let alpn: Vec<String> = row
            .get(2)
            .filter(|s| !s.is_empty())
            .map(|s| s.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        assert_eq!(h.alpn, alpn, "{file}: ALPN");
        assert_eq!(
            h.cipher_suite_count.to_string(),
            row[3],
            "{file}: cipher suites"
        );
        assert_eq!(
            format!("0x{:04x}", h.legacy_version),
            row[4],
            "{file}: legacy_version"
        );
    }
}

#[test]
fn server_hellos_match_tshark() {
    for row in tsv("tls/expected_server.tsv") {
        let file = &row[0];
        let h = hello_of(&direction_bytes(&format!("tls/{file}"), false))
            .unwrap_or_else(|| panic!("{file}: no ServerHello"));
        assert_eq!(h.kind, TlsHelloKind::Server);
        let chosen = row
            .get(1)
            .filter(|s| !s.is_empty())
            .map(|s| u16::from_str_radix(&s[2..], 16).expect("version"));
        match chosen {
            Some(v) => {
                assert_eq!(h.supported_versions, [v], "{file}");
                assert_eq!(h.version_name(), "TLSv13", "{file}");
            }
            None => {
                assert!(h.supported_versions.is_empty(), "{file}");
                assert_eq!(format!("0x{:04x}", h.version()), row[4], "{file}");
            }
        }
        let suite = u16::from_str_radix(&row[2][2..], 16).expect("suite");
        assert_eq!(h.cipher_suite, Some(suite), "{file}");
        let alpn: Vec<String> = row
            .get(3)
            .filter(|s| !s.is_empty())
            .map(|s| vec![s.clone()])
            .unwrap_or_default();
        assert_eq!(h.alpn, alpn, "{file}");
        assert_eq!(
            h.hello_retry_request,
            file.starts_with("hrr"),
            "{file}: HelloRetryRequest"
        );
    }
}

#[test]
fn ech_client_hello_is_flagged_with_outer_sni() {
    let h = hello_of(&direction_bytes("tls/tls13-ech.1.hex", true)).expect("hello");
    assert!(h.ech);
    assert_eq!(h.server_name.as_deref(), Some("cloudflare-ech.com"));
    assert_eq!(h.version_name(), "TLSv13");
}

/// The first record of the client stream of the Chrome capture (a ~1.8 KB post-quantum hello).
fn chrome_client_hello_record() -> Vec<u8> {
    let c = direction_bytes("tls/chrome-1250-tls-x25519-kyber.0.hex", true);
    let len = usize::from(u16::from_be_bytes([c[3], c[4]]));
    c[..5 + len].to_vec()
}

#[test]
fn split_at_every_byte_offset_gives_the_same_hello() {
    let record = chrome_client_hello_record();
    assert!(
        record.len() > 1500,
        "the record spans more than one MSS-sized segment"
    );
    let whole = hello_of(&record).expect("hello");
    assert_eq!(whole.server_name.as_deref(), Some("lh3.google.com"));
    for k in 1..record.len() {
        let mut s = TlsHelloSniffer::default();
        assert!(
            s.feed(&record[..k]).is_none(),
            "hello reported early at {k}"
        );
        s.feed(&record[k..]);
        assert_eq!(s.hello(), Some(&whole), "split at {k}");
    }
}

/// Re-wrap the handshake bytes of `record` into records of at most `size` payload bytes.
fn refragment(record: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in record[5..].chunks(size) {
        out.extend_from_slice(&record[..3]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

#[test]
fn hello_fragmented_across_records_still_parses() {
    let record = chrome_client_hello_record();
    let whole = hello_of(&record).expect("hello");
    for size in [1, 2, 3, 4, 5, 7, 64, 100, 512, 1000] {
        let bytes = refragment(&record, size);
        let mut p = TlsHelloParser::default();
        let mut pos = 0;
        let mut found = Vec::new();
        while pos < bytes.len() {
            match p.parse(&bytes[pos..]) {
                Parsed::Frame { frame, consumed } => {
                    pos += consumed;
                    if let TlsFrame::ClientHello(h) = frame {
                        found.push(h);
                    }
                }
                other => panic!("size {size}: {other:?}"),
            }
        }
        assert_eq!(found, std::slice::from_ref(&whole), "fragment size {size}");
        assert_eq!(p.buffered(), 0);
    }
}

#[test]
fn reassembly_is_bounded_and_counted() {
    let record = chrome_client_hello_record();
    let mut p = TlsHelloParser::new(512);
    let bytes = refragment(&record, 100);
    let mut pos = 0;
    while pos < bytes.len() {
        match p.parse(&bytes[pos..]) {
            Parsed::Frame { frame, consumed } => {
                pos += consumed;
                assert!(!matches!(frame, TlsFrame::ClientHello(_)));
            }
            other => panic!("{other:?}"),
        }
        assert!(p.buffered() <= 512);
    }
    assert!(p.stats().reassembly_overflows > 0);
}

#[test]
fn detection_rejects_other_protocols() {
    assert!(!looks_like_tls_client_hello(
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    ));
    assert!(!looks_like_tls_client_hello(&[0, 0, 0, 8, 4, 210, 22, 47]));
    assert!(!looks_like_tls_client_hello(
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    ));
    // A ServerHello record is not a ClientHello.
    let server = direction_bytes("tls/ecdhe.0.hex", false);
    assert!(!looks_like_tls_client_hello(&server));
    assert!(looks_like_tls_client_hello(
        &chrome_client_hello_record()[..6]
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_fragmentation_and_split_gives_the_same_hello(size in 1usize..2000, cuts in proptest::collection::vec(any::<u16>(), 0..8)) {
        let record = chrome_client_hello_record();
        let whole = hello_of(&record);
        let bytes = refragment(&record, size);
        let mut points: Vec<usize> = cuts.iter().map(|c| usize::from(*c) % (bytes.len() + 1)).collect();
        points.push(0);
        points.push(bytes.len());
        points.sort_unstable();
        let mut s = TlsHelloSniffer::default();
        for w in points.windows(2) {
            s.feed(&bytes[w[0]..w[1]]);
        }
        prop_assert_eq!(s.hello().cloned(), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let _ = looks_like_tls_client_hello(&bytes);
        let _ = parse_client_hello(&bytes, 0x0303);
        let _ = parse_server_hello(&bytes, 0x0303);
        let mut p = TlsHelloParser::new(1024);
        let mut pos = 0;
        while pos < bytes.len() {
            match p.parse(&bytes[pos..]) {
                Parsed::NeedMore => break,
                Parsed::Frame { consumed, .. } => { prop_assert!(consumed >= 1); pos += consumed; }
                Parsed::Invalid { skip } => { prop_assert!(skip >= 1); pos += skip; }
            }
        }
        let mut s = TlsHelloSniffer::default();
        s.feed(&bytes);
    }

    #[test]
    fn mutated_hellos_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..30)) {
        let mut record = chrome_client_hello_record();
        for (at, v) in flips {
            let i = at % record.len();
            record[i] = v;
        }
        let _ = hello_of(&record);
        let _ = parse_client_hello(&record[9..], 0x0303);
    }
}
