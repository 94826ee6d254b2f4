//! Layer 3: chain building. Semantic events (cw.semantic.events) and process events
//! (cw.proc.events) in, agent chains (cw.chains) out: one file per job.
//!
//! - `process_tree`: who is whose child; which process is the agent.
//! - `agent`: the stable agent key and `AgentRef`.
//! - `step`: a chain step built from a semantic event.
//! - `chain_state`: one chain's steps and indexes; `view` derives the printed chain from them.
//! - `chain_view`: a chain version borrowed from the state (`to_chain`: the owned `Chain`).
//! - `chain_avro`: the Avro encoding of a `ChainView`, written for the worker's hot path.
//! - `builder`: `ChainBuilder`, the routing of events to chains, caps and lifecycle.
//! - `attribution`: tool call X -> the actions that executed it and its result.
//! - `stitching`: client tuple <-> server tuple, across nodes.
//! - `remote_stitch`: fragments and claims, when client and service belong to different members.
//! - `pii_flow`: fingerprint seen at step i -> sent at step j.
//! - `cost`: price table per model; ledger per agent and team.
//! - `risk`: risk score and reasons.
//! - `watermark`: event-time watermark (closing, late events).
//! - `worker`: the consumer-group member on the bus.
//! - `builder::checkpoint`, `checkpoint_file`: the builder's state as bytes, and the worker's
//!   checkpoint files (so a restart goes on without duplicate chains).

pub mod agent;
pub mod attribution;
pub mod builder;
pub mod chain_avro;
pub mod chain_state;
pub mod chain_view;
pub mod checkpoint_file;
pub mod cost;
pub mod hashing;
pub mod pii_flow;
pub mod process_tree;
pub mod remote_stitch;
pub mod risk;
pub mod step;
pub mod stitching;
pub mod watermark;
pub mod worker;

pub use builder::{BuilderStats, ChainBuilder, CheckpointError};
pub use worker::{ChainWorker, ChainWorkerConfig, ChainWorkerError, ChainWorkerStats};
