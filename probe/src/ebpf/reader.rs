//! The ring-buffer reader thread: polls the ring, decodes records, reacts to
//! process events (uprobes for new watched processes, releasing processes
//! held at exec, closing the connections of exited processes), turns jumps in
//! stream positions into explicit ring-full GAPs, and forwards events into a
//! bounded channel (when it is full the thread waits and the kernel counts).

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aya::maps::{MapData, RingBuf};
use tokio::sync::mpsc;

use super::kernel::ConnKey;
use super::Shared;
use crate::events::{
    decode, proc_record_watched, ConnectionEvent, ConnectionEventKind, ConnectionId, Direction, GapReason, GapSegment,
    ProbeEvent, ProcessEventKind, Role,
};
use crate::procfs;
use crate::selectors::Selector;

/// A process held at exec is continued after this long even if its exec event never arrived.
const HOLD_TIMEOUT_NS: u64 = 2_000_000_000;
/// Stream positions tracked for ring-full detection; past this the table is cleared (counted).
const MAX_TRACKED_STREAMS: usize = 65_536;

/// CLOCK_MONOTONIC in ns, the clock of bpf_ktime_get_ns().
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

type StreamKey = (u32, i32, u64, Direction, bool);

struct Reader {
    shared: Arc<Shared>,
    tx: mpsc::Sender<ProbeEvent>,
    /// next expected position per stream
    expected: HashMap<StreamKey, u64>,
    userspace_matching: bool,
}

pub(crate) fn spawn(shared: Arc<Shared>, ring: RingBuf<MapData>, tx: mpsc::Sender<ProbeEvent>) -> std::thread::JoinHandle<()> {
    let userspace_matching = shared.config.selectors.iter().any(Selector::needs_userspace_matching);
    let mut reader = Reader { shared, tx, expected: HashMap::new(), userspace_matching };
    std::thread::Builder::new()
        .name("chainwatch-ring".into())
        .spawn(move || reader.run(ring))
        .unwrap_or_else(|e| {
            // Without the thread nothing would be read: make that loud, not silent.
            tracing::error!(error = %e, "could not start the ring-buffer reader thread");
            std::thread::spawn(|| {})
        })
}

