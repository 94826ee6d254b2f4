//! Integration test (root, real eBPF), issue #3: detaching the uprobes of exited processes.
//!
//! By default per-process uprobes are perf events on named tracefs uprobe events, closed at
//! once: no backlog builds up, and the probe removes its events when it stops. With aya's
//! per-process uprobes (`uprobe_events: false`, also the fallback without a writable tracefs)
//! the links of exited processes wait for the janitor, which the kernel lets close only ~9 a
//! second. Past `max_detach_backlog` waiting links, a newly watched process gets no uprobes
//! (bounded fds, bounded kernel uprobe objects) and is counted in `uprobe_attaches_deferred`;
//! its process events still come from the tracepoints. Its own test binary: the janitor is
//! shared by the probes of one process.

mod ebpf_support;

use chainwatch_probe::ebpf::{ProbeConfig, SyscallHooks};
use chainwatch_probe::events::{ProbeEvent, ProcessEventKind};
use chainwatch_probe::capture::run_capture_with;
use ebpf_support::*;

const CHILDREN: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_processes_past_the_detach_backlog_cap_are_deferred_and_counted() {
    require_root();
    // One waiting link is enough: once the first child has exited, its links wait (the janitor
    // starts closing them 250 ms after the last attach, ~20 a second), and the next children,
    // started within milliseconds, are put off.
    let list: Vec<String> = (1..=CHILDREN).map(|i| i.to_string()).collect();
    let script = format!("for i in {}; do /bin/true; done; exit 0", list.join(" "));
    let config = ProbeConfig { max_detach_backlog: Some(1), uprobe_events: false, ..config() };
    let (events, root, status, loss) = capture(&["/bin/sh", "-c", &script], config).await;
    assert_eq!(status.map(|s| s >> 8), Some(0), "the script failed: {status:?}");
    let execs = events
        .iter()
        .filter(|e| matches!(e, ProbeEvent::Process(p) if p.kind == ProcessEventKind::Exec && p.ppid == root))
        .count();
    assert_eq!(execs, CHILDREN, "every child's exec is reported, deferred or not");
    assert!(
        loss.uprobe_attaches_deferred >= 3 && loss.uprobe_attaches_deferred <= CHILDREN as u64,
        "children put off by the backlog cap: {loss:?}"
    );
}

/// The same children with named uprobe events: their perf events close at once, so even a cap
/// of one waiting link defers nobody and no attach fails; the probe's tracefs group has events
/// while it runs and is gone once the probe is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_uprobe_events_detach_at_once_and_are_removed_at_stop() {
    require_root();
    let list: Vec<String> = (1..=CHILDREN).map(|i| i.to_string()).collect();
    let script = format!("for i in {}; do /bin/true; done; exit 0", list.join(" "));
    let config = ProbeConfig { max_detach_backlog: Some(1), syscall_hooks: SyscallHooks::Libc, ..config() };
    let cmd = ["/bin/sh".to_string(), "-c".to_string(), script];
    let mut cap = run_capture_with(&cmd, config).unwrap_or_else(|e| panic!("starting the probe failed: {e}"));
    let root = cap.root_pid();
    let group = cap.probe().uprobe_event_group().expect("probe").expect("named uprobe events are available as root");
    let events = tokio::time::timeout(std::time::Duration::from_secs(60), cap.collect())
        .await
        .expect("the captured command did not finish within 60 s");
    let loss = cap.probe().loss_counters().expect("loss counters");
    assert_eq!(cap.exit_status().map(|s| s >> 8), Some(0), "the script failed");
    let execs = events
        .iter()
        .filter(|e| matches!(e, ProbeEvent::Process(p) if p.kind == ProcessEventKind::Exec && p.ppid == root))
        .count();
    assert_eq!(execs, CHILDREN, "every child's exec is reported");
    assert_eq!(loss.uprobe_attaches_deferred, 0, "named events leave no backlog: {loss:?}");
    assert_eq!(loss.uprobe_attach_failures, 0, "{loss:?}");
    let group_dir = ["/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"]
        .iter()
        .map(|d| std::path::Path::new(d).join(&group))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("tracefs group {group} not found while the probe runs"));
    let defined = std::fs::read_dir(&group_dir).map(|d| d.flatten().filter(|e| e.path().is_dir()).count()).unwrap_or(0);
    assert!(defined > 0, "no events in {group}");
    drop(cap);
    assert!(!group_dir.exists(), "{group} ({defined} events) left behind after the probe stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_backlog_nothing_is_deferred() {
    require_root();
    let (_, _, status, loss) = capture(&["/bin/true"], config()).await;
    assert_eq!(status.map(|s| s >> 8), Some(0));
    assert_eq!(loss.uprobe_attaches_deferred, 0, "{loss:?}");
}
