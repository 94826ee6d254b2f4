//! HPACK Huffman decoding (RFC 7541 section 5.2): a binary trie built once from Appendix B,
//! turned into a state machine that reads four bits per step (every code is at least five bits
//! long, so a step emits at most one symbol), with the padding rules checked (at most 7 bits,
//! all ones, never EOS).

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

/// No symbol completed in a step.
const NO_SYMBOL: u16 = u16::MAX;

/// What reading four bits from one trie node does.
#[derive(Clone, Copy)]
struct NibbleStep {
    /// The node after the four bits (the root after a symbol, then onwards).
    next: u16,
    /// The symbol completed on the way, or `NO_SYMBOL`.
    symbol: u16,
    /// The bits spelt EOS.
    eos: bool,
    /// The bits left the code (cannot happen with the complete RFC code; kept for safety).
    invalid: bool,
}

/// The four-bits-per-step decoder: one row of 16 steps per trie node, and which nodes may end
/// a string (the root, and the all-ones path of at most 7 bits: valid padding).
struct NibbleMachine {
    steps: Vec<[NibbleStep; 16]>,
    accepting: Vec<bool>,
}

impl NibbleMachine {
    fn build(trie: &HuffmanTrie) -> Self {
        let edge = |node: usize, bit: usize| {
            trie.nodes
                .get(node)
                .and_then(|n| n.get(bit))
                .copied()
                .unwrap_or(Edge::Missing)
        };
        let mut steps = Vec::with_capacity(trie.nodes.len());
        for start in 0..trie.nodes.len() {
            let mut row = [NibbleStep {
                next: 0,
                symbol: NO_SYMBOL,
                eos: false,
                invalid: false,
            }; 16];
            for (nibble, step) in row.iter_mut().enumerate() {
                let mut node = start;
                for shift in (0..4).rev() {
                    match edge(node, (nibble >> shift) & 1) {
                        Edge::Node(next) => node = usize::from(next),
                        Edge::Symbol(EOS) => {
                            step.eos = true;
                            break;
                        }
                        Edge::Symbol(sym) => {
                            step.symbol = sym;
                            node = 0;
                        }
                        Edge::Missing => {
                            step.invalid = true;
                            break;
                        }
                    }
                }
                step.next = node as u16;
            }
            steps.push(row);
        }
        let mut accepting = vec![false; trie.nodes.len()];
        let mut node = 0usize;
        if let Some(a) = accepting.get_mut(0) {
            *a = true;
        }
        for _ in 0..7 {
            match edge(node, 1) {
                Edge::Node(next) => {
                    node = usize::from(next);
                    if let Some(a) = accepting.get_mut(node) {
                        *a = true;
                    }
                }
                _ => break,
            }
        }
        NibbleMachine { steps, accepting }
    }
}

fn machine() -> &'static NibbleMachine {
    static MACHINE: OnceLock<NibbleMachine> = OnceLock::new();
    MACHINE.get_or_init(|| NibbleMachine::build(trie()))
}

/// Decode a Huffman-coded string literal, appending to `out`.
/// Stops with an error (never a panic) as soon as `out` would exceed `limit` bytes.
pub fn huffman_decode(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), HpackError> {
    let machine = machine();
    let mut node = 0usize;
    out.reserve((input.len().saturating_mul(8) / 5 + 1).min(limit));
    for &byte in input {
        for nibble in [byte >> 4, byte & 0x0f] {
            let Some(step) = machine
                .steps
                .get(node)
                .and_then(|row| row.get(usize::from(nibble)))
            else {
                return Err(HpackError::HuffmanInvalid);
            };
            if step.eos {
                return Err(HpackError::HuffmanEos);
            }
            if step.invalid {
                return Err(HpackError::HuffmanInvalid);
            }
            if step.symbol != NO_SYMBOL {
                if out.len() >= limit {
                    return Err(HpackError::StringTooLong { limit });
                }
                out.push(step.symbol as u8);
            }
            node = usize::from(step.next);
        }
    }
    if machine.accepting.get(node).copied().unwrap_or(false) {
        Ok(())
    } else {
        Err(HpackError::HuffmanPadding)
    }
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

    /// The plain bit-by-bit trie walk the nibble machine replaced: the reference it must match.
    fn reference_decode(input: &[u8], limit: usize) -> Result<Vec<u8>, HpackError> {
        let trie = trie();
        let mut out = Vec::new();
        let mut node = 0usize;
        let (mut pending_bits, mut pending_all_ones) = (0u32, true);
        for &byte in input {
            for shift in (0..8).rev() {
                let bit = ((byte >> shift) & 1) as usize;
                pending_bits += 1;
                pending_all_ones &= bit == 1;
                match trie.nodes[node][bit] {
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
        Ok(out)
    }

    proptest::proptest! {
        #[test]
        fn nibble_machine_matches_the_bitwise_walk(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            limit in 0usize..80,
        ) {
            proptest::prop_assert_eq!(decode_with(&bytes, limit), reference_decode(&bytes, limit));
        }

        #[test]
        fn encoded_strings_decode_like_the_bitwise_walk(
            text in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3),
        ) {
            let mut coded = super::super::huffman_encode(&text);
            proptest::prop_assert_eq!(decode_with(&coded, 1 << 16), Ok(text.clone()));
            coded.extend_from_slice(&tail);
            proptest::prop_assert_eq!(decode_with(&coded, 1 << 16), reference_decode(&coded, 1 << 16));
        }
    }

    fn decode_with(bytes: &[u8], limit: usize) -> Result<Vec<u8>, HpackError> {
        let mut out = Vec::new();
        huffman_decode(bytes, &mut out, limit).map(|()| out)
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
