//! The eBPF probe: `Probe::start(config)` loads and attaches the kernel programs,
//! `watch_pid` adds a process tree, `events()` hands out the decoded events.

mod hold_guardian;
mod kernel;
mod reader;
mod uprobe_events;
mod uprobes;
mod watcher_child;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

pub use kernel::OBJECT_ORIGIN;
pub use uprobes::{symbol_offsets, HookedLibrary, LIBC, LIBSSL};
use kernel::{ConnKey, ConnState, Kernel, KernelConfig};

use crate::events::{
    ConnectionEvent, ConnectionEventKind, ConnectionId, ProbeEvent, ProcessEvent, ProcessEventKind, Role,
    DEFAULT_CALL_CAP, MAX_CALL_CAP,
};
use crate::procfs;
use crate::selectors::Selector;

/// Why the probe could not start or act.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("loading the eBPF object failed (root, CAP_BPF and BTF are needed): {0}: {0:?}")]
    Load(Box<aya::EbpfError>),
    #[error("eBPF program {0}: {1}")]
    Program(String, aya::programs::ProgramError),
    #[error("attaching to {0} failed: {1}")]
    Attach(String, aya::programs::ProgramError),
    #[error("eBPF map {0}: {1}")]
    Map(String, aya::maps::MapError),
    #[error("the eBPF object has no map {0}")]
    MissingMap(String),
    #[error("the eBPF object has no program {0}")]
    MissingProgram(String),
    #[error("per-call cap {0} is outside 1..={MAX_CALL_CAP}")]
    BadCap(u32),
    #[error("ring buffer size {0} is not a power of two of at least 4096 bytes")]
    BadRing(u32),
    #[error("cgroup {0}: {1}")]
    Cgroup(String, std::io::Error),
    #[error("the probe's state lock was poisoned")]
    Poisoned,
    #[error("spawning {0:?}: {1}")]
    Spawn(String, std::io::Error),
    #[error("enabling BPF statistics: {0}")]
    Stats(String),
}

/// How the socket calls (connect, accept, read, write, send, recv, ..., close) are hooked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyscallHooks {
    /// `Tracepoints` when every process is watched (`Selector::All`), `Libc` otherwise.
    #[default]
    Auto,
    /// Uprobes + uretprobes on libc's wrappers, attached to each watched process only: an
    /// unwatched process pays nothing. Misses calls that bypass libc: raw syscalls of static
    /// binaries and Go programs, io_uring, and a forked child's calls (without exec) until
    /// userspace has attached to it.
    Libc,
    /// The syscall tracepoints: see every call of every watched process whatever it is built
    /// with, but they are global: every task on the host takes the traced syscall path.
    Tracepoints,
}

impl SyscallHooks {
    /// `Auto` decided for a set of selectors; the others as they are.
    pub fn resolve(self, selectors: &[Selector]) -> SyscallHooks {
        match self {
            SyscallHooks::Auto if selectors.contains(&Selector::All) => SyscallHooks::Tracepoints,
            SyscallHooks::Auto => SyscallHooks::Libc,
            other => other,
        }
    }

    /// The configuration word: "auto", "libc" or "tracepoints".
    pub fn as_str(self) -> &'static str {
        match self {
            SyscallHooks::Auto => "auto",
            SyscallHooks::Libc => "libc",
            SyscallHooks::Tracepoints => "tracepoints",
        }
    }
}

impl std::str::FromStr for SyscallHooks {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(SyscallHooks::Auto),
            "libc" => Ok(SyscallHooks::Libc),
            "tracepoints" => Ok(SyscallHooks::Tracepoints),
            other => Err(format!("unknown syscall hook mode {other:?} (auto, libc or tracepoints)")),
        }
    }
}

