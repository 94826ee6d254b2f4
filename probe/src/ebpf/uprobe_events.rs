//! Per-process uprobes as perf events on shared tracefs uprobe events (`UprobeEvents`).
//!
//! aya attaches a per-process uprobe by creating a kernel uprobe for that one perf event, and
//! closing it unregisters that uprobe: an RCU tasks-trace grace period under a global mutex.
//! Measured on kernel 6.18: 9 closes a second, with 1 or 16 closing threads alike. A watched
//! process leaves ~43 of them (libc mode), so a probe that watched a few dozen processes took
//! a minute to stop, and short-lived watched processes grew a backlog of open uprobes.
//!
//! Here each (library file, offset, program) is one named uprobe event created once in tracefs
//! (`uprobe_events`, group `chainwatch_<pid>_<n>`). Its program is attached once, through a perf
//! event on that uprobe targeted at the anchor: a child of the probe that only sleeps, so the
//! program is in the event's program array exactly once. Watching a process opens another perf
//! event on the same uprobe, targeted at that process and without a program: the kernel's uprobe
//! filter installs the breakpoint in that process's memory only (unwatched processes never
//! trap), and the program runs when it hits. Closing that perf event takes the breakpoint out
//! of the process and waits for no grace period (measured: 352 closed in 6.5 ms). Only the
//! anchors' perf events pay one when the probe stops (~110 ms per event, a few dozen events).
//!
//! Events of a probe that died without cleaning up are removed at the next start (their group
//! names a process that no longer exists).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use aya::programs::{ProbeKind, UProbe};

use super::watcher_child::WatcherChild;

/// Named events one probe creates at most; past it, attaches fall back to aya's per-process
/// uprobes (every library file in every container root needs its own events).
pub const MAX_EVENTS: usize = 4096;
/// Group names start with this, then the probe's pid and a sequence number.
const GROUP_PREFIX: &str = "chainwatch_";
/// `PERF_TYPE_TRACEPOINT`.
const PERF_TYPE_TRACEPOINT: u32 = 2;
/// `PERF_FLAG_FD_CLOEXEC`.
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
/// `PERF_EVENT_IOC_SET_BPF` = `_IOW('$', 8, __u32)`.
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
/// `sizeof(struct perf_event_attr)` for PERF_ATTR_SIZE_VER7 (every field up to `sig_data`).
const PERF_ATTR_SIZE: u32 = 128;

