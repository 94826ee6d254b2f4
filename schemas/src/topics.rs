//! Topic names and the record each one carries: the contract between stages.

/// Raw segments and connection events (connect/accept/close) from the probe, both keyed by
/// connection id: one partition per connection, so one parser worker and one FSM see a
/// connection's open, bytes and close in order. The codec's fingerprint tells them apart.
pub const RAW_SEGMENTS: &str = "cw.raw.segments";
/// Process events (fork/exec/exit) from the probe, keyed by node (co-partitioned with the
/// semantic events for the chain builder).
pub const PROC_EVENTS: &str = "cw.proc.events";
/// Semantic events from the parser workers, keyed by node (or agent key).
pub const SEMANTIC_EVENTS: &str = "cw.semantic.events";
/// Chains from the chain builder, keyed by chain id (compacted: the last version wins).
pub const CHAINS: &str = "cw.chains";
/// Violations as OCSF Detection Finding JSON, keyed by chain id: what SIEMs subscribe to.
pub const VIOLATIONS: &str = "cw.violations";
/// Internal to the chain builder: served-exchange fragments and their claims between the
/// members of its group (every member reads all of it), keyed by the sending member.
pub const CHAIN_STITCH: &str = "cw.chains.stitch";
/// Anything a stage could not decode, with the reason in the `cw.reason` header.
pub const DEADLETTER: &str = "cw.deadletter";

/// Every topic chainwatch uses, for topic creation and manifest checks.
pub const ALL: [&str; 7] = [
    RAW_SEGMENTS,
    PROC_EVENTS,
    SEMANTIC_EVENTS,
    CHAINS,
    VIOLATIONS,
    DEADLETTER,
    CHAIN_STITCH,
];

/// Consumer group of the parser workers.
pub const GROUP_PARSERS: &str = "cw-parsers";
/// Consumer group of the chain builder.
pub const GROUP_CHAINS: &str = "cw-chains";
/// Consumer group of the policy engine.
pub const GROUP_POLICY: &str = "cw-policy";