/// How the probe runs.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Node name in connection ids.
    pub node: String,
    /// Bytes captured per call; the rest of a call becomes a GAP (default 256 KiB, max 4 MiB).
    pub per_call_cap: u32,
    /// Attach the OpenSSL uprobes to watched processes.
    pub tls: bool,
    /// How the socket calls are hooked (default `Auto`).
    pub syscall_hooks: SyscallHooks,
    /// Stop watched processes at exec until their uprobes (SSL, libc) are attached (no missed
    /// handshake, no missed first request).
    pub hold_exec: bool,
    /// What to watch; more can be added with `watch_pid`.
    pub selectors: Vec<Selector>,
    /// Kernel port filter: when not empty, only connections whose local or remote port is
    /// listed are tracked (for watched processes).
    pub ports: Vec<u16>,
    /// Ring buffer size in bytes (a power of two, multiple of the page size).
    pub ring_buffer_bytes: u32,
    /// Events buffered between the reader thread and `events()`; when full the reader waits
    /// and the kernel counts what the ring cannot hold.
    pub channel_capacity: usize,
    /// Emit ProcessEvent(Existing) and connection opens found in /proc for processes watched after start.
    pub seed_from_proc: bool,
    /// Uprobe links waiting to be closed past which a newly watched process gets no uprobes
    /// until the backlog drains (counted in `LossCounters::uprobe_attaches_deferred`). `None`:
    /// a quarter of the open-file limit, at most 32,768.
    pub max_detach_backlog: Option<usize>,
    /// Attach per-process uprobes as perf events on named tracefs uprobe events (detached at
    /// once) rather than one aya uprobe each (the kernel detaches ~9 a second); falls back to
    /// aya's when tracefs' uprobe_events cannot be written. See `uprobe_events.rs`.
    pub uprobe_events: bool,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            node: hostname(),
            per_call_cap: DEFAULT_CALL_CAP,
            tls: true,
            syscall_hooks: SyscallHooks::Auto,
            hold_exec: true,
            selectors: Vec::new(),
            ports: Vec::new(),
            ring_buffer_bytes: 16 * 1024 * 1024,
            channel_capacity: 4096,
            seed_from_proc: true,
            max_detach_backlog: None,
            uprobe_events: true,
        }
    }
}

/// Every uprobe link is a perf-event fd (about 27 libc and 16 libssl per watched process): lift
/// the soft open-file limit to the hard one so a large watched tree does not run out of fds.
/// Returns the soft limit now in force.
fn raise_open_file_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
    }
    lim.rlim_cur
}

/// The default `max_detach_backlog`: a quarter of the open-file limit (the rest stays for the
/// live processes' links, the bus and /proc), at most 32,768.
fn default_detach_backlog_cap(open_file_limit: u64) -> usize {
    usize::try_from(open_file_limit / 4).unwrap_or(usize::MAX).clamp(64, 32_768)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "localhost".into())
}

/// Everything lost, counted (kernel counters summed over CPUs, plus userspace ones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossCounters {
    pub ring_full_events: u64,
    pub ring_full_bytes: u64,
    pub truncated_calls: u64,
    pub truncated_bytes: u64,
    pub map_full: u64,
    pub unpaired_ssl_calls: u64,
    pub unpaired_ssl_bytes: u64,
    pub read_faults: u64,
    /// Records the decoder refused.
    pub undecodable: u64,
    /// SSL uprobe attachments that failed.
    pub uprobe_attach_failures: u64,
    /// /proc seed events dropped because the event channel was full.
    pub seed_events_dropped: u64,
    /// Processes held at exec that were continued by the timeout, before their exec record
    /// was handled (their SSL uprobes may attach late: early TLS plaintext can be missed).
    pub holds_timed_out: u64,
    /// Watched processes whose uprobes were put off because too many uprobe links were waiting
    /// to be closed (`ProbeConfig::max_detach_backlog`): what they sent before the backlog
    /// drained and the rescan attached them was not captured.
    pub uprobe_attaches_deferred: u64,
}

/// Kernel statistics of one program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramStats {
    pub name: String,
    pub run_count: u64,
    pub run_time_ns: u64,
}

/// Turn on the kernel's BPF run-time statistics for as long as the returned fd lives.
pub fn enable_bpf_stats() -> Result<std::os::fd::OwnedFd, ProbeError> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|e| ProbeError::Stats(e.to_string()))
}

/// State shared by the API and the reader thread.
pub(crate) struct Shared {
    pub(crate) kernel: Mutex<Kernel>,
    pub(crate) stop: AtomicBool,
    pub(crate) node: Arc<str>,
    pub(crate) config: ProbeConfig,
    pub(crate) undecodable: AtomicU64,
    pub(crate) channel_full: AtomicU64,
    pub(crate) holds_timed_out: AtomicU64,
}

impl Shared {
    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, Kernel>, ProbeError> {
        self.kernel.lock().map_err(|_| ProbeError::Poisoned)
    }
}

