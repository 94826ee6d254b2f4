//! The chain worker's checkpoint files: one per consumer group and set of assigned partitions
//! (`cw-chains.p0-1-2.ckpt`), in the checkpoint directory, replaced atomically (written to a
//! temporary file, fsynced, renamed over the old one, the directory fsynced).
//!
//! A file holds `CWCK`, the file format version (u32, little endian), the length (u32) of the
//! CBOR-encoded `CheckpointMeta` (group, assignment, and per partition the next offset the
//! state covers), the meta, and then the builder's checkpoint bytes (which carry their own
//! version, see `builder::checkpoint`).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The file layout this build writes and reads.
pub const FILE_VERSION: u32 = 1;
const FILE_MAGIC: &[u8; 4] = b"CWCK";
/// A meta block larger than this is not a meta block.
const MAX_META_BYTES: usize = 16 << 20;
/// File names longer than this (many partitions) use a hash of the partition list.
const MAX_NAME: usize = 160;

/// What the state of a checkpoint covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub group: String,
    /// The (topic, partition) pairs of the member that wrote it, sorted.
    pub assignment: Vec<(String, i32)>,
    /// Per (topic, partition): the next offset, i.e. every record before it is in the state.
    pub offsets: Vec<(String, i32, i64)>,
    pub written_unix_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointFileError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a chain worker checkpoint")]
    NotACheckpoint { path: PathBuf },
    #[error("{path}: checkpoint file version {found}, this build reads version {expected}")]
    Version { path: PathBuf, found: u32, expected: u32 },
    #[error("{path}: bad checkpoint meta: {reason}")]
    Meta { path: PathBuf, reason: String },
}

/// The checkpoint directory of one worker.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

impl CheckpointStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CheckpointStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `group` with `assignment`: `<group>.p<partitions>.ckpt`, partitions sorted
    /// and deduplicated across topics (they are co-partitioned).
    pub fn path_for(&self, group: &str, assignment: &[(String, i32)]) -> PathBuf {
        let safe: String =
            group.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let mut partitions: Vec<i32> = assignment.iter().map(|(_, p)| *p).collect();
        partitions.sort_unstable();
        partitions.dedup();
        let list = partitions.iter().map(i32::to_string).collect::<Vec<_>>().join("-");
        let mut name = format!("{safe}.p{list}.ckpt");
        if name.len() > MAX_NAME {
            let digest = Sha256::digest(list.as_bytes());
            let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
            name = format!("{safe}.h{hex}.ckpt");
        }
        self.dir.join(name)
    }

    /// Write (replace) the checkpoint of `meta`'s group and assignment. Returns the file's size.
    pub fn write(&self, meta: &CheckpointMeta, state: &[u8]) -> Result<u64, CheckpointFileError> {
        let path = self.path_for(&meta.group, &meta.assignment);
        let io = |source| CheckpointFileError::Io { path: path.clone(), source };
        let mut encoded_meta = Vec::new();
        ciborium::into_writer(meta, &mut encoded_meta)
            .map_err(|e| CheckpointFileError::Meta { path: path.clone(), reason: e.to_string() })?;
        let meta_len = u32::try_from(encoded_meta.len())
            .ok()
            .filter(|n| (*n as usize) <= MAX_META_BYTES)
            .ok_or_else(|| CheckpointFileError::Meta { path: path.clone(), reason: "meta too large".into() })?;
        fs::create_dir_all(&self.dir).map_err(io)?;
        let tmp = path.with_extension("ckpt.tmp");
        {
            let mut f = File::create(&tmp).map_err(io)?;
            f.write_all(FILE_MAGIC).map_err(io)?;
            f.write_all(&FILE_VERSION.to_le_bytes()).map_err(io)?;
            f.write_all(&meta_len.to_le_bytes()).map_err(io)?;
            f.write_all(&encoded_meta).map_err(io)?;
            f.write_all(state).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        fs::rename(&tmp, &path).map_err(io)?;
        // The rename is durable once the directory is.
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok((12 + encoded_meta.len() + state.len()) as u64)
    }

    /// The checkpoint of `group` with `assignment`, if one was written: its meta and the
    /// builder's bytes. A file of another group or assignment (renamed by hand) is refused.
    pub fn read(
        &self,
        group: &str,
        assignment: &[(String, i32)],
    ) -> Result<Option<(CheckpointMeta, Vec<u8>)>, CheckpointFileError> {
        let path = self.path_for(group, assignment);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CheckpointFileError::Io { path, source }),
        };
        let (meta, state) = split(&path, &bytes)?;
        if meta.group != group || meta.assignment != assignment {
            return Err(CheckpointFileError::Meta {
                path,
                reason: format!("written by group {} for {:?}, wanted {group} for {assignment:?}", meta.group, meta.assignment),
            });
        }
        Ok(Some((meta, state.to_vec())))
    }
}

