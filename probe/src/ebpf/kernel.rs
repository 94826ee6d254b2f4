//! Loading the eBPF object (built by build.rs) with aya, attaching the process
//! tracepoints and (in tracepoints mode) the syscall tracepoints, the per-process
//! uprobe sets (libssl, libc), and typed handles on the maps userspace reads and writes.

use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{RawTracePoint, TracePoint, UProbe};
use aya::{Ebpf, EbpfLoader};

use super::uprobe_events::UprobeEvents;
use super::uprobes::{Janitor, LibraryHooks, LIBC, LIBSSL};
use super::{ProbeError, SyscallHooks};

/// The compiled programs: compiled from probe/bpf by build.rs, or the committed object.
fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/chainwatch.bpf.o"))
}

/// Where the embedded object came from: `clang:<binary>` or `committed`.
pub const OBJECT_ORIGIN: &str = env!("CHAINWATCH_BPF_ORIGIN");

/// `struct cw_config` in chainwatch.h.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelConfig {
    pub self_tgid: u32,
    pub watch_all: u32,
    pub per_call_cap: u32,
    pub hold_exec: u32,
    pub all_process_events: u32,
    pub exit_has_group_dead: u32,
    pub port_filter: u32,
    pub reserved: u32,
}
// SAFETY: repr(C), only u32 fields, no padding.
unsafe impl aya::Pod for KernelConfig {}

/// `struct cw_conn_key` in chainwatch.h.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub tgid: u32,
    pub fd: i32,
}
// SAFETY: repr(C), two 4-byte fields, no padding.
unsafe impl aya::Pod for ConnKey {}

/// `struct cw_conn_state` in chainwatch.bpf.c.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnState {
    pub start_ns: u64,
    pub pos: [u64; 2],
    pub tls_pos: [u64; 2],
    pub tls: u8,
    pub role: u8,
    pub reserved: [u8; 6],
}
// SAFETY: repr(C), 48 bytes without implicit padding.
unsafe impl aya::Pod for ConnState {}

/// Does this kernel's sched_process_exit pass `group_dead` (6.16+)? Read from the tracepoint format.
pub fn exit_has_group_dead() -> bool {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"].iter().any(|root| {
        std::fs::read_to_string(format!("{root}/events/sched/sched_process_exit/format"))
            .is_ok_and(|f| f.contains("group_dead"))
    })
}

/// Loss counter slots (`CW_LOSS_*`).
pub const LOSS_SLOTS: u32 = 8;

/// Syscall tracepoints: (program, tracepoint name).
const SYSCALL_PROGRAMS: &[(&str, &str)] = &[
    ("tp_enter_write", "sys_enter_write"),
    ("tp_exit_write", "sys_exit_write"),
    ("tp_enter_read", "sys_enter_read"),
    ("tp_exit_read", "sys_exit_read"),
    ("tp_enter_sendto", "sys_enter_sendto"),
    ("tp_exit_sendto", "sys_exit_sendto"),
    ("tp_enter_recvfrom", "sys_enter_recvfrom"),
    ("tp_exit_recvfrom", "sys_exit_recvfrom"),
    ("tp_enter_writev", "sys_enter_writev"),
    ("tp_exit_writev", "sys_exit_writev"),
    ("tp_enter_readv", "sys_enter_readv"),
    ("tp_exit_readv", "sys_exit_readv"),
    ("tp_enter_sendmsg", "sys_enter_sendmsg"),
    ("tp_exit_sendmsg", "sys_exit_sendmsg"),
    ("tp_enter_recvmsg", "sys_enter_recvmsg"),
    ("tp_exit_recvmsg", "sys_exit_recvmsg"),
    ("tp_enter_connect", "sys_enter_connect"),
    ("tp_exit_connect", "sys_exit_connect"),
    ("tp_enter_accept", "sys_enter_accept"),
    ("tp_exit_accept", "sys_exit_accept"),
    ("tp_enter_accept4", "sys_enter_accept4"),
    ("tp_exit_accept4", "sys_exit_accept4"),
    ("tp_enter_close", "sys_enter_close"),
];

/// Process raw tracepoints: (program, tracepoint).
const SCHED_PROGRAMS: &[(&str, &str)] = &[
    ("raw_fork", "sched_process_fork"),
    ("raw_exec", "sched_process_exec"),
    ("raw_exit", "sched_process_exit"),
];

