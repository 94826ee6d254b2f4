//! The HPACK decoder proper: reads the five field representations of RFC 7541 section 6 from
//! one complete header block and keeps the dynamic table in step.
//!
//! Attached mid-connection the decoder does not know the peer's older table entries. It then
//! runs "unsynced": entries it saw inserted are exact (they are the newest, and eviction removes
//! the oldest first), a reference past them is to an entry we never saw, so that field is
//! skipped and the block is marked incomplete. A table size update to 0 proves the table empty
//! and brings the decoder back in sync. A malformed block leaves the table in an unknown state,
//! so the decoder forgets its table and goes unsynced instead of failing the connection.

use super::HpackError;
use super::dynamic_table::{DynamicEntry, DynamicTable, ENTRY_OVERHEAD};
use super::huffman::huffman_decode;
use super::static_table::{STATIC_TABLE, static_entry};

/// Default SETTINGS_HEADER_TABLE_SIZE (RFC 9113 section 6.5.2).
const DEFAULT_TABLE_SIZE: usize = 4096;

/// Bounds of one decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HpackLimits {
    /// Largest dynamic table size an encoder may switch to (protects our memory).
    pub max_table_size: usize,
    /// Largest decoded header list kept, counted as the RFC counts it (name + value + 32 each);
    /// fields past it are decoded (to keep the table right) but not kept.
    pub max_header_list_size: usize,
}

impl Default for HpackLimits {
    fn default() -> Self {
        HpackLimits {
            max_table_size: 65_536,
            max_header_list_size: 65_536,
        }
    }
}

/// One decoded header field, bytes as they were sent (the value of a secret header included:
/// redaction happens when it becomes an `Http2Exchange` field). `Debug` redacts secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct DecodedField {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

impl std::fmt::Debug for DecodedField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = super::printable_value(Some(&self.name), &self.value);
        f.debug_struct("DecodedField")
            .field("name", &String::from_utf8_lossy(&self.name))
            .field("value", &value)
            .finish()
    }
}

/// The result of decoding one header block. Never an error: what could not be decoded is said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodedBlock {
    /// Fields in order (only those that decoded fully and fit the list bound).
    pub fields: Vec<DecodedField>,
    /// Some field referred to a dynamic entry we never saw, or the block was malformed.
    pub incomplete: bool,
    /// Fields were dropped because the list exceeded `max_header_list_size`.
    pub list_truncated: bool,
    /// Number of fields skipped because they referred to unknown dynamic entries.
    pub unknown_references: usize,
    /// The malformation that stopped decoding, if any.
    pub error: Option<HpackError>,
}

/// One direction's HPACK decoding context.
#[derive(Debug, Clone)]
pub struct HpackDecoder {
    table: DynamicTable,
    limits: HpackLimits,
    synced: bool,
}

/// What one representation gave: nothing (a table size update), or a field whose name is
/// `None` when it came from a dynamic entry we never saw.
type FieldOutcome = Option<(Option<Vec<u8>>, Vec<u8>)>;

/// A name resolved from an index: known bytes, or an entry we never saw.
enum ResolvedName {
    Known(Vec<u8>),
    Unknown,
}

impl HpackDecoder {
    /// A decoder for a connection seen from its first byte: the table is known to be empty.
    pub fn new(limits: HpackLimits) -> Self {
        // Our memory bound wins over the protocol default: a peer using more than we allow
        // makes us lose entries, which shows as unknown references, never as wrong headers.
        let table = DynamicTable::new(DEFAULT_TABLE_SIZE.min(limits.max_table_size));
        HpackDecoder {
            table,
            limits,
            synced: true,
        }
    }

    /// A decoder for a connection joined mid-way: the peer's table is unknown.
    pub fn new_mid_connection(limits: HpackLimits) -> Self {
        HpackDecoder {
            synced: false,
            ..HpackDecoder::new(limits)
        }
    }

