//! `HoldGuardian`: a child process that lets the processes held at exec run when the probe dies
//! without stopping (SIGKILL, OOM kill, abort).
//!
//! The kernel program stops a watched process at exec (SIGSTOP) and puts it in the `held` map;
//! the probe's reader continues it once its uprobes are attached, and the probe continues every
//! held process when it stops. A probe killed in between would leave those processes stopped
//! for good: the agents it watches would hang. The guardian keeps only the `held` map's fd and
//! waits for its parent to go; then the probe's programs are detached (their links died with
//! it, so nothing new is held), and it sends SIGCONT to every process left in the map, twice
//! 100 ms apart (a hold the dying probe's program was still making), and exits.

use std::os::fd::{AsRawFd, BorrowedFd};

/// How often the guardian looks whether its parent is still there.
const POLL_US: u32 = 200_000;
/// Keys read from the map at most per pass (its `max_entries` in chainwatch.bpf.c).
const MAX_HELD: usize = 4_096;

/// The guardian process; killed and reaped on drop (after the probe continued what it held).
pub struct HoldGuardian {
    pid: i32,
}

impl HoldGuardian {
    /// Fork the guardian of the `held` map `held` (u32 tgid keys).
    pub fn start(held: BorrowedFd<'_>) -> std::io::Result<HoldGuardian> {
        let fd = held.as_raw_fd();
        // SAFETY: after fork the child calls only async-signal-safe functions (syscall, signal,
        // usleep, getppid, kill, _exit) on memory of its own stack, as fork in a multithreaded
        // process requires.
        let parent = unsafe { libc::getpid() };
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => Err(std::io::Error::last_os_error()),
            0 => unsafe {
                // keep the map's fd only
                if fd > 0 {
                    libc::syscall(libc::SYS_close_range, 0u32, (fd - 1) as u32, 0u32);
                }
                libc::syscall(libc::SYS_close_range, (fd + 1) as u32, u32::MAX, 0u32);
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
                while libc::getppid() == parent {
                    libc::usleep(POLL_US);
                }
                continue_held(fd);
                libc::usleep(100_000);
                continue_held(fd);
                libc::_exit(0)
            },
            pid => Ok(HoldGuardian { pid }),
        }
    }
}

impl Drop for HoldGuardian {
    fn drop(&mut self) {
        // SAFETY: our own child; waitpid reaps exactly it.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
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
