//! `WatcherChild`: a forked child of the probe that waits for the probe's process to die, for
//! the jobs that need a process of their own or must outlive the probe by a moment (the named
//! uprobe events' anchor, the exec-hold guardian). It holds no fd but the one it is given (a
//! copy of the probe's sockets or links would outlive their close in the probe), ignores SIGINT
//! and SIGTERM (sent to the probe's process group on shutdown), notices its parent's death
//! within 200 ms, and is killed and reaped on drop.

use std::os::fd::RawFd;

/// How often the child looks whether its parent is still there.
const POLL_US: u32 = 200_000;

/// The forked child; killed and reaped on drop.
pub struct WatcherChild {
    pid: i32,
}

impl WatcherChild {
    /// Fork the child. It closes every fd but `keep_fd`, waits until this process is gone, runs
    /// `on_orphaned(keep_fd)` and exits. `on_orphaned` runs in the forked child of a
    /// multithreaded process: async-signal-safe calls only, no allocation.
    pub fn start(keep_fd: Option<RawFd>, on_orphaned: fn(Option<RawFd>)) -> std::io::Result<WatcherChild> {
        // SAFETY: after fork the child calls only async-signal-safe functions (syscall, signal,
        // usleep, getppid, _exit, and `on_orphaned`, bound to the same), as fork in a
        // multithreaded process requires.
        let parent = unsafe { libc::getpid() };
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => Err(std::io::Error::last_os_error()),
            0 => unsafe {
                match keep_fd {
                    Some(fd) if fd >= 0 => {
                        if fd > 0 {
                            libc::syscall(libc::SYS_close_range, 0u32, (fd - 1) as u32, 0u32);
                        }
                        libc::syscall(libc::SYS_close_range, (fd + 1) as u32, u32::MAX, 0u32);
                    }
                    _ => {
                        libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
                    }
                }
                libc::signal(libc::SIGINT, libc::SIG_IGN);
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
                while libc::getppid() == parent {
                    libc::usleep(POLL_US);
                }
                on_orphaned(keep_fd);
                libc::_exit(0)
            },
            pid => Ok(WatcherChild { pid }),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }
}

impl Drop for WatcherChild {
    fn drop(&mut self) {
        // SAFETY: our own child; waitpid reaps exactly it.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}