    /// True when every dynamic entry the peer may refer to is known.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// The dynamic table as we know it.
    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// Forget the table: bytes were lost, so entries may have been inserted that we never saw.
    pub fn desync(&mut self) {
        self.table.clear();
        self.synced = false;
    }

    /// Decode one complete header block (HEADERS or PUSH_PROMISE plus its CONTINUATIONs).
    pub fn decode(&mut self, block: &[u8]) -> DecodedBlock {
        let mut out = DecodedBlock::default();
        let mut list_size = 0usize;
        let mut pos = 0usize;
        // Huffman expands at most 8/5; anything beyond is malformed, not a reason to allocate.
        let string_limit = block.len().saturating_mul(2).saturating_add(16);
        while pos < block.len() {
            match self.decode_field(block, &mut pos, string_limit) {
                Ok(None) => {}
                Ok(Some((Some(name), value))) => {
                    let size = name.len() + value.len() + ENTRY_OVERHEAD;
                    if list_size.saturating_add(size) > self.limits.max_header_list_size {
                        out.list_truncated = true;
                    } else {
                        list_size += size;
                        out.fields.push(DecodedField { name, value });
                    }
                }
                Ok(Some((None, _value))) => {
                    out.incomplete = true;
                    out.unknown_references += 1;
                }
                Err(error) => {
                    out.incomplete = true;
                    out.error = Some(error);
                    self.desync();
                    break;
                }
            }
        }
        out
    }

    /// Decode one representation at `pos`. `Ok(None)` for a table size update,
    /// `Ok(Some((None, value)))` for a field whose name we cannot know.
    fn decode_field(
        &mut self,
        block: &[u8],
        pos: &mut usize,
        string_limit: usize,
    ) -> Result<FieldOutcome, HpackError> {
        let first = *block.get(*pos).ok_or(HpackError::IntegerTruncated)?;
        if first & 0x80 != 0 {
            // Indexed header field (section 6.1).
            let index = decode_integer(block, pos, 7)?;
            return self.lookup_indexed(index).map(Some);
        }
        if first & 0xe0 == 0x20 {
            // Dynamic table size update (section 6.3).
            let requested = decode_integer(block, pos, 5)?;
            if requested > self.limits.max_table_size {
                return Err(HpackError::TableSizeTooLarge {
                    requested,
                    allowed: self.limits.max_table_size,
                });
            }
            self.table.set_max_size(requested);
            if requested == 0 {
                // Everything evicted: from here on the table is fully known.
                self.table.clear();
                self.synced = true;
            }
            return Ok(None);
        }
        // Literal forms: with incremental indexing (01), without (0000) or never indexed (0001).
        let (prefix, incremental) = if first & 0xc0 == 0x40 {
            (6, true)
        } else {
            (4, false)
        };
        let name_index = decode_integer(block, pos, prefix)?;
        let name = if name_index == 0 {
            ResolvedName::Known(decode_string(block, pos, string_limit)?)
        } else {
            self.lookup_name(name_index)?
        };
        let value = decode_string(block, pos, string_limit)?;
        let name = match name {
            ResolvedName::Known(n) => Some(n),
            ResolvedName::Unknown => None,
        };
        if incremental {
            self.table.insert(DynamicEntry {
                name: name.clone(),
                value: value.clone(),
            });
        }
        Ok(Some((name, value)))
    }

    fn lookup_indexed(&self, index: usize) -> Result<(Option<Vec<u8>>, Vec<u8>), HpackError> {
        if index == 0 {
            return Err(HpackError::ZeroIndex);
        }
        if let Some((name, value)) = static_entry(index) {
            return Ok((Some(name.as_bytes().to_vec()), value.as_bytes().to_vec()));
        }
        let position = index - STATIC_TABLE.len() - 1;
        match self.table.get(position) {
            Some(entry) => Ok((entry.name.clone(), entry.value.clone())),
            None if !self.synced && self.could_exist(position) => Ok((None, Vec::new())),
            None => Err(HpackError::IndexOutOfRange { index }),
        }
    }

