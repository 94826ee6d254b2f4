//! The process tree per node, from the probe's fork/exec/exit/seed events: who is whose parent,
//! and which process is "the agent" a given process works for.
//!
//! Identity is (node, tgid, process start) — pids are reused, start times make them unique.
//! The agent root of a process is the nearest ancestor-or-self that made an LLM call; failing
//! that, the nearest that served a request (a service); failing that, the process itself. So a
//! `gzip` and a `curl` forked by a Python agent belong to the Python agent.
//!
//! Bounded: at most `max_processes` entries. Exited processes are forgotten a grace period
//! after their exit (event time), processes silent for long (no exit seen) later; when the
//! table is full, exited processes go first and then new processes are not recorded (counted;
//! their events fall back to "their own agent").

use crate::hashing::FastMap;

use chainwatch_schemas::{ProcessEvent, ProcessEventKind};
use serde::{Deserialize, Serialize};

/// Interned node name (ids are small and dense; the names live in `NodeNames`).
pub type NodeId = u32;

/// A process, unambiguously: node, tgid and its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProcKey {
    pub node: NodeId,
    pub tgid: i32,
    pub start_ns: i64,
}

/// Node names to dense ids and back (looked up twice per event: FxHash, not SipHash).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct NodeNames {
    ids: FastMap<String, NodeId>,
    names: Vec<String>,
}

impl NodeNames {
    pub fn intern(&mut self, name: &str) -> NodeId {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = NodeId::try_from(self.names.len()).unwrap_or(NodeId::MAX);
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    pub fn name(&self, id: NodeId) -> &str {
        self.names.get(id as usize).map_or("", String::as_str)
    }
}

/// What the tree knows about one process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProcInfo {
    pub parent: Option<ProcKey>,
    pub exe: String,
    pub comm: String,
    pub container_id: Option<String>,
    pub pod_uid: Option<String>,
    /// Event time of the exit, when seen.
    pub exited_ns: Option<i64>,
    /// Made at least one LLM call: an agent.
    pub llm_caller: bool,
    /// Accepted at least one request: a service (or an agent serving users).
    pub server: bool,
    /// Event time of the last process event or semantic event of this process.
    pub last_seen_ns: i64,
}

/// Counters of the tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessTreeStats {
    pub processes: usize,
    pub evicted_exited: u64,
    /// Processes with no exit seen, forgotten after a long silence (no process events).
    pub evicted_silent: u64,
    /// Processes not recorded because the table was full of live processes.
    pub dropped_full: u64,
}

/// The process tree of every node this builder sees.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProcessTree {
    procs: FastMap<ProcKey, ProcInfo>,
    max_processes: usize,
    max_depth: usize,
    stats: ProcessTreeStats,
}

impl ProcessTree {
    pub fn new(max_processes: usize, max_depth: usize) -> Self {
        ProcessTree { procs: FastMap::default(), max_processes: max_processes.max(1), max_depth: max_depth.max(1), stats: ProcessTreeStats::default() }
    }

    pub fn stats(&self) -> ProcessTreeStats {
        ProcessTreeStats { processes: self.procs.len(), ..self.stats }
    }

    pub fn get(&self, key: &ProcKey) -> Option<&ProcInfo> {
        self.procs.get(key)
    }

    /// Apply one process event (its node already interned as `node`).
    pub fn apply(&mut self, node: NodeId, ev: &ProcessEvent) {
        let key = ProcKey { node, tgid: ev.tgid, start_ns: ev.process_start_ns };
        let parent = (ev.ppid > 0).then_some(ProcKey { node, tgid: ev.ppid, start_ns: ev.parent_start_ns });
        match ev.kind {
            ProcessEventKind::Fork | ProcessEventKind::Seed | ProcessEventKind::Exec => {
                let Some(info) = self.entry(key) else { return };
                info.last_seen_ns = info.last_seen_ns.max(ev.ts_ns);
                if info.parent.is_none() {
                    info.parent = parent;
                }
                if ev.kind == ProcessEventKind::Fork && info.exe.is_empty() {
                    // A fork runs the parent's image until it execs.
                    info.comm.clone_from(&ev.comm);
                    info.exe.clone_from(&ev.exe);
                } else if ev.kind != ProcessEventKind::Fork {
                    info.comm.clone_from(&ev.comm);
                    info.exe.clone_from(&ev.exe);
                }
                if ev.container_id.is_some() {
                    info.container_id.clone_from(&ev.container_id);
                }
                if ev.pod_uid.is_some() {
                    info.pod_uid.clone_from(&ev.pod_uid);
                }
            }
            ProcessEventKind::Exit => {
                if let Some(info) = self.procs.get_mut(&key) {
                    info.exited_ns = Some(ev.ts_ns);
                }
            }
        }
    }

    /// Whether a fork, exec or seed record described `key` (its parent or image is known); a
    /// process only seen through its semantic events is not described.
    pub fn is_described(&self, key: &ProcKey) -> bool {
        self.procs.get(key).is_some_and(|i| i.parent.is_some() || !i.exe.is_empty())
    }

    /// Note that `key` made an LLM call (it becomes an agent root) or served a request.
    pub fn mark(&mut self, key: ProcKey, comm: &str, llm_caller: bool, server: bool, ts_ns: i64) {
        if let Some(info) = self.entry(key) {
            info.last_seen_ns = info.last_seen_ns.max(ts_ns);
            if info.comm.is_empty() {
                info.comm = comm.to_string();
            }
            info.llm_caller |= llm_caller;
            info.server |= server;
        }
    }