/// Why a named uprobe event could not be used (the caller falls back to aya's uprobes).
#[derive(Debug, thiserror::Error)]
pub enum UprobeEventsError {
    #[error("no writable tracefs uprobe_events (looked under /sys/kernel/tracing and /sys/kernel/debug/tracing)")]
    NoTracefs,
    #[error("cannot start the anchor process: {0}")]
    Anchor(std::io::Error),
    #[error("{MAX_EVENTS} uprobe events already created")]
    Full,
    #[error("library path {0:?} cannot be named in uprobe_events (whitespace or not UTF-8)")]
    BadPath(PathBuf),
    #[error("uprobe_events refused {line:?}: {error}")]
    Define { line: String, error: std::io::Error },
    #[error("reading the id of {event}: {error}")]
    Id { event: String, error: String },
    #[error("program {0}: no fd (not loaded)")]
    Program(&'static str),
    #[error("perf_event_open on uprobe event {event} for pid {pid}: {error}")]
    PerfOpen { event: String, pid: i32, error: std::io::Error },
    #[error("attaching program {program} to uprobe event {event}: {error}")]
    SetBpf { program: &'static str, event: String, error: std::io::Error },
}

/// (library file (dev, inode), file offset, program).
type EventKey = ((u64, u64), u64, &'static str);

/// One named uprobe event and the anchor's perf event that carries its program.
struct TraceEvent {
    name: String,
    id: u64,
    /// The anchor's perf event carrying the program: closed before the event is removed.
    _anchor_link: OwnedFd,
}

/// The named uprobe events of one probe, and the anchor process their programs are attached to.
pub struct UprobeEvents {
    group: EventGroup,
    events: HashMap<EventKey, TraceEvent>,
}

/// Where this probe's events are defined: the tracefs root, its group, the anchor process.
struct EventGroup {
    tracefs: PathBuf,
    name: String,
    /// A child process that only sleeps: the target of the perf events that carry the programs.
    anchor: WatcherChild,
}

impl UprobeEvents {
    /// Find tracefs, remove the events of probes that died, start the anchor.
    pub fn new() -> Result<UprobeEvents, UprobeEventsError> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let tracefs = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
            .iter()
            .map(PathBuf::from)
            .find(|d| OpenOptions::new().append(true).open(d.join("uprobe_events")).is_ok())
            .ok_or(UprobeEventsError::NoTracefs)?;
        remove_stale_groups(&tracefs);
        let name = format!("{GROUP_PREFIX}{}_{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let anchor = WatcherChild::start(None, |_| {}).map_err(UprobeEventsError::Anchor)?;
        Ok(UprobeEvents { group: EventGroup { tracefs, name, anchor }, events: HashMap::new() })
    }

    /// The tracefs group of this probe's events.
    pub fn group(&self) -> &str {
        &self.group.name
    }

    /// Put `program` on `offset` of the library file `path` (identified by `file`) for process
    /// `tgid`: the named event is created (with the program on the anchor) the first time this
    /// (file, offset, program) is used. Dropping the returned fd detaches it, at once.
    pub fn attach(
        &mut self,
        program_name: &'static str,
        program: &UProbe,
        path: &Path,
        file: (u64, u64),
        offset: u64,
        tgid: u32,
    ) -> Result<OwnedFd, UprobeEventsError> {
        let created = self.events.len();
        let event = match self.events.entry((file, offset, program_name)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                if created >= MAX_EVENTS {
                    return Err(UprobeEventsError::Full);
                }
                // named by count: events are only removed at stop
                let name = format!("e{created}");
                v.insert(self.group.define(name, program_name, program, path, offset)?)
            }
        };
        let pid = i32::try_from(tgid).unwrap_or(-1);
        perf_open(event.id, pid).map_err(|error| UprobeEventsError::PerfOpen { event: event.name.clone(), pid, error })
    }
}

impl EventGroup {
    /// Define the named event `name` on `offset` of `path` and attach `program` to it through
    /// the anchor; the definition is removed again if the program cannot be attached.
    fn define(
        &self,
        name: String,
        program_name: &'static str,
        program: &UProbe,
        path: &Path,
        offset: u64,
    ) -> Result<TraceEvent, UprobeEventsError> {
        let path_text = path
            .to_str()
            .filter(|p| !p.is_empty() && !p.chars().any(char::is_whitespace))
            .ok_or_else(|| UprobeEventsError::BadPath(path.to_path_buf()))?;
        let kind = match program.kind() {
            ProbeKind::Entry => 'p',
            ProbeKind::Return => 'r',
        };
        let full = format!("{}/{name}", self.name);
        let line = format!("{kind}:{full} {path_text}:{offset:#x}\n");
        write_definition(&self.tracefs, &line).map_err(|error| UprobeEventsError::Define { line: line.clone(), error })?;
        let linked = self.link_program(&full, program_name, program);
        if linked.is_err() {
            let _ = self.remove(&name);
        }
        let (id, anchor_link) = linked?;
        Ok(TraceEvent { name, id, _anchor_link: anchor_link })
    }

    /// The id of the new event `full` (group/name), and the anchor's perf event on it carrying
    /// the program.
    fn link_program(&self, full: &str, program_name: &'static str, program: &UProbe) -> Result<(u64, OwnedFd), UprobeEventsError> {
        let id_path = self.tracefs.join("events").join(full).join("id");
        let id: u64 = std::fs::read_to_string(&id_path)
            .map_err(|e| e.to_string())
            .and_then(|s| s.trim().parse().map_err(|e: std::num::ParseIntError| e.to_string()))
            .map_err(|error| UprobeEventsError::Id { event: full.to_string(), error })?;
        let prog_fd = program.fd().map_err(|_| UprobeEventsError::Program(program_name))?;
        let link = perf_open(id, self.anchor.pid())
            .map_err(|error| UprobeEventsError::PerfOpen { event: full.to_string(), pid: self.anchor.pid(), error })?;
        let raw_prog = std::os::fd::AsFd::as_fd(prog_fd).as_raw_fd();
        // SAFETY: both fds are open; the argument is the program's fd, as the ioctl expects.
        let rc = unsafe { libc::ioctl(link.as_raw_fd(), PERF_EVENT_IOC_SET_BPF as _, raw_prog) };
        if rc != 0 {
            return Err(UprobeEventsError::SetBpf {
                program: program_name,
                event: full.to_string(),
                error: std::io::Error::last_os_error(),
            });
        }
        Ok((id, link))
    }

    /// Remove the definition of event `name` (refused by the kernel while it is in use).
    fn remove(&self, name: &str) -> std::io::Result<()> {
        write_definition(&self.tracefs, &format!("-:{}/{name}\n", self.name))
    }
}

/// Append one line to `uprobe_events` (never truncate it: that would remove every event).
fn write_definition(tracefs: &Path, line: &str) -> std::io::Result<()> {
    OpenOptions::new().append(true).open(tracefs.join("uprobe_events"))?.write_all(line.as_bytes())
}

/// How long a stopping probe retries removing events still in use.
const REMOVE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

impl Drop for UprobeEvents {
    /// Close the anchors' perf events (each waits for a grace period), then remove the events.
    /// Per-process perf events must be closed before (the kernel refuses to remove an event in
    /// use, and the next start removes it then).
    fn drop(&mut self) {
        let names: Vec<String> = self.events.values().map(|e| e.name.clone()).collect();
        let started = std::time::Instant::now();
        self.events.clear();
        tracing::debug!(group = %self.group.name, events = names.len(), elapsed_ms = started.elapsed().as_millis() as u64, "uprobe events' programs detached");
        // An event stays in use while any copy of a perf event on it is open: a child forked
        // by another thread of this process holds copies until it execs (close-on-exec). Give
        // such a child REMOVE_PATIENCE; what is still left is removed by the next probe that
        // starts after this process is gone.
        let mut left = names;
        let deadline = started + REMOVE_PATIENCE;
        loop {
            left.retain(|name| self.group.remove(name).is_err());
            if left.is_empty() || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if !left.is_empty() {
            tracing::warn!(group = %self.group.name, events = left.len(), "uprobe events still in use at stop, left for the next start to remove");
        }
    }
}

/// `perf_event_open` on tracepoint `id` for process `pid` (any CPU), enabled, close-on-exec.
fn perf_open(id: u64, pid: i32) -> std::io::Result<OwnedFd> {
    // struct perf_event_attr as 16 u64 words: type and size, config, sample_period, then zeros
    // but wakeup_events (the first u32 of word 7)
    let mut attr = [0u64; 16];
    attr[0] = u64::from(PERF_TYPE_TRACEPOINT) | (u64::from(PERF_ATTR_SIZE) << 32);
    attr[1] = id;
    attr[2] = 1;
    attr[7] = 1;
    // SAFETY: attr is a valid perf_event_attr of PERF_ATTR_SIZE bytes; the fd returned is ours.
    let fd = unsafe { libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), pid, -1, -1, PERF_FLAG_FD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| std::io::Error::other("perf_event_open returned an fd out of range"))?;
    // SAFETY: the kernel just returned this fd, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Remove the events of groups whose probe process is gone (it was killed before its `Drop`).
fn remove_stale_groups(tracefs: &Path) {
    let Ok(dir) = std::fs::read_dir(tracefs.join("events")) else { return };
    for entry in dir.flatten() {
        let group = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = group.strip_prefix(GROUP_PREFIX).and_then(|rest| rest.split('_').next()) else { continue };
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || Path::new("/proc").join(pid).exists() {
            continue;
        }
        let Ok(events) = std::fs::read_dir(entry.path()) else { continue };
        let mut removed = 0usize;
        for event in events.flatten().filter(|e| e.path().is_dir()) {
            if write_definition(tracefs, &format!("-:{group}/{}\n", event.file_name().to_string_lossy())).is_ok() {
                removed += 1;
            }
        }
        tracing::info!(group, removed, "removed uprobe events left by a probe that is gone");
    }
}
