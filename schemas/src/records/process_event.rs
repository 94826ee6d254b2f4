//! `ProcessEvent`: fork, exec, exit, or a process found running at start.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProcessEventKind {
    Fork,
    Exec,
    Exit,
    /// Found running when the probe started (seeded from /proc).
    Seed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessEvent {
    pub node: String,
    pub ts_ns: i64,
    pub kind: ProcessEventKind,
    pub tgid: i32,
    /// (tgid, process_start_ns) is the identity, never a bare pid.
    pub process_start_ns: i64,
    pub ppid: i32,
    pub parent_start_ns: i64,
    pub uid: i64,
    pub comm: String,
    pub exe: String,
    pub argv: Vec<String>,
    pub argv_truncated: bool,
    pub cgroup_id: i64,
    pub cgroup_path: String,
    pub container_id: Option<String>,
    pub pod_uid: Option<String>,
    pub exit_code: Option<i32>,
}

impl ProcessEvent {
    /// The bus key of process events: the node, like semantic events. The chain builder joins
    /// both topics, so they are co-partitioned: one member owns a node's process tree and its
    /// semantic events (node/tgid keys sent a process and its events to different members).
    pub fn bus_key(&self) -> String {
        self.node.clone()
    }
}