/// A running probe. Dropping it detaches every program.
pub struct Probe {
    shared: Arc<Shared>,
    tx: mpsc::Sender<ProbeEvent>,
    events: Option<mpsc::Receiver<ProbeEvent>>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// Continues the processes held at exec if this process dies without dropping the probe;
    /// dropped (killed) after `drop` continued them itself.
    _hold_guardian: Option<watcher_child::WatcherChild>,
}

impl Probe {
    /// Load the programs, attach the tracepoints, apply the selectors and start reading.
    pub fn start(config: ProbeConfig) -> Result<Probe, ProbeError> {
        if config.per_call_cap == 0 || config.per_call_cap > MAX_CALL_CAP {
            return Err(ProbeError::BadCap(config.per_call_cap));
        }
        if !config.ring_buffer_bytes.is_power_of_two() || config.ring_buffer_bytes < 4096 {
            return Err(ProbeError::BadRing(config.ring_buffer_bytes));
        }
        let syscall_hooks = config.syscall_hooks.resolve(&config.selectors);
        let uses_uprobes = config.tls || syscall_hooks == SyscallHooks::Libc;
        let kcfg = KernelConfig {
            self_tgid: std::process::id(),
            watch_all: config.selectors.contains(&Selector::All) as u32,
            per_call_cap: config.per_call_cap,
            hold_exec: (uses_uprobes && config.hold_exec) as u32,
            all_process_events: config.selectors.iter().any(Selector::needs_userspace_matching) as u32,
            exit_has_group_dead: 0, // detected by Kernel::load
            port_filter: !config.ports.is_empty() as u32,
            reserved: 0,
        };
        let open_file_limit = raise_open_file_limit();
        let (mut kernel, ring) = Kernel::load(kcfg, config.ring_buffer_bytes, syscall_hooks, config.tls)?;
        kernel.detach_backlog_cap = config.max_detach_backlog.unwrap_or_else(|| default_detach_backlog_cap(open_file_limit));
        if config.uprobe_events && uses_uprobes {
            match uprobe_events::UprobeEvents::new() {
                Ok(events) => kernel.uprobe_events = Some(events),
                Err(e) => tracing::warn!(error = %e, "named uprobe events unavailable: per-process uprobes are aya's (each detach waits ~100 ms)"),
            }
        }
        tracing::info!(syscall_hooks = syscall_hooks.as_str(), tls = config.tls, "probe loaded");
        let (tx, rx) = mpsc::channel(config.channel_capacity.max(1));
        let shared = Arc::new(Shared {
            kernel: Mutex::new(kernel),
            stop: AtomicBool::new(false),
            node: Arc::from(config.node.as_str()),
            config: config.clone(),
            undecodable: AtomicU64::new(0),
            channel_full: AtomicU64::new(0),
            holds_timed_out: AtomicU64::new(0),
        });
        // started before anything can be held: a probe killed from now on leaves nobody stopped
        let hold_guardian = if kcfg.hold_exec != 0 {
            use aya::maps::IterableMap;
            use std::os::fd::AsFd;
            let kernel = shared.lock()?;
            match hold_guardian::start(kernel.held.map().fd().as_fd()) {
                Ok(g) => Some(g),
                Err(e) => {
                    tracing::warn!(error = %e, "no guardian for processes held at exec: a killed probe would leave them stopped");
                    None
                }
            }
        } else {
            None
        };
        let reader = reader::spawn(shared.clone(), ring, tx.clone());
        let probe = Probe { shared, tx, events: Some(rx), reader: Some(reader), _hold_guardian: hold_guardian };
        probe.apply_selectors()?;
        Ok(probe)
    }