fn split<'a>(path: &Path, bytes: &'a [u8]) -> Result<(CheckpointMeta, &'a [u8]), CheckpointFileError> {
    let not = || CheckpointFileError::NotACheckpoint { path: path.to_path_buf() };
    let (magic, rest) = bytes.split_first_chunk::<4>().ok_or_else(not)?;
    if magic != FILE_MAGIC {
        return Err(not());
    }
    let (version, rest) = rest.split_first_chunk::<4>().ok_or_else(not)?;
    let found = u32::from_le_bytes(*version);
    if found != FILE_VERSION {
        return Err(CheckpointFileError::Version { path: path.to_path_buf(), found, expected: FILE_VERSION });
    }
    let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(not)?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > MAX_META_BYTES {
        return Err(not());
    }
    let (meta, state) = rest.split_at_checked(len).ok_or_else(not)?;
    let meta: CheckpointMeta =
        ciborium::from_reader(meta).map_err(|e| CheckpointFileError::Meta { path: path.to_path_buf(), reason: e.to_string() })?;
    Ok((meta, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cw-ckpt-file-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn assignment(parts: &[i32]) -> Vec<(String, i32)> {
        let mut a: Vec<(String, i32)> =
            parts.iter().flat_map(|p| [("cw.proc.events".to_string(), *p), ("cw.semantic.events".to_string(), *p)]).collect();
        a.sort();
        a
    }

    #[test]
    fn named_after_group_and_partitions_and_read_back_only_for_them() {
        let dir = temp_dir("roundtrip");
        let store = CheckpointStore::new(&dir);
        let a = assignment(&[2, 0, 1]);
        assert_eq!(store.path_for("cw-chains", &a), dir.join("cw-chains.p0-1-2.ckpt"));
        let meta = CheckpointMeta {
            group: "cw-chains".into(),
            assignment: a.clone(),
            offsets: vec![("cw.proc.events".into(), 0, 17)],
            written_unix_ms: 5,
        };
        let size = store.write(&meta, b"state").unwrap();
        assert_eq!(size, fs::metadata(store.path_for("cw-chains", &a)).unwrap().len());
        let (back, state) = store.read("cw-chains", &a).unwrap().unwrap();
        assert_eq!((back, state.as_slice()), (meta, &b"state"[..]));
        assert!(store.read("cw-chains", &assignment(&[0, 1])).unwrap().is_none(), "another assignment");
        // a file copied under another assignment's name is refused
        fs::copy(store.path_for("cw-chains", &a), store.path_for("cw-chains", &assignment(&[3]))).unwrap();
        assert!(matches!(store.read("cw-chains", &assignment(&[3])), Err(CheckpointFileError::Meta { .. })));
        // another file version, or garbage, is refused
        let path = store.path_for("cw-chains", &a);
        let mut bytes = fs::read(&path).unwrap();
        bytes[4] = 9;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(store.read("cw-chains", &a), Err(CheckpointFileError::Version { found: 9, .. })));
        fs::write(&path, b"CW").unwrap();
        assert!(matches!(store.read("cw-chains", &a), Err(CheckpointFileError::NotACheckpoint { .. })));
        let many: Vec<i32> = (0..100).collect();
        let long = store.path_for("cw-chains", &assignment(&many));
        assert!(long.file_name().unwrap().len() <= MAX_NAME, "{long:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
