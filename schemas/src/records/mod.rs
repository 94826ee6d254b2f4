//! Rust mirrors of the Avro records in `schemas/avro/`, one file per record.

mod chain;
mod common;
mod connection_event;
mod process_event;
mod raw_segment;
mod semantic_event;
mod stitch_record;
mod violation;

pub use chain::*;
pub use common::*;
pub use connection_event::*;
pub use process_event::*;
pub use raw_segment::*;
pub use semantic_event::*;
pub use stitch_record::*;
pub use violation::*;
