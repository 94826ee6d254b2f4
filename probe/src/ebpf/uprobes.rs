//! Per-process uprobes on a shared library: OpenSSL (TLS plaintext) and, with
//! `SyscallHooks::Libc`, libc's socket-call wrappers. The library is found through
//! /proc/PID/maps and the library dirs under /proc/PID/root (before it is mapped: a uprobe on a
//! file is installed when the process maps it later), and every probe is attached to the one
//! process (a perf event on a named uprobe event, `uprobe_events.rs`, or aya's
//! `UProbeScope::OneProcess`), so processes that are not watched never trap.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aya::programs::uprobe::{UProbeAttachLocation, UProbeLink, UProbeScope};
use aya::programs::UProbe;
use aya::Ebpf;

use super::kernel::program;
use super::uprobe_events::{UprobeEvents, UprobeEventsError};
use super::ProbeError;
use crate::procfs;

/// One hooked library: how to find it and which program goes on which symbol.
pub struct HookedLibrary {
    /// For logs: "libssl", "libc".
    pub name: &'static str,
    /// Mapped files whose name contains this are the library (`/proc/PID/maps`).
    pub maps_needle: &'static str,
    /// File names tried in the usual library dirs of the process's root before it is mapped.
    pub file_names: &'static [&'static str],
    /// (program, symbol) pairs; a program may serve several symbols.
    pub attach_points: &'static [(&'static str, &'static str)],
    /// Attach past glibc's single-thread check when a function starts with it (see
    /// `past_single_thread_check`).
    pub skip_single_thread_check: bool,
}

impl HookedLibrary {
    /// Every program named in the attach points, once (to load them at start).
    pub fn programs(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for (p, _) in self.attach_points {
            if !out.contains(p) {
                out.push(p);
            }
        }
        out
    }
}

/// OpenSSL. Handshake and shutdown only pair SSL* with its fd and mark TLS.
pub const LIBSSL: HookedLibrary = HookedLibrary {
    name: "libssl",
    maps_needle: "libssl.so",
    file_names: &["libssl.so.3"],
    skip_single_thread_check: false,
    attach_points: &[
        ("ssl_write_enter", "SSL_write"),
        ("ssl_write_exit", "SSL_write"),
        ("ssl_read_enter", "SSL_read"),
        ("ssl_read_exit", "SSL_read"),
        ("ssl_write_ex_enter", "SSL_write_ex"),
        ("ssl_write_ex_exit", "SSL_write_ex"),
        ("ssl_read_ex_enter", "SSL_read_ex"),
        ("ssl_read_ex_exit", "SSL_read_ex"),
        ("ssl_handshake_enter", "SSL_do_handshake"),
        ("ssl_handshake_exit", "SSL_do_handshake"),
        ("ssl_handshake_enter", "SSL_connect"),
        ("ssl_handshake_exit", "SSL_connect"),
        ("ssl_handshake_enter", "SSL_accept"),
        ("ssl_handshake_exit", "SSL_accept"),
        ("ssl_handshake_enter", "SSL_shutdown"),
        ("ssl_handshake_exit", "SSL_shutdown"),
    ],
};