    /// Whether a table within our size limit could hold an entry at this position
    /// (every entry costs at least 32 bytes).
    fn could_exist(&self, position: usize) -> bool {
        position < self.limits.max_table_size / ENTRY_OVERHEAD
    }

    fn lookup_name(&self, index: usize) -> Result<ResolvedName, HpackError> {
        if let Some((name, _)) = static_entry(index) {
            return Ok(ResolvedName::Known(name.as_bytes().to_vec()));
        }
        let position = index.saturating_sub(STATIC_TABLE.len() + 1);
        match self.table.get(position) {
            Some(DynamicEntry {
                name: Some(name), ..
            }) => Ok(ResolvedName::Known(name.clone())),
            Some(DynamicEntry { name: None, .. }) => Ok(ResolvedName::Unknown),
            None if !self.synced && self.could_exist(position) => Ok(ResolvedName::Unknown),
            None => Err(HpackError::IndexOutOfRange { index }),
        }
    }
}

/// Decode an HPACK integer with an `prefix_bits`-bit prefix (RFC 7541 section 5.1).
pub(super) fn decode_integer(
    block: &[u8],
    pos: &mut usize,
    prefix_bits: u32,
) -> Result<usize, HpackError> {
    let mask: u8 = ((1u16 << prefix_bits) - 1) as u8;
    let first = *block.get(*pos).ok_or(HpackError::IntegerTruncated)?;
    *pos += 1;
    let mut value = u64::from(first & mask);
    if value < u64::from(mask) {
        return Ok(value as usize);
    }
    let mut shift = 0u32;
    loop {
        let byte = *block.get(*pos).ok_or(HpackError::IntegerTruncated)?;
        *pos += 1;
        value += u64::from(byte & 0x7f) << shift;
        if value > u64::from(u32::MAX) {
            return Err(HpackError::IntegerOverflow);
        }
        if byte & 0x80 == 0 {
            return Ok(value as usize);
        }
        shift += 7;
        if shift > 28 {
            return Err(HpackError::IntegerOverflow);
        }
    }
}