    /// The agent root of `key`: nearest ancestor-or-self that called an LLM, else nearest that
    /// served a request, else `key` itself. Walks at most `max_depth` parents.
    pub fn agent_root(&self, key: ProcKey) -> ProcKey {
        let mut server_root = None;
        let mut cur = key;
        for _ in 0..=self.max_depth {
            let Some(info) = self.procs.get(&cur) else { break };
            if info.llm_caller {
                return cur;
            }
            if info.server && server_root.is_none() {
                server_root = Some(cur);
            }
            match info.parent {
                Some(p) if p != cur => cur = p,
                _ => break,
            }
        }
        server_root.unwrap_or(key)
    }

    /// Whether `key` is `ancestor` or one of its descendants (bounded walk).
    pub fn is_in_tree_of(&self, key: ProcKey, ancestor: ProcKey) -> bool {
        let mut cur = key;
        for _ in 0..=self.max_depth {
            if cur == ancestor {
                return true;
            }
            match self.procs.get(&cur).and_then(|i| i.parent) {
                Some(p) if p != cur => cur = p,
                _ => return false,
            }
        }
        false
    }

    /// Forget processes with no exit seen and nothing heard of since `before_ns` (the probe
    /// may have missed their exit, or there are no process events at all).
    pub fn evict_silent(&mut self, before_ns: i64) {
        let n = self.procs.len();
        self.procs.retain(|_, p| p.exited_ns.is_some() || p.last_seen_ns >= before_ns);
        self.stats.evicted_silent += (n - self.procs.len()) as u64;
    }

    /// Forget processes that exited before `before_ns`.
    pub fn evict_exited(&mut self, before_ns: i64) {
        let n = self.procs.len();
        self.procs.retain(|_, p| p.exited_ns.is_none_or(|t| t >= before_ns));
        self.stats.evicted_exited += (n - self.procs.len()) as u64;
    }

    fn entry(&mut self, key: ProcKey) -> Option<&mut ProcInfo> {
        if !self.procs.contains_key(&key) && self.procs.len() >= self.max_processes {
            self.evict_exited(i64::MAX);
            if self.procs.len() >= self.max_processes {
                self.stats.dropped_full += 1;
                return None;
            }
        }
        Some(self.procs.entry(key).or_default())
    }

    /// Rough heap bytes held (for memory accounting).
    pub fn approx_bytes(&self) -> usize {
        self.procs.capacity() * (size_of::<ProcKey>() + size_of::<ProcInfo>() + 8)
            + self.procs.values().map(|p| p.exe.capacity() + p.comm.capacity()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: ProcessEventKind, tgid: i32, start: i64, ppid: i32, pstart: i64, exe: &str) -> ProcessEvent {
        ProcessEvent {
            node: "n".into(),
            ts_ns: start,
            kind,
            tgid,
            process_start_ns: start,
            ppid,
            parent_start_ns: pstart,
            uid: 0,
            comm: exe.rsplit('/').next().unwrap_or(exe).into(),
            exe: exe.into(),
            argv: vec![],
            argv_truncated: false,
            cgroup_id: 0,
            cgroup_path: String::new(),
            container_id: None,
            pod_uid: None,
            exit_code: None,
        }
    }

    #[test]
    fn children_belong_to_the_llm_calling_ancestor() {
        let mut t = ProcessTree::new(100, 16);
        t.apply(0, &ev(ProcessEventKind::Seed, 10, 1, 1, 0, "/usr/bin/python3"));
        t.apply(0, &ev(ProcessEventKind::Fork, 20, 5, 10, 1, "/usr/bin/python3"));
        t.apply(0, &ev(ProcessEventKind::Exec, 20, 5, 10, 1, "/usr/bin/gzip"));
        let agent = ProcKey { node: 0, tgid: 10, start_ns: 1 };
        let child = ProcKey { node: 0, tgid: 20, start_ns: 5 };
        assert_eq!(t.agent_root(child), child, "nobody called an LLM yet");
        t.mark(agent, "python3", true, false, 10);
        assert_eq!(t.agent_root(child), agent);
        assert!(t.is_in_tree_of(child, agent));
        assert_eq!(t.get(&child).map(|p| p.exe.as_str()), Some("/usr/bin/gzip"));
        // A reused pid with another start time is another process.
        let reused = ProcKey { node: 0, tgid: 20, start_ns: 99 };
        assert_eq!(t.agent_root(reused), reused);
    }

    #[test]
    fn exited_processes_are_evicted_and_the_table_is_bounded() {
        let mut t = ProcessTree::new(2, 16);
        t.apply(0, &ev(ProcessEventKind::Seed, 1, 1, 0, 0, "/a"));
        t.apply(0, &ev(ProcessEventKind::Seed, 2, 2, 0, 0, "/b"));
        let mut exit = ev(ProcessEventKind::Exit, 1, 1, 0, 0, "/a");
        exit.ts_ns = 50;
        t.apply(0, &exit);
        t.apply(0, &ev(ProcessEventKind::Seed, 3, 3, 0, 0, "/c"));
        assert_eq!(t.stats().evicted_exited, 1);
        t.apply(0, &ev(ProcessEventKind::Seed, 4, 4, 0, 0, "/d"));
        assert_eq!(t.stats().dropped_full, 1);
        assert_eq!(t.stats().processes, 2);
    }
}