/// glibc's socket-call wrappers (`SyscallHooks::Libc`): the same program bodies as the syscall
/// tracepoints (chainwatch.bpf.c). OpenSSL's socket BIO calls read/write through libc, so the
/// "socket call under an SSL call" pairing works as with the tracepoints.
pub const LIBC: HookedLibrary = HookedLibrary {
    name: "libc",
    maps_needle: "libc.so",
    file_names: &["libc.so.6"],
    skip_single_thread_check: true,
    attach_points: &[
        ("libc_enter_send_buf", "write"),
        ("libc_exit_data", "write"),
        ("libc_enter_send_buf", "send"),
        ("libc_exit_data", "send"),
        ("libc_enter_send_buf", "sendto"),
        ("libc_exit_data", "sendto"),
        ("libc_enter_recv_buf", "read"),
        ("libc_exit_data", "read"),
        ("libc_enter_recv_buf", "recv"),
        ("libc_exit_data", "recv"),
        ("libc_enter_recv_buf", "recvfrom"),
        ("libc_exit_data", "recvfrom"),
        ("libc_enter_writev", "writev"),
        ("libc_exit_data", "writev"),
        ("libc_enter_readv", "readv"),
        ("libc_exit_data", "readv"),
        ("libc_enter_sendmsg", "sendmsg"),
        ("libc_exit_data", "sendmsg"),
        ("libc_enter_recvmsg", "recvmsg"),
        ("libc_exit_data", "recvmsg"),
        ("libc_enter_connect", "connect"),
        ("libc_exit_connect", "connect"),
        ("libc_enter_accept", "accept"),
        ("libc_exit_accept", "accept"),
        ("libc_enter_accept", "accept4"),
        ("libc_exit_accept", "accept4"),
        ("libc_enter_close", "close"),
    ],
};

/// Candidate files of `lib` that process `tgid` uses or will load, as host paths.
pub fn library_candidates(lib: &HookedLibrary, tgid: u32) -> Vec<PathBuf> {
    procfs::library_candidates(tgid, lib.maps_needle, lib.file_names)
}

/// Library files whose symbol offsets are remembered; past this the cache is cleared.
const MAX_CACHED_LIBRARIES: usize = 256;
/// Links waiting for the janitor past which it no longer gives way to attaches.
const MAX_DETACH_BACKLOG: usize = 16_384;
/// The janitor starts no detach until this long after the last attach ended: attaches come in
/// bursts (a script starting children), and each detach started in a burst delays the next attach.
const DETACH_QUIET_MS: u64 = 250;

/// Drops uprobe links on its own thread. Closing a uprobe's perf event waits for a grace period
/// (~100 ms here), and the kernel serialises these closes and makes uprobe attaches wait for the
/// one in flight (measured: perf_event_open 30 us alone, up to 100 ms during a close): so the
/// janitor gives way while an attach is in progress (a process held at exec waits for its
/// attach), unless its backlog is too long. The kernel detaches about 10 uprobes per second this
/// way, so each watched process that exits costs it ~4 s of background work in libc mode
/// (43 uprobes with libssl), ~1.6 s with the SSL uprobes alone.
#[derive(Clone)]
pub struct Janitor {
    tx: Option<std::sync::mpsc::Sender<Vec<UProbeLink>>>,
    attaching: Arc<AtomicUsize>,
    backlog: Arc<AtomicUsize>,
    /// When the last attach ended, ms since `epoch`.
    last_attach_ms: Arc<AtomicU64>,
    epoch: Instant,
}

impl Janitor {
    /// The process's janitor: probes in one process share it, so one probe's attach is not
    /// slowed by another probe's detaches.
    pub fn shared() -> Janitor {
        static SHARED: std::sync::OnceLock<Janitor> = std::sync::OnceLock::new();
        SHARED.get_or_init(Janitor::new).clone()
    }

