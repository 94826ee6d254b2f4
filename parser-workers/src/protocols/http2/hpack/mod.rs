//! HPACK (RFC 7541) header decompression for a passive observer: one `HpackDecoder` per
//! direction, with its dynamic table, table size updates, Huffman strings and a bounded header
//! list; it can start mid-connection (unknown dynamic table) and never invents a header.

mod decoder;
mod dynamic_table;
#[doc(hidden)]
pub mod encoder;
mod huffman;
mod huffman_table;
mod static_table;

pub use decoder::{DecodedBlock, DecodedField, HpackDecoder, HpackLimits};
pub use dynamic_table::{DynamicEntry, DynamicTable, ENTRY_OVERHEAD};
#[doc(hidden)]
pub use encoder::{HpackEncoder, huffman_encode};
pub use huffman::huffman_decode;
pub use static_table::{STATIC_TABLE, static_entry};

/// A header value as `Debug` may show it: redacted for secret headers and for values whose
/// header name we never learnt (it could be a secret).
fn printable_value(name: Option<&[u8]>, value: &[u8]) -> String {
    match name {
        Some(n) if !super::exchange::is_secret_header(&String::from_utf8_lossy(n)) => {
            String::from_utf8_lossy(value).into_owned()
        }
        _ => super::exchange::REDACTED.to_string(),
    }
}

/// What was wrong in a header block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HpackError {
    #[error("HPACK integer runs past the end of the header block")]
    IntegerTruncated,
    #[error("HPACK integer is larger than 2^32")]
    IntegerOverflow,
    #[error("HPACK string literal runs past the end of the header block")]
    StringTruncated,
    #[error("HPACK string literal decodes to more than {limit} bytes")]
    StringTooLong { limit: usize },
    #[error("HPACK index 0 is not a valid table index")]
    ZeroIndex,
    #[error("HPACK index {index} is past the end of the static and dynamic tables")]
    IndexOutOfRange { index: usize },
    #[error("HPACK dynamic table size update to {requested} exceeds the allowed {allowed}")]
    TableSizeTooLarge { requested: usize, allowed: usize },
    #[error("Huffman string contains the EOS symbol")]
    HuffmanEos,
    #[error("Huffman string has an invalid code")]
    HuffmanInvalid,
    #[error("Huffman string padding is longer than 7 bits or not all ones")]
    HuffmanPadding,
}