    fn apply_selectors(&self) -> Result<(), ProbeError> {
        for port in &self.shared.config.ports {
            self.shared.lock()?.watched_ports.insert(port, 1, 0).map_err(|e| ProbeError::Map("watched_ports".into(), e))?;
        }
        let selectors = self.shared.config.selectors.clone();
        if selectors.contains(&Selector::All) {
            self.shared.lock()?.attach_system_wide()?;
        }
        for s in &selectors {
            match s {
                Selector::PidTree(pid) => {
                    for t in procfs::process_tree(*pid) {
                        self.watch_pid(t)?;
                    }
                }
                Selector::Comm(c) if !s.needs_userspace_matching() => {
                    let mut key = [0u8; 16];
                    for (k, b) in key.iter_mut().zip(c.bytes().take(15)) {
                        *k = b;
                    }
                    self.shared.lock()?.watched_comms.insert(key, 1, 0).map_err(|e| ProbeError::Map("watched_comms".into(), e))?;
                }
                Selector::Cgroup(path) => {
                    let id = procfs::cgroup_id_of_path(path).map_err(|e| ProbeError::Cgroup(path.display().to_string(), e))?;
                    self.shared.lock()?.watched_cgroups.insert(id, 1, 0).map_err(|e| ProbeError::Map("watched_cgroups".into(), e))?;
                }
                _ => {}
            }
        }
        // processes that already run and match a comm/exe/pod selector
        if selectors.iter().any(|s| !matches!(s, Selector::All | Selector::PidTree(_) | Selector::Cgroup(_))) {
            for t in procfs::all_tgids() {
                if t == std::process::id() {
                    continue;
                }
                if let Some(p) = self.existing_process_event(t)
                    && selectors.iter().any(|s| s.matches(&p))
                {
                    for d in procfs::process_tree(t) {
                        self.watch_pid(d)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn existing_process_event(&self, tgid: u32) -> Option<ProcessEvent> {
        let s = procfs::snapshot(tgid)?;
        let (container_id, pod_uid) = procfs::container_of_pid(tgid);
        Some(ProcessEvent {
            kind: ProcessEventKind::Existing,
            node: self.shared.node.clone(),
            ts_ns: reader::monotonic_ns(),
            tgid,
            tid: tgid,
            ppid: s.ppid,
            start_ns: s.start_ns,
            parent_start_ns: procfs::snapshot(s.ppid).map(|pp| pp.start_ns).unwrap_or(0),
            uid: s.uid,
            cgroup_id: 0,
            comm: s.comm,
            exe: s.exe,
            argv: s.argv,
            argv_truncated: false,
            exit_status: None,
            container_id,
            pod_uid,
        })
    }

    /// Watch a process (its future children are watched by the kernel). With `seed_from_proc`,
    /// its /proc view and established TCP connections are reported first.
    pub fn watch_pid(&self, tgid: u32) -> Result<(), ProbeError> {
        if tgid == std::process::id() {
            return Ok(()); // never capture ourselves
        }
        let mut seeded = Vec::new();
        {
            let mut k = self.shared.lock()?;
            // uprobes first: once the tgid is watched, every SSL call is seen, so no ciphertext of
            // an already-open TLS connection slips out as data
            k.attach_process(tgid)?;
            k.watched.insert(tgid, 1, 0).map_err(|e| ProbeError::Map("watched".into(), e))?;
            k.tracked.insert(tgid);
            if self.shared.config.seed_from_proc {
                let now = reader::monotonic_ns();
                for (fd, tuple) in procfs::tcp_connections(tgid) {
                    let key = ConnKey { tgid, fd };
                    if k.conns.get(&key, 0).is_ok() {
                        continue;
                    }
                    let st = ConnState { start_ns: now, ..ConnState::default() };
                    if k.conns.insert(key, st, 0).is_ok() {
                        seeded.push(ProbeEvent::Connection(ConnectionEvent {
                            kind: ConnectionEventKind::Open,
                            id: ConnectionId { node: self.shared.node.clone(), tgid, fd, start_ns: now },
                            ts_ns: now,
                            tid: tgid,
                            role: Role::Unknown,
                            tuple: Some(tuple),
                            tls: false,
                            bytes_egress: 0,
                            bytes_ingress: 0,
                        }));
                    }
                }
            }
        }
        if self.shared.config.seed_from_proc
            && let Some(p) = self.existing_process_event(tgid)
        {
            seeded.insert(0, ProbeEvent::Process(p));
        }
        for ev in seeded {
            // never block the caller: a full channel is counted
            if self.tx.try_send(ev).is_err() {
                self.shared.channel_full.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Watch a process that has not exec'd yet (a child we forked): no /proc seeding; its exec
    /// event attaches the uprobes.
    pub fn watch_new_pid(&self, tgid: u32) -> Result<(), ProbeError> {
        if tgid == std::process::id() {
            return Ok(());
        }
        let mut k = self.shared.lock()?;
        k.watched.insert(tgid, 1, 0).map_err(|e| ProbeError::Map("watched".into(), e))?;
        k.tracked.insert(tgid);
        Ok(())
    }

    /// Watch a process and all its current descendants.
    pub fn watch_tree(&self, root: u32) -> Result<(), ProbeError> {
        for t in procfs::process_tree(root) {
            self.watch_pid(t)?;
        }
        Ok(())
    }

    /// Stop watching a process (its uprobes are detached).
    pub fn unwatch_pid(&self, tgid: u32) -> Result<(), ProbeError> {
        let mut k = self.shared.lock()?;
        let _ = k.watched.remove(&tgid);
        k.detach_process(tgid);
        Ok(())
    }

    /// Change the bytes captured per call (1..=4 MiB) while running.
    pub fn set_per_call_cap(&self, cap: u32) -> Result<(), ProbeError> {
        if cap == 0 || cap > MAX_CALL_CAP {
            return Err(ProbeError::BadCap(cap));
        }
        let mut k = self.shared.lock()?;
        let mut cfg = k.config.get(&0, 0).map_err(|e| ProbeError::Map("cw_config_map".into(), e))?;
        cfg.per_call_cap = cap;
        k.config.set(0, cfg, 0).map_err(|e| ProbeError::Map("cw_config_map".into(), e))
    }

    /// Run count and run time of each of this probe's loaded programs (the kernel counts only
    /// while statistics are enabled, see `enable_bpf_stats`). Programs of the hook mode not in
    /// use (syscall tracepoints in libc mode, libc uprobes in tracepoints mode) are not loaded
    /// and not listed.
    pub fn program_stats(&self) -> Result<Vec<ProgramStats>, ProbeError> {
        let k = self.shared.lock()?;
        let mut out = Vec::new();
        for (name, prog) in k.ebpf.programs() {
            if prog.fd().is_err() {
                continue; // not loaded
            }
            let info = prog.info().map_err(|e| ProbeError::Program(name.to_string(), e))?;
            out.push(ProgramStats {
                name: name.to_string(),
                run_count: info.run_count(),
                run_time_ns: info.run_time().as_nanos() as u64,
            });
        }
        Ok(out)
    }

    /// The event stream; `None` after the first call.
    pub fn events(&mut self) -> Option<mpsc::Receiver<ProbeEvent>> {
        self.events.take()
    }

    /// The tracefs group of the named uprobe events this probe attaches through (`None`: aya's
    /// per-process uprobes). The probe removes it when it stops.
    pub fn uprobe_event_group(&self) -> Result<Option<String>, ProbeError> {
        Ok(self.shared.lock()?.uprobe_events.as_ref().map(|e| e.group().to_string()))
    }

    /// Every loss counted so far.
    pub fn loss_counters(&self) -> Result<LossCounters, ProbeError> {
        let k = self.shared.lock()?;
        let t = k.loss_totals()?;
        Ok(LossCounters {
            ring_full_events: t[0],
            ring_full_bytes: t[1],
            truncated_calls: t[2],
            truncated_bytes: t[3],
            map_full: t[4],
            unpaired_ssl_calls: t[5],
            unpaired_ssl_bytes: t[6],
            read_faults: t[7],
            undecodable: self.shared.undecodable.load(Ordering::Relaxed),
            uprobe_attach_failures: k.ssl.failures + k.libc.failures,
            seed_events_dropped: self.shared.channel_full.load(Ordering::Relaxed),
            holds_timed_out: self.shared.holds_timed_out.load(Ordering::Relaxed),
            uprobe_attaches_deferred: k.deferred_total,
        })
    }

    /// Processes that currently have SSL uprobes attached.
    pub fn tls_attached_pids(&self) -> Result<Vec<u32>, ProbeError> {
        Ok(self.shared.lock()?.ssl.attached_pids())
    }

    /// Processes that currently have libc socket-call uprobes attached (libc mode).
    pub fn libc_attached_pids(&self) -> Result<Vec<u32>, ProbeError> {
        Ok(self.shared.lock()?.libc.attached_pids())
    }

    /// How this probe hooks the socket calls (`Auto` resolved).
    pub fn syscall_hooks(&self) -> Result<SyscallHooks, ProbeError> {
        Ok(self.shared.lock()?.syscall_hooks)
    }

    /// The node name used in connection ids.
    pub fn node(&self) -> Arc<str> {
        self.shared.node.clone()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        // let anything still held at exec run
        if let Ok(mut k) = self.shared.lock() {
            let held: Vec<u32> = k.held.keys().filter_map(Result::ok).collect();
            for t in held {
                let _ = k.held.remove(&t);
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(t as i32, libc::SIGCONT) };
            }
        }
    }
}
