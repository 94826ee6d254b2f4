//! Parser workers (layer 2): wire protocols turned into exchanges, exchanges into semantic events.
//!
//! `protocols` holds one folder per wire protocol, each with the same three parts: frame types,
//! a push parser from borrowed bytes to frames, and a stitcher from frames to exchanges.

pub mod body;
pub mod connection;
pub mod detect;
pub mod events;
pub mod protocols;
pub mod semantics;
pub mod worker;
#[cfg(test)]
pub(crate) mod test_corpus;