/// The loaded object and the maps userspace uses; the ring buffer is handed to the reader.
pub struct Kernel {
    pub ebpf: Ebpf,
    pub watched: HashMap<MapData, u32, u8>,
    pub watched_cgroups: HashMap<MapData, u64, u8>,
    pub watched_comms: HashMap<MapData, [u8; 16], u8>,
    pub watched_ports: HashMap<MapData, u16, u8>,
    pub held: HashMap<MapData, u32, u64>,
    pub conns: HashMap<MapData, ConnKey, ConnState>,
    pub loss: PerCpuArray<MapData, u64>,
    pub config: Array<MapData, KernelConfig>,
    /// OpenSSL uprobes of watched processes (when TLS capture is on).
    pub ssl: LibraryHooks,
    /// libc socket-call uprobes of watched processes (`SyscallHooks::Libc`).
    pub libc: LibraryHooks,
    /// Named uprobe events the per-process uprobes are attached through (cheap to detach);
    /// `None`: aya's per-process uprobes. After `ssl` and `libc`: their perf events must be
    /// closed before the events are removed.
    pub uprobe_events: Option<UprobeEvents>,
    /// Detaches the links of both sets, giving way to attaches.
    pub janitor: Janitor,
    /// How the socket calls are hooked (resolved: never `Auto`).
    pub syscall_hooks: SyscallHooks,
    /// Attach the SSL uprobes to watched processes.
    pub tls: bool,
    /// Watched processes userspace has reported (exec, fork or /proc), to report their exit.
    pub tracked: std::collections::HashSet<u32>,
    /// Uprobe links waiting for the janitor past which a newly watched process gets none (see
    /// `attach_process`).
    pub detach_backlog_cap: usize,
    /// Watched processes whose uprobes were put off by `detach_backlog_cap`.
    pub deferred: std::collections::HashSet<u32>,
    /// Processes ever put off (`LossCounters::uprobe_attaches_deferred`).
    pub deferred_total: u64,
}

fn map<T>(ebpf: &mut Ebpf, name: &str) -> Result<T, ProbeError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let m = ebpf.take_map(name).ok_or_else(|| ProbeError::MissingMap(name.to_string()))?;
    T::try_from(m).map_err(|e| ProbeError::Map(name.to_string(), e))
}

fn mount_if_missing(path: &str, fstype: &str) {
    let mounted = std::fs::read_to_string("/proc/mounts")
        .map(|m| m.lines().any(|l| l.split_whitespace().nth(1) == Some(path)))
        .unwrap_or(true);
    if !mounted {
        let _ = std::fs::create_dir_all(path);
        let (Ok(src), Ok(dst), Ok(ty)) =
            (std::ffi::CString::new("nodev"), std::ffi::CString::new(path), std::ffi::CString::new(fstype))
        else {
            return;
        };
        // SAFETY: valid NUL-terminated strings; a failure is ignored (attach reports it).
        unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
    }
}

impl Kernel {
    /// Load every program, attach the process tracepoints and, with `SyscallHooks::Tracepoints`,
    /// the syscall tracepoints; load (not attach) the uprobes: the SSL ones when `tls`, the libc
    /// ones with `SyscallHooks::Libc`. `syscall_hooks` must be resolved (not `Auto`).
    pub fn load(
        mut config: KernelConfig,
        ring_bytes: u32,
        syscall_hooks: SyscallHooks,
        tls: bool,
    ) -> Result<(Kernel, RingBuf<MapData>), ProbeError> {
        // aya finds tracefs under /sys/kernel/tracing or /sys/kernel/debug/tracing
        if !std::path::Path::new("/sys/kernel/tracing/events").exists()
            && !std::path::Path::new("/sys/kernel/debug/tracing/events").exists()
        {
            mount_if_missing("/sys/kernel/tracing", "tracefs");
        }
        config.exit_has_group_dead = exit_has_group_dead() as u32;
        // `task_calls` is task-local storage, which aya 0.14 creates but has no typed wrapper
        // for (userspace never touches it)
        let mut ebpf = EbpfLoader::new()
            .allow_unsupported_maps()
            .map_max_entries("events", ring_bytes)
            .load(object())
            .map_err(|e| ProbeError::Load(Box::new(e)))?;

        let mut cfg: Array<MapData, KernelConfig> = map(&mut ebpf, "cw_config_map")?;
        cfg.set(0, config, 0).map_err(|e| ProbeError::Map("cw_config_map".into(), e))?;

        for (prog, tp) in SCHED_PROGRAMS {
            let p: &mut RawTracePoint = program(&mut ebpf, prog)?;
            p.load().map_err(|e| ProbeError::Program(prog.to_string(), e))?;
            p.attach(tp).map_err(|e| ProbeError::Attach(tp.to_string(), e))?;
        }
        if syscall_hooks == SyscallHooks::Tracepoints {
            for (prog, tp) in SYSCALL_PROGRAMS {
                let p: &mut TracePoint = program(&mut ebpf, prog)?;
                p.load().map_err(|e| ProbeError::Program(prog.to_string(), e))?;
                p.attach("syscalls", tp).map_err(|e| ProbeError::Attach(tp.to_string(), e))?;
            }
        }
        let mut uprobe_programs = Vec::new();
        if tls {
            uprobe_programs.extend(LIBSSL.programs());
        }
        if syscall_hooks == SyscallHooks::Libc {
            uprobe_programs.extend(LIBC.programs());
        }
        for prog in uprobe_programs {
            let p: &mut UProbe = program(&mut ebpf, prog)?;
            p.load().map_err(|e| ProbeError::Program(prog.to_string(), e))?;
        }

        let ring: RingBuf<MapData> = map(&mut ebpf, "events")?;
        let janitor = Janitor::shared();
        let kernel = Kernel {
            watched: map(&mut ebpf, "watched")?,
            watched_cgroups: map(&mut ebpf, "watched_cgroups")?,
            watched_comms: map(&mut ebpf, "watched_comms")?,
            watched_ports: map(&mut ebpf, "watched_ports")?,
            held: map(&mut ebpf, "held")?,
            conns: map(&mut ebpf, "conns")?,
            loss: map(&mut ebpf, "loss")?,
            config: cfg,
            ssl: LibraryHooks::new(&LIBSSL, janitor.clone()),
            libc: LibraryHooks::new(&LIBC, janitor.clone()),
            uprobe_events: None,
            janitor,
            syscall_hooks,
            tls,
            tracked: std::collections::HashSet::new(),
            detach_backlog_cap: usize::MAX,
            deferred: std::collections::HashSet::new(),
            deferred_total: 0,
            ebpf,
        };
        Ok((kernel, ring))
    }

