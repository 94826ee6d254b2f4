//! A small HPACK encoder (RFC 7541) for tests, fuzz seeds and benches: it writes what real
//! clients write (static and dynamic table references, literals with incremental indexing,
//! Huffman-coded strings when shorter) so the decoder can be driven with realistic header
//! blocks. The observer itself never encodes; this is test support, hidden from the docs.

use super::dynamic_table::ENTRY_OVERHEAD;
use super::huffman_table::HUFFMAN_CODES;
use super::static_table::STATIC_TABLE;

/// Encoder state: the dynamic table as the peer's decoder will hold it.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct HpackEncoder {
    /// Newest first, like the decoder's table.
    table: Vec<(Vec<u8>, Vec<u8>)>,
    max_size: usize,
    /// Huffman-code strings when that is shorter (as nghttp2, Go and hyper do).
    pub huffman: bool,
}

impl Default for HpackEncoder {
    fn default() -> Self {
        HpackEncoder::new(4096)
    }
}

impl HpackEncoder {
    /// An encoder whose table may hold `max_size` RFC bytes (4096 is the protocol default).
    pub fn new(max_size: usize) -> Self {
        HpackEncoder {
            table: Vec::new(),
            max_size,
            huffman: true,
        }
    }

    fn table_size(&self) -> usize {
        self.table
            .iter()
            .map(|(n, v)| n.len() + v.len() + ENTRY_OVERHEAD)
            .sum()
    }

    /// Encode one header block. Secret headers (authorization, cookies) are sent
    /// never-indexed, every other field is indexed when it can be, else inserted.
    pub fn encode<N: AsRef<[u8]>, V: AsRef<[u8]>>(&mut self, fields: &[(N, V)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in fields {
            let (name, value) = (name.as_ref(), value.as_ref());
            let pair = |(n, v): &(&str, &str)| n.as_bytes() == name && v.as_bytes() == value;
            if let Some(i) = STATIC_TABLE.iter().position(pair) {
                encode_integer(&mut out, 0x80, 7, i + 1);
                continue;
            }
            if let Some(i) = self
                .table
                .iter()
                .position(|(n, v)| n.as_slice() == name && v.as_slice() == value)
            {
                encode_integer(&mut out, 0x80, 7, STATIC_TABLE.len() + 1 + i);
                continue;
            }
            let secret = super::super::exchange::is_secret_header(&String::from_utf8_lossy(name));
            let (first, prefix) = if secret { (0x10, 4) } else { (0x40, 6) };
            let name_index = STATIC_TABLE
                .iter()
                .position(|(n, _)| n.as_bytes() == name)
                .map(|i| i + 1)
                .or_else(|| {
                    self.table
                        .iter()
                        .position(|(n, _)| n.as_slice() == name)
                        .map(|i| STATIC_TABLE.len() + 1 + i)
                });
            match name_index {
                Some(i) => encode_integer(&mut out, first, prefix, i),
                None => {
                    out.push(first);
                    self.string(&mut out, name);
                }
            }
            self.string(&mut out, value);
            if !secret {
                self.table.insert(0, (name.to_vec(), value.to_vec()));
                while self.table_size() > self.max_size {
                    self.table.pop();
                }
            }
        }
        out
    }

    fn string(&self, out: &mut Vec<u8>, s: &[u8]) {
        let coded = huffman_encode(s);
        if self.huffman && coded.len() < s.len() {
            encode_integer(out, 0x80, 7, coded.len());
            out.extend_from_slice(&coded);
        } else {
            encode_integer(out, 0, 7, s.len());
            out.extend_from_slice(s);
        }
    }
}

/// Write an HPACK integer with a `prefix_bits`-bit prefix after the bits in `first`.
#[doc(hidden)]
pub fn encode_integer(out: &mut Vec<u8>, first: u8, prefix_bits: u32, mut value: usize) {
    let max = (1usize << prefix_bits) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128 + 128) as u8);
        value /= 128;
    }
    out.push(value as u8);
}

/// Huffman-code a string (RFC 7541 Appendix B), padded with ones to a whole byte.
#[doc(hidden)]
pub fn huffman_encode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for &b in s {
        let (code, len) = HUFFMAN_CODES.get(usize::from(b)).copied().unwrap_or((0, 0));
        acc = (acc << len) | u64::from(code);
        bits += u32::from(len);
        while bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
        acc &= (1u64 << bits) - 1;
    }
    if bits > 0 {
        let pad = 8 - bits;
        out.push(((acc << pad) | ((1u64 << pad) - 1)) as u8);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{HpackDecoder, HpackLimits, huffman_decode};
    use super::*;

    #[test]
    fn huffman_encode_matches_rfc7541_c4() {
        assert_eq!(
            huffman_encode(b"www.example.com"),
            [
                0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff
            ]
        );
        assert_eq!(
            huffman_encode(b"no-cache"),
            [0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf]
        );
    }

    #[test]
    fn every_byte_round_trips_through_the_decoder() {
        let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        let mut out = Vec::new();
        huffman_decode(&huffman_encode(&all), &mut out, 1 << 16).unwrap();
        assert_eq!(out, all);
    }

    #[test]
    fn blocks_round_trip_and_use_the_dynamic_table() {
        let mut enc = HpackEncoder::default();
        let mut dec = HpackDecoder::new(HpackLimits::default());
        let fields = [
            (":method", "POST"),
            (":path", "/v1/chat/completions"),
            ("authorization", "Bearer sk-test"),
            ("user-agent", "OpenAI/Python 1.51.0"),
        ];
        let first = enc.encode(&fields);
        let second = enc.encode(&fields);
        assert!(
            second.len() < first.len() / 2,
            "second block uses the table"
        );
        for block in [first, second] {
            let out = dec.decode(&block);
            assert!(!out.incomplete, "{out:?}");
            let got: Vec<(Vec<u8>, Vec<u8>)> =
                out.fields.into_iter().map(|f| (f.name, f.value)).collect();
            let want: Vec<(Vec<u8>, Vec<u8>)> = fields
                .iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect();
            assert_eq!(got, want);
        }
    }
}