/// Decode a string literal (RFC 7541 section 5.2), Huffman-coded or raw.
fn decode_string(block: &[u8], pos: &mut usize, limit: usize) -> Result<Vec<u8>, HpackError> {
    let huffman = block.get(*pos).ok_or(HpackError::StringTruncated)? & 0x80 != 0;
    let len = decode_integer(block, pos, 7)?;
    let end = pos.checked_add(len).ok_or(HpackError::StringTruncated)?;
    let raw = block.get(*pos..end).ok_or(HpackError::StringTruncated)?;
    *pos = end;
    if huffman {
        let mut out = Vec::with_capacity(raw.len() + raw.len() / 2);
        huffman_decode(raw, &mut out, limit)?;
        Ok(out)
    } else {
        Ok(raw.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_of_appendix_c1() {
        let mut pos = 0;
        assert_eq!(decode_integer(&[0x0a], &mut pos, 5), Ok(10));
        let mut pos = 0;
        assert_eq!(decode_integer(&[0x1f, 0x9a, 0x0a], &mut pos, 5), Ok(1337));
        assert_eq!(pos, 3);
        let mut pos = 0;
        assert_eq!(decode_integer(&[0x2a], &mut pos, 8), Ok(42));
        let mut pos = 0;
        assert_eq!(decode_integer(&[0xea], &mut pos, 5), Ok(10));
        let mut pos = 0;
        assert_eq!(
            decode_integer(&[0x1f], &mut pos, 5),
            Err(HpackError::IntegerTruncated)
        );
        let mut pos = 0;
        assert_eq!(
            decode_integer(&[0x7f, 0xff, 0xff, 0xff, 0xff, 0x0f], &mut pos, 7),
            Err(HpackError::IntegerOverflow)
        );
    }

    #[test]
    fn unsynced_decoder_skips_unknown_entries_and_keeps_the_rest() {
        let mut dec = HpackDecoder::new_mid_connection(HpackLimits::default());
        // 0x82 (:method GET), 0xbe (dynamic 62: never seen), 0x04 literal w/o indexing :path.
        let block = [0x82, 0xbe, 0x04, 0x02, b'/', b'x'];
        let out = dec.decode(&block);
        assert!(out.incomplete);
        assert_eq!(out.unknown_references, 1);
        assert_eq!(out.error, None);
        let names: Vec<_> = out.fields.iter().map(|f| f.name.clone()).collect();
        assert_eq!(names, vec![b":method".to_vec(), b":path".to_vec()]);
    }

    #[test]
    fn unsynced_decoder_resolves_entries_it_saw_inserted() {
        let mut dec = HpackDecoder::new_mid_connection(HpackLimits::default());
        // Literal with incremental indexing, static name :authority, value "a".
        let out = dec.decode(&[0x41, 0x01, b'a']);
        assert!(!out.incomplete);
        // 0xbe is now our entry; 0xbf is older than our attach point.
        let out = dec.decode(&[0xbe, 0xbf]);
        assert_eq!(
            out.fields,
            vec![DecodedField {
                name: b":authority".to_vec(),
                value: b"a".to_vec()
            }]
        );
        assert!(out.incomplete);
        assert!(!dec.is_synced());
        // A size update to zero proves the table empty: in sync again.
        let out = dec.decode(&[0x20, 0x3f, 0xe1, 0x1f]);
        assert!(!out.incomplete);
        assert!(dec.is_synced());
        assert_eq!(dec.table().max_size(), 4096);
    }

    #[test]
    fn literal_with_unknown_name_is_inserted_as_placeholder() {
        let mut dec = HpackDecoder::new_mid_connection(HpackLimits::default());
        // Literal incremental, name index 70 (unknown), value "v".
        let out = dec.decode(&[0x7f, 70 - 63, 0x01, b'v']);
        assert!(out.incomplete);
        assert!(out.fields.is_empty());
        assert_eq!(dec.table().len(), 1);
        // Referring to the placeholder is still incomplete, never invented.
        let out = dec.decode(&[0xbe]);
        assert!(out.incomplete && out.fields.is_empty());
    }

    #[test]
    fn synced_decoder_treats_bad_index_as_error_and_desyncs() {
        let mut dec = HpackDecoder::new(HpackLimits::default());
        let out = dec.decode(&[0x82, 0xbe, 0x86]);
        assert_eq!(out.error, Some(HpackError::IndexOutOfRange { index: 62 }));
        assert!(out.incomplete);
        assert_eq!(out.fields.len(), 1);
        assert!(!dec.is_synced());
        let out = dec.decode(&[0x80]);
        assert_eq!(out.error, Some(HpackError::ZeroIndex));
    }

    #[test]
    fn header_list_bound_drops_fields_but_keeps_table() {
        let limits = HpackLimits {
            max_table_size: 4096,
            max_header_list_size: 45,
        };
        let mut dec = HpackDecoder::new(limits);
        // :method GET (7+3+32 = 42) kept; :authority "a" (43 more) dropped but still inserted.
        let out = dec.decode(&[0x82, 0x41, 0x01, b'a']);
        assert!(out.list_truncated);
        assert_eq!(out.fields.len(), 1);
        assert_eq!(dec.table().len(), 1);
    }

    #[test]
    fn size_update_above_limit_is_an_error() {
        let limits = HpackLimits {
            max_table_size: 100,
            max_header_list_size: 4096,
        };
        let mut dec = HpackDecoder::new(limits);
        let out = dec.decode(&[0x3f, 0xe2, 0x1f]);
        assert_eq!(
            out.error,
            Some(HpackError::TableSizeTooLarge {
                requested: 4097,
                allowed: 100
            })
        );
    }
}