    fn new() -> Janitor {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<UProbeLink>>();
        let attaching = Arc::new(AtomicUsize::new(0));
        let backlog = Arc::new(AtomicUsize::new(0));
        let last_attach_ms = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let (a, b, last) = (attaching.clone(), backlog.clone(), last_attach_ms.clone());
        let tx = std::thread::Builder::new()
            .name("chainwatch-uprobe-detach".into())
            .spawn(move || {
                let busy = || {
                    let since_attach = (epoch.elapsed().as_millis() as u64).saturating_sub(last.load(Ordering::Acquire));
                    (a.load(Ordering::Acquire) > 0 || since_attach < DETACH_QUIET_MS)
                        && b.load(Ordering::Relaxed) < MAX_DETACH_BACKLOG
                };
                for links in rx {
                    for link in links {
                        while busy() {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        drop(link);
                        b.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            })
            .ok()
            .map(|_| tx);
        Janitor { tx, attaching, backlog, last_attach_ms, epoch }
    }

    /// Detach these links later, on the janitor's thread (now if it has none).
    fn detach(&self, links: Vec<UProbeLink>) {
        let n = links.len();
        match &self.tx {
            Some(tx) => {
                self.backlog.fetch_add(n, Ordering::Relaxed);
                if let Err(e) = tx.send(links) {
                    self.backlog.fetch_sub(n, Ordering::Relaxed);
                    drop(e.0);
                }
            }
            None => drop(links),
        }
    }

    /// Links waiting to be closed (probes in this process share them).
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    /// The janitor starts no detach while the returned guard lives.
    pub fn attaching(&self) -> AttachGuard<'_> {
        self.attaching.fetch_add(1, Ordering::AcqRel);
        AttachGuard(self)
    }
}

/// See `Janitor::attaching`.
pub struct AttachGuard<'a>(&'a Janitor);

impl Drop for AttachGuard<'_> {
    fn drop(&mut self) {
        let j = self.0;
        j.last_attach_ms.store(j.epoch.elapsed().as_millis() as u64, Ordering::Release);
        j.attaching.fetch_sub(1, Ordering::AcqRel);
    }
}

/// glibc's cancellable syscall wrappers start with `cmpb $0x0,__libc_single_threaded(%rip)`
/// (7 bytes), sometimes `mov %ecx,%r10d` (3), then `je`. A uprobe on that first instruction is
/// single-stepped out of line (a RIP-relative operand), which costs ~14 us per call on the
/// project's VM; on the `je` the kernel emulates the instruction (measured with perf probes on
/// nginx: 3 probes per request took it from ~60,000 to ~17,000 requests/s at +0, ~55,000 at the
/// `je`). Neither instruction touches the stack or the argument registers, so entry arguments
/// and the return address a uretprobe hijacks are the same there. Returns how many bytes to skip
/// (0 when the code does not look exactly like that).
pub fn past_single_thread_check(code: &[u8]) -> u64 {
    let cmpb_rip_zero = |c: &[u8]| c.len() >= 7 && c[0] == 0x80 && c[1] == 0x3d && c[6] == 0x00;
    if !cmpb_rip_zero(code) {
        return 0;
    }
    match code.get(7..) {
        Some([0x74, ..]) => 7,
        Some([0x41, 0x89, 0xca, 0x74, ..]) => 10,
        _ => 0,
    }
}

