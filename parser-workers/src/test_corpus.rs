//! Test-only access to ../shared/corpora (externally written test material beside the repo).
//! A missing corpus fails the test with the path it looked at: tests never skip silently.

use std::path::PathBuf;

/// `$CHAINWATCH_CORPORA`, or `shared/corpora` beside the repository.
pub fn dir() -> PathBuf {
    match std::env::var_os("CHAINWATCH_CORPORA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpora"),
    }
}

/// The bytes of `rel` under the corpora directory; panics naming the path when missing.
pub fn read(rel: &str) -> Vec<u8> {
    let path = dir().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("corpus file {}: {e} (set CHAINWATCH_CORPORA)", path.display()))
}