    /// Attach the per-process uprobes this probe uses (libc in libc mode, then libssl with TLS)
    /// to every copy of those libraries `tgid` has mapped or will map. Libraries already probed
    /// for it are skipped, so this is also the periodic rescan.
    ///
    /// With aya's uprobes (no `uprobe_events`), every link is an fd until the janitor closes it,
    /// and the kernel closes only ~9 a second: when `detach_backlog_cap` links wait, a process
    /// that has no uprobes yet gets none
    /// (its traffic is not captured, and it is counted once in `deferred_total`). The periodic
    /// rescan attaches it once the backlog is below the cap. This keeps the probe's fds (and the
    /// kernel's uprobe objects) bounded when watched processes start and exit faster than the
    /// kernel can detach.
    pub fn attach_process(&mut self, tgid: u32) -> Result<(), ProbeError> {
        let has_uprobes = self.libc.is_attached(tgid) || self.ssl.is_attached(tgid);
        // named uprobe events detach at once: only aya's uprobes build a backlog
        if !has_uprobes && self.uprobe_events.is_none() && self.janitor.backlog() >= self.detach_backlog_cap {
            if self.deferred.insert(tgid) {
                self.deferred_total += 1;
                tracing::debug!(tgid, backlog = self.janitor.backlog(), "uprobes deferred: detach backlog at its cap");
            }
            return Ok(());
        }
        self.deferred.remove(&tgid);
        let _no_detach_meanwhile = self.janitor.attaching();
        if self.syscall_hooks == SyscallHooks::Libc {
            self.libc.attach(&mut self.ebpf, self.uprobe_events.as_mut(), tgid)?;
        }
        if self.tls {
            self.ssl.attach(&mut self.ebpf, self.uprobe_events.as_mut(), tgid)?;
        }
        Ok(())
    }

    /// The same for every process on the host (the `all` selector).
    pub fn attach_system_wide(&mut self) -> Result<(), ProbeError> {
        let _no_detach_meanwhile = self.janitor.attaching();
        if self.syscall_hooks == SyscallHooks::Libc {
            self.libc.attach_system_wide(&mut self.ebpf)?;
        }
        if self.tls {
            self.ssl.attach_system_wide(&mut self.ebpf)?;
        }
        Ok(())
    }

    /// Detach every per-process uprobe of `tgid` (it exited or is no longer watched).
    pub fn detach_process(&mut self, tgid: u32) {
        self.deferred.remove(&tgid);
        self.libc.detach(tgid);
        self.ssl.detach(tgid);
    }

    /// Does this probe attach uprobes to the processes it watches?
    pub fn uses_uprobes(&self) -> bool {
        self.tls || self.syscall_hooks == SyscallHooks::Libc
    }

    /// Is this tgid in the kernel's watched set?
    pub fn is_watched(&self, tgid: u32) -> bool {
        self.watched.get(&tgid, 0).is_ok()
    }

    /// The loss counters summed over CPUs, by slot.
    pub fn loss_totals(&self) -> Result<[u64; LOSS_SLOTS as usize], ProbeError> {
        let mut out = [0u64; LOSS_SLOTS as usize];
        for (slot, total) in out.iter_mut().enumerate() {
            let per_cpu = self.loss.get(&(slot as u32), 0).map_err(|e| ProbeError::Map("loss".into(), e))?;
            *total = per_cpu.iter().sum();
        }
        Ok(out)
    }
}

/// A program of the object by name, as its concrete type.
pub fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, ProbeError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let p = ebpf.program_mut(name).ok_or_else(|| ProbeError::MissingProgram(name.to_string()))?;
    p.try_into().map_err(|e| ProbeError::Program(name.to_string(), e))
}
