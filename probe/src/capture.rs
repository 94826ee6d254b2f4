//! `run_capture`: start a command stopped, watch it, let it run, and yield the
//! events of it and its descendants until they have all exited (what
//! `chainwatch capture -- CMD` prints).

use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long an exited process may take to be reported before /proc is trusted instead.
const EXIT_GRACE: Duration = Duration::from_secs(2);

use tokio::sync::mpsc;

use crate::ebpf::{Probe, ProbeConfig, ProbeError};
use crate::events::{ProbeEvent, ProcessEventKind};

/// A running capture of one command tree.
pub struct Capture {
    probe: Probe,
    events: mpsc::Receiver<ProbeEvent>,
    root: u32,
    live: HashSet<u32>,
    root_exited: bool,
    exit_status: Option<i32>,
    reaped: bool,
    dead_since: Option<Instant>,
}

/// Run `cmd` (program and arguments) under a probe with the default configuration.
pub fn run_capture(cmd: &[String]) -> Result<Capture, ProbeError> {
    run_capture_with(cmd, ProbeConfig::default())
}

fn resolve_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Run `cmd` under a probe started with `config` (its selectors are kept; the command tree is added).
pub fn run_capture_with(cmd: &[String], config: ProbeConfig) -> Result<Capture, ProbeError> {
    let name = cmd.first().cloned().unwrap_or_default();
    let spawn_err = |e: std::io::Error| ProbeError::Spawn(name.clone(), e);
    let program = resolve_program(&name)
        .ok_or_else(|| spawn_err(std::io::Error::new(std::io::ErrorKind::NotFound, "not found in PATH")))?;
    let c_program = CString::new(program.as_os_str().as_bytes())
        .map_err(|_| spawn_err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in program path")))?;
    let c_args: Vec<CString> = cmd
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| spawn_err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in an argument")))?;
    let mut argv: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());

    let mut probe = Probe::start(config)?;
    let events = probe.events().ok_or(ProbeError::Poisoned)?;

    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(spawn_err(std::io::Error::last_os_error()));
    }
    let [read_end, write_end] = fds;
    // SAFETY: the child only calls async-signal-safe functions (close, read, execv, _exit)
    // on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(spawn_err(std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // child: wait until the parent has put us in the watched set, then exec
        unsafe {
            libc::close(write_end);
            let mut b = 0u8;
            let n = libc::read(read_end, (&mut b as *mut u8).cast(), 1);
            if n != 1 || b != b'g' {
                libc::_exit(126);
            }
            libc::execv(c_program.as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
    }
    let root = pid as u32;
    // SAFETY: closing our copy of the read end.
    unsafe { libc::close(read_end) };
    let go: u8 = match probe.watch_new_pid(root) {
        Ok(()) => b'g',
        Err(_) => b'x',
    };
    // SAFETY: writing one byte from a valid buffer, then closing our end.
    unsafe {
        libc::write(write_end, (&go as *const u8).cast(), 1);
        libc::close(write_end);
    }
    if go != b'g' {
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        return Err(spawn_err(std::io::Error::other("could not watch the child")));
    }
    Ok(Capture {
        probe,
        events,
        root,
        live: HashSet::from([root]),
        root_exited: false,
        exit_status: None,
        reaped: false,
        dead_since: None,
    })
}

/// Capture a running process tree (`chainwatch capture --pid N`): its connections and
/// processes are seeded from /proc; the capture ends when the tree has exited.
pub fn capture_pid(pid: u32, config: ProbeConfig) -> Result<Capture, ProbeError> {
    let mut probe = Probe::start(config)?;
    let events = probe.events().ok_or(ProbeError::Poisoned)?;
    let tree = crate::procfs::process_tree(pid);
    for t in &tree {
        probe.watch_pid(*t)?;
    }
    Ok(Capture {
        probe,
        events,
        root: pid,
        live: tree.into_iter().collect(),
        root_exited: false,
        exit_status: None,
        reaped: true, // not our child: nothing to reap
        dead_since: None,
    })
}

/// Still running (a zombie is not: a watched process that exited before the probe saw it may
/// stay unreaped by a parent that is not us).
fn alive(pid: u32) -> bool {
    crate::procfs::is_running(pid)
}

impl Capture {
    /// The pid of the command.
    pub fn root_pid(&self) -> u32 {
        self.root
    }

    /// The probe, e.g. for `loss_counters()`.
    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    /// The command's wait(2) status once it exited.
    pub fn exit_status(&self) -> Option<i32> {
        self.exit_status
    }

    fn done(&self) -> bool {
        self.root_exited && self.live.is_empty()
    }

    fn reap(&mut self) {
        if !self.reaped {
            let mut status = 0;
            // SAFETY: reaping our own child; WNOHANG never blocks.
            let r = unsafe { libc::waitpid(self.root as i32, &mut status, libc::WNOHANG) };
            if r == self.root as i32 {
                self.reaped = true;
                self.exit_status.get_or_insert(status);
            }
        }
    }

    /// The next event of the command tree; `None` once every process of it has exited.
    pub async fn next_event(&mut self) -> Option<ProbeEvent> {
        loop {
            if self.done() {
                self.reap();
                return None;
            }
            match tokio::time::timeout(Duration::from_millis(250), self.events.recv()).await {
                Ok(Some(ev)) => {
                    if let ProbeEvent::Process(p) = &ev {
                        match p.kind {
                            ProcessEventKind::Exec | ProcessEventKind::Fork | ProcessEventKind::Existing => {
                                self.live.insert(p.tgid);
                            }
                            ProcessEventKind::Exit => {
                                self.live.remove(&p.tgid);
                                if p.tgid == self.root {
                                    self.root_exited = true;
                                    self.exit_status = p.exit_status;
                                    self.reap();
                                }
                            }
                        }
                    }
                    return Some(ev);
                }
                Ok(None) => return None,
                Err(_) => {
                    // Exit events normally end the capture; if one was lost (ring full), trust
                    // /proc, after a grace period for events still on their way.
                    self.reap();
                    let root_gone = !alive(self.root) || (self.reaped && self.exit_status.is_some());
                    let anyone_dead = root_gone || self.live.iter().any(|p| !alive(*p));
                    if !anyone_dead {
                        self.dead_since = None;
                        continue;
                    }
                    let since = *self.dead_since.get_or_insert_with(Instant::now);
                    if since.elapsed() < EXIT_GRACE {
                        continue;
                    }
                    if root_gone {
                        self.root_exited = true;
                    }
                    let dead: Vec<u32> = self.live.iter().copied().filter(|p| !alive(*p)).collect();
                    for p in dead {
                        self.live.remove(&p);
                    }
                }
            }
        }
    }

    /// Collect every remaining event.
    pub async fn collect(&mut self) -> Vec<ProbeEvent> {
        let mut out = Vec::new();
        while let Some(ev) = self.next_event().await {
            out.push(ev);
        }
        self.reap();
        out
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.reap();
    }
}
