//! Per-process OpenSSL uprobes: libssl is found through /proc/PID/maps and
//! /proc/PID/root, and every probe is attached with `UProbeScope::OneProcess`,
//! so processes that are not watched never trap on SSL calls.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::os::unix::fs::MetadataExt;

use aya::programs::uprobe::{UProbeLink, UProbeScope};
use aya::programs::UProbe;
use aya::Ebpf;

use super::kernel::program;
use super::ProbeError;
use crate::procfs;

/// Every SSL program in the object (loaded at start, attached per process).
pub const SSL_PROGRAMS: [&str; 10] = [
    "ssl_write_enter",
    "ssl_write_exit",
    "ssl_read_enter",
    "ssl_read_exit",
    "ssl_write_ex_enter",
    "ssl_write_ex_exit",
    "ssl_read_ex_enter",
    "ssl_read_ex_exit",
    "ssl_handshake_enter",
    "ssl_handshake_exit",
];

/// (program, libssl symbol). Handshake and shutdown only pair SSL* with its fd and mark TLS.
const ATTACH_POINTS: [(&str, &str); 16] = [
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
];

#[derive(Default)]
struct PidAttachments {
    /// (dev, inode) of each libssl already probed for this process.
    libraries: HashSet<(u64, u64)>,
    /// Owned links: dropping one detaches it.
    links: Vec<UProbeLink>,
}

/// The uprobe links of every watched process.
pub struct SslAttachments {
    per_pid: HashMap<u32, PidAttachments>,
    /// Attach calls that failed (symbol missing, process gone), for the metrics.
    pub failures: u64,
    /// Detaching a uprobe waits for an RCU grace period (~100 ms each): links are dropped on
    /// this thread so the ring-buffer reader never waits for it.
    janitor: Option<std::sync::mpsc::Sender<Vec<UProbeLink>>>,
}

impl Default for SslAttachments {
    fn default() -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<UProbeLink>>();
        let janitor = std::thread::Builder::new()
            .name("chainwatch-uprobe-detach".into())
            .spawn(move || {
                for links in rx {
                    drop(links);
                }
            })
            .ok()
            .map(|_| tx);
        SslAttachments { per_pid: HashMap::new(), failures: 0, janitor }
    }
}

impl SslAttachments {
    /// Processes with at least one library probed.
    pub fn attached_pids(&self) -> Vec<u32> {
        self.per_pid.iter().filter(|(_, a)| !a.links.is_empty()).map(|(p, _)| *p).collect()
    }

    /// Attach to every libssl the process has or will load that is not probed yet.
    /// Returns the number of libraries newly probed.
    pub fn attach(&mut self, ebpf: &mut Ebpf, tgid: u32) -> Result<usize, ProbeError> {
        let Some(pid) = NonZeroU32::new(tgid) else { return Ok(0) };
        self.attach_scoped(ebpf, tgid, tgid, UProbeScope::OneProcess(pid))
    }

    /// Attach to the host's libssl for every process (the `all` selector asked for it).
    /// Recorded under key 0. Every process that calls SSL_* then traps, watched or not.
    pub fn attach_system_wide(&mut self, ebpf: &mut Ebpf) -> Result<usize, ProbeError> {
        self.attach_scoped(ebpf, 0, 1, UProbeScope::AllProcesses)
    }

    fn attach_scoped(&mut self, ebpf: &mut Ebpf, key_pid: u32, lookup_pid: u32, scope: UProbeScope) -> Result<usize, ProbeError> {
        let mut added = 0;
        let started = std::time::Instant::now();
        for lib in procfs::libssl_candidates(lookup_pid) {
            let Ok(meta) = std::fs::metadata(&lib) else { continue };
            let key = (meta.dev(), meta.ino());
            let entry = self.per_pid.entry(key_pid).or_default();
            if !entry.libraries.insert(key) {
                continue;
            }
            for (prog, symbol) in ATTACH_POINTS {
                let p: &mut UProbe = program(ebpf, prog)?;
                match p.attach(symbol, &lib, scope).and_then(|id| p.take_link(id)) {
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
            tracing::debug!(key_pid, added, elapsed_us = started.elapsed().as_micros() as u64, "SSL uprobes attached");
        }
        Ok(added)
    }

    /// Detach everything attached for a process (it exited or is no longer watched).
    pub fn detach(&mut self, tgid: u32) {
        let Some(entry) = self.per_pid.remove(&tgid) else { return };
        match &self.janitor {
            Some(j) => {
                if let Err(e) = j.send(entry.links) {
                    drop(e.0);
                }
            }
            None => drop(entry.links),
        }
    }
}
