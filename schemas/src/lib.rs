//! The records on chainwatch's bus: Avro schemas (`schemas/avro/*.avsc`, the contract), the Rust
//! types that mirror them, and the codec that writes and reads them (Avro single-object
//! encoding: a 10-byte header naming the writer schema's fingerprint, then the datum).
//!
//! Schemas evolve compatibly: every field added later has a default, so a reader one version
//! older or newer than the writer still decodes (see `tests/evolution.rs`).

pub mod codec;
pub mod jsonl;
pub mod records;
pub mod samples;
pub mod topics;

pub use codec::{AvroRecord, CodecError, Fingerprint, SchemaRegistry};
pub use jsonl::{JsonLineError, JsonRecord};
pub use records::*;