/// File offsets of `symbols` in the ELF file at `path` (dynamic symbols, then the symbol table),
/// translated as the kernel wants them: virtual address - section address + section file offset;
/// with `skip_single_thread_check`, moved past glibc's single-thread check (see
/// `past_single_thread_check`). Symbols not found are left out.
pub fn symbol_offsets(path: &Path, symbols: &[&'static str], skip_single_thread_check: bool) -> HashMap<&'static str, u64> {
    use object::{Object, ObjectSection, ObjectSymbol};
    let mut out = HashMap::new();
    let Ok(data) = std::fs::read(path) else { return out };
    let Ok(obj) = object::read::File::parse(&*data) else { return out };
    let translate = matches!(obj.kind(), object::ObjectKind::Dynamic | object::ObjectKind::Executable);
    for sym in obj.dynamic_symbols().chain(obj.symbols()) {
        let Ok(name) = sym.name() else { continue };
        let Some(wanted) = symbols.iter().find(|s| **s == name) else { continue };
        if out.contains_key(wanted) || sym.is_undefined() {
            continue;
        }
        let offset = if translate {
            let Some(section) = sym.section_index().and_then(|i| obj.section_by_index(i).ok()) else { continue };
            let Some((file_offset, _)) = section.file_range() else { continue };
            let Some(off) = sym.address().checked_sub(section.address()).and_then(|o| o.checked_add(file_offset)) else {
                continue;
            };
            off
        } else {
            sym.address()
        };
        let skip = match data.get(offset as usize..) {
            Some(code) if skip_single_thread_check => past_single_thread_check(&code[..code.len().min(16)]),
            _ => 0,
        };
        out.insert(*wanted, offset + skip);
    }
    out
}

#[derive(Default)]
struct PidAttachments {
    /// (dev, inode) of each copy of the library already probed for this process.
    libraries: HashSet<(u64, u64)>,
    /// Owned aya links (when named uprobe events are not available): dropping one detaches it,
    /// slowly (the janitor does it).
    links: Vec<UProbeLink>,
    /// Perf events on named uprobe events (`UprobeEvents`): dropping one detaches it at once.
    events: Vec<std::os::fd::OwnedFd>,
}

impl PidAttachments {
    fn is_empty(&self) -> bool {
        self.links.is_empty() && self.events.is_empty()
    }
}

/// The uprobe links of one library in every watched process.
pub struct LibraryHooks {
    library: &'static HookedLibrary,
    per_pid: HashMap<u32, PidAttachments>,
    /// Symbol -> file offset per library file (dev, inode), resolved once per file.
    offsets: HashMap<(u64, u64), HashMap<&'static str, u64>>,
    /// Attach calls that failed (symbol missing, process gone), for the metrics.
    pub failures: u64,
    /// Detaching a uprobe waits for an RCU grace period (~100 ms each): links are dropped on
    /// the janitor's thread so the ring-buffer reader never waits for it.
    janitor: Janitor,
}

impl LibraryHooks {
    pub fn new(library: &'static HookedLibrary, janitor: Janitor) -> Self {
        LibraryHooks { library, per_pid: HashMap::new(), offsets: HashMap::new(), failures: 0, janitor }
    }

    /// Whether the process has links of this library.
    pub fn is_attached(&self, tgid: u32) -> bool {
        self.per_pid.get(&tgid).is_some_and(|a| !a.is_empty())
    }

    /// Processes with at least one copy of the library probed.
    pub fn attached_pids(&self) -> Vec<u32> {
        self.per_pid.iter().filter(|(_, a)| !a.is_empty()).map(|(p, _)| *p).collect()
    }

    /// Attach to every copy of the library the process has or will load that is not probed
    /// yet: through `events` (named uprobe events) when given, else with aya's per-process
    /// uprobes (also where an event cannot be made). Returns the number of copies newly probed.
    pub fn attach(&mut self, ebpf: &mut Ebpf, events: Option<&mut UprobeEvents>, tgid: u32) -> Result<usize, ProbeError> {
        let Some(pid) = NonZeroU32::new(tgid) else { return Ok(0) };
        self.attach_scoped(ebpf, events, tgid, tgid, UProbeScope::OneProcess(pid))
    }

    /// Attach to the host's copy for every process (the `all` selector asked for it).
    /// Recorded under key 0. Every process that calls the library then traps, watched or not.
    pub fn attach_system_wide(&mut self, ebpf: &mut Ebpf) -> Result<usize, ProbeError> {
        self.attach_scoped(ebpf, None, 0, 1, UProbeScope::AllProcesses)
    }

    fn attach_scoped(
        &mut self,
        ebpf: &mut Ebpf,
        mut events: Option<&mut UprobeEvents>,
        key_pid: u32,
        lookup_pid: u32,
        scope: UProbeScope,
    ) -> Result<usize, ProbeError> {
        let mut added = 0;
        let started = std::time::Instant::now();
        for lib in library_candidates(self.library, lookup_pid) {
            let Ok(meta) = std::fs::metadata(&lib) else { continue };
            let key = (meta.dev(), meta.ino());
            let entry = self.per_pid.entry(key_pid).or_default();
            if !entry.libraries.insert(key) {
                continue;
            }
            if !self.offsets.contains_key(&key) {
                if self.offsets.len() >= MAX_CACHED_LIBRARIES {
                    self.offsets.clear();
                }
                let symbols: Vec<&'static str> = self.library.attach_points.iter().map(|(_, s)| *s).collect();
                self.offsets.insert(key, symbol_offsets(&lib, &symbols, self.library.skip_single_thread_check));
            }
            let offsets = self.offsets.get(&key);
            for (prog, symbol) in self.library.attach_points {
                let Some(offset) = offsets.and_then(|o| o.get(symbol)) else {
                    self.failures += 1;
                    tracing::debug!(key_pid, symbol, lib = %lib.display(), "symbol not found");
                    continue;
                };
                let p: &mut UProbe = program(ebpf, prog)?;
                if let Some(ev) = events.as_deref_mut() {
                    match ev.attach(prog, p, &lib, key, *offset, key_pid) {
                        Ok(fd) => {
                            entry.events.push(fd);
                            continue;
                        }
                        Err(e @ UprobeEventsError::PerfOpen { .. }) => {
                            // the process is gone (or the kernel refused it): aya would fail too
                            self.failures += 1;
                            tracing::debug!(key_pid, symbol, lib = %lib.display(), error = %e, "uprobe attach failed");
                            continue;
                        }
                        Err(e) => {
                            tracing::debug!(key_pid, symbol, lib = %lib.display(), error = %e, "named uprobe event unusable: aya uprobe instead");
                        }
                    }
                }
                match p.attach(UProbeAttachLocation::AbsoluteOffset(*offset), &lib, scope).and_then(|id| p.take_link(id)) {
                    Ok(link) => entry.links.push(link),
                    Err(e) => {
                        self.failures += 1;
                        tracing::debug!(key_pid, symbol, lib = %lib.display(), error = %e, "uprobe attach failed");
                    }
                }
            }
            added += 1;
        }
        if added > 0 {
            tracing::debug!(
                key_pid,
                library = self.library.name,
                added,
                elapsed_us = started.elapsed().as_micros() as u64,
                "uprobes attached"
            );
        }
        Ok(added)
    }

    /// Detach everything attached for a process (it exited or is no longer watched).
    pub fn detach(&mut self, tgid: u32) {
        let Some(entry) = self.per_pid.remove(&tgid) else { return };
        drop(entry.events);
        if !entry.links.is_empty() {
            self.janitor.detach(entry.links);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_single_thread_check_is_skipped_only_when_it_is_exactly_there() {
        // read: cmpb $0x0,0xe3331(%rip); je
        assert_eq!(past_single_thread_check(&[0x80, 0x3d, 0x31, 0x33, 0x0e, 0x00, 0x00, 0x74, 0x17, 0x31]), 7);
        // recv: cmpb ...; mov %ecx,%r10d; je
        assert_eq!(past_single_thread_check(&[0x80, 0x3d, 0xc1, 0x0c, 0x0d, 0x00, 0x00, 0x41, 0x89, 0xca, 0x74, 0x1c]), 10);
        // recvmsg: push %rbx first
        assert_eq!(past_single_thread_check(&[0x53, 0x48, 0x83, 0xec, 0x10, 0x80, 0x3d]), 0);
        // cmpb with another immediate, or something else after it, or too short
        assert_eq!(past_single_thread_check(&[0x80, 0x3d, 0, 0, 0, 0, 0x01, 0x74, 0x17]), 0);
        assert_eq!(past_single_thread_check(&[0x80, 0x3d, 0, 0, 0, 0, 0x00, 0x75, 0x17]), 0);
        assert_eq!(past_single_thread_check(&[0x80, 0x3d, 0, 0]), 0);
        assert_eq!(past_single_thread_check(&[]), 0);
    }

    #[test]
    fn this_machines_libc_wrappers_resolve() {
        let Some(libc) = library_candidates(&LIBC, std::process::id()).into_iter().next() else {
            panic!("no libc found for the test binary");
        };
        let symbols: Vec<&'static str> = LIBC.attach_points.iter().map(|(_, s)| *s).collect();
        let plain = symbol_offsets(&libc, &symbols, false);
        let skipped = symbol_offsets(&libc, &symbols, true);
        for s in &symbols {
            let (Some(p), Some(k)) = (plain.get(s), skipped.get(s)) else { panic!("{s} not found in {}", libc.display()) };
            assert!(*k == *p || *k == *p + 7 || *k == *p + 10, "{s}: {p:#x} -> {k:#x}");
        }
    }
}
