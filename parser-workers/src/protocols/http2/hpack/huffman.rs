//! HPACK Huffman decoding (RFC 7541 section 5.2): a binary trie built once from Appendix B,
//! walked bit by bit, with the padding rules checked (at most 7 bits, all ones, never EOS).

use std::sync::OnceLock;

use super::HpackError;
use super::huffman_table::HUFFMAN_CODES;

/// Symbol number of end-of-string; it must never appear inside a string.
const EOS: u16 = 256;

/// One trie node: for bit 0 and bit 1, either the next node or a symbol.
#[derive(Clone, Copy)]
enum Edge {
    Missing,
    Node(u16),
    Symbol(u16),
}

struct HuffmanTrie {
    nodes: Vec<[Edge; 2]>,
}

impl HuffmanTrie {
    fn build() -> Self {
        let mut nodes: Vec<[Edge; 2]> = vec![[Edge::Missing, Edge::Missing]];
        for (symbol, &(code, len)) in HUFFMAN_CODES.iter().enumerate() {
            let mut node = 0usize;
            for i in (0..len).rev() {
                let bit = ((code >> i) & 1) as usize;
                let last = i == 0;
                let Some(slot) = nodes.get(node).map(|n| n[bit]) else {
                    break;
                };
                if last {
                    if let Some(n) = nodes.get_mut(node) {
                        n[bit] = Edge::Symbol(symbol as u16);
                    }
                } else {
                    node = match slot {
                        Edge::Node(next) => next as usize,
                        _ => {
                            let next = nodes.len();
                            nodes.push([Edge::Missing, Edge::Missing]);
                            if let Some(n) = nodes.get_mut(node) {
                                n[bit] = Edge::Node(next as u16);
                            }
                            next
                        }
                    };
                }
            }
        }
        HuffmanTrie { nodes }
    }
}

fn trie() -> &'static HuffmanTrie {
    static TRIE: OnceLock<HuffmanTrie> = OnceLock::new();
    TRIE.get_or_init(HuffmanTrie::build)
}

/// Decode a Huffman-coded string literal, appending to `out`.
/// Stops with an error (never a panic) as soon as `out` would exceed `limit` bytes.
pub fn huffman_decode(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), HpackError> {
    let trie = trie();
    let mut node = 0usize;
    // Bits read since the last whole symbol, and whether they were all ones (valid padding).
    let mut pending_bits = 0u32;
    let mut pending_all_ones = true;
    for &byte in input {
        for shift in (0..8).rev() {
            let bit = ((byte >> shift) & 1) as usize;
            let edge = trie
                .nodes
                .get(node)
                .map(|n| n[bit])
                .unwrap_or(Edge::Missing);
            pending_bits += 1;
            pending_all_ones &= bit == 1;
            match edge {
                Edge::Node(next) => node = next as usize,
                Edge::Symbol(EOS) => return Err(HpackError::HuffmanEos),
                Edge::Symbol(sym) => {
                    if out.len() >= limit {
                        return Err(HpackError::StringTooLong { limit });
                    }
                    out.push(sym as u8);
                    node = 0;
                    pending_bits = 0;
                    pending_all_ones = true;
                }
                Edge::Missing => return Err(HpackError::HuffmanInvalid),
            }
        }
    }
    if pending_bits > 7 || !pending_all_ones {
        return Err(HpackError::HuffmanPadding);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<Vec<u8>, HpackError> {
        let mut out = Vec::new();
        huffman_decode(bytes, &mut out, 1 << 16).map(|()| out)
    }

    #[test]
    fn code_is_complete_kraft_sum_one() {
        // Sum of 2^-len over all codes must be exactly 1 (scaled by 2^30).
        let total: u64 = HUFFMAN_CODES
            .iter()
            .map(|&(_, len)| 1u64 << (30 - len as u64))
            .sum();
        assert_eq!(total, 1u64 << 30);
        assert_eq!(HUFFMAN_CODES[256], (0x3fff_ffff, 30));
        assert_eq!(HUFFMAN_CODES[b'/' as usize], (0x18, 6));
    }

    #[test]
    fn rfc7541_strings() {
        let hex = |s: &str| -> Vec<u8> {
            let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        assert_eq!(
            decode(&hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff")).unwrap(),
            b"www.example.com"
        );
        assert_eq!(decode(&hex("640e ff")).unwrap(), b"307");
        assert_eq!(decode(&hex("a8eb 1064 9cbf")).unwrap(), b"no-cache");
        assert_eq!(decode(&[]).unwrap(), b"");
    }

    #[test]
    fn bad_padding_and_eos_are_errors() {
        // 0x00: '0' (00000) then 3 zero bits of padding: not all ones.
        assert_eq!(decode(&[0x00]), Err(HpackError::HuffmanPadding));
        // Four 0xff bytes: 30 ones = EOS.
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff]),
            Err(HpackError::HuffmanEos)
        );
        // '0' then a whole byte of ones: padding longer than 7 bits.
        assert_eq!(decode(&[0x07, 0xff]), Err(HpackError::HuffmanPadding));
    }

    #[test]
    fn limit_is_enforced() {
        let mut out = Vec::new();
        let r = huffman_decode(
            &[0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0],
            &mut out,
            3,
        );
        assert_eq!(r, Err(HpackError::StringTooLong { limit: 3 }));
    }
}
