//! Integration tests (root, real eBPF): selectors (an exact comm matched in the kernel, an exe
//! glob matched in userspace) and `watch_pid` on a process that already holds an established
//! connection (seeded from /proc, then its data carries the seeded connection id).

mod ebpf_support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use chainwatch_probe::ebpf::{Probe, ProbeConfig};
use chainwatch_probe::events::{ConnectionEventKind, Direction, ProbeEvent, ProcessEventKind, Role};
use chainwatch_probe::selectors::Selector;
use ebpf_support::*;
use tokio::sync::mpsc::Receiver;

/// Events of `tgid` until its exit event (or the timeout).
async fn events_of(rx: &mut Receiver<ProbeEvent>, tgid: u32, timeout: Duration) -> Vec<ProbeEvent> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(timeout, async {
        while let Some(ev) = rx.recv().await {
            if ev.tgid() != tgid {
                continue;
            }
            let exit = matches!(&ev, ProbeEvent::Process(p) if p.kind == ProcessEventKind::Exit);
            out.push(ev);
            if exit {
                break;
            }
        }
    })
    .await;
    out
}

fn start(selectors: Vec<Selector>) -> (Probe, Receiver<ProbeEvent>) {
    require_root();
    let mut probe = Probe::start(ProbeConfig { selectors, ..config() }).unwrap_or_else(|e| panic!("probe: {e}"));
    let rx = probe.events().expect("events");
    (probe, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comm_selector_watches_curl_from_its_exec() {
    let server = start_server(PYTHON, &["-c", HTTP_SERVER]);
    let (_probe, mut rx) = start(vec![Selector::Comm("curl".into())]);
    let url = format!("http://127.0.0.1:{}/sel", server.port);
    let child = Command::new("curl").args(["-sS", "-o", "/dev/null", "-d", "selected=1", &url]).spawn().expect("curl");
    let pid = child.id();
    let events = events_of(&mut rx, pid, Duration::from_secs(20)).await;
    let mut child = child;
    assert!(child.wait().expect("wait").success());
    assert!(events.iter().any(|e| matches!(e, ProbeEvent::Process(p) if p.kind == ProcessEventKind::Exec && p.comm == "curl")));
    let conn = opens(&events, pid).into_iter().find(|c| c.tuple.is_some_and(|t| t.remote.port() == server.port)).expect("conn");
    let (egress, _) = stream(&events, &conn, Direction::Egress, false);
    assert!(egress.starts_with(b"POST /sel HTTP/1.1\r\n") && egress.ends_with(b"selected=1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exe_glob_selector_is_matched_in_userspace() {
    let server = start_server(PYTHON, &["-c", HTTP_SERVER]);
    // a script name no other process on the machine runs
    let dir = temp_dir("exe-sel");
    let exe = dir.join("cw-selected-agent");
    std::os::unix::fs::symlink(PYTHON, &exe).expect("symlink");
    let (_probe, mut rx) = start(vec![Selector::Exe("*/cw-selected-*".into())]);
    let script = format!(
        "import time, socket; time.sleep(0.5); s = socket.create_connection(('127.0.0.1', {})); \
         s.sendall(b'POST / HTTP/1.1\\r\\nContent-Length: 2\\r\\n\\r\\nhi'); s.recv(1000)",
        server.port
    );
    let mut child = Command::new(&exe).args(["-c", &script]).spawn().expect("agent");
    let pid = child.id();
    let events = events_of(&mut rx, pid, Duration::from_secs(20)).await;
    assert!(child.wait().expect("wait").success());
    let conn = opens(&events, pid).into_iter().find(|c| c.tuple.is_some_and(|t| t.remote.port() == server.port)).expect("conn");
    let (egress, _) = stream(&events, &conn, Direction::Egress, false);
    assert_eq!(egress, b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi".to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_pid_seeds_an_established_connection_from_proc() {
    let server = start_server(PYTHON, &["-c", HTTP_SERVER]);
    // connects first, then waits for a line on stdin before sending
    let script = format!(
        "import socket, sys; s = socket.create_connection(('127.0.0.1', {})); print(s.fileno(), flush=True); \
         sys.stdin.readline(); s.sendall(b'POST /late HTTP/1.1\\r\\nContent-Length: 0\\r\\n\\r\\n'); print(s.recv(1000)[:12])",
        server.port
    );
    let mut child = Command::new(PYTHON).args(["-c", &script]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("client");
    let pid = child.id();
    let mut line = String::new();
    let mut child_out = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut child_out, &mut line).unwrap();
    let fd: i32 = line.trim().parse().expect("fd line");

    let (probe, mut rx) = start(vec![]);
    probe.watch_pid(pid).expect("watch_pid");
    child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let events = events_of(&mut rx, pid, Duration::from_secs(20)).await;
    assert!(child.wait().expect("wait").success());

    assert!(events.iter().any(|e| matches!(e, ProbeEvent::Process(p) if p.kind == ProcessEventKind::Existing && p.tgid == pid)));
    let seeded = opens(&events, pid).into_iter().find(|c| c.id.fd == fd).expect("seeded connection");
    assert_eq!(seeded.role, Role::Unknown);
    assert_eq!(seeded.tuple.map(|t| t.remote.port()), Some(server.port));
    let (egress, _) = stream(&events, &seeded, Direction::Egress, false);
    assert_eq!(egress, b"POST /late HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_vec());
    assert!(events.iter().any(|e| matches!(e, ProbeEvent::Connection(c) if c.id == seeded.id && c.kind == ConnectionEventKind::Close)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_port_filter_keeps_only_the_listed_port() {
    require_root();
    let a = start_server(PYTHON, &["-c", HTTP_SERVER]);
    let b = start_server(PYTHON, &["-c", HTTP_SERVER]);
    let script = format!(
        "import socket\nfor p in ({}, {}):\n    s = socket.create_connection(('127.0.0.1', p))\n    \
         s.sendall(b'POST / HTTP/1.1\\r\\nContent-Length: 1\\r\\n\\r\\nx')\n    s.recv(1000)\n    s.close()\n",
        a.port, b.port
    );
    let cfg = ProbeConfig { ports: vec![a.port], ..config() };
    let (events, root, status, _) = capture(&[PYTHON, "-c", &script], cfg).await;
    assert_eq!(status.map(|s| s >> 8), Some(0));
    let conns = opens(&events, root);
    assert_eq!(conns.len(), 1, "only the connection to port {}: {conns:?}", a.port);
    assert_eq!(conns[0].tuple.map(|t| t.remote.port()), Some(a.port));
    let (egress, _) = stream(&events, &conns[0], Direction::Egress, false);
    assert!(egress.ends_with(b"\r\n\r\nx"));
    assert!(events.iter().all(|e| match e {
        ProbeEvent::Data(d) => d.id == conns[0].id,
        _ => true,
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_pid_follows_a_running_tree_until_it_exits() {
    require_root();
    let server = start_server(PYTHON, &["-c", HTTP_SERVER]);
    let script = format!(
        "import sys, socket; sys.stdin.readline(); s = socket.create_connection(('127.0.0.1', {})); \
         s.sendall(b'POST /pid HTTP/1.1\\r\\nContent-Length: 0\\r\\n\\r\\n'); s.recv(1000)",
        server.port
    );
    // the client waits for a line on stdin: it connects only once the probe watches it, however
    // long loading the programs takes on a busy machine
    let mut child = Command::new(PYTHON).args(["-c", &script]).stdin(std::process::Stdio::piped()).spawn().expect("client");
    let pid = child.id();
    let mut cap = chainwatch_probe::capture::capture_pid(pid, config()).expect("capture_pid");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("go");
    }
    let events = tokio::time::timeout(Duration::from_secs(30), cap.collect()).await.expect("tree exit");
    assert!(child.wait().unwrap().success());
    let start_of = |kind: ProcessEventKind| {
        events.iter().find_map(|e| match e {
            ProbeEvent::Process(p) if p.kind == kind && p.tgid == pid => Some(p.start_ns),
            _ => None,
        })
    };
    let (seen, exited) = (start_of(ProcessEventKind::Existing), start_of(ProcessEventKind::Exit));
    assert!(seen.is_some() && exited.is_some(), "existing and exit events expected");
    assert_eq!(seen, exited, "the /proc identity and the kernel identity must agree");
    let conn = opens(&events, pid).into_iter().find(|c| c.tuple.is_some_and(|t| t.remote.port() == server.port)).expect("conn");
    assert_eq!(conn.role, Role::Client);
    let (egress, _) = stream(&events, &conn, Direction::Egress, false);
    assert_eq!(egress, b"POST /pid HTTP/1.1\r\nContent-Length: 0\r\n\r\n".to_vec());
}
