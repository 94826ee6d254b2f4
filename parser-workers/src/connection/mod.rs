//! Connections: one `ConnectionFsm` per connection (direction mapping, content-based protocol
//! detection, gaps, flush) driving the protocol drivers, and the bounded `ConnectionTable`
//! holding them. Output: `ParsedExchange`s (bodies included) for the event layer.

pub mod detect;
pub mod exchange;
pub mod fsm;
pub mod table;
#[cfg(test)]
mod tests;

pub use detect::{DetectedProtocol, side_evidence};
pub use exchange::{ConnectionMeta, ParsedExchange, ProtocolExchange, TlsHandshake};
pub use fsm::{ConnectionFsm, FsmConfig, FsmStats};
pub use table::{ConnectionTable, TableStats};
