//! /proc readers: processes and TCP connections that existed before the probe
//! started, shared library (libssl, libc) discovery from /proc/PID/maps and /proc/PID/root, and
//! container id / Kubernetes pod uid from /proc/PID/cgroup.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::events::SocketTuple;

/// A process as /proc shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcSnapshot {
    pub tgid: u32,
    pub ppid: u32,
    pub comm: String,
    pub exe: String,
    pub argv: Vec<String>,
    pub uid: u32,
    /// Start time since boot in whole clock ticks, as ns: the same value the kernel's process
    /// events carry (see `ProcessEvent::start_ns`).
    pub start_ns: u64,
}

/// Every tgid in /proc.
pub fn all_tgids() -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else { return Vec::new() };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).collect()
}

/// Parse /proc/PID/stat: (comm, ppid, starttime ticks). comm may hold spaces and parentheses.
pub fn parse_stat(stat: &str) -> Option<(String, u32, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // rest[0] = state (field 3), rest[1] = ppid (field 4), starttime is field 22 = rest[19]
    let ppid = rest.get(1)?.parse().ok()?;
    let start = rest.get(19)?.parse().ok()?;
    Some((comm, ppid, start))
}

/// Whether a process still runs: it exists and is not a zombie (exited, not yet reaped by its
/// parent) or dead. kill(pid, 0) alone says "alive" for a zombie.
pub fn is_running(tgid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{tgid}/stat")) else { return false };
    !matches!(stat_state(&stat), Some("Z" | "X" | "x") | None)
}

/// The state field of a /proc/PID/stat line ("R", "S", "T", "Z", ...).
pub fn stat_state(stat: &str) -> Option<&str> {
    stat.rfind(')').and_then(|c| stat.get(c + 1..)).and_then(|r| r.split_whitespace().next())
}

/// A snapshot of one process, or None if it is gone.
pub fn snapshot(tgid: u32) -> Option<ProcSnapshot> {
    let stat = std::fs::read_to_string(format!("/proc/{tgid}/stat")).ok()?;
    let (comm, ppid, ticks) = parse_stat(&stat)?;
    let cmdline = std::fs::read(format!("/proc/{tgid}/cmdline")).unwrap_or_default();
    let exe = std::fs::read_link(format!("/proc/{tgid}/exe")).map(|p| p.display().to_string()).unwrap_or_default();
    let uid = std::fs::metadata(format!("/proc/{tgid}")).map(|m| m.uid()).unwrap_or(0);
    Some(ProcSnapshot {
        tgid,
        ppid,
        comm,
        exe,
        argv: crate::events::split_argv(&cmdline),
        uid,
        start_ns: ticks.saturating_mul(crate::events::clock_tick_ns()),
    })
}

/// tgid -> ppid for every process.
pub fn parent_map() -> HashMap<u32, u32> {
    all_tgids()
        .into_iter()
        .filter_map(|t| {
            let stat = std::fs::read_to_string(format!("/proc/{t}/stat")).ok()?;
            Some((t, parse_stat(&stat)?.1))
        })
        .collect()
}

/// `root` and all its living descendants.
pub fn process_tree(root: u32) -> Vec<u32> {
    let parents = parent_map();
    let mut out = vec![root];
    let mut seen: HashSet<u32> = HashSet::from([root]);
    let mut i = 0;
    while let Some(&p) = out.get(i) {
        for (&child, &parent) in &parents {
            if parent == p && seen.insert(child) {
                out.push(child);
            }
        }
        i += 1;
    }
    out
}

/// Container id and Kubernetes pod uid from the text of /proc/PID/cgroup.
///
/// Recognises `.../kubepods.../pod<uid>/<id>`, `kubepods-...-pod<uid_with_underscores>.slice`,
/// `docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope` and `/docker/<id>`.
pub fn container_of(cgroup_text: &str) -> (Option<String>, Option<String>) {
    let mut container = None;
    let mut pod = None;
    for line in cgroup_text.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        for part in path.split('/') {
            if let Some(uid) = pod_uid_of(part) {
                pod = Some(uid);
            }
            if let Some(id) = container_id_of(part) {
                container = Some(id);
            }
        }
    }
    (container, pod)
}

fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn container_id_of(part: &str) -> Option<String> {
    let trimmed = part.strip_suffix(".scope").unwrap_or(part);
    let id = ["docker-", "cri-containerd-", "crio-", "libpod-"]
        .iter()
        .find_map(|p| trimmed.strip_prefix(p))
        .unwrap_or(trimmed);
    is_hex_id(id).then(|| id.to_string())
}

