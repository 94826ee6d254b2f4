//! The HPACK dynamic table (RFC 7541 section 2.3.2 and 4): newest entry first, each entry
//! costing name + value + 32 bytes, oldest entries evicted to stay within the maximum size.
//!
//! When the decoder attached mid-connection an entry may have a value we saw but a name we
//! never knew (it was copied from an entry older than our attach point): such a name is `None`.

use std::collections::VecDeque;

/// Per-entry overhead added to name and value lengths (RFC 7541 section 4.1).
pub const ENTRY_OVERHEAD: usize = 32;

/// One dynamic table entry. `name` is `None` when it came from an entry we never saw.
/// Its `Debug` output never shows the value of a secret header (see `exchange::REDACTED_HEADERS`).
#[derive(Clone, PartialEq, Eq)]
pub struct DynamicEntry {
    pub name: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

impl std::fmt::Debug for DynamicEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.name.as_deref().map(String::from_utf8_lossy);
        let value = super::printable_value(self.name.as_deref(), &self.value);
        f.debug_struct("DynamicEntry")
            .field("name", &name)
            .field("value", &value)
            .finish()
    }
}

impl DynamicEntry {
    /// Size the RFC charges for this entry; an unknown name counts as empty (a lower bound).
    pub fn size(&self) -> usize {
        self.name.as_ref().map_or(0, Vec::len) + self.value.len() + ENTRY_OVERHEAD
    }
}

/// The table itself, bounded by `max_size` bytes as the RFC counts them.
#[derive(Debug, Clone, Default)]
pub struct DynamicTable {
    entries: VecDeque<DynamicEntry>,
    size: usize,
    max_size: usize,
}

impl DynamicTable {
    /// An empty table allowed to grow to `max_size` bytes.
    pub fn new(max_size: usize) -> Self {
        DynamicTable {
            entries: VecDeque::new(),
            size: 0,
            max_size,
        }
    }

    /// Current size in RFC bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Current maximum size.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entry at a 0-based position (0 = newest = HPACK index 62).
    pub fn get(&self, position: usize) -> Option<&DynamicEntry> {
        self.entries.get(position)
    }

    /// Entries newest first.
    pub fn iter(&self) -> impl Iterator<Item = &DynamicEntry> {
        self.entries.iter()
    }

    /// Insert at the front, evicting from the back first; an entry larger than the whole
    /// table empties it and is not stored (RFC 7541 section 4.4).
    pub fn insert(&mut self, entry: DynamicEntry) {
        let entry_size = entry.size();
        while self.size + entry_size > self.max_size && self.evict_oldest() {}
        if entry_size <= self.max_size {
            self.size += entry_size;
            self.entries.push_front(entry);
        }
    }

    /// Change the maximum size, evicting as needed (a dynamic table size update).
    pub fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        while self.size > self.max_size && self.evict_oldest() {}
    }

    /// Drop every entry (the maximum size stays).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.size = 0;
    }

    fn evict_oldest(&mut self) -> bool {
        match self.entries.pop_back() {
            Some(old) => {
                self.size = self.size.saturating_sub(old.size());
                true
            }
            None => false,
        }
    }
}
