//! chainwatch's configuration: one struct per stage, loaded with the `config` crate from
//! defaults < a TOML file (chainwatch.toml) < environment variables CHAINWATCH__SECTION__KEY.
//!
//! A bad configuration fails at start with a message naming the key (`bus.memory.partitions`),
//! never later. `chainwatch.example.toml` at the repository root documents every key.

mod load;
mod sections;

pub use load::{ConfigError, ENV_PREFIX, load, load_from_str};
pub use sections::*;
