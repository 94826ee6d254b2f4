//! Fuzz target `pcap`: arbitrary bytes as a pcap/pcapng capture must never panic the pcap
//! source; every event must be well-formed (offsets contiguous per direction).
#![no_main]

use std::collections::HashMap;
use std::io::Cursor;

use chainwatch_probe::pcap::{PcapConfig, PcapEvent, PcapReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = PcapConfig {
        max_connections: 64,
        max_out_of_order_bytes: 16 * 1024,
        max_out_of_order_segments: 128,
        read_buffer_bytes: 65_536,
        ..PcapConfig::default()
    };
    let Ok(reader) = PcapReader::new(Cursor::new(data.to_vec()), "fuzz", config) else {
        return;
    };
    let mut next_offset = HashMap::new();
    for event in reader.flatten() {
        match event {
            PcapEvent::Data {
                index,
                dir,
                stream_offset,
                bytes,
                ..
            } => {
                let at = next_offset.entry((index, dir)).or_insert(0u64);
                assert_eq!(*at, stream_offset);
                *at += bytes.len() as u64;
            }
            PcapEvent::Gap {
                index,
                dir,
                stream_offset,
                len,
                ..
            } => {
                let at = next_offset.entry((index, dir)).or_insert(0u64);
                assert_eq!(*at, stream_offset);
                *at += len;
            }
            _ => {}
        }
    }
});