fn pod_uid_of(part: &str) -> Option<String> {
    // systemd driver: kubepods-burstable-pod1234_5678....slice ; cgroupfs: pod1234-5678-...
    let idx = part.rfind("pod")?;
    let rest = part.get(idx + 3..)?;
    let rest = rest.strip_suffix(".slice").unwrap_or(rest);
    let uid = rest.replace('_', "-");
    let ok = uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    ok.then_some(uid)
}

/// Container id and pod uid of a running process.
pub fn container_of_pid(tgid: u32) -> (Option<String>, Option<String>) {
    std::fs::read_to_string(format!("/proc/{tgid}/cgroup")).map(|t| container_of(&t)).unwrap_or((None, None))
}

/// The cgroup v2 id (the cgroup directory's inode) of a cgroup path such as
/// `/sys/fs/cgroup/unified/system.slice/foo.service`, as bpf_get_current_cgroup_id() reports it.
pub fn cgroup_id_of_path(path: &Path) -> std::io::Result<u64> {
    Ok(std::fs::metadata(path)?.ino())
}

/// Candidate libssl.so.3 files a process uses or will load (see `library_candidates`).
pub fn libssl_candidates(tgid: u32) -> Vec<PathBuf> {
    library_candidates(tgid, "libssl.so", &["libssl.so.3"])
}

/// Candidate libc.so.6 files a process uses or will load (see `library_candidates`).
pub fn libc_candidates(tgid: u32) -> Vec<PathBuf> {
    library_candidates(tgid, "libc.so", &["libc.so.6"])
}

/// Candidate files of a shared library a process uses or will load, as host paths, one per
/// (dev, inode): mapped files whose name contains `maps_needle` (/proc/PID/maps), then
/// `file_names` in the usual library directories of the process's root. Before the library is
/// mapped (at exec ld.so has not loaded libc yet; libssl may be dlopen'ed much later) the
/// directories are what finds it, so per-process uprobes are in place when it gets mapped.
pub fn library_candidates(tgid: u32, maps_needle: &str, file_names: &[&str]) -> Vec<PathBuf> {
    let root = PathBuf::from(format!("/proc/{tgid}/root"));
    let mut paths: Vec<PathBuf> = Vec::new();
    if let Ok(maps) = std::fs::read_to_string(format!("/proc/{tgid}/maps")) {
        for p in libraries_in_maps(&maps, maps_needle) {
            paths.push(root.join(p.trim_start_matches('/')));
        }
    }
    for dir in [
        "usr/lib/x86_64-linux-gnu",
        "lib/x86_64-linux-gnu",
        "usr/lib64",
        "lib64",
        "usr/lib",
        "lib",
        "usr/local/lib",
        "usr/local/lib64",
    ] {
        for name in file_names {
            paths.push(root.join(dir).join(name));
        }
    }
    let mut seen = HashSet::new();
    paths
        .into_iter()
        .filter(|p| match std::fs::metadata(p) {
            Ok(m) => m.is_file() && seen.insert((m.dev(), m.ino())),
            Err(_) => false,
        })
        .collect()
}

/// Paths in a /proc/PID/maps text whose file name contains `needle`.
pub fn libraries_in_maps(maps: &str, needle: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in maps.lines() {
        // address perms offset dev inode path
        let Some(path) = line.split_whitespace().nth(5) else { continue };
        let name = path.rsplit('/').next().unwrap_or(path);
        if name.contains(needle) && path.starts_with('/') && !out.iter().any(|p| p == path) {
            out.push(path.to_string());
        }
    }
    out
}

/// (fd, socket inode) of every socket a process holds.
pub fn socket_fds(tgid: u32) -> Vec<(i32, u64)> {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{tgid}/fd")) else { return Vec::new() };
    rd.filter_map(|e| {
        let e = e.ok()?;
        let fd: i32 = e.file_name().to_str()?.parse().ok()?;
        let target = std::fs::read_link(e.path()).ok()?;
        let t = target.to_str()?;
        let inode = t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()?;
        Some((fd, inode))
    })
    .collect()
}

/// Established TCP sockets in a /proc/net/tcp or tcp6 text: inode -> tuple.
pub fn parse_proc_net_tcp(text: &str, v6: bool) -> HashMap<u64, SocketTuple> {
    let mut out = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(state), Some(inode)) = (f.get(1), f.get(2), f.get(3), f.get(9)) else {
            continue;
        };
        if *state != "01" {
            continue; // only ESTABLISHED
        }
        let (Some(l), Some(r), Ok(inode)) = (parse_hex_addr(local, v6), parse_hex_addr(remote, v6), inode.parse()) else {
            continue;
        };
        out.insert(inode, SocketTuple { local: l, remote: r });
    }
    out
}

