//! `chainwatch capture -- CMD` as a user runs it (root: it loads the real eBPF programs):
//! JSON lines of the command's process, connection and bytes, readable by `JsonRecord`.

use std::process::Command;

use chainwatch_schemas::{ConnRole, ConnectionEventKind, Direction, JsonRecord, ProcessEventKind, SegmentKind};

#[test]
fn capture_prints_the_commands_process_connection_and_bytes() {
    let dir = std::env::temp_dir().join(format!("cw-capture-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), "hello from the server\n").unwrap();
    let server = chainwatch_testkit::HttpServer::start(&dir);
    let port = server.port;
    let url = format!("http://127.0.0.1:{port}/hello.txt");
    let out = Command::new(env!("CARGO_BIN_EXE_chainwatch"))
        .args(["capture", "--", "curl", "-s", "-o", "/dev/null", &url])
        .current_dir(&dir)
        .output()
        .unwrap();
    drop(server);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "capture failed: {stderr}");
    let records: Vec<JsonRecord> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| JsonRecord::from_line(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();

    let exec = records.iter().find_map(|r| match r {
        JsonRecord::ProcessEvent(p) if p.kind == ProcessEventKind::Exec && p.comm == "curl" => Some(p),
        _ => None,
    });
    let exec = exec.unwrap_or_else(|| panic!("no exec of curl in {records:?}"));
    assert!(exec.argv.contains(&url), "{:?}", exec.argv);
    let connect = records
        .iter()
        .find_map(|r| match r {
            JsonRecord::ConnectionEvent(c) if c.kind == ConnectionEventKind::Connect => Some(c),
            _ => None,
        })
        .expect("a connect");
    assert_eq!(connect.tgid, exec.tgid);
    assert_eq!(connect.role, ConnRole::Client);
    assert_eq!(connect.tuple.as_ref().map(|t| t.remote_port), Some(i32::from(port)));
    let bytes = |dir: Direction| -> Vec<u8> {
        records
            .iter()
            .filter_map(|r| match r {
                JsonRecord::RawSegment(s) if s.conn_id == connect.conn_id && s.direction == dir => {
                    assert_eq!(s.kind, SegmentKind::Data);
                    Some(s.payload.clone())
                }
                _ => None,
            })
            .flatten()
            .collect()
    };
    let sent = bytes(Direction::Egress);
    let received = bytes(Direction::Ingress);
    assert!(sent.starts_with(b"GET /hello.txt HTTP/1.1\r\n"), "{}", String::from_utf8_lossy(&sent));
    assert!(received.starts_with(b"HTTP/1.0 200 OK\r\n"), "{}", String::from_utf8_lossy(&received));
    assert!(received.ends_with(b"hello from the server\n"));
    assert!(records.iter().any(|r| matches!(r, JsonRecord::ConnectionEvent(c) if c.kind == ConnectionEventKind::Close && c.conn_id == connect.conn_id)));
    assert!(records.iter().any(|r| matches!(r, JsonRecord::ProcessEvent(p) if p.kind == ProcessEventKind::Exit && p.tgid == exec.tgid && p.exit_code == Some(0))));
    let _ = std::fs::remove_dir_all(dir);
}

/// (pid, state, ppid, comm) of every process, from /proc/PID/stat.
fn processes() -> Vec<(u32, char, u32, String)> {
    use chainwatch_probe::procfs::{all_tgids, parse_stat, stat_state};
    all_tgids()
        .into_iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (comm, ppid, _) = parse_stat(&stat)?;
            let state = stat_state(&stat).and_then(|s| s.chars().next()).unwrap_or('?');
            Some((pid, state, ppid, comm))
        })
        .collect()
}

/// Wait up to `secs` for `found` to give something.
fn wait_for<T>(secs: u64, mut found: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(t) = found() {
            return Some(t);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The kernel program stops a watched process at exec until the probe has attached its uprobes.
/// A probe killed (SIGKILL) while it holds one must not leave it stopped: its guardian process
/// continues it. The probe is frozen (SIGSTOP) first, so the hold cannot be released by the
/// probe itself, then killed.
#[test]
fn a_killed_probe_leaves_no_process_stopped_at_exec() {
    let dir = std::env::temp_dir().join(format!("cw-capture-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let done = dir.join("done");
    let _ = std::fs::remove_file(&done);
    let script = format!("sleep 1; /bin/true; echo ok > {}", done.display());
    let mut probe = Command::new(env!("CARGO_BIN_EXE_chainwatch"))
        .args(["capture", "--", "/bin/sh", "-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let probe_pid = probe.id();
    let sh = wait_for(20, || processes().into_iter().find(|p| p.2 == probe_pid && p.3 == "sh" && p.1 != 'T').map(|p| p.0));
    let Some(sh) = sh else {
        let _ = probe.kill();
        panic!("the captured shell did not start");
    };
    // SAFETY: signalling our own child.
    unsafe { libc::kill(probe_pid as i32, libc::SIGSTOP) };
    // the next child the shell starts (sleep, or true if sleep was continued before the freeze)
    let held = wait_for(10, || processes().into_iter().find(|p| p.2 == sh && matches!(p.1, 'T' | 't')).map(|p| p.0));
    // SAFETY: as above.
    unsafe { libc::kill(probe_pid as i32, libc::SIGKILL) };
    let _ = probe.wait();
    let finished = wait_for(10, || done.exists().then_some(()));
    if finished.is_none() {
        // leave nothing behind, then fail
        for p in processes().into_iter().filter(|p| p.0 == sh || p.2 == sh) {
            // SAFETY: processes this test started.
            unsafe {
                libc::kill(p.0 as i32, libc::SIGCONT);
                libc::kill(p.0 as i32, libc::SIGKILL);
            }
        }
    }
    assert!(held.is_some(), "no child of the shell was seen stopped at exec while the probe was frozen");
    assert!(finished.is_some(), "the process held at exec stayed stopped after the probe was killed");
}
