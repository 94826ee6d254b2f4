//! The exec-hold guardian: a child process that lets the processes held at exec run when the
//! probe dies without stopping (SIGKILL, OOM kill, abort).
//!
//! The kernel program stops a watched process at exec (SIGSTOP) and puts it in the `held` map;
//! the probe's reader continues it once its uprobes are attached, and the probe continues every
//! held process when it stops. A probe killed in between would leave those processes stopped
//! for good: the agents it watches would hang. The guardian keeps only the `held` map's fd and
//! waits for its parent to go; then the probe's programs are detached (their links died with
//! it, so nothing new is held), and it sends SIGCONT to every process left in the map, twice
//! 100 ms apart (a hold the dying probe's program was still making), and exits.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use super::watcher_child::WatcherChild;

/// Keys read from the map at most per pass (its `max_entries` in chainwatch.bpf.c).
const MAX_HELD: usize = 4_096;

/// Fork the guardian of the `held` map `held` (u32 tgid keys); killed and reaped when dropped
/// (after the probe continued what it held).
pub fn start(held: BorrowedFd<'_>) -> std::io::Result<WatcherChild> {
    WatcherChild::start(Some(held.as_raw_fd()), release_all)
}

/// In the guardian, once the probe is gone: continue what the map holds, twice.
fn release_all(held: Option<RawFd>) {
    if let Some(fd) = held {
        continue_held(fd);
        // SAFETY: usleep has no preconditions.
        unsafe { libc::usleep(100_000) };
        continue_held(fd);
    }
}

/// `union bpf_attr` as BPF_MAP_GET_NEXT_KEY reads it.
#[repr(C)]
struct NextKeyAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    next_key: u64,
    flags: u64,
}

const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;

/// SIGCONT to every tgid in the map. Async-signal-safe: raw syscalls on stack memory.
fn continue_held(fd: i32) {
    let mut key: u32 = 0;
    let mut next: u32 = 0;
    let mut first = true;
    for _ in 0..MAX_HELD {
        let attr = NextKeyAttr {
            map_fd: fd as u32,
            _pad: 0,
            // a null key asks for the first one
            key: if first { 0 } else { &key as *const u32 as u64 },
            next_key: &mut next as *mut u32 as u64,
            flags: 0,
        };
        // SAFETY: the attr and both keys live on this stack for the call; the kernel writes
        // four bytes to `next`.
        let r = unsafe { libc::syscall(libc::SYS_bpf, BPF_MAP_GET_NEXT_KEY, &attr as *const NextKeyAttr, size_of::<NextKeyAttr>() as u32) };
        if r != 0 {
            return; // ENOENT: no more keys
        }
        // pid 0 would signal the whole process group: never a tgid the program holds
        if next != 0 {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(next as i32, libc::SIGCONT) };
        }
        key = next;
        first = false;
    }
}