impl Reader {
    fn run(&mut self, mut ring: RingBuf<MapData>) {
        let fd = ring.as_raw_fd();
        let mut last_sweep = Instant::now();
        let mut last_rescan = Instant::now();
        while !self.shared.stop.load(Ordering::Relaxed) {
            let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // Data events wake us only once a batch is waiting (chainwatch.bpf.c,
            // data_wakeup_flags), so poll often: 10 ms bounds the latency of a quiet stream.
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, 10) };
            loop {
                let (decoded, kernel_watched) = match ring.next() {
                    Some(item) => (decode(&item, &self.shared.node), proc_record_watched(&item)),
                    None => break,
                };
                match decoded {
                    Ok(ev) => {
                        for out in self.handle(ev, kernel_watched) {
                            self.forward(out);
                        }
                    }
                    Err(e) => {
                        self.shared.undecodable.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "undecodable kernel record");
                    }
                }
            }
            if last_sweep.elapsed() > Duration::from_millis(200) {
                last_sweep = Instant::now();
                self.release_stale_holds();
            }
            if last_rescan.elapsed() > Duration::from_secs(1) {
                last_rescan = Instant::now();
                self.rescan_libraries();
            }
        }
    }

    /// `kernel_watched`: a process record the kernel made for a watched process.
    fn handle(&mut self, ev: ProbeEvent, kernel_watched: bool) -> Vec<ProbeEvent> {
        let out = self.handle_one(ev, kernel_watched);
        for ev in &out {
            if let ProbeEvent::Connection(c) = ev
                && c.kind == ConnectionEventKind::Close
            {
                self.forget_streams(&c.id);
            }
        }
        out
    }

    fn handle_one(&mut self, ev: ProbeEvent, kernel_watched: bool) -> Vec<ProbeEvent> {
        match ev {
            ProbeEvent::Process(mut p) => {
                let Ok(mut k) = self.shared.lock() else { return vec![] };
                match p.kind {
                    ProcessEventKind::Exec | ProcessEventKind::Fork => {
                        let (container_id, pod_uid) = procfs::container_of_pid(p.tgid);
                        p.container_id = container_id;
                        p.pod_uid = pod_uid;
                        // the record says what the kernel decided; the map alone would miss a
                        // process that has exited (and left the map) since
                        let mut watched = kernel_watched || k.is_watched(p.tgid);
                        if !watched
                            && self.userspace_matching
                            && p.kind == ProcessEventKind::Exec
                            && self.shared.config.selectors.iter().any(|s| s.matches(&p))
                            && k.watched.insert(p.tgid, 1, 0).is_ok()
                        {
                            watched = true;
                        }
                        if watched {
                            k.tracked.insert(p.tgid);
                            if let Err(e) = k.attach_process(p.tgid) {
                                tracing::warn!(tgid = p.tgid, error = %e, "uprobes not attached");
                            }
                        }
                        if k.held.remove(&p.tgid).is_ok() {
                            // SAFETY: kill(2) has no memory-safety preconditions.
                            unsafe { libc::kill(p.tgid as i32, libc::SIGCONT) };
                        }
                        if watched { vec![ProbeEvent::Process(p)] } else { vec![] }
                    }
                    ProcessEventKind::Exit | ProcessEventKind::Existing => {
                        if !k.tracked.remove(&p.tgid) {
                            return vec![];
                        }
                        let k = &mut *k;
                        k.detach_process(p.tgid);
                        // exit closes fds without close(2): report those connections closed
                        let keys: Vec<ConnKey> =
                            k.conns.keys().filter_map(Result::ok).filter(|c| c.tgid == p.tgid).collect();
                        let mut out = Vec::new();
                        for key in keys {
                            if let Ok(st) = k.conns.get(&key, 0) {
                                let id = ConnectionId {
                                    node: self.shared.node.clone(),
                                    tgid: key.tgid,
                                    fd: key.fd,
                                    start_ns: st.start_ns,
                                };
                                out.push(ProbeEvent::Connection(ConnectionEvent {
                                    kind: ConnectionEventKind::Close,
                                    id,
                                    ts_ns: p.ts_ns,
                                    tid: p.tid,
                                    role: match st.role {
                                        1 => Role::Client,
                                        2 => Role::Server,
                                        _ => Role::Unknown,
                                    },
                                    tuple: None,
                                    tls: st.tls != 0,
                                    bytes_egress: st.pos[0],
                                    bytes_ingress: st.pos[1],
                                }));
                            }
                            let _ = k.conns.remove(&key);
                        }
                        out.push(ProbeEvent::Process(p));
                        out
                    }
                }
            }
            ProbeEvent::Connection(c) => {
                let mut out = Vec::new();
                if c.kind == ConnectionEventKind::Close && !c.tls {
                    // data lost at the very end of a stream shows only against the close totals
                    for (dir, total) in [(Direction::Egress, c.bytes_egress), (Direction::Ingress, c.bytes_ingress)] {
                        let key = (c.id.tgid, c.id.fd, c.id.start_ns, dir, false);
                        let seen = self.expected.get(&key).copied().unwrap_or(0);
                        if total > seen {
                            out.push(ProbeEvent::Gap(GapSegment {
                                id: c.id.clone(),
                                ts_ns: c.ts_ns,
                                direction: dir,
                                position: seen,
                                len: total - seen,
                                tls: false,
                                reason: GapReason::RingFull,
                            }));
                        }
                    }
                }
                out.push(ProbeEvent::Connection(c));
                out
            }
            ProbeEvent::Data(d) => {
                let key = (d.id.tgid, d.id.fd, d.id.start_ns, d.direction, d.tls);
                let mut out = Vec::with_capacity(1);
                if let Some(gap) = self.advance(key, d.position, d.payload.len() as u64) {
                    out.push(ProbeEvent::Gap(GapSegment {
                        id: d.id.clone(),
                        ts_ns: d.ts_ns,
                        direction: d.direction,
                        position: d.position - gap,
                        len: gap,
                        tls: d.tls,
                        reason: GapReason::RingFull,
                    }));
                }
                out.push(ProbeEvent::Data(d));
                out
            }
            ProbeEvent::Gap(g) => {
                let key = (g.id.tgid, g.id.fd, g.id.start_ns, g.direction, g.tls);
                let mut out = Vec::with_capacity(1);
                if let Some(missing) = self.advance(key, g.position, g.len) {
                    out.push(ProbeEvent::Gap(GapSegment {
                        position: g.position - missing,
                        len: missing,
                        reason: GapReason::RingFull,
                        ..g.clone()
                    }));
                }
                out.push(ProbeEvent::Gap(g));
                out
            }
        }
    }

    /// Hand one event to the consumer. When the channel is full this waits (the ring then fills
    /// and the kernel counts what it refuses), but never past a stop request. While it waits,
    /// processes held at exec keep being released after HOLD_TIMEOUT_NS: a slow or stuck
    /// consumer must never leave a watched program stopped (their exec records may sit unread
    /// in the ring behind the one being forwarded).
    fn forward(&self, mut ev: ProbeEvent) {
        let mut last_sweep = Instant::now();
        loop {
            match self.tx.try_send(ev) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(back)) => {
                    if self.shared.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    ev = back;
                    if last_sweep.elapsed() > Duration::from_millis(200) {
                        last_sweep = Instant::now();
                        self.release_stale_holds();
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    /// Record that [position, position+len) arrived; returns the bytes missing before it.
    fn advance(&mut self, key: StreamKey, position: u64, len: u64) -> Option<u64> {
        if self.expected.len() >= MAX_TRACKED_STREAMS && !self.expected.contains_key(&key) {
            self.expected.clear();
        }
        let expected = self.expected.insert(key, position.saturating_add(len)).unwrap_or(0);
        (position > expected).then(|| position - expected)
    }

    fn forget_streams(&mut self, id: &ConnectionId) {
        self.expected.retain(|k, _| !(k.0 == id.tgid && k.1 == id.fd && k.2 == id.start_ns));
    }

    fn release_stale_holds(&self) {
        let Ok(mut k) = self.shared.lock() else { return };
        let now = monotonic_ns();
        let stale: Vec<u32> = k
            .held
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, t)| now.saturating_sub(*t) > HOLD_TIMEOUT_NS)
            .map(|(p, _)| p)
            .collect();
        for t in stale {
            let _ = k.held.remove(&t);
            self.shared.holds_timed_out.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(tgid = t, "process held at exec continued by the timeout");
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(t as i32, libc::SIGCONT) };
        }
    }

    /// Libraries loaded since the last look (a dlopen'ed libssl, a libc in a new mount
    /// namespace) get their uprobes.
    fn rescan_libraries(&self) {
        let Ok(mut k) = self.shared.lock() else { return };
        if !k.uses_uprobes() {
            return;
        }
        let pids: Vec<u32> = k.tracked.iter().copied().collect();
        for p in pids {
            let _ = k.attach_process(p);
        }
    }
}
