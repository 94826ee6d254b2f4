//! Looking inside uploaded payloads, with bounds: gzip, zip and tar (and one level of nesting,
//! e.g. tar.gz or a zip inside a tar). Caps on decompressed bytes, on entries and on nesting
//! depth; hitting one is counted, and what was read up to the cap is still handed over.

use std::io::{Cursor, Read};

use super::findings::DetectStats;

/// Bounds for one upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Decompressed bytes read over all entries.
    pub max_bytes: usize,
    /// Entries (files) read over all levels.
    pub max_entries: usize,
    /// Archive levels opened: 1 = the upload itself, 2 = one archive inside it (tar.gz).
    pub max_depth: usize,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits { max_bytes: 8 * 1024 * 1024, max_entries: 256, max_depth: 2 }
    }
}

/// A container format recognised by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    Gzip,
    Zip,
    Tar,
}

impl ArchiveFormat {
    pub fn name(self) -> &'static str {
        match self {
            ArchiveFormat::Gzip => "gzip",
            ArchiveFormat::Zip => "zip",
            ArchiveFormat::Tar => "tar",
        }
    }
}

/// The container format of `bytes` from its magic bytes (names and content types lie).
pub fn sniff(bytes: &[u8]) -> Option<ArchiveFormat> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        Some(ArchiveFormat::Gzip)
    } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        Some(ArchiveFormat::Zip)
    } else if bytes.len() >= 512 && &bytes[257..262] == b"ustar" {
        Some(ArchiveFormat::Tar)
    } else {
        None
    }
}

/// The format name of an upload including one nesting level ("tar.gz"), for the Upload record.
pub fn format_name(bytes: &[u8]) -> Option<&'static str> {
    match sniff(bytes)? {
        ArchiveFormat::Gzip => {
            let mut head = Vec::with_capacity(512);
            let _ = flate2::read::MultiGzDecoder::new(bytes).take(512).read_to_end(&mut head);
            Some(if sniff(&head) == Some(ArchiveFormat::Tar) { "tar.gz" } else { "gzip" })
        }
        f => Some(f.name()),
    }
}

struct Walk<'a, F: FnMut(&str, &[u8])> {
    limits: ArchiveLimits,
    bytes_left: usize,
    entries_left: usize,
    stats: &'a mut DetectStats,
    visit: F,
}

/// Calls `visit(location, content)` for each file inside the archive `bytes` (or once for
/// `bytes` itself when it is no archive). Locations are `location/entry/path`.
pub fn for_each_entry(bytes: &[u8], location: &str, limits: ArchiveLimits, stats: &mut DetectStats, visit: impl FnMut(&str, &[u8])) {
    let mut w = Walk { limits, bytes_left: limits.max_bytes, entries_left: limits.max_entries, stats, visit };
    w.open(bytes, location, 1);
}

impl<F: FnMut(&str, &[u8])> Walk<'_, F> {
    fn open(&mut self, bytes: &[u8], location: &str, depth: usize) {
        let Some(format) = sniff(bytes) else {
            (self.visit)(location, bytes);
            return;
        };
        if depth > self.limits.max_depth {
            self.stats.archive_depth_cap_hits += 1;
            (self.visit)(location, bytes);
            return;
        }
        match format {
            ArchiveFormat::Gzip => self.gzip(bytes, location, depth),
            ArchiveFormat::Zip => self.zip(bytes, location, depth),
            ArchiveFormat::Tar => self.tar(bytes, location, depth),
        }
    }

    /// Reads at most the remaining byte budget from `r`; counts a cap hit when more was there.
    fn read_bounded(&mut self, r: impl Read) -> Result<Vec<u8>, std::io::Error> {
        let mut out = Vec::new();
        let cap = self.bytes_left;
        r.take(cap as u64 + 1).read_to_end(&mut out)?;
        if out.len() > cap {
            out.truncate(cap);
            self.stats.archive_bytes_cap_hits += 1;
        }
        self.bytes_left -= out.len();
        Ok(out)
    }

    fn take_entry(&mut self) -> bool {
        if self.entries_left == 0 {
            self.stats.archive_entries_cap_hits += 1;
            return false;
        }
        self.entries_left -= 1;
        self.stats.archive_entries_scanned += 1;
        true
    }

    fn entry(&mut self, data: &[u8], location: &str, depth: usize) {
        if sniff(data).is_some() {
            self.open(data, location, depth + 1);
        } else {
            (self.visit)(location, data);
        }
    }

    fn gzip(&mut self, bytes: &[u8], location: &str, depth: usize) {
        match self.read_bounded(flate2::read::MultiGzDecoder::new(bytes)) {
            Ok(data) => {
                // The gzip layer adds no path component (data.csv.gz, archive.tar.gz).
                if sniff(&data).is_some() {
                    self.open(&data, location, depth + 1);
                } else if self.take_entry() {
                    (self.visit)(location, &data);
                }
            }
            Err(_) => {
                self.stats.archive_errors += 1;
                (self.visit)(location, bytes);
            }
        }
    }

    fn zip(&mut self, bytes: &[u8], location: &str, depth: usize) {
        let mut archive = match zip::ZipArchive::new(Cursor::new(bytes)) {
            Ok(a) => a,
            Err(_) => {
                self.stats.archive_errors += 1;
                (self.visit)(location, bytes);
                return;
            }
        };
        for i in 0..archive.len() {
            if self.bytes_left == 0 {
                self.stats.archive_bytes_cap_hits += 1;
                break;
            }
            let mut file = match archive.by_index(i) {
                Ok(f) => f,
                Err(_) => {
                    self.stats.archive_errors += 1;
                    continue;
                }
            };
            if file.is_dir() {
                continue;
            }
            if !self.take_entry() {
                break;
            }
            let name = format!("{location}/{}", sanitize(&file.name().map(|n| n.into_owned()).unwrap_or_else(|_| format!("entry-{i}"))));
            match self.read_bounded(&mut file) {
                Ok(data) => self.entry(&data, &name, depth),
                Err(_) => self.stats.archive_errors += 1,
            }
        }
    }

    fn tar(&mut self, bytes: &[u8], location: &str, depth: usize) {
        let mut archive = tar::Archive::new(Cursor::new(bytes));
        let entries = match archive.entries() {
            Ok(e) => e,
            Err(_) => {
                self.stats.archive_errors += 1;
                return;
            }
        };
        for entry in entries {
            if self.bytes_left == 0 {
                self.stats.archive_bytes_cap_hits += 1;
                break;
            }
            let mut entry = match entry {
                Ok(e) => e,
                Err(_) => {
                    self.stats.archive_errors += 1;
                    break;
                }
            };
            if !entry.header().entry_type().is_file() {
                continue;
            }
            if !self.take_entry() {
                break;
            }
            let path = entry.path_bytes().into_owned();
            let name = format!("{location}/{}", sanitize(&String::from_utf8_lossy(&path)));
            match self.read_bounded(&mut entry) {
                Ok(data) => self.entry(&data, &name, depth),
                Err(_) => {
                    self.stats.archive_errors += 1;
                    break;
                }
            }
        }
    }
}

/// An entry path as a location component: at most 200 chars, no control characters.
fn sanitize(name: &str) -> String {
    name.trim_start_matches("./").chars().filter(|c| !c.is_control()).take(200).collect()
}
