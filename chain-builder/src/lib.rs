//! Layer 3: chain building. Filled by the chain-builder issue.
