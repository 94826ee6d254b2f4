//! Property tests of the pcap source: arbitrary bytes and mutated real captures never panic;
//! reassembly gives the same stream whatever the segment order, duplication and ISN; reading
//! through a source that returns arbitrarily short reads changes nothing.

#[path = "pcap_builder.rs"]
mod pcap_builder;

use std::io::{Cursor, Read};
use std::path::Path;

use chainwatch_probe::pcap::{PcapConfig, PcapEvent, PcapReader, StreamDirection};
use pcap_builder::*;
use proptest::prelude::*;

fn small_config() -> PcapConfig {
    PcapConfig {
        max_connections: 16,
        max_out_of_order_bytes: 4096,
        max_out_of_order_segments: 64,
        read_buffer_bytes: 65_536,
        ..PcapConfig::default()
    }
}

/// Drains a reader built over `bytes`; errors are fine, panics are not.
fn drain(bytes: Vec<u8>) -> usize {
    match PcapReader::new(Cursor::new(bytes), "fuzz", small_config()) {
        Ok(reader) => reader.count(),
        Err(_) => 0,
    }
}

fn corpus_capture() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pcap/zeek/postgresql/psql-login-no-sslrequest.pcap");
    std::fs::read(path).expect("fixture")
}

/// A `Read` that hands out at most `chunk` bytes per call.
struct TrickleReader {
    inner: Cursor<Vec<u8>>,
    chunk: usize,
}

impl Read for TrickleReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.chunk);
        self.inner.read(&mut buf[..n])
    }
}

fn client_stream(events: &[PcapEvent]) -> (Vec<u8>, u64) {
    let mut bytes = Vec::new();
    let mut gaps = 0;
    for e in events {
        match e {
            PcapEvent::Data {
                dir: StreamDirection::ClientToServer,
                stream_offset,
                bytes: b,
                ..
            } => {
                assert_eq!(
                    *stream_offset as usize,
                    bytes.len() + gaps as usize,
                    "offsets are contiguous"
                );
                bytes.extend_from_slice(b);
            }
            PcapEvent::Gap {
                dir: StreamDirection::ClientToServer,
                len,
                ..
            } => gaps += len,
            _ => {}
        }
    }
    (bytes, gaps)
}

proptest! {
    // 256 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        drain(bytes);
    }

    #[test]
    fn arbitrary_records_after_a_valid_header_never_panic(
        big_endian in any::<bool>(),
        ng in any::<bool>(),
        tail in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut bytes = if ng {
            pcapng(&[NgInterface { linktype: 1, tsresol: Some(9) }], &[])
        } else {
            pcap(1, big_endian, false, &[])
        };
        bytes.extend_from_slice(&tail);
        drain(bytes);
    }

    #[test]
    fn mutated_corpus_capture_never_panics(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..16),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = corpus_capture();
        for (at, value, kind) in edits {
            let i = at.index(bytes.len());
            match kind {
                0 | 1 => bytes[i] = value,
                2 => bytes.insert(i, value),
                _ => { bytes.remove(i); }
            }
        }
        let keep = bytes.len() - cut.index(bytes.len() / 4 + 1);
        bytes.truncate(keep);
        drain(bytes);
    }

    #[test]
    fn any_segment_order_and_duplication_gives_the_same_stream(
        payload in proptest::collection::vec(any::<u8>(), 1..600),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        order in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
        isn in any::<u32>(),
    ) {
        let client = addr("192.0.2.1:50000");
        let server = addr("192.0.2.2:443");
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c.index(payload.len())).collect();
        bounds.push(0);
        bounds.push(payload.len());
        bounds.sort_unstable();
        bounds.dedup();
        let segments: Vec<(u32, &[u8])> = bounds
            .windows(2)
            .map(|w| (w[0] as u32, &payload[w[0]..w[1]]))
            .collect();
        // Every segment at least once, plus duplicates, in a shuffled order.
        let mut sequence: Vec<usize> = (0..segments.len()).collect();
        for pick in &order {
            sequence.push(pick.index(segments.len()));
        }
        for (i, pick) in order.iter().enumerate() {
            let j = pick.index(sequence.len());
            let i = i % sequence.len();
            sequence.swap(i, j);
        }
        let mut pkts = vec![(1_000u64, ip_tcp(client, server, isn, SYN, b""))];
        for (n, &k) in sequence.iter().enumerate() {
            let (rel, bytes) = segments[k];
            let seq = isn.wrapping_add(1).wrapping_add(rel);
            pkts.push((2_000 + n as u64 * 1_000, ip_tcp(client, server, seq, ACK | PSH, bytes)));
        }
        let capture = eth_pcap(&pkts);
        let reader = PcapReader::new(Cursor::new(capture.clone()), "prop", PcapConfig::default()).unwrap();
        let events: Vec<PcapEvent> = reader.map(|e| e.unwrap()).collect();
        let (bytes, gaps) = client_stream(&events);
        prop_assert_eq!(gaps, 0);
        prop_assert_eq!(&bytes, &payload);

        // The same capture read through 1..7-byte reads gives identical events.
        let trickle = TrickleReader { inner: Cursor::new(capture), chunk: 1 + (isn as usize % 7) };
        let reader = PcapReader::new(trickle, "prop", PcapConfig::default()).unwrap();
        let trickled: Vec<PcapEvent> = reader.map(|e| e.unwrap()).collect();
        prop_assert_eq!(trickled, events);
    }
}