fn parse_hex_addr(s: &str, v6: bool) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = if v6 {
        if ip.len() != 32 {
            return None;
        }
        let mut b = [0u8; 16];
        for (i, chunk) in b.chunks_mut(4).enumerate() {
            let word = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
            chunk.copy_from_slice(&word.to_le_bytes()); // each 32-bit word is printed in host order
        }
        IpAddr::V6(Ipv6Addr::from(b))
    } else {
        let word = u32::from_str_radix(ip, 16).ok()?;
        IpAddr::V4(Ipv4Addr::from(word.to_le_bytes()))
    };
    Some(SocketAddr::new(ip, port))
}

/// Established TCP connections of a process: (fd, tuple).
pub fn tcp_connections(tgid: u32) -> Vec<(i32, SocketTuple)> {
    let mut by_inode = HashMap::new();
    for (file, v6) in [("tcp", false), ("tcp6", true)] {
        if let Ok(t) = std::fs::read_to_string(format!("/proc/{tgid}/net/{file}")) {
            by_inode.extend(parse_proc_net_tcp(&t, v6));
        }
    }
    socket_fds(tgid).into_iter().filter_map(|(fd, ino)| Some((fd, *by_inode.get(&ino)?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zombie_is_not_running() {
        let mut child = std::process::Command::new("/bin/true").spawn().expect("true");
        let pid = child.id();
        // not reaped yet: a zombie once it exited
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while is_running(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!is_running(pid), "an exited, unreaped child is not running");
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "it is still a zombie");
        let _ = child.wait();
        assert!(is_running(std::process::id()));
    }

    #[test]
    fn stat_with_odd_comm() {
        let s = "42 (we ird) x) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 1000 10 18446744073709551615";
        assert_eq!(parse_stat(s), Some(("we ird) x".to_string(), 7, 12345)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn kubernetes_and_docker_cgroups() {
        let k = "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_0000_1111_2222_333344445555.slice/cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n";
        let (c, p) = container_of(k);
        assert_eq!(c.as_deref(), Some("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
        assert_eq!(p.as_deref(), Some("1b2c3d4e-0000-1111-2222-333344445555"));
        let d = "0::/system.slice/docker-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.scope\n";
        assert_eq!(container_of(d).0.map(|s| s.len()), Some(64));
        assert_eq!(container_of("0::/user.slice/session-1.scope\n"), (None, None));
    }

    #[test]
    fn maps_lines() {
        let maps = "7f00-7f01 r--p 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3\n7f01-7f02 r-xp 00001000 08:01 123 /usr/lib/x86_64-linux-gnu/libssl.so.3\n7f02-7f03 rw-p 0 0 0 [heap]\n";
        assert_eq!(libraries_in_maps(maps, "libssl.so"), vec!["/usr/lib/x86_64-linux-gnu/libssl.so.3"]);
        let maps = "7f00-7f01 r-xp 0 08:01 5 /usr/lib/x86_64-linux-gnu/libcrypto.so.3\n7f01-7f02 r-xp 0 08:01 6 /usr/lib/x86_64-linux-gnu/libc.so.6\n";
        assert_eq!(libraries_in_maps(maps, "libc.so"), vec!["/usr/lib/x86_64-linux-gnu/libc.so.6"]);
    }

    #[test]
    fn proc_net_tcp() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 20 4 30 10 -1\n   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1\n";
        let m = parse_proc_net_tcp(t, false);
        assert_eq!(m.len(), 1);
        let tuple = m.get(&4242).copied().unwrap();
        assert_eq!(tuple.local, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(tuple.remote.port(), 0xA1B2);
        let t6 = "header\n 0: 00000000000000000000000001000000:1F90 00000000000000000000000001000000:C000 01 0:0 0:0 0 0 0 77 1\n";
        let m6 = parse_proc_net_tcp(t6, true);
        assert_eq!(m6.get(&77).map(|t| t.local), Some("[::1]:8080".parse().unwrap()));
    }

    #[test]
    fn this_process_is_visible() {
        let me = std::process::id();
        let s = snapshot(me).unwrap();
        assert_eq!(s.tgid, me);
        assert!(process_tree(me).contains(&me));
        // this test binary links glibc dynamically: its libc is found
        assert!(!libc_candidates(me).is_empty(), "no libc found for the test binary");
    }
}
